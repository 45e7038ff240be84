"""Six languages, chosen from Accept-Language: the catalogs are complete, checked and compiled, and each is picked.

What each screen says in each language is in tests/test_i18n_screens.py.
"""

from __future__ import annotations

import gettext
import io
import subprocess
import sys

import pytest
from babel.messages.mofile import write_mo
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from fallback.web.languages import LANGUAGES, TRANSLATIONS, language_from, language_of

ROOT = TRANSLATIONS.parent.parent
SIX = ["en", "de", "es", "fr", "it", "nl"]
CATALOGS = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
# Counts that pick every plural form of the six languages (1, 2, 0 in French, a million for "many").
PLURAL_PROBES = (0, 1, 2, 5, 21, 1_000_000)


def catalog_of(po_path):
    with open(po_path, "rb") as handle:
        return read_po(handle, locale=po_path.parent.parent.name)


def single_id(message) -> str:
    return message.id[0] if isinstance(message.id, tuple) else message.id


def test_the_six_languages_are_available_english_first():
    assert LANGUAGES[0] == "en" and sorted(LANGUAGES) == sorted(SIX)
    assert sorted(path.parent.parent.name for path in CATALOGS) == sorted(SIX[1:])  # English is the source text


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("de-DE,de;q=0.9,en;q=0.5", "de"),
        ("de-CH", "de"),
        ("es-MX,es;q=0.9", "es"),
        ("fr-BE,fr;q=0.9", "fr"),
        ("it-IT", "it"),
        ("nl-BE,nl;q=0.8,en;q=0.6", "nl"),
        ("pt-BR,pt;q=0.9,it;q=0.4", "it"),  # the first of ours the visitor reads
        ("pt-BR,pt;q=0.9", "en"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("", "en"),
        (None, "en"),
        ("*", "en"),
    ],
)
def test_the_language_is_our_best_match_for_accept_language(header, language):
    assert language_from(header) == language


def test_a_forms_own_language_wins_over_the_header_when_it_is_one_of_ours():
    assert language_of("de", "fr-FR,fr") == "de"
    assert language_of("pt", "fr-FR,fr") == "fr"
    assert language_of("../../etc/passwd", None) == "en"
    assert language_of(None, "nl") == "nl"


@pytest.mark.parametrize("po_path", CATALOGS, ids=lambda path: path.parent.parent.name)
def test_a_catalog_has_no_untranslated_fuzzy_or_broken_entry(po_path):
    catalog = catalog_of(po_path)
    assert catalog.fuzzy is False, f"{po_path}: the catalog header is marked fuzzy"
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"{po_path}: {message.id!r} is not translated"
        assert not message.fuzzy, f"{po_path}: {message.id!r} is fuzzy; check the translation and drop the flag"
    # Babel's own checkers: the same %(placeholders)s as the English, and as many plural forms as the language has.
    problems = [(message.id, [str(error) for error in errors]) for message, errors in catalog.check()]
    assert not problems, f"{po_path}: {problems}"


@pytest.mark.parametrize("po_path", CATALOGS, ids=lambda path: path.parent.parent.name)
def test_a_catalog_has_the_plural_rule_of_its_language(po_path):
    catalog = catalog_of(po_path)
    expected = get_plural(catalog.locale)
    assert (catalog.num_plurals, catalog.plural_expr) == (expected.num_plurals, expected.plural_expr)
    plurals = [message for message in catalog if isinstance(message.id, tuple)]
    assert plurals and all(len(message.string) == expected.num_plurals for message in plurals)


@pytest.mark.parametrize("po_path", CATALOGS, ids=lambda path: path.parent.parent.name)
def test_the_compiled_catalog_says_what_its_source_says(po_path):
    catalog = catalog_of(po_path)
    fresh = io.BytesIO()
    write_mo(fresh, catalog)
    fresh.seek(0)
    expected = gettext.GNUTranslations(fresh)
    with open(po_path.with_suffix(".mo"), "rb") as handle:
        shipped = gettext.GNUTranslations(handle)
    stale = "the .mo is stale: run pybabel compile -d fallback/translations"
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            for number in PLURAL_PROBES:
                assert shipped.ngettext(*message.id, number) == expected.ngettext(*message.id, number), stale
        else:
            assert shipped.gettext(message.id) == expected.gettext(message.id), stale


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[str]:
    """The msgids pybabel extracts from the code and templates, as docs/languages.md says to run it."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_l", "-o", pot, "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(pot, "rb") as handle:
        return {single_id(message) for message in read_po(handle) if message.id}


def test_the_extraction_finds_the_page_the_mail_and_the_form(extracted):
    for message in ("We'll be right back", "%(site)s is back", "Please enter your e-mail address.", "Unsubscribe"):
        assert message in extracted


@pytest.mark.parametrize("po_path", CATALOGS, ids=lambda path: path.parent.parent.name)
def test_a_catalog_has_every_message_of_the_code_and_templates(po_path, extracted):
    have = {single_id(message) for message in catalog_of(po_path) if message.id}
    assert extracted <= have, f"{po_path} lacks {sorted(extracted - have)}; run pybabel update"


def test_the_committed_template_is_the_extraction(extracted):
    with open(TRANSLATIONS / "messages.pot", "rb") as handle:
        committed = {single_id(message) for message in read_po(handle) if message.id}
    assert committed == extracted, "fallback/translations/messages.pot is stale: run pybabel extract"
