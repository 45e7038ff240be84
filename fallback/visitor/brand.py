"""Branding: colours derived from FALLBACK_BRAND_COLOR that always keep WCAG AA contrast."""

from __future__ import annotations

import dataclasses

WHITE, INK = "#ffffff", "#1b1f24"
AA = 4.5


def luminance(color: str) -> float:
    """The relative luminance of a #rrggbb colour (WCAG 2)."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours, from 1 to 21."""
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@dataclasses.dataclass(frozen=True)
class Palette:
    """The colours the stylesheet uses."""

    accent: str
    on_accent: str
    link: str


def palette(brand_color: str) -> Palette:
    """The brand colour for buttons with readable text on it, and a link colour readable on white."""
    on_accent = WHITE if contrast(brand_color, WHITE) >= contrast(brand_color, INK) else INK
    link = brand_color if contrast(brand_color, WHITE) >= AA else INK
    return Palette(accent=brand_color, on_accent=on_accent, link=link)
