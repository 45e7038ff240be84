"""A short run of the load script: zero 5xx, every acknowledged lead exported, memory flat."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from load import run_load  # noqa: E402


def test_a_short_load_loses_nothing_and_keeps_memory_flat():
    figures = run_load(duration=12, clients=4, workers=2)
    assert figures["server_errors_5xx"] == 0, figures
    assert figures["leads_acknowledged"] > 50, figures
    assert figures["leads_exported"] == figures["leads_acknowledged"] and figures["leads_lost"] == 0, figures
    assert figures["page_views"].get(503, 0) > 200, figures
    assert figures["worker_rss_growth_kib"] < 20 * 1024, figures
