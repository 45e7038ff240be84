"""Inline SVG charts for the dashboard: no script, no request to another origin."""

from __future__ import annotations

from markupsafe import Markup, escape

from fallback.storage.records import StoredProbe

WIDTH, HEIGHT, PAD = 600, 120, 4


def latency_chart(probes: list[StoredProbe], limit_ms: float) -> Markup:
    """Bars of recent probe latency, oldest first; failures in red at full height, the limit as a line."""
    main = [probe for probe in reversed(probes) if not probe.control]
    if not main:
        return Markup("")
    top = max([limit_ms * 1.25] + [probe.latency_ms or 0 for probe in main])
    step = (WIDTH - 2 * PAD) / len(main)
    bars = []
    for index, probe in enumerate(main):
        ok = probe.ok
        height = (HEIGHT - 2 * PAD) * (min(probe.latency_ms or 0, top) / top if ok else 1)
        x, y = PAD + index * step, HEIGHT - PAD - height
        label = f"{probe.at[11:19]} {probe.latency_ms} ms " + ("ok" if ok else probe.reason or "failed")
        bars.append(
            f'<rect class="{"ok" if ok else "fail"}" x="{x:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{max(height, 1):.1f}"><title>{escape(label)}</title></rect>'
        )
    limit_y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (limit_ms / top)
    failures = sum(1 for probe in main if not probe.ok)
    summary = f"Latency of the last {len(main)} probes; {failures} failed; the limit is {limit_ms:g} ms."
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(summary)}" '
        f'preserveAspectRatio="none">{"".join(bars)}'
        f'<line class="limit" x1="0" x2="{WIDTH}" y1="{limit_y:.1f}" y2="{limit_y:.1f}"/></svg>'
    )


def rate_chart(samples: list[tuple[str, float, int]], ceiling: float) -> Markup:
    """The admission rate in force over the samples (oldest first) as a line, the ceiling as a dashed line."""
    if not samples:
        return Markup("")
    top = ceiling * 1.1
    step = (WIDTH - 2 * PAD) / max(len(samples) - 1, 1)
    points = " ".join(
        f"{PAD + index * step:.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * min(rate, top) / top:.1f}"
        for index, (_, rate, _) in enumerate(samples)
    )
    ceiling_y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (ceiling / top)
    lowest = min(rate for _, rate, _ in samples)
    summary = (
        f"Admission rate over the last {len(samples)} checker rounds, from {samples[0][0][11:19]} to"
        f" {samples[-1][0][11:19]} UTC: now {samples[-1][1]:g} a second, lowest {lowest:g}, ceiling {ceiling:g};"
        f" {samples[-1][2]} waiting."
    )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(summary)}" '
        f'preserveAspectRatio="none"><polyline class="rate" points="{points}"/>'
        f'<line class="limit" x1="0" x2="{WIDTH}" y1="{ceiling_y:.1f}" y2="{ceiling_y:.1f}"/></svg>'
    )
