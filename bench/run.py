"""The performance bench: fallback against baselines it builds itself, side by side in one run, on loopback.

    python bench/run.py                # about 4 minutes
    python bench/run.py --quick        # about 90 seconds
    python bench/run.py --no-postgres  # without the PostgreSQL rows
    python bench/run.py --json         # the same figures, machine-readable

Rows (targets from SPEC.md section 6 and the bench's brief):

  a. the floor: a bare Flask app answering the very bytes (status, headers, body) of fallback's
     down page, under exactly the gunicorn settings of `fallback serve` (bench/bare.py);
  b. fallback's down page (503, Accept: text/html) against a: target >= 0.9;
  c. fallback's redirect (302, `fallback mode up`) against a: target >= 0.9;
  d. accepted submissions per second: POST /_fallback/contact against a bare handler that parses
     the same fields and inserts one row with the same durability (WAL, synchronous=FULL, busy
     timeout): target >= 0.8; and every accepted (303) lead present in the CSV export;
  e. `fallback export -o FILE` of 100,000 leads: rows per second (target >= 50,000) and peak
     memory, against 10,000 leads (target: it does not grow with the rows); the HTTP export too;
  f. p50/p99 latency at 50 connections for a, b and c, and resident memory per worker;
  PostgreSQL (info): b and d again against a second `fallback serve`, the same in all but
     FALLBACK_DATABASE, a database on a throw-away cluster (tests/pg.py), in the same rounds, with
     the ratio to SQLite's figure; every accepted lead exported is checked there too. Left out,
     saying why, with --no-postgres or without Debian's postgresql package.

Load comes from wrk (Debian's `wrk` package, installed with apt-get when missing and running as
root). The page runs alternate the floor and fallback (SQLite, then PostgreSQL) round after
round, so drift on a shared machine hits them alike, and the median round is reported. Every
server listens on 127.0.0.1 with its own temporary folder and database, and is stopped at the
end, on error too, the PostgreSQL cluster with them.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The PostgreSQL rows run on tests/pg.py's throw-away cluster (initdb and pg_ctl in a temporary folder, on
# 127.0.0.1, as the postgres user under root) rather than a copy of it; tests/ is not a package, so its folder goes
# on the path, last, so that none of its modules can shadow one the bench imports.
sys.path.append(str(HERE.parent / "tests"))

from load import (  # noqa: E402 - bench/ is not a package
    HOST,
    LOG_PROBLEMS,
    Fallback,
    MainSite,
    clean_env,
    cpu_seconds,
    free_port,
    loopback_session,
    rss_kib,
    stop_group,
    worker_pids,
)

EXPORT_TOKEN = "bench-export-token"
PAGE_PATH = "/campaign/tv"
HTML = ("Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",)
PAGE_CONNECTIONS = 50
POST_CONNECTIONS = 16   # as many as the 2 workers x 8 threads of `fallback serve`
TOKEN = re.compile(r'name="token" value="([^"]+)"')
TARGETS = {"page": 0.9, "redirect": 0.9, "submissions": 0.8, "export_rows_per_s": 50_000}

# wrk's Lua: each request a new address (and, with `xff`, a new client address), 303s counted.
POST_SCRIPT = textwrap.dedent("""\
    -- Globals, not locals: done() reads each thread's counts with thread:get().
    counter, accepted, other = 0, 0, 0
    local threads = {}
    function setup(thread)
        table.insert(threads, thread)
        thread:set("prefix", "@RUN@-t" .. #threads)
        thread:set("octet", #threads)
    end
    function request()
        counter = counter + 1
        local body = "token=@TOKEN@&path=%2Fcampaign%2Ftv&website=&consent=y&name=Bench+Visitor" ..
                     "&message=Please+call+me+back.&email=" .. prefix .. "-" .. counter .. "%40bench.example"
        local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
        if @XFF@ then
            headers["X-Forwarded-For"] = "10." .. octet .. "." .. (math.floor(counter / 250) % 250) .. "." ..
                                         (counter % 250 + 1)
        end
        return wrk.format("POST", "/_fallback/contact", headers, body)
    end
    function response(status, headers, body)
        if status == 303 then accepted = accepted + 1 else other = other + 1 end
    end
    function done(summary, latency, requests)
        local a, o = 0, 0
        for _, thread in ipairs(threads) do a = a + thread:get("accepted"); o = o + thread:get("other") end
        io.write(string.format("BENCH accepted=%d other=%d\\n", a, o))
    end
""")


# -- processes -------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's `wrk` package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is missing: run `apt-get install -y wrk` as root, then run the bench again")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=apt_env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=apt_env, capture_output=True, timeout=600)
        subprocess.run(install, env=apt_env, capture_output=True, timeout=600, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk could not be installed with apt-get")
    return found


@contextmanager
def process_group(command: list[str], env: dict, cwd: Path, ready_url: str, log: Path, startup: float = 30):
    """A server as a process group, yielded once `ready_url` answers (bounded), always stopped on exit."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + startup
        with loopback_session() as session:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{Path(command[1] if command[0] == sys.executable else command[0]).name} "
                                       f"exited with {proc.returncode}:\n{tail(log)}")
                try:
                    session.get(ready_url, timeout=1)
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{command[:2]} did not answer within {startup} s:\n{tail(log)}") from None
                    time.sleep(0.1)
        yield proc
    finally:
        stop_group(proc)


@contextmanager
def fallback_server(folder: Path, env: dict, workers: int = 2, extra: list[str] = ()):
    """`fallback serve` (load.Fallback), stopped on exit whatever happens."""
    server = Fallback(folder, env, workers, list(extra))
    try:
        yield server.start()
    finally:
        server.stop()


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_problems(log: Path) -> list[str]:
    """Tracebacks, errors and killed workers in a server's log."""
    try:
        return [line for line in log.read_text(errors="replace").splitlines() if LOG_PROBLEMS.search(line)]
    except OSError:
        return []


def workers_rss_mib(master: int) -> list[float]:
    return [round((rss_kib(pid) or 0) / 1024, 1) for pid in worker_pids(master)]


# -- wrk -------------------------------------------------------------------------------------------


def wrk(url: str, seconds: float, connections: int, script: Path | None = None, headers=()) -> dict:
    """One wrk run: requests/s, p50/p99 latency (ms), non-2xx/3xx answers, socket errors, Lua's counts."""
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "--timeout", "10s"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(script)]
    done = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 60)
    output = done.stdout
    if done.returncode != 0 or "Requests/sec" not in output:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or output.strip()}")

    def millis(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\b", output, re.MULTILINE).groups()
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)

    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
              "requests": int(re.search(r"(\d+) requests in", output).group(1)),
              "p50_ms": millis("50"), "p99_ms": millis("99"),
              "non_2xx_3xx": int(non_ok.group(1)) if non_ok else 0,
              "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0}
    counted = re.search(r"BENCH accepted=(\d+) other=(\d+)", output)
    if counted:
        result["accepted"], result["other"] = int(counted.group(1)), int(counted.group(2))
    return result


def median_run(runs: list[dict], baseline: list[dict] | None = None) -> dict:
    """The run with the median requests/s (the lower middle one for an even count), its latency with it.

    With `baseline` (the runs measured in the same rounds), also the median of the per-round
    ratios: each pair ran back to back, so drift of the machine between rounds cancels out.
    """
    ordered = sorted(runs, key=lambda run: run["rps"])
    middle = {**ordered[(len(ordered) - 1) // 2], "runs_rps": [run["rps"] for run in runs]}
    if baseline is not None:
        ratios = sorted(run["rps"] / base["rps"] for run, base in zip(runs, baseline))
        middle["ratio_runs"] = [round(run["rps"] / base["rps"], 3) for run, base in zip(runs, baseline)]
        middle["ratio"] = round(ratios[(len(ratios) - 1) // 2] if len(ratios) % 2 else
                                (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2, 3)
    return middle


# -- rows a, b, c, d, f ----------------------------------------------------------------------------


def answer_of(url: str, headers: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    with loopback_session() as session:
        response = session.get(url, headers=headers, timeout=10, allow_redirects=False)
    return response.status_code, list(response.raw.headers.items()), response.content


def wait_for_status(url: str, status: int, seconds: float = 10) -> None:
    """Until a visitor path answers `status` (the flag is re-read within 0.5 s), bounded."""
    deadline = time.monotonic() + seconds
    with loopback_session() as session:
        while time.monotonic() < deadline:
            if session.get(url, headers={"Accept": "text/html"}, timeout=5, allow_redirects=False).status_code \
                    == status:
                return
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {status} within {seconds} s")


def bench_env(main_site: MainSite, database: str) -> dict:
    """The settings of the fallback servers of rows b-d: SQLite's and PostgreSQL's differ in the database alone."""
    return clean_env({
        "FALLBACK_MAIN_URL": main_site.url, "FALLBACK_CHECK_URLS": main_site.url,
        "FALLBACK_DATABASE": database, "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_FORM_MIN_SECONDS": "0", "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN,
        "FALLBACK_SECRET_KEY": "bench-secret-key",
    })


def start_down(stack: ExitStack, folder: Path, env: dict) -> Fallback:
    """`fallback serve` (2 workers) with the page forced on, once it answers 503; stopped when `stack` closes."""
    fallback = Fallback(folder, env, workers=2)
    stack.callback(fallback.stop)
    fallback.start()
    # Only `fallback serve` creates the database: the page is forced on once it exists.
    fallback.cli("mode", "down", "--reason", "bench")
    wait_for_status(fallback.url + PAGE_PATH, 503)
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
    bare_cmd = [sys.executable, str(HERE / "bare.py"), "--port", str(bare_port), "--body", str(folder / "page.bin"),
                "--headers", str(folder / "page.json"), "--database", str(folder / "bare.db")]
    bare = stack.enter_context(process_group(bare_cmd, clean_env({}), folder, bare_url + "/_ready",
                                             folder / "bare.log"))
    bare_answer = answer_of(bare_url + PAGE_PATH, {"Accept": "text/html"})
    results["page_bytes"] = {"fallback": len(body), "bare": len(bare_answer[2])}
    if bare_answer[0] != 503 or len(bare_answer[2]) != len(body):
        raise RuntimeError("the bare app does not answer the same bytes as fallback's page")
    return bare_url, bare


def postgres_database(stack: ExitStack, enabled: bool, results: dict, log) -> str | None:
    """A new database on a throw-away PostgreSQL cluster (tests/pg.py), destroyed when `stack` closes: its URL.

    None, with the reason in results["postgres"]["skipped"], under --no-postgres or when the cluster
    cannot be had (PostgreSQL not installed, initdb or start failing): the SQLite rows go on regardless.
    """
    results["postgres"] = {"skipped": "--no-postgres"}
    if enabled:
        try:
            from pg import Cluster  # tests/pg.py, on the path (see the top of this file)

            cluster = Cluster()  # raises when Debian's postgresql package is not installed
            stack.callback(cluster.destroy)
            log("starting a throw-away PostgreSQL cluster")
            database = cluster.start().create_database()
            results["postgres"] = {"server": postgres_version(cluster.bin)}
            return database
        except Exception as error:  # whatever keeps the cluster from us skips the PostgreSQL rows, saying why
            results["postgres"] = {"skipped": (str(error).strip() or type(error).__name__).splitlines()[0]}
    log(f"PostgreSQL rows skipped: {results['postgres']['skipped']}")
    return None


def postgres_version(binaries: Path) -> str:
    done = subprocess.run([str(binaries / "postgres"), "--version"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL") or "PostgreSQL"


def bench_http(folder: Path, seconds: float, rounds: int, post_rounds: int, postgres: bool, results: dict,
               log) -> None:
    """Rows a-d and f against one fallback and one bare app, both alive all along; with `postgres`, rows b and d
    also against a second fallback, the same but for its database on a throw-away cluster, in the same rounds."""
    main_site = MainSite()
    with ExitStack() as stack:
        stack.callback(main_site.close)
        fallback = start_down(stack, folder, bench_env(main_site, str(folder / "fallback.db")))
        bare_url, bare = start_bare(stack, folder, fallback.url + PAGE_PATH, results)
        database = postgres_database(stack, postgres, results, log)
        on_postgres = start_down(stack, folder, bench_env(main_site, database)) if database else None
        bench_pages(fallback, bare_url, on_postgres, seconds, rounds, results, log)
        results["worker_rss_mib"] = {"fallback": workers_rss_mib(fallback.process.pid),
                                     "bare": workers_rss_mib(bare.pid)}
        bench_submissions(folder, fallback, (bare_url, bare.pid), on_postgres, seconds, post_rounds, results, log)
        results["bare_insert_rows"] = count_rows(folder / "bare.db")
        servers = [fallback] + ([on_postgres] if on_postgres else [])
        for server in servers:
            server.stop()
        results["server_log_problems"] = [line for server in servers for line in log_problems(server.log)[:10]] \
            + log_problems(folder / "bare.log")[:10]


def page_run(url: str, seconds: float) -> dict:
    return wrk(url, seconds, PAGE_CONNECTIONS, headers=HTML)


def bench_pages(fallback: Fallback, bare_url: str, on_postgres: Fallback | None, seconds: float, rounds: int,
                results: dict, log) -> None:
    """Rows a, b, c (and b on PostgreSQL): every server warmed up, then the runs alternate round after round."""
    page_url = fallback.url + PAGE_PATH
    pages = {"floor": bare_url + PAGE_PATH, "down page": page_url}
    if on_postgres:
        pages["down page on PostgreSQL"] = on_postgres.url + PAGE_PATH
    log("warming up")
    for url in pages.values():
        page_run(url, 2)
    runs: dict[str, list[dict]] = {name: [] for name in [*pages, "redirect"]}
    for number in range(rounds):
        log(f"pages, round {number + 1}/{rounds}: {', '.join(runs)}")
        for name, url in pages.items():
            runs[name].append(page_run(url, seconds))
        fallback.cli("mode", "up", "--reason", "bench")
        wait_for_status(page_url, 302)
        runs["redirect"].append(page_run(page_url, seconds))
        fallback.cli("mode", "down", "--reason", "bench")
        wait_for_status(page_url, 503)
    floor = runs["floor"]
    results["floor"], results["down_page"] = median_run(floor), median_run(runs["down page"], floor)
    results["redirect"] = median_run(runs["redirect"], floor)
    results["redirect_non_3xx"] = sum(run["non_2xx_3xx"] for run in runs["redirect"])
    if on_postgres:  # its ratio is to SQLite's down page, measured just before it in each round
        results["postgres"]["down_page"] = median_run(runs["down page on PostgreSQL"], runs["down page"])


def bench_submissions(folder: Path, fallback: Fallback, bare: tuple[str, int], on_postgres: Fallback | None,
                      seconds: float, post_rounds: int, results: dict, log) -> None:
    """Row d (and d on PostgreSQL, its ratio to SQLite's): one valid token for every request (stateless, 24 h,
    no time trap here), the bare handler and each fallback in turn, round after round."""
    token = form_token(fallback.url + PAGE_PATH)
    targets = {"bare insert": (*bare, token), "fallback": (fallback.url, fallback.process.pid, token)}
    if on_postgres:
        targets["fallback on PostgreSQL"] = (on_postgres.url, on_postgres.process.pid,
                                             form_token(on_postgres.url + PAGE_PATH))
    runs = submission_rounds(folder, targets, seconds, post_rounds, log)
    bare_runs = runs["bare insert"]
    results["submissions"] = {"bare": median_run(bare_runs[1:]),
                              **submission_figures(runs["fallback"], bare_runs, fallback.url)}
    if on_postgres:
        results["postgres"]["submissions"] = submission_figures(runs["fallback on PostgreSQL"], runs["fallback"],
                                                                on_postgres.url)


def form_token(url: str) -> str:
    """The hidden form token of the page at `url`."""
    return TOKEN.search(answer_of(url, {"Accept": "text/html"})[2].decode()).group(1)


def submission_rounds(folder: Path, targets: dict[str, tuple[str, int, str]], seconds: float, post_rounds: int,
                      log) -> dict[str, list[dict]]:
    """wrk's POST script against each target (base URL, server's master pid, form token) in turn, round after
    round: every run, round 0 being a 2 s warm-up, with the server's CPU time per accepted request."""
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for number in range(post_rounds + 1):
        label = "warm" if number == 0 else f"round {number}/{post_rounds}"
        log(f"submissions, {label}: {', '.join(targets)}")
        for index, (name, (base, master, token)) in enumerate(targets.items()):
            before = cpu_seconds(master)
            run = wrk(base + "/_fallback/contact", 2 if number == 0 else seconds, POST_CONNECTIONS,
                      post_script(folder, f"s{index}r{number}", token, xff=False))
            run["cpu_ms"] = round(1000 * (cpu_seconds(master) - before) / max(run["accepted"], 1), 2)
            runs[name].append(run)
    return runs


def submission_figures(runs: list[dict], baseline: list[dict], base: str) -> dict:
    """The median run (warm-up left out) with its ratio to `baseline`'s, and the leads accepted over all
    runs against those in the CSV export of the server at `base`."""
    return {"fallback": median_run(runs[1:], baseline[1:]), "accepted": sum(run["accepted"] for run in runs),
            "rejected": sum(run["other"] for run in runs), "exported": exported_bench_rows(base),
            # wrk stops with up to one request per connection in flight: those may be stored unanswered.
            "in_flight_max": POST_CONNECTIONS * len(runs),
            "socket_errors": sum(run["socket_errors"] for run in runs)}


def post_script(folder: Path, run: str, token: str, xff: bool) -> Path:
    script = folder / f"post-{run}.lua"
    script.write_text(POST_SCRIPT.replace("@RUN@", run).replace("@TOKEN@", token)
                      .replace("@XFF@", "true" if xff else "false"))
    return script


def exported_bench_rows(base: str) -> int:
    """How many leads of the wrk runs the CSV export holds."""
    with loopback_session() as session:
        response = session.get(base + "/_fallback/admin/export.csv", timeout=300,
                               headers={"Authorization": f"Bearer {EXPORT_TOKEN}"})
    response.raise_for_status()
    rows = csv.DictReader(io.StringIO(response.content.decode("utf-8"), newline=""))
    return sum(1 for row in rows if row["email"].endswith("@bench.example"))


def count_rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT COUNT(*) FROM leads").fetchone()[0]


def bench_rate_limited(folder: Path, seconds: float, results: dict, log) -> None:
    """Row d again as deployed by default: the rate limit on (60/minute), each request from a new address."""
    main_site = MainSite()
    sub = folder / "limited"
    sub.mkdir()
    env = clean_env({
        "FALLBACK_MAIN_URL": main_site.url, "FALLBACK_CHECK_URLS": main_site.url,
        "FALLBACK_DATABASE": str(sub / "fallback.db"), "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_TRUSTED_PROXIES": "1", "FALLBACK_SECRET_KEY": "bench-secret-key",
    })
    try:
        with fallback_server(sub, env) as fallback:
            fallback.cli("mode", "down")
            wait_for_status(fallback.url + "/", 503)
            token = form_token(fallback.url + "/")
            log("submissions with the rate limit on")
            wrk(fallback.url + "/_fallback/contact", 2, POST_CONNECTIONS, post_script(sub, "rw", token, xff=True))
            results["submissions_rate_limited"] = wrk(fallback.url + "/_fallback/contact", seconds, POST_CONNECTIONS,
                                                      post_script(sub, "rl", token, xff=True))
    finally:
        main_site.close()


def bench_nginx(folder: Path, seconds: float, results: dict, log) -> None:
    """Extra: the page through deploy/nginx's micro-cache, against nginx serving the same bytes from a file."""
    import getpass
    import grp

    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        results["nginx"] = {"skipped": "nginx is not installed"}
        return
    main_site = MainSite()
    sub = folder / "nginx"
    (sub / "static").mkdir(parents=True)
    env = clean_env({"FALLBACK_MAIN_URL": f"http://localhost:{free_port()}/", "FALLBACK_CHECK_URLS": main_site.url,
                     "FALLBACK_DATABASE": str(sub / "fallback.db"), "FALLBACK_TRUSTED_PROXIES": "1",
                     "FALLBACK_SECRET_KEY": "bench-secret-key"})
    try:
        with fallback_server(sub, env) as fallback:
            fallback.cli("mode", "down")
            wait_for_status(fallback.url + "/", 503)
            (sub / "static" / "page.html").write_bytes(answer_of(fallback.url + "/bench", {"Accept": "text/html"})[2])
            port, static_port = free_port(), free_port()
            conf = (HERE.parent / "deploy" / "nginx" / "fallback.conf").read_text()
            placeholders = {"LISTEN": f"{HOST}:{port}", "SERVER_NAME": "localhost",
                            "MAIN_UPSTREAM": f"{HOST}:{free_port()}", "FALLBACK_UPSTREAM": f"{HOST}:{fallback.port}",
                            "CACHE_PATH": str(sub / "cache")}
            for name, value in placeholders.items():
                conf = conf.replace(f"@{name}@", value)
            if re.search(r"@[A-Z_]+@", conf):
                raise RuntimeError("deploy/nginx/fallback.conf has placeholders this bench does not know")
            (sub / "fallback.conf").write_text(conf)
            user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};" if os.geteuid() == 0 else ""
            temp = " ".join(f"{kind}_temp_path {sub}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                           "scgi"))
            (sub / "nginx.conf").write_text(textwrap.dedent(f"""\
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
            """))
            command = [nginx, "-p", str(sub), "-c", str(sub / "nginx.conf"), "-e", str(sub / "error.log"),
                       "-g", f"daemon off; master_process on; pid {sub}/nginx.pid;"]
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


# -- row e -----------------------------------------------------------------------------------------


def seed_leads(database: Path, rows: int) -> None:
    """`rows` leads: the first through fallback's storage API, the rest copied from it in SQL (fast)."""
    from fallback.storage import NewLead, open_storage

    if rows == 0:
        open_storage(str(database)).close()
        return
    storage = open_storage(str(database))
    try:
        storage.leads.save(NewLead(
            email="lead0@bench.example", name="Bench Visitor", message="Please call me back about my order.",
            consent=True, consent_version="en-1",
            consent_text="I agree to be contacted about my request at this address.",
            landing_path="/campaign/tv?utm_source=tv", language="en"))
    finally:
        storage.close()
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(leads)") if row[1] != "id"]
        selected = ["'lead' || n.i || '@bench.example'" if column in ("email", "email_key") else f"l.{column}"
                    for column in columns]
        conn.execute(
            f"INSERT INTO leads ({', '.join(columns)}) "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"SELECT {', '.join(selected)} FROM n, leads AS l WHERE l.email_key = 'lead0@bench.example'",
            (rows - 1,))
    conn.close()


MEASURE = textwrap.dedent("""\
    import resource, subprocess, sys, time
    started = time.perf_counter()
    code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - started
    print(code, elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


def bench_export(folder: Path, rows: int, repeats: int) -> dict:
    """`fallback export -o FILE` over `rows` leads, in a process of its own, `repeats` times: the median
    run's seconds (the slower of two), and the highest peak RSS."""
    from load import fallback_command

    database, output = folder / f"export-{rows}.db", folder / f"export-{rows}.csv"
    seed_leads(database, rows)
    env = clean_env({"FALLBACK_DATABASE": str(database)})
    runs, peaks = [], []
    for _ in range(repeats):
        # A measuring process whose only child is the export: RUSAGE_CHILDREN is the export's own peak.
        done = subprocess.run([sys.executable, "-c", MEASURE, *fallback_command(), "export", "-o", str(output)],
                              env=env, cwd=folder, capture_output=True, text=True, timeout=600)
        code, elapsed, peak_kib = done.stdout.split()
        if code != "0":
            raise RuntimeError(f"fallback export failed ({code}): {done.stderr.strip()}")
        with open(output, newline="", encoding="utf-8") as file:
            exported = sum(1 for _ in csv.reader(file)) - 1
        if exported != rows:
            raise RuntimeError(f"fallback export wrote {exported} rows for {rows} leads")
        output.unlink()
        runs.append(round(float(elapsed), 3))
        peaks.append(round(int(peak_kib) / 1024, 1))
    return {"rows": rows, "seconds": sorted(runs)[len(runs) // 2], "runs_seconds": runs,
            "peak_rss_mib": max(peaks)}


def bench_http_export(folder: Path, rows: int) -> dict:
    """GET /_fallback/admin/export.csv of `rows` leads from one worker: rows/s and the worker's peak memory."""
    database = folder / f"export-{rows}.db"
    env = clean_env({"FALLBACK_MAIN_URL": "http://localhost:9/", "FALLBACK_DATABASE": str(database),
                     "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN, "FALLBACK_SECRET_KEY": "bench-secret-key"})
    with fallback_server(folder, env, workers=1, extra=["--no-checker"]) as server:
        worker = server.pids()[0]
        before = rss_kib(worker, "VmHWM")
        started = time.perf_counter()
        lines = 0
        with loopback_session() as session, session.get(
                server.url + "/_fallback/admin/export.csv", stream=True, timeout=600,
                headers={"Authorization": f"Bearer {EXPORT_TOKEN}"}) as response:
            response.raise_for_status()
            for chunk in response.iter_content(65536):
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        after = rss_kib(worker, "VmHWM")
    return {"rows": lines - 1, "seconds": round(elapsed, 3), "rows_per_s": round((lines - 1) / elapsed),
            "worker_peak_before_mib": round(before / 1024, 1), "worker_peak_after_mib": round(after / 1024, 1)}


def bench_exports(folder: Path, repeats: int, results: dict, log) -> None:
    log(f"export: start-up, 10,000 and 100,000 leads, {repeats} times each")
    empty = bench_export(folder, 0, repeats)
    small = bench_export(folder, 10_000, repeats)
    large = bench_export(folder, 100_000, repeats)
    for figures in (small, large):
        figures["rows_per_s"] = round(figures["rows"] / figures["seconds"])
        figures["rows_per_s_net_of_startup"] = round(figures["rows"] / max(0.001, figures["seconds"] -
                                                                          empty["seconds"]))
    results["export_startup"], results["export_10k"], results["export_100k"] = empty, small, large
    log("export over HTTP: 100,000 leads")
    results["export_http_100k"] = bench_http_export(folder, 100_000)


# -- report ----------------------------------------------------------------------------------------


def verdicts(results: dict) -> dict:
    """Each target: measured value, target, PASS or FAIL."""
    subs = results["submissions"]
    small, large = results["export_10k"], results["export_100k"]
    growth = large["peak_rss_mib"] - small["peak_rss_mib"]
    checks = {
        "b_page_vs_floor": (results["down_page"]["ratio"], TARGETS["page"]),
        "c_redirect_vs_floor": (results["redirect"]["ratio"], TARGETS["redirect"]),
        "d_submissions_vs_bare": (subs["fallback"]["ratio"], TARGETS["submissions"]),
    }
    out = {name: {"measured": round(value, 3), "target": f">= {target}", "pass": value >= target}
           for name, (value, target) in checks.items()}
    out["d_every_accepted_lead_exported"] = exported_verdict(subs)
    on_postgres = results.get("postgres", {}).get("submissions")
    if on_postgres:
        out["d_every_accepted_lead_exported_postgres"] = exported_verdict(on_postgres)
    out["e_export_rows_per_s"] = {"measured": large["rows_per_s"], "target": f">= {TARGETS['export_rows_per_s']}",
                                  "pass": large["rows_per_s"] >= TARGETS["export_rows_per_s"]}
    out["e_export_memory_flat"] = {
        "measured": f"{small['peak_rss_mib']} -> {large['peak_rss_mib']} MiB",
        "target": "10x the rows, < 5 MiB more", "pass": growth < 5}
    return out


def exported_verdict(subs: dict) -> dict:
    """Every accepted (303) lead in the export, at most the requests in flight more, and no rejection."""
    exported_ok = subs["accepted"] <= subs["exported"] <= subs["accepted"] + subs["in_flight_max"] \
        and subs["rejected"] == 0 and subs["accepted"] > 0
    return {"measured": f"{subs['accepted']} accepted, {subs['exported']} exported",
            "target": "accepted <= exported, no rejection", "pass": exported_ok}


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
    commit = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, timeout=10).stdout.strip()
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
            "load_average_at_start": load_average(),
            "cpu": model, "python": platform.python_version(), "gunicorn": version("gunicorn"),
            "flask": version("flask"), "fallback": version("fallback"), "commit": commit or "unknown",
            "wrk": (wrk_version.stdout + wrk_version.stderr).split("\n")[0].strip()}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def rps_cell(run: dict) -> str:
    return f"{run['rps']:,.0f} req/s"


def latency_cell(run: dict) -> str:
    return f"p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms"


def ratio_cell(run: dict) -> str:
    return f"{run['ratio']:.2f} (" + " / ".join(f"{value:.2f}" for value in run["ratio_runs"]) + ")"


def run_detail(run: dict) -> str:
    """Latency, then every round's requests/s."""
    return latency_cell(run) + "; runs " + " / ".join(f"{value:,.0f}" for value in run["runs_rps"])


def cpu_detail(run: dict) -> str:
    """A submissions run's detail: latency, rounds, and the server's CPU time per accepted request (all processes;
    PostgreSQL's own server processes are not counted)."""
    return run_detail(run) + f"; server CPU {run['cpu_ms']:.2f} ms per request"


def mark_cell(check: dict) -> str:
    return f"{check['target']}: **{'PASS' if check['pass'] else 'FAIL'}**"


def table(results: dict) -> str:
    """The figures as a Markdown table, with the targets and verdicts."""
    rows = page_rows(results) + submission_rows(results) + export_rows(results) + nginx_rows(results)
    lines = ["| row | figure | ratio | detail | target |", "|---|---:|---:|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def page_rows(results: dict) -> list[tuple]:
    """Rows a, b, c; b on PostgreSQL (or why it was skipped) next to b."""
    floor, down, up, ver = results["floor"], results["down_page"], results["redirect"], results["verdicts"]
    rows = [("a. bare Flask, same bytes (floor)", rps_cell(floor), "1.00", run_detail(floor), ""),
            ("b. down page (503)", rps_cell(down), ratio_cell(down), run_detail(down),
             mark_cell(ver["b_page_vs_floor"]))]
    postgres = results.get("postgres", {})
    if "down_page" in postgres:
        on_postgres = postgres["down_page"]
        rows.append(("b. down page (503), PostgreSQL (info; ratio to SQLite's b)", rps_cell(on_postgres),
                     ratio_cell(on_postgres), run_detail(on_postgres), ""))
    elif "skipped" in postgres:
        rows.append(("b, d on PostgreSQL (info)", "skipped", "", postgres["skipped"], ""))
    rows.append(("c. up redirect (302)", rps_cell(up), ratio_cell(up), run_detail(up),
                 mark_cell(ver["c_redirect_vs_floor"])))
    return rows


def submission_rows(results: dict) -> list[tuple]:
    """Row d, then d on PostgreSQL (its ratio to SQLite's d), then d' when measured."""
    subs, ver = results["submissions"], results["verdicts"]
    rows = [("d. bare insert handler (FULL sync)", rps_cell(subs["bare"]), "1.00", cpu_detail(subs["bare"]), ""),
            ("d. submissions, 303", rps_cell(subs["fallback"]), ratio_cell(subs["fallback"]),
             cpu_detail(subs["fallback"]), mark_cell(ver["d_submissions_vs_bare"])),
            exported_row("d. accepted leads exported", subs, ver["d_every_accepted_lead_exported"])]
    on_postgres = results.get("postgres", {}).get("submissions")
    if on_postgres:
        rows += [("d. submissions, 303, PostgreSQL (info; ratio to SQLite's d)", rps_cell(on_postgres["fallback"]),
                  ratio_cell(on_postgres["fallback"]), cpu_detail(on_postgres["fallback"]), ""),
                 exported_row("d. accepted leads exported, PostgreSQL", on_postgres,
                              ver["d_every_accepted_lead_exported_postgres"])]
    limited = results.get("submissions_rate_limited")
    if limited:
        rows.append(("d'. submissions, rate limit on (info)", rps_cell(limited),
                     f"{limited['rps'] / subs['bare']['rps']:.2f}",
                     f"{latency_cell(limited)}; {limited['accepted']:,} accepted, {limited['other']} other", ""))
    return rows


def exported_row(label: str, subs: dict, check: dict) -> tuple:
    return (label, f"{subs['exported']:,} exported", "",
            f"{subs['accepted']:,} answered 303, {subs['rejected']} otherwise; the export may hold up to "
            f"{subs['in_flight_max']} more (in flight when wrk stops)", mark_cell(check))


def export_rows(results: dict) -> list[tuple]:
    """Rows e and f."""
    small, large, http = results["export_10k"], results["export_100k"], results["export_http_100k"]
    ver, rss = results["verdicts"], results["worker_rss_mib"]
    return [
        ("e. `fallback export`, 100,000 leads", f"{large['rows_per_s']:,} rows/s", "",
         f"{large['seconds']:.2f} s end to end ({results['export_startup']['seconds']:.2f} s of it start-up; "
         f"{large['rows_per_s_net_of_startup']:,} rows/s net)", mark_cell(ver["e_export_rows_per_s"])),
        ("e. export peak memory", f"{large['peak_rss_mib']} MiB", "",
         f"{small['peak_rss_mib']} MiB for 10,000 leads, {results['export_startup']['peak_rss_mib']} MiB for none",
         mark_cell(ver["e_export_memory_flat"])),
        ("e. HTTP export, 100,000 leads (info)", f"{http['rows_per_s']:,} rows/s", "",
         f"worker peak RSS {http['worker_peak_before_mib']} -> {http['worker_peak_after_mib']} MiB", ""),
        ("f. resident memory per worker", " / ".join(f"{size} MiB" for size in rss["fallback"]), "",
         "bare Flask: " + " / ".join(f"{size} MiB" for size in rss["bare"]), ""),
    ]


def nginx_rows(results: dict) -> list[tuple]:
    nginx = results.get("nginx")
    if not nginx or "skipped" in nginx:
        return []
    static, cached = nginx["static_file"], nginx["micro_cached_page"]
    return [
        ("nginx serving the page as a file (info)", rps_cell(static), "", latency_cell(static), ""),
        ("page via deploy/nginx micro-cache (info)", rps_cell(cached),
         f"{cached['rps'] / results['floor']['rps']:.1f}x floor", latency_cell(cached), ""),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter and fewer runs: about 90 seconds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--seconds", type=float, help="length of each wrk run (default 8, 3 with --quick)")
    parser.add_argument("--rounds", type=int,
                        help="rounds of alternating runs (default 3; 2 for submissions and exports with --quick)")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx rows (--quick skips them, and the "
                        "rate-limited submissions)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL rows (b and d measured again "
                        "against fallback on a throw-away PostgreSQL cluster)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 8)
    rounds = args.rounds or 3
    post_rounds = args.rounds or (2 if args.quick else 3)   # submissions and exports
    if not 1 <= seconds <= 120 or not 1 <= rounds <= 10:
        parser.error("--seconds from 1 to 120, --rounds from 1 to 10")

    def terminate(signum, frame):
        raise SystemExit(2)

    signal.signal(signal.SIGTERM, terminate)  # servers are stopped on `kill` too
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    results: dict = {"machine": machine(), "settings": {"seconds_per_run": seconds, "rounds": rounds,
                                                         "submission_and_export_rounds": post_rounds,
                                                         "page_connections": PAGE_CONNECTIONS,
                                                         "post_connections": POST_CONNECTIONS, "wrk_threads": 2}}
    try:
        with tempfile.TemporaryDirectory(prefix="fallback-bench-") as tmp:
            folder = Path(tmp)
            bench_http(folder, seconds, rounds, post_rounds, not args.no_postgres, results, log)
            if not args.quick:
                bench_rate_limited(folder, seconds, results, log)
            if not (args.quick or args.no_nginx):
                bench_nginx(folder, seconds, results, log)
            bench_exports(folder, post_rounds, results, log)
    except (RuntimeError, OSError, subprocess.SubprocessError, requests.RequestException) as error:
        print(f"bench: could not run: {error}", file=sys.stderr)
        return 2
    results["machine"]["load_average_at_end"] = load_average()
    results["verdicts"] = verdicts(results)
    results["total_seconds"] = round(time.monotonic() - started)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        m = results["machine"]
        print(f"fallback bench, {m['date']}, {m['cores']} cores, {m['cpu']}, Python {m['python']}, gunicorn "
              f"{m['gunicorn']}, Flask {m['flask']}, fallback {m['fallback']} ({m['commit']})"
              + (f", {results['postgres']['server']}" if "server" in results["postgres"] else ""))
        print(f"{m['wrk']}: -t2 -c{PAGE_CONNECTIONS} for pages, -c{POST_CONNECTIONS} for submissions, "
              f"{seconds:g} s a run, medians of {rounds} alternating rounds ({post_rounds} for submissions and "
              f"exports), ratios paired by round; all on 127.0.0.1, one machine; "
              f"load average {m['load_average_at_start']} at start, {m['load_average_at_end']} at end\n")
        print(table(results))
        if results["server_log_problems"]:
            print("\nserver log problems:\n" + "\n".join(results["server_log_problems"]))
        failed = [name for name, check in results["verdicts"].items() if not check["pass"]]
        print(f"\n{len(results['verdicts']) - len(failed)} of {len(results['verdicts'])} targets met"
              + (f"; FAIL: {', '.join(failed)}" if failed else "") + f" ({results['total_seconds']} s)")
    return 1 if args.strict and any(not check["pass"] for check in results["verdicts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
