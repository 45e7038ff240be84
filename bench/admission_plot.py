"""The plot of bench/admission.py: the requests the main site held over time, admission off and on.

    python bench/admission.py --plot docs/admission-bench.png      # run, then plot
    python bench/admission_plot.py figures.json docs/admission-bench.png   # from a saved `--json` line

Needs matplotlib (`pip install -e '.[bench]'`), imported only here so the bench itself runs without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BIN_SECONDS = 0.25  # each point is the most the site held within this long, so no peak falls between samples


def binned(timeline: list[tuple[float, int]]) -> tuple[list[float], list[int]]:
    """The timeline as the highest count within each BIN_SECONDS: a bin without a change holds the last count."""
    highest: dict[int, int] = {}
    final: dict[int, int] = {}
    for moment, holding in timeline:
        index = int(moment // BIN_SECONDS)
        highest[index] = max(highest.get(index, 0), holding)
        final[index] = holding
    if not highest:
        return [], []
    times, counts, held = [], [], 0
    for index in range(min(highest), max(highest) + 1):
        times.append(index * BIN_SECONDS)
        counts.append(max(held, highest.get(index, held)))
        held = final.get(index, held)
    return times, counts


def plot(results: list[dict], capacity: int, path: Path) -> None:
    """One panel a scenario, admission off and on in each, the capacity as a dashed line; saved at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(result["scenario"] for result in results))
    figure, axes = plt.subplots(len(scenarios), 1, figsize=(9, 3.6 * len(scenarios)), squeeze=False)
    for axis, scenario in zip(axes[:, 0], scenarios, strict=True):
        for result in (r for r in results if r["scenario"] == scenario):
            times, counts = binned(result["timeline"])
            on = result["admission"]
            label = f"admission {'on' if on else 'off'}: {result['lost']} of {result['visitors']} visitors lost"
            axis.step(times, counts, where="post", label=label, color="#1b7837" if on else "#b2182b", linewidth=1.4)
            if result.get("returned_at") is not None and on:
                axis.axvline(result["returned_at"], color="#555555", linestyle=":", linewidth=1)
                axis.annotate(" the site returns", (result["returned_at"], capacity * 2.2), color="#555555")
        axis.axhline(capacity, color="#333333", linestyle="--", linewidth=1, label=f"capacity C = {capacity}")
        axis.set_title(f"{scenario}: requests the main site held at once (highest in each {BIN_SECONDS:g} s)")
        axis.set_xlabel("seconds from the first arrival")
        axis.set_ylabel("requests held")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    saved = json.loads(Path(sys.argv[1]).read_text())
    plot(saved["results"], saved["config"]["capacity"], Path(sys.argv[2]))
