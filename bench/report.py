"""The bench's report: the targets and their verdicts, the machine it ran on, and the Markdown table."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import followup
import nginx_tail
from harness import HERE, PAGE_CONNECTIONS, POST_CONNECTIONS, ensure_wrk

TARGETS = {"page": 0.9, "redirect": 0.9, "admission": 0.9, "submissions": 0.8, "export_rows_per_s": 50_000}


def verdicts(results: dict) -> dict:
    """Each target: measured value, target, PASS or FAIL."""
    subs = results["submissions"]
    small, large = results["export_10k"], results["export_100k"]
    growth = large["peak_rss_mib"] - small["peak_rss_mib"]
    checks = {
        "b_page_vs_floor": (results["down_page"]["ratio"], TARGETS["page"]),
        "c_redirect_vs_floor": (results["redirect"]["ratio"], TARGETS["redirect"]),
        "c_admission_no_queue_vs_redirect": (results["admission_redirect"]["ratio"], TARGETS["admission"]),
        "d_submissions_vs_bare": (subs["fallback"]["ratio"], TARGETS["submissions"]),
    }
    out = {
        name: {"measured": round(value, 3), "target": f">= {target}", "pass": value >= target}
        for name, (value, target) in checks.items()
    }
    out["d_every_accepted_lead_exported"] = exported_verdict(subs)
    on_postgres = results.get("postgres", {}).get("submissions")
    if on_postgres:
        out["d_every_accepted_lead_exported_postgres"] = exported_verdict(on_postgres)
    tail = results.get("nginx_tail")
    if tail and "skipped" not in tail:
        out.update(nginx_tail.verdicts(tail))
    out["e_export_rows_per_s"] = {
        "measured": large["rows_per_s"],
        "target": f">= {TARGETS['export_rows_per_s']}",
        "pass": large["rows_per_s"] >= TARGETS["export_rows_per_s"],
    }
    out["e_export_memory_flat"] = {
        "measured": f"{small['peak_rss_mib']} -> {large['peak_rss_mib']} MiB",
        "target": "10x the rows, < 5 MiB more",
        "pass": growth < 5,
    }
    return out


def exported_verdict(subs: dict) -> dict:
    """Every accepted (303) lead in the export, at most the requests in flight more, and no rejection."""
    exported_ok = (
        subs["accepted"] <= subs["exported"] <= subs["accepted"] + subs["in_flight_max"]
        and subs["rejected"] == 0
        and subs["accepted"] > 0
    )
    return {
        "measured": f"{subs['accepted']} accepted, {subs['exported']} exported",
        "target": "accepted <= exported, no rejection",
        "pass": exported_ok,
    }


def machine() -> dict:
    """Date, cores, CPU model, versions, for the record."""
    model = "unknown CPU"
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def version(name: str) -> str:
        try:
            return installed(name)
        except PackageNotFoundError:
            return "not installed"

    wrk_version = subprocess.run([ensure_wrk(), "-v"], capture_output=True, text=True, timeout=10)
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "load_average_at_start": load_average(),
        "cpu": model,
        "python": platform.python_version(),
        "gunicorn": version("gunicorn"),
        "flask": version("flask"),
        "fallback": version("fallback"),
        "commit": commit or "unknown",
        "wrk": (wrk_version.stdout + wrk_version.stderr).split("\n")[0].strip(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def rps_cell(run: dict) -> str:
    """A run's requests per second."""
    return f"{run['rps']:,.0f} req/s"


def latency_cell(run: dict) -> str:
    """A run's p50 and p99 latency."""
    return f"p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms"


def ratio_cell(run: dict) -> str:
    """A run's median ratio, then every round's."""
    return f"{run['ratio']:.2f} (" + " / ".join(f"{value:.2f}" for value in run["ratio_runs"]) + ")"


def run_detail(run: dict) -> str:
    """Latency, then every round's requests/s."""
    return latency_cell(run) + "; runs " + " / ".join(f"{value:,.0f}" for value in run["runs_rps"])


def cpu_detail(run: dict) -> str:
    """A submissions run's detail: latency, rounds, and the server's CPU time per accepted request (all processes;
    PostgreSQL's own server processes are not counted)."""
    return run_detail(run) + f"; server CPU {run['cpu_ms']:.2f} ms per request"


def page_cpu(per_round: list[float]) -> str:
    """The server's CPU time per request in each round, in microseconds (info: requests/s decides the target)."""
    return "; server CPU per request " + " / ".join(f"{1000 * ms:.0f}" for ms in per_round) + " µs"


def mark_cell(check: dict) -> str:
    """A verdict: its target, PASS or FAIL."""
    return f"{check['target']}: **{'PASS' if check['pass'] else 'FAIL'}**"


def table(results: dict) -> str:
    """The figures as a Markdown table, with the targets and verdicts."""
    rows = (
        page_rows(results) + submission_rows(results) + export_rows(results) + nginx_rows(results) + mail_rows(results)
    )
    lines = ["| row | figure | ratio | detail | target |", "|---|---:|---:|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def page_rows(results: dict) -> list[tuple]:
    """Rows a, b, c; b on PostgreSQL (or why it was skipped) next to b."""
    floor, down, up, ver = results["floor"], results["down_page"], results["redirect"], results["verdicts"]
    rows = [
        ("a. bare Flask, same bytes (floor)", rps_cell(floor), "1.00", run_detail(floor), ""),
        ("b. down page (503)", rps_cell(down), ratio_cell(down), run_detail(down), mark_cell(ver["b_page_vs_floor"])),
    ]
    postgres = results.get("postgres", {})
    if "down_page" in postgres:
        on_postgres = postgres["down_page"]
        rows.append(
            (
                "b. down page (503), PostgreSQL (info; ratio to SQLite's b)",
                rps_cell(on_postgres),
                ratio_cell(on_postgres),
                run_detail(on_postgres),
                "",
            )
        )
    elif "skipped" in postgres:
        rows.append(("b, d on PostgreSQL (info)", "skipped", "", postgres["skipped"], ""))
    rows.append(
        (
            "c. up redirect (302)",
            rps_cell(up),
            ratio_cell(up),
            run_detail(up) + page_cpu(results["redirect_cpu_ms"]),
            mark_cell(ver["c_redirect_vs_floor"]),
        )
    )
    admitting = results["admission_redirect"]
    rows.append(
        (
            "c′. redirect, admission on, no queue (ratio to c; every request a new visitor)",
            rps_cell(admitting),
            ratio_cell(admitting),
            run_detail(admitting) + f", {results['admission_non_3xx']} not 3xx" + page_cpu(results["admission_cpu_ms"]),
            mark_cell(ver["c_admission_no_queue_vs_redirect"]),
        )
    )
    return rows


def submission_rows(results: dict) -> list[tuple]:
    """Row d, then d on PostgreSQL (its ratio to SQLite's d), then d' when measured."""
    subs, ver = results["submissions"], results["verdicts"]
    rows = [
        ("d. bare insert handler (FULL sync)", rps_cell(subs["bare"]), "1.00", cpu_detail(subs["bare"]), ""),
        (
            "d. submissions, 303",
            rps_cell(subs["fallback"]),
            ratio_cell(subs["fallback"]),
            cpu_detail(subs["fallback"]),
            mark_cell(ver["d_submissions_vs_bare"]),
        ),
        exported_row("d. accepted leads exported", subs, ver["d_every_accepted_lead_exported"]),
    ]
    on_postgres = results.get("postgres", {}).get("submissions")
    if on_postgres:
        rows += [
            (
                "d. submissions, 303, PostgreSQL (info; ratio to SQLite's d)",
                rps_cell(on_postgres["fallback"]),
                ratio_cell(on_postgres["fallback"]),
                cpu_detail(on_postgres["fallback"]),
                "",
            ),
            exported_row(
                "d. accepted leads exported, PostgreSQL", on_postgres, ver["d_every_accepted_lead_exported_postgres"]
            ),
        ]
    limited = results.get("submissions_rate_limited")
    if limited:
        rows.append(
            (
                "d'. submissions, rate limit on (info)",
                rps_cell(limited),
                f"{limited['rps'] / subs['bare']['rps']:.2f}",
                f"{latency_cell(limited)}; {limited['accepted']:,} accepted, {limited['other']} other",
                "",
            )
        )
    return rows


def exported_row(label: str, subs: dict, check: dict) -> tuple:
    """The row of the leads accepted against those exported."""
    return (
        label,
        f"{subs['exported']:,} exported",
        "",
        f"{subs['accepted']:,} answered 303, {subs['rejected']} otherwise; the export may hold up to "
        f"{subs['in_flight_max']} more (in flight when wrk stops)",
        mark_cell(check),
    )


def export_rows(results: dict) -> list[tuple]:
    """Rows e and f."""
    small, large, http = results["export_10k"], results["export_100k"], results["export_http_100k"]
    ver, rss = results["verdicts"], results["worker_rss_mib"]
    return [
        (
            "e. `fallback export`, 100,000 leads",
            f"{large['rows_per_s']:,} rows/s",
            "",
            f"{large['seconds']:.2f} s end to end ({results['export_startup']['seconds']:.2f} s of it start-up; "
            f"{large['rows_per_s_net_of_startup']:,} rows/s net)",
            mark_cell(ver["e_export_rows_per_s"]),
        ),
        (
            "e. export peak memory",
            f"{large['peak_rss_mib']} MiB",
            "",
            f"{small['peak_rss_mib']} MiB for 10,000 leads, {results['export_startup']['peak_rss_mib']} MiB for none",
            mark_cell(ver["e_export_memory_flat"]),
        ),
        (
            "e. HTTP export, 100,000 leads (info)",
            f"{http['rows_per_s']:,} rows/s",
            "",
            f"worker peak RSS {http['worker_peak_before_mib']} -> {http['worker_peak_after_mib']} MiB",
            "",
        ),
        (
            "f. resident memory per worker",
            " / ".join(f"{size} MiB" for size in rss["fallback"]),
            "",
            "bare Flask: " + " / ".join(f"{size} MiB" for size in rss["bare"]),
            "",
        ),
    ]


def nginx_rows(results: dict) -> list[tuple]:
    """The nginx rows (info), when they were measured."""
    nginx = results.get("nginx")
    if not nginx or "skipped" in nginx:
        return []
    static, cached = nginx["static_file"], nginx["micro_cached_page"]
    tail = results.get("nginx_tail")
    tail_rows = nginx_tail.rows(tail) if tail and "skipped" not in tail else []
    return tail_rows + [
        ("nginx serving the page as a file (info)", rps_cell(static), "", latency_cell(static), ""),
        (
            "page via deploy/nginx micro-cache, main refused, empty cache at start (info)",
            rps_cell(cached),
            f"{cached['rps'] / results['floor']['rps']:.1f}x floor",
            latency_cell(cached),
            "",
        ),
    ]


def mail_rows(results: dict) -> list[tuple]:
    """The follow-up mail rows (info), when they were measured; why not, when they failed."""
    figures = results.get("followup")
    if not figures:
        return []
    if "skipped" in figures:
        return [("follow-up mail to a local SMTP server (info)", "", "", figures["skipped"], "")]
    return followup.rows(figures)


def text(results: dict) -> str:
    """The whole report: the machine and the settings, the table, problems in the servers' logs, the verdicts."""
    m, settings = results["machine"], results["settings"]
    lines = [
        f"fallback bench, {m['date']}, {m['cores']} cores, {m['cpu']}, Python {m['python']}, gunicorn "
        f"{m['gunicorn']}, Flask {m['flask']}, fallback {m['fallback']} ({m['commit']})"
        + (f", {results['postgres']['server']}" if "server" in results["postgres"] else ""),
        f"{m['wrk']}: -t2 -c{PAGE_CONNECTIONS} for pages, -c{POST_CONNECTIONS} for submissions, "
        f"{settings['seconds_per_run']:g} s a run, medians of {settings['rounds']} alternating rounds "
        f"({settings['submission_and_export_rounds']} for submissions and exports), ratios paired by round; "
        f"all on 127.0.0.1, one machine; "
        f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end\n",
        table(results),
    ]
    if results["server_log_problems"]:
        lines.append("\nserver log problems:\n" + "\n".join(results["server_log_problems"]))
    failed = [name for name, check in results["verdicts"].items() if not check["pass"]]
    lines.append(
        f"\n{len(results['verdicts']) - len(failed)} of {len(results['verdicts'])} targets met"
        + (f"; FAIL: {', '.join(failed)}" if failed else "")
        + f" ({results['total_seconds']} s)"
    )
    return "\n".join(lines)
