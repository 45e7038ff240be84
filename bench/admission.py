"""Admission against a capacity-limited main site: a spike, and a recovery, with FALLBACK_ADMIT_RATE off and on.

    python bench/admission.py                          # 5 to 10 minutes on a shared 2-core machine
    python bench/admission.py --plot docs/admission-bench.png --json
    python bench/admission.py --spike 40 --recovery 60 --capacity 6   # seconds: what tests/test_admission_bench.py runs

The main site is tests/capacity_site.py's stand-in, run in a process of its own (so the visitors' threads do not
share its interpreter): C requests at once take `--work` seconds each; one more, and it answers after 2 s with a
503. In front of it, a real `fallback serve` (2 workers, SQLite, the checker probing the stand-in every second)
is the entry point. The probes queue at the stand-in like visitors' requests, so the checker (and
FALLBACK_ADMIT_ADAPT) sees it slow down; with `--no-count-probes` they are answered at once, as a cheap health
endpoint that says nothing of the load would. Each
simulated visitor (a thread with its own cookie jar, as a browser) asks fallback for /campaign/tv as a browser
does (text/html), and then:

- on the down page or the waiting page, looks again after the page's own live delay (`data-refresh`, as the
  page's script does: on the down page `Retry-After` give or take 30%; on the waiting page never after their
  turn, to the millisecond), keeping its cookies;
- on the 302, makes `--clicks` (k) requests in a row on the main site, the first at the 302's Location.

A visitor is lost at its first error: a 5xx from the main site, a connection error or time-out, an answer
neither page nor redirect. A request whose kept-alive connection the server closed under it is sent once more,
as a browser does (counted: `resent` in the JSON). One still told to wait after `--give-up` seconds is counted apart.

Scenarios, each run with admission off and on (a fresh `fallback serve` and database for each run):

- **spike**: `--spike` visitors arrive evenly over `--spike-seconds`, the main site up;
- **recovery**: the page is forced on (`fallback mode down --for --down-seconds`), `--recovery` visitors arrive
  over `--arrive-seconds` and wait on the down page; the forced mode then runs out, and they come back.

With admission on, FALLBACK_ADMIT_RATE is half of what the main site takes, as docs/admission.md advises:
C / (k * work) visitors a second hold the C places all the time, so the rate is C / (2 k work). The default
FALLBACK_ADMIT_ADAPT is on, and each run starts once the rate in force has climbed to that ceiling.

Sizing: 2 shared cores also run fallback's workers, the stand-in and every visitor's thread. The default spike
(400 visitors in 4 s, 100 a second) is 2.5 times what the main site takes (C = 20, 0.1 s a request, k = 5: 40
visitors a second) and 5 times the rate (20 a second), so without admission it overflows at once, and with it the
line lasts about 20 s. The recovery's 1,000 visitors come back within a few seconds of the return, 25 times what
the main site takes in a second. Every loop is bounded: each visitor gives up after `--give-up` seconds (a run
can last that long: when the checker shows the page, as probes queueing at a main site past C make it do,
visitors without a place wait the page's 120 s), each run's threads are joined within that bound, and every
server is stopped at the end, on error too.

`--busy N` runs N busy loops alongside, so that a loaded machine can be measured the same way each time.
`--max-latency` sets FALLBACK_MAX_LATENCY (the product's default, 2 s, by default): the adapt halves the rate on
probes slower than half of it.

Prints one Markdown table (and with `--json`, the figures and the held-requests timelines). Loopback only.
Exit status: 0, or 1 when admission on lost a visitor or let the main site hold more than C (the goal).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/ is not a package: its folder goes first; tests/ (procs, the stand-in) last, so that no test helper can
# shadow a bench module (see bench/README.md).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
TESTS = str(HERE.parent / "tests")
if TESTS not in sys.path:
    sys.path.append(TESTS)

from admission_visitors import Visitor, crowd, summary  # noqa: E402
from procs import answers, fallback_command, free_port, log_tail, start_group, stop_group  # noqa: E402

# Variables never passed on to the servers: their settings are ours alone, and nothing goes through a proxy.
DROPPED = re.compile(r"^(FALLBACK_.*|PORT|WEB_CONCURRENCY|https?_proxy|all_proxy|no_proxy)$", re.IGNORECASE)
CEILING_SECONDS = 60  # how long the rate in force may take to climb to its ceiling before a run


@dataclasses.dataclass(frozen=True)
class Config:
    capacity: int = 20
    work: float = 0.1
    overload_delay: float = 2.0
    clicks: int = 5
    spike: int = 400
    spike_seconds: float = 4.0
    recovery: int = 1000
    arrive_seconds: float = 10.0
    down_seconds: float = 25.0
    give_up: float = 150.0
    adapt: bool = True  # FALLBACK_ADMIT_ADAPT; off, the rate is at its ceiling from the checker's first round
    # Whether fallback's probes queue at the main site like visitors (so the checker sees it slow down and fail),
    # or are answered at once (a cheap health endpoint that says nothing of the load).
    count_probes: bool = True
    # FALLBACK_MAX_LATENCY, the product's default: the adapt halves the rate on probes slower than half of it.
    # Set near a few times the checked page's usual time, the adapt sees the main site slow before it fails.
    max_latency: float = 2.0

    @property
    def rate(self) -> float:
        """Half of what the main site takes, in visitors a second (docs/admission.md's advice)."""
        return self.capacity / (2 * self.clicks * self.work)


class MainSite:
    """The stand-in main site (tests/capacity_site.py) in a process of its own, and its counts, read and reset."""

    def __init__(self, config: Config):
        self.command = [sys.executable, str(Path(TESTS) / "capacity_site.py")]
        self.command += [str(config.capacity), str(config.work), str(config.overload_delay)]
        self.command += ["count-probes"] if config.count_probes else []
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> MainSite:
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.answer()
        return self

    def answer(self) -> str:
        """Its next line, within 60 s."""
        assert self.process is not None and self.process.stdout is not None
        reader = threading.Thread(target=lambda: setattr(self, "line", self.process.stdout.readline()), daemon=True)
        self.line = ""
        reader.start()
        reader.join(60)
        if not self.line:
            raise RuntimeError("the stand-in main site did not answer within 60 s")
        return self.line.strip()

    def collect(self) -> dict:
        """Its peak, counts and timeline since the last collect; the counts start again from here."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write("collect\n")
        self.process.stdin.flush()
        return json.loads(self.answer())

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # it stops at the end of its input
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Fallback:
    """A `fallback serve` with 2 workers in front of the main site, in a temporary folder of its own."""

    def __init__(self, site_url: str, rate: float | None, adapt: bool = True, max_latency: float = 2.0):
        self.folder = Path(tempfile.mkdtemp(prefix="fallback-admission-bench-"))
        self.database = str(self.folder / "fallback.db")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.folder / "serve.log"
        self.env = {name: value for name, value in os.environ.items() if not DROPPED.match(name)} | {
            "FALLBACK_MAIN_URL": site_url,
            "FALLBACK_DATABASE": self.database,
            "FALLBACK_SECRET_KEY": "admission-bench-secret",
            "FALLBACK_CHECK_INTERVAL": "1",
            "FALLBACK_CHECK_TIMEOUT": "1",
            "FALLBACK_MAX_LATENCY": f"{max_latency:g}",
            "FALLBACK_RATE_LIMIT": "0",
        }
        if rate is not None:
            self.env["FALLBACK_ADMIT_RATE"] = f"{rate:g}/second"
            self.env["FALLBACK_ADMIT_ADAPT"] = "true" if adapt else "false"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Fallback:
        command = fallback_command() + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"]
        self.process = start_group(
            command, self.env, self.folder, self.log, answers(self.url + "/_fallback/status.json", ok=True)
        )
        return self

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            fallback_command() + list(args), env=self.env, cwd=self.folder, capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            raise RuntimeError(f"fallback {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def wait_for_ceiling(self, ceiling: float) -> None:
        """Return once the rate in force has climbed to `ceiling` (the checker adds a tenth of it each second)."""
        deadline = time.monotonic() + CEILING_SECONDS
        while time.monotonic() < deadline:
            status = json.loads(self.cli("status", "--json"))
            if status.get("admission", {}).get("rate", 0) >= ceiling * 0.999:
                return
            time.sleep(1)
        raise RuntimeError(f"the rate in force did not reach {ceiling:g} within {CEILING_SECONDS} s")

    def problems(self) -> list[str]:
        """Tracebacks and errors in its log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if re.search(r"Traceback|\bERROR\b|WORKER TIMEOUT", line)]

    def __exit__(self, *exc) -> None:
        stop_group(self.process)
        if exc[0] is None:
            shutil.rmtree(self.folder, ignore_errors=True)
        else:
            print(f"fallback's log, kept in {self.folder}:\n{log_tail(self.log)}", file=sys.stderr)


def run(config: Config, site: MainSite, scenario: str, admission: bool) -> dict:
    """One scenario, admission off or on: the visitors' summary, the main site's counts and its timeline."""
    with Fallback(site.url, config.rate if admission else None, config.adapt, config.max_latency) as fallback:
        if admission:
            fallback.wait_for_ceiling(config.rate)
        returns_at = None
        if scenario == "recovery":
            fallback.cli("mode", "down", "--for", f"{config.down_seconds:g}s", "--reason", "admission bench")
            returns_at = time.monotonic() + config.down_seconds
            count, over = config.recovery, config.arrive_seconds
        else:
            count, over = config.spike, config.spike_seconds
        site.collect()  # the counts start now
        start = time.monotonic() + 1.0
        visitors = crowd(fallback.url, count, start, over, config.clicks, config.give_up)
        held = site.collect()
        problems = fallback.problems()
    figures = summary(visitors, held, config.capacity)
    figures |= {"scenario": scenario, "admission": admission, "server_log_problems": problems[:5]}
    figures["returned_at"] = None if returns_at is None else round(returns_at - start, 2)
    sent_on = sorted(visitor.admitted_at - start for visitor in visitors if visitor.admitted_at is not None)
    figures["busiest_second"] = busiest_second(sent_on)
    figures["sent_on_at"] = [round(moment, 3) for moment in sent_on]
    figures["timeline"] = [(round(moment - start, 3), holding) for moment, holding in held["timeline"]]
    return figures


def busiest_second(moments: list[float]) -> int:
    """The most of `moments` (sorted) within any one second: how bunched the visitors sent on were."""
    most, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


COLUMNS = (
    "scenario",
    "admission",
    "visitors",
    "lost to errors",
    "still waiting at the bound",
    "main site 5xx",
    "main site p99",
    "peak held",
    "sent on in the busiest second",
    "waited",
    "wait − first estimate: median / max",
    "outside 25% or 5 s",
    "took",
)


def table(results: list[dict], config: Config) -> str:
    """The figures as one Markdown table, a row a run."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        gap = r["wait_gap"]
        cells = (
            r["scenario"],
            f"on, {config.rate:g}/s" if r["admission"] else "off",
            r["visitors"],
            r["lost"],
            r["still_waiting"],
            f"{r['main_5xx']} of {r['main_requests']} ({r['main_5xx_rate']:.1%})",
            f"{r['main_p99_ms']:.0f} ms",
            f"{r['peak_held']} (C = {config.capacity})",
            r["busiest_second"],
            r["waited"],
            f"{gap['median']:+.1f} s / {gap['max']:+.1f} s",
            gap["outside"],
            f"{r['took']:.0f} s",
        )
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Config()
    for field in dataclasses.fields(Config):
        name = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        if isinstance(default, bool):
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(name, type=type(default), default=default)
    parser.add_argument("--only", choices=["spike", "recovery"], help="run one scenario")
    parser.add_argument("--json", action="store_true", help="print the figures and timelines as JSON too")
    parser.add_argument("--plot", type=Path, help="save the held-requests plot there (needs the bench extra)")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="run N busy loops alongside, from 45 s before the first run: a loaded machine, the same each time",
    )
    args = parser.parse_args()
    config = Config(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Config)})
    with busy_loops(args.busy):
        results = run_all(config, [args.only] if args.only else ["spike", "recovery"])
    print(table(results, config))
    if args.json:
        print(json.dumps({"config": dataclasses.asdict(config), "results": results}))
    if args.plot:
        from admission_plot import plot

        plot(results, config.capacity, args.plot)
    missed = [r for r in results if r["admission"] and (r["lost"] or r["peak_held"] > config.capacity)]
    return 1 if missed else 0


@contextlib.contextmanager
def busy_loops(count: int, warm_up: float = 45.0) -> Iterator[None]:
    """`count` processes that only spin, for the block, started `warm_up` seconds before it (so that the load
    average printed with each run shows them); every one is stopped at the end, on error too."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        if loops:
            print(f"{count} busy loops running alongside")
            time.sleep(warm_up)
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def run_all(config: Config, scenarios: list[str]) -> list[dict]:
    """Every scenario, admission off then on, against one stand-in main site; the machine's load printed."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cores, load average {os.getloadavg()}")
    print(
        f"C = {config.capacity}, {config.work:g} s a request, k = {config.clicks}, rate {config.rate:g}/s,"
        f" FALLBACK_MAX_LATENCY {config.max_latency:g} s"
    )
    results = []
    with MainSite(config) as site:
        for scenario in scenarios:
            for admission in (False, True):
                results.append(run(config, site, scenario, admission))
                print(f"{scenario}, admission {'on' if admission else 'off'}: done, load {os.getloadavg()}")
    return results


__all__ = ["Config", "Visitor", "main", "run_all", "table"]

if __name__ == "__main__":
    sys.exit(main())
