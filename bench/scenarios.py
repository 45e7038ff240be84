"""The bench's rows a-d, d′ and f, and the nginx rows: fallback against the floor and the bare insert handler.

Each function runs its servers (stopped on exit, whatever happens), measures with harness.wrk and
puts its figures in `results`; report.py turns them into the table.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import ExitStack
from pathlib import Path

from harness import (
    EXPORT_TOKEN,
    HERE,
    HTML,
    PAGE_CONNECTIONS,
    PAGE_PATH,
    POST_CONNECTIONS,
    TOKEN,
    answer_of,
    fallback_server,
    form_token,
    log_problems,
    median_run,
    post_script,
    postgres_database,
    process_group,
    workers_rss_mib,
    wrk,
)
from load import HOST, Fallback, MainSite, behind_proxy_env, clean_env, cpu_seconds, find_nginx, loopback_session
from procs import free_port

# Row c′: every wrk request is a new visitor (wrk keeps no cookie), each taking a place: the worst case.
ADMIT = {"FALLBACK_ADMIT_RATE": "100000/second", "FALLBACK_ADMIT_ADAPT": "false"}


def bench_env(main_site: MainSite, database: str, extra: dict[str, str]) -> dict:
    """The settings of the fallback servers of rows b-d (and `extra`, from --setting): SQLite's and PostgreSQL's
    differ in the database alone."""
    return clean_env(
        {
            "FALLBACK_MAIN_URL": main_site.url,
            "FALLBACK_CHECK_URLS": main_site.url,
            "FALLBACK_DATABASE": database,
            "FALLBACK_RATE_LIMIT": "0",
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
            "FALLBACK_SECRET_KEY": "bench-secret-key",
            **extra,
        }
    )


def start_down(stack: ExitStack, folder: Path, env: dict) -> Fallback:
    """`fallback serve` (2 workers) with the page forced on, once it answers 503; stopped when `stack` closes."""
    fallback = Fallback(folder, env, workers=2)
    stack.callback(fallback.stop)
    fallback.start()
    # Only `fallback serve` creates the database: the page is forced on once it exists.
    fallback.force("down", "bench")
    return fallback


def start_bare(stack: ExitStack, folder: Path, page_url: str, results: dict) -> tuple[str, subprocess.Popen]:
    """bench/bare.py answering the very bytes of fallback's page at `page_url` (checked): its URL and process."""
    status, headers, body = answer_of(page_url, {"Accept": HTML[0].split(": ", 1)[1]})
    if status != 503 or not TOKEN.search(body.decode("utf-8", "replace")):
        raise RuntimeError(f"fallback's page answered {status} without the form")
    (folder / "page.bin").write_bytes(body)
    (folder / "page.json").write_text(json.dumps({"status": status, "headers": headers}))
    bare_port = free_port()
    bare_url = f"http://{HOST}:{bare_port}"
    bare_cmd = [
        sys.executable,
        str(HERE / "bare.py"),
        "--port",
        str(bare_port),
        "--body",
        str(folder / "page.bin"),
        "--headers",
        str(folder / "page.json"),
        "--database",
        str(folder / "bare.db"),
    ]
    bare = stack.enter_context(
        process_group(bare_cmd, clean_env({}), folder, bare_url + "/_ready", folder / "bare.log")
    )
    bare_answer = answer_of(bare_url + PAGE_PATH, {"Accept": "text/html"})
    results["page_bytes"] = {"fallback": len(body), "bare": len(bare_answer[2])}
    if bare_answer[0] != 503 or len(bare_answer[2]) != len(body):
        raise RuntimeError("the bare app does not answer the same bytes as fallback's page")
    return bare_url, bare


def bench_http(
    folder: Path,
    seconds: float,
    rounds: int,
    post_rounds: int,
    postgres: bool,
    results: dict,
    log,
    extra: dict[str, str] | None = None,
) -> None:
    """Rows a-d and f against one fallback and one bare app, both alive all along; with `postgres`, rows b and d
    also against a second fallback, the same but for its database on a throw-away cluster, in the same rounds.
    `extra` settings go to both fallbacks (FALLBACK_ACCESS_LOG=-, to measure what the access log costs)."""
    extra = extra or {}
    main_site = MainSite()
    with ExitStack() as stack:
        stack.callback(main_site.close)
        fallback = start_down(stack, folder, bench_env(main_site, str(folder / "fallback.db"), extra))
        bare_url, bare = start_bare(stack, folder, fallback.url + PAGE_PATH, results)
        database = postgres_database(stack, postgres, results, log)
        on_postgres = start_down(stack, folder, bench_env(main_site, database, extra)) if database else None
        # The same again but for admission, at a rate far above what the bench sends: on, and nobody waits.
        admitting = start_down(stack, folder, bench_env(main_site, str(folder / "admitting.db"), {**extra, **ADMIT}))
        admitting.force("up", "bench")
        bench_pages(fallback, bare_url, on_postgres, seconds, rounds, results, log, admitting)
        results["worker_rss_mib"] = {
            "fallback": workers_rss_mib(fallback.process.pid),
            "bare": workers_rss_mib(bare.pid),
        }
        bench_submissions(folder, fallback, (bare_url, bare.pid), on_postgres, seconds, post_rounds, results, log)
        results["bare_insert_rows"] = count_rows(folder / "bare.db")
        servers = [fallback] + ([on_postgres] if on_postgres else [])
        for server in servers:
            server.stop()
        results["server_log_problems"] = [
            line for server in servers for line in log_problems(server.log)[:10]
        ] + log_problems(folder / "bare.log")[:10]


def page_run(url: str, seconds: float) -> dict:
    """One wrk run of the page at `url`, as a browser asks for it, at PAGE_CONNECTIONS."""
    return wrk(url, seconds, PAGE_CONNECTIONS, headers=HTML)


def costed_page_run(server: Fallback, seconds: float) -> dict:
    """A page run, with the server's CPU time per request (all its processes): steadier than requests/s on a
    shared machine, where other work takes the CPU in bursts."""
    before = cpu_seconds(server.process.pid)
    run = page_run(server.url + PAGE_PATH, seconds)
    run["cpu_ms"] = round(1000 * (cpu_seconds(server.process.pid) - before) / max(run["requests"], 1), 3)
    return run


def bench_pages(
    fallback: Fallback,
    bare_url: str,
    on_postgres: Fallback | None,
    seconds: float,
    rounds: int,
    results: dict,
    log,
    admitting: Fallback,
) -> None:
    """Rows a, b, c, c′ (and b on PostgreSQL): every server warmed up, then the runs alternate round after round."""
    page_url = fallback.url + PAGE_PATH
    pages = {"floor": bare_url + PAGE_PATH, "down page": page_url}
    if on_postgres:
        pages["down page on PostgreSQL"] = on_postgres.url + PAGE_PATH
    log("warming up")
    for url in pages.values():
        page_run(url, 2)
    page_run(admitting.url + PAGE_PATH, 2)
    runs: dict[str, list[dict]] = {name: [] for name in [*pages, "redirect", "admission"]}
    for number in range(rounds):
        log(f"pages, round {number + 1}/{rounds}: {', '.join(runs)}")
        for name, url in pages.items():
            runs[name].append(page_run(url, seconds))
        fallback.force("up", "bench")
        # Back to back, in turn first and second, so that the machine's drift within a round favours neither.
        pair = [("redirect", fallback), ("admission", admitting)]
        for name, server in pair if number % 2 == 0 else pair[::-1]:
            runs[name].append(costed_page_run(server, seconds))
        fallback.force("down", "bench")
    floor = runs["floor"]
    results["floor"], results["down_page"] = median_run(floor), median_run(runs["down page"], floor)
    results["redirect"] = median_run(runs["redirect"], floor)
    results["redirect_non_3xx"] = sum(run["non_2xx_3xx"] for run in runs["redirect"])
    # Its ratio is to the plain redirect, measured just before it in each round.
    results["admission_redirect"] = median_run(runs["admission"], runs["redirect"])
    results["admission_non_3xx"] = sum(run["non_2xx_3xx"] for run in runs["admission"])
    results["redirect_cpu_ms"] = [run["cpu_ms"] for run in runs["redirect"]]
    results["admission_cpu_ms"] = [run["cpu_ms"] for run in runs["admission"]]
    if on_postgres:  # its ratio is to SQLite's down page, measured just before it in each round
        results["postgres"]["down_page"] = median_run(runs["down page on PostgreSQL"], runs["down page"])


def bench_submissions(
    folder: Path,
    fallback: Fallback,
    bare: tuple[str, int],
    on_postgres: Fallback | None,
    seconds: float,
    post_rounds: int,
    results: dict,
    log,
) -> None:
    """Row d (and d on PostgreSQL, its ratio to SQLite's): one valid token for every request (stateless, 24 h,
    no time trap here), the bare handler and each fallback in turn, round after round."""
    token = form_token(fallback.url + PAGE_PATH)
    targets = {"bare insert": (*bare, token), "fallback": (fallback.url, fallback.process.pid, token)}
    if on_postgres:
        targets["fallback on PostgreSQL"] = (
            on_postgres.url,
            on_postgres.process.pid,
            form_token(on_postgres.url + PAGE_PATH),
        )
    runs = submission_rounds(folder, targets, seconds, post_rounds, log)
    bare_runs = runs["bare insert"]
    results["submissions"] = {
        "bare": median_run(bare_runs[1:]),
        **submission_figures(runs["fallback"], bare_runs, fallback.url),
    }
    if on_postgres:
        results["postgres"]["submissions"] = submission_figures(
            runs["fallback on PostgreSQL"], runs["fallback"], on_postgres.url
        )


def submission_rounds(
    folder: Path, targets: dict[str, tuple[str, int, str]], seconds: float, post_rounds: int, log
) -> dict[str, list[dict]]:
    """wrk's POST script against each target (base URL, server's master pid, form token) in turn, round after
    round: every run, round 0 being a 2 s warm-up, with the server's CPU time per accepted request."""
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for number in range(post_rounds + 1):
        label = "warm" if number == 0 else f"round {number}/{post_rounds}"
        log(f"submissions, {label}: {', '.join(targets)}")
        for index, (name, (base, master, token)) in enumerate(targets.items()):
            before = cpu_seconds(master)
            run = wrk(
                base + "/_fallback/contact",
                2 if number == 0 else seconds,
                POST_CONNECTIONS,
                post_script(folder, f"s{index}r{number}", token, xff=False),
            )
            run["cpu_ms"] = round(1000 * (cpu_seconds(master) - before) / max(run["accepted"], 1), 2)
            runs[name].append(run)
    return runs


def submission_figures(runs: list[dict], baseline: list[dict], base: str) -> dict:
    """The median run (warm-up left out) with its ratio to `baseline`'s, and the leads accepted over all
    runs against those in the CSV export of the server at `base`."""
    return {
        "fallback": median_run(runs[1:], baseline[1:]),
        "accepted": sum(run["accepted"] for run in runs),
        "rejected": sum(run["other"] for run in runs),
        "exported": exported_bench_rows(base),
        # wrk stops with up to one request per connection in flight: those may be stored unanswered.
        "in_flight_max": POST_CONNECTIONS * len(runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
    }


def exported_bench_rows(base: str) -> int:
    """How many leads of the wrk runs the CSV export holds."""
    with loopback_session() as session:
        response = session.get(
            base + "/_fallback/admin/export.csv", timeout=300, headers={"Authorization": f"Bearer {EXPORT_TOKEN}"}
        )
    response.raise_for_status()
    rows = csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline=""))
    return sum(1 for row in rows if row["email"].endswith("@bench.example"))


def count_rows(database: Path) -> int:
    """How many leads a SQLite database holds."""
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT COUNT(*) FROM leads").fetchone()[0]


def bench_rate_limited(folder: Path, seconds: float, results: dict, log) -> None:
    """Row d again as deployed by default: the rate limit on (60/minute), each request from a new address."""
    main_site = MainSite()
    sub = folder / "limited"
    sub.mkdir()
    env = clean_env(
        {
            "FALLBACK_MAIN_URL": main_site.url,
            "FALLBACK_CHECK_URLS": main_site.url,
            "FALLBACK_DATABASE": str(sub / "fallback.db"),
            "FALLBACK_FORM_MIN_SECONDS": "0",
            "FALLBACK_TRUSTED_PROXIES": "1",
            "FALLBACK_SECRET_KEY": "bench-secret-key",
        }
    )
    try:
        with fallback_server(sub, env) as fallback:
            fallback.force("down", "bench")
            token = form_token(fallback.url + "/")
            log("submissions with the rate limit on")
            wrk(fallback.url + "/_fallback/contact", 2, POST_CONNECTIONS, post_script(sub, "rw", token, xff=True))
            results["submissions_rate_limited"] = wrk(
                fallback.url + "/_fallback/contact", seconds, POST_CONNECTIONS, post_script(sub, "rl", token, xff=True)
            )
    finally:
        main_site.close()


def bench_nginx(folder: Path, seconds: float, results: dict, log) -> None:
    """Extra: the page through deploy/nginx's micro-cache, against nginx serving the same bytes from a file."""
    import getpass
    import grp

    nginx = find_nginx()
    if nginx is None:
        results["nginx"] = {"skipped": "nginx is not installed"}
        return
    main_site = MainSite()
    sub = folder / "nginx"
    (sub / "static").mkdir(parents=True)
    env = behind_proxy_env(sub, main_site.url)
    try:
        with fallback_server(sub, env) as fallback:
            fallback.force("down", "bench")
            (sub / "static" / "page.html").write_bytes(answer_of(fallback.url + "/bench", {"Accept": "text/html"})[2])
            port, static_port = free_port(), free_port()
            conf = (HERE.parent / "deploy" / "nginx" / "fallback.conf").read_text()
            placeholders = {
                "LISTEN": f"{HOST}:{port}",
                "SERVER_NAME": "localhost",
                "MAIN_UPSTREAM": f"{HOST}:{free_port()}",
                "FALLBACK_UPSTREAM": f"{HOST}:{fallback.port}",
                "CACHE_PATH": str(sub / "cache"),
            }
            for name, value in placeholders.items():
                conf = conf.replace(f"@{name}@", value)
            if re.search(r"@[A-Z_]+@", conf):
                raise RuntimeError("deploy/nginx/fallback.conf has placeholders this bench does not know")
            (sub / "fallback.conf").write_text(conf)
            user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};" if os.geteuid() == 0 else ""
            temp = " ".join(
                f"{kind}_temp_path {sub}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            (sub / "nginx.conf").write_text(
                textwrap.dedent(f"""\
                {user}
                worker_processes 2;
                error_log {sub}/error.log;
                events {{ worker_connections 1024; }}
                http {{
                    {temp}
                    access_log off;
                    include {sub}/fallback.conf;
                    server {{ listen {HOST}:{static_port}; root {sub}/static;
                             location / {{ default_type text/html; try_files /page.html =404; }} }}
                }}
            """)
            )
            command = [
                nginx,
                "-p",
                str(sub),
                "-c",
                str(sub / "nginx.conf"),
                "-e",
                str(sub / "error.log"),
                "-g",
                f"daemon off; master_process on; pid {sub}/nginx.pid;",
            ]
            with process_group(command, {}, sub, f"http://{HOST}:{static_port}/", sub / "nginx.log"):
                log("nginx: static file, micro-cached page")
                headers = (*HTML, "Host: localhost")
                static = wrk(f"http://{HOST}:{static_port}/campaign/tv", seconds, PAGE_CONNECTIONS, headers=headers)
                cached = wrk(f"http://{HOST}:{port}/campaign/tv", seconds, PAGE_CONNECTIONS, headers=headers)
        results["nginx"] = {"static_file": static, "micro_cached_page": cached}
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        results["nginx"] = {"skipped": f"failed: {str(error).splitlines()[0]}"}
    finally:
        main_site.close()
