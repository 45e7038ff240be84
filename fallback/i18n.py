"""Languages: English and French catalogs, chosen from Accept-Language; a new language is a new catalog."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, has_request_context, request
from flask_babel import Babel, get_locale

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DEFAULT_LANGUAGE = "en"


def available_languages() -> list[str]:
    """English, plus every language with a compiled catalog in fallback/translations."""
    found = sorted(path.parent.parent.name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo"))
    return [DEFAULT_LANGUAGE] + [language for language in found if language != DEFAULT_LANGUAGE]


def select_language() -> str:
    """The visitor's preferred language among ours, English when none fits."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)


def current_language() -> str:
    """The language of the current request."""
    return str(get_locale() or DEFAULT_LANGUAGE)


def init_i18n(app: Flask) -> None:
    """Attach Flask-Babel to the app, with our catalogs and our selector."""
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LANGUAGE
    Babel(app, locale_selector=select_language)
    app.context_processor(lambda: {"lang": current_language()})


LANGUAGES = available_languages()
