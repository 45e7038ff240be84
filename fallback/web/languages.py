"""Languages: a gettext catalog per language in fallback/translations, chosen from Accept-Language.

A new language is a new catalog (docs/languages.md), not code.
"""

from __future__ import annotations

import functools
from pathlib import Path

from flask import Flask, has_request_context, request
from flask_babel import Babel
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

# The catalogs sit at the package root, where pybabel (babel.cfg) writes them.
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LANGUAGE = "en"
# The contact form's hidden field naming the language it was shown in: a post is answered, and its consent
# wording stored, in that language even when a cache that ignores Vary served the page to another one.
LANGUAGE_FIELD = "lang"


def available_languages() -> list[str]:
    """English, plus every language with a compiled catalog in fallback/translations."""
    found = sorted(path.parent.parent.name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo"))
    return [DEFAULT_LANGUAGE] + [language for language in found if language != DEFAULT_LANGUAGE]


def language_from(accept_language: str | None) -> str:
    """Our best language for an Accept-Language header (English when none fits)."""
    return _best_language(accept_language[:200]) if accept_language else DEFAULT_LANGUAGE


@functools.lru_cache(maxsize=512)
def _best_language(accept_language: str) -> str:
    # Browsers send few distinct headers: parse each once.
    return parse_accept_header(accept_language, LanguageAccept).best_match(LANGUAGES, default=DEFAULT_LANGUAGE)


def language_of(shown_in: str | None, accept_language: str | None) -> str:
    """The language a form was shown in, when it is one of ours; else our best one for Accept-Language."""
    if shown_in is not None and shown_in in LANGUAGES:
        return shown_in
    return language_from(accept_language)


def select_language() -> str:
    """The visitor's preferred language among ours (a form's own on a post), English when none fits."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    shown_in = request.form.get(LANGUAGE_FIELD) if request.method == "POST" else None
    return language_of(shown_in, request.environ.get("HTTP_ACCEPT_LANGUAGE"))


def current_language() -> str:
    """The language of the current request, without building a Babel locale (the hot path needs only the code)."""
    return select_language()


@functools.lru_cache(maxsize=64)
def translate(message: str, language: str) -> str:
    """`message` in `language` from our catalogs, outside any request (the lean contact path needs it)."""
    from babel.support import Translations

    return Translations.load(str(TRANSLATIONS), [language]).gettext(message)


def init_i18n(app: Flask) -> None:
    """Attach Flask-Babel to the app, with our catalogs and our selector."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LANGUAGE
    Babel(app, locale_selector=select_language)
    app.context_processor(lambda: {"lang": current_language()})


LANGUAGES = available_languages()


def _(message: str) -> str:
    """Mark `message` for the catalogs (pybabel extracts `_`); it is translated where it is shown."""
    return message
