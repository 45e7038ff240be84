"""English and French, chosen from Accept-Language; catalogs complete and compiled."""

from __future__ import annotations

import gettext
from pathlib import Path

from babel.messages.pofile import read_po
from helpers import contact_fields

from fallback.web.languages import LANGUAGES, TRANSLATIONS

FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}


def test_english_and_french_are_available():
    assert LANGUAGES[:1] == ["en"] and "fr" in LANGUAGES


def test_a_french_visitor_gets_the_french_page(client, down):
    response = client.get("/", headers=FRENCH)
    html = response.get_data(as_text=True)
    assert '<html lang="fr">' in html
    assert "Nous revenons très vite" in html and "Adresse e-mail" in html
    assert "Accept-Language" in response.headers["Vary"]


def test_an_unknown_language_falls_back_to_english(client, down):
    html = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in html and "We'll be right back" in html


def test_errors_and_thanks_are_in_french_too(client, down):
    response = client.post("/_fallback/contact", data=contact_fields(client, email="pas-une-adresse"), headers=FRENCH)
    assert response.status_code == 400
    assert "Merci d’indiquer une adresse e-mail valide" in response.get_data(as_text=True)
    assert "Merci !" in client.get("/_fallback/thanks", headers=FRENCH).get_data(as_text=True)


def test_consent_is_recorded_with_the_wording_and_version_of_the_language_shown(client, down, storage):
    client.post("/_fallback/contact", data=contact_fields(client, email="fr@example.org"), headers=FRENCH)
    client.post("/_fallback/contact", data=contact_fields(client, email="en@example.org"))
    leads = {lead["email"]: lead for lead in storage.leads.iter()}
    assert leads["fr@example.org"]["consent_version"] == "fr-1"
    assert leads["fr@example.org"]["consent_text"].startswith("J’accepte")
    assert leads["fr@example.org"]["language"] == "fr"
    assert leads["en@example.org"]["consent_version"] == "en-1"


def test_each_language_gets_its_own_cached_page(client, down):
    assert "Nous revenons" in client.get("/", headers=FRENCH).get_data(as_text=True)
    assert "We'll be right back" in client.get("/").get_data(as_text=True)
    assert "Nous revenons" in client.get("/", headers=FRENCH).get_data(as_text=True)


def test_every_catalog_is_complete_and_compiled():
    for po_path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        with open(po_path, "rb") as handle:
            catalog = read_po(handle)
        with open(Path(str(po_path)[:-3] + ".mo"), "rb") as handle:
            compiled = gettext.GNUTranslations(handle)
        for message in catalog:
            if not message.id:
                continue
            assert message.string and all(message.string if isinstance(message.string, tuple) else [message.string]), (
                f"{po_path}: {message.id!r} is not translated"
            )
            singular = message.id[0] if isinstance(message.id, tuple) else message.id
            expected = message.string[0] if isinstance(message.string, tuple) else message.string
            translated = (
                compiled.ngettext(singular, message.id[1], 1)
                if isinstance(message.id, tuple)
                else compiled.gettext(singular)
            )
            assert translated == expected, f"{po_path}: the .mo is stale; run pybabel compile"


def test_every_catalog_has_every_message_of_the_code_and_templates(tmp_path):
    import subprocess
    import sys

    root = TRANSLATIONS.parent.parent
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "_l",
            "-o",
            str(pot),
            ".",
        ],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with open(pot, "rb") as handle:
        wanted = {
            message.id if isinstance(message.id, str) else message.id[0] for message in read_po(handle) if message.id
        }
    for po_path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        with open(po_path, "rb") as handle:
            have = {message.id if isinstance(message.id, str) else message.id[0] for message in read_po(handle)}
        assert wanted <= have, f"{po_path} lacks {sorted(wanted - have)}; run pybabel update"
