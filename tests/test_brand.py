"""Branding from settings: colours with readable contrast, a logo served from here, custom texts."""

from __future__ import annotations

import pytest

from fallback.core.settings import ConfigError, Settings
from fallback.serving.app import create_app
from fallback.visitor.brand import AA, contrast, palette

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


@pytest.mark.parametrize("color", ["#0b57d0", "#ffeb3b", "#000000", "#ffffff", "#c2410c", "#7fff00"])
def test_any_brand_colour_keeps_aa_contrast_for_buttons_and_links(color):
    colors = palette(color)
    assert contrast(colors.accent, colors.on_accent) >= 4.5 or contrast(color, "#ffffff") < AA
    assert contrast(colors.link, "#ffffff") >= AA
    assert max(contrast(color, "#ffffff"), contrast(color, "#1b1f24")) == contrast(color, colors.on_accent)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FALLBACK_BRAND_COLOR", "blue"), ("FALLBACK_BRAND_COLOR", "#12345"), ("FALLBACK_LOGO", "/no/such/logo.svg")],
)
def test_bad_branding_values_stop_start_up(variable, value):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_a_logo_that_is_too_large_is_refused(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 70_000)
    with pytest.raises(ConfigError, match="64 KB"):
        Settings.from_env({"FALLBACK_LOGO": str(big)})


@pytest.fixture
def branded(env, tmp_path):
    logo = tmp_path / "acme.svg"
    logo.write_bytes(SVG)
    env.update(
        FALLBACK_SITE_NAME="Acme",
        FALLBACK_BRAND_COLOR="#c2410c",
        FALLBACK_LOGO=str(logo),
        FALLBACK_HEADLINE="Our shop is taking a breather",
        FALLBACK_MESSAGE="Back after the show.",
    )
    app = create_app(Settings.from_env(env))
    app.extensions["fallback"].storage.flag.set_mode("down")
    return app.test_client()


def test_the_page_shows_the_logo_and_custom_texts(branded):
    html = branded.get("/").get_data(as_text=True)
    assert '<img class="logo" src="/_fallback/logo" alt="Acme">' in html
    assert "Our shop is taking a breather" in html and "Back after the show." in html
    logo = branded.get("/_fallback/logo")
    assert logo.status_code == 200 and logo.mimetype == "image/svg+xml" and logo.data == SVG


def test_the_stylesheet_carries_the_brand_colour(branded):
    css = branded.get("/_fallback/page.css").get_data(as_text=True)
    assert "--accent:#c2410c" in css and "--accent-ink:#ffffff" in css


def test_without_a_logo_the_route_is_404(client):
    assert client.get("/_fallback/logo").status_code == 404
