"""The bench's harness: servers as process groups, wrk runs and their medians, a page's answer and token.

Shared by the scenarios (scenarios.py, exports.py); the servers themselves are bench/load.py's
(`Fallback`, `MainSite`) and tests/procs.py's process groups (see that module for why it lives
in tests/).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from contextlib import ExitStack, contextmanager
from pathlib import Path

from load import LOG_PROBLEMS, Fallback, loopback_session, rss_kib, worker_pids
from procs import answers, start_group, stop_group

HERE = Path(__file__).resolve().parent
EXPORT_TOKEN = "bench-export-token-0123456789"
PAGE_PATH = "/campaign/tv"
HTML = ("Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",)
PAGE_CONNECTIONS = 50
POST_CONNECTIONS = 16  # as many as the 2 workers x 8 threads of `fallback serve`
TOKEN = re.compile(r'name="token" value="([^"]+)"')

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
    name = Path(command[1] if command[0] == sys.executable else command[0]).name
    process = start_group(command, env, cwd, log, answers(ready_url), name=name, seconds=startup)
    try:
        yield process
    finally:
        stop_group(process)


@contextmanager
def fallback_server(folder: Path, env: dict, workers: int = 2, extra: list[str] = ()):
    """`fallback serve` (load.Fallback), stopped on exit whatever happens."""
    server = Fallback(folder, env, workers, list(extra))
    try:
        yield server.start()
    finally:
        server.stop()


def log_problems(log: Path) -> list[str]:
    """Tracebacks, errors and killed workers in a server's log."""
    try:
        return [line for line in log.read_text(errors="replace").splitlines() if LOG_PROBLEMS.search(line)]
    except OSError:
        return []


def workers_rss_mib(master: int) -> list[float]:
    """The resident memory of each worker of a server, in MiB."""
    return [round((rss_kib(pid) or 0) / 1024, 1) for pid in worker_pids(master)]


# -- wrk -------------------------------------------------------------------------------------------


def wrk(url: str, seconds: float, connections: int, script: Path | None = None, headers=()) -> dict:
    """One wrk run: requests/s, p50/p99 latency (ms), non-2xx/3xx answers, socket errors, Lua's counts."""
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
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
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50_ms": millis("50"),
        "p99_ms": millis("99"),
        "non_2xx_3xx": int(non_ok.group(1)) if non_ok else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
    }
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
        middle["ratio"] = round(
            ratios[(len(ratios) - 1) // 2]
            if len(ratios) % 2
            else (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2,
            3,
        )
    return middle


# -- rows a, b, c, d, f ----------------------------------------------------------------------------


def answer_of(url: str, headers: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """The status, raw headers and body of one GET, redirects not followed."""
    with loopback_session() as session:
        response = session.get(url, headers=headers, timeout=10, allow_redirects=False)
    return response.status_code, list(response.raw.headers.items()), response.content


def form_token(url: str) -> str:
    """The hidden form token of the page at `url`."""
    return TOKEN.search(answer_of(url, {"Accept": "text/html"})[2].decode()).group(1)


def post_script(folder: Path, run: str, token: str, xff: bool) -> Path:
    """POST_SCRIPT for one run (its address prefix, the form token, X-Forwarded-For or not), written to a file."""
    script = folder / f"post-{run}.lua"
    script.write_text(
        POST_SCRIPT.replace("@RUN@", run).replace("@TOKEN@", token).replace("@XFF@", "true" if xff else "false")
    )
    return script


def postgres_database(stack: ExitStack, enabled: bool, results: dict, log) -> str | None:
    """A new database on a throw-away PostgreSQL cluster (tests/pg.py), destroyed when `stack` closes: its URL.

    None, with the reason in results["postgres"]["skipped"], under --no-postgres or when the cluster
    cannot be had (PostgreSQL not installed, initdb or start failing): the SQLite rows go on regardless.
    """
    results["postgres"] = {"skipped": "--no-postgres"}
    if enabled:
        try:
            from pg import Cluster  # tests/pg.py, on the path (see run.py)

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
    """The version of the cluster's PostgreSQL, as `PostgreSQL 15.x (...)`."""
    done = subprocess.run([str(binaries / "postgres"), "--version"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL") or "PostgreSQL"
