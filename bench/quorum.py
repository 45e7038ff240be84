"""Detection with and without a quorum: the seconds from a main site that starts refusing connections to the flip
down, and from its return to the flip up, at a 1 s interval (timeout 1 s, fall 2, rise 2), for three set-ups:

- quorum 1: one `fallback serve` instance on SQLite; its checker decides alone, as without FALLBACK_QUORUM;
- quorum 2, three vantage points: one instance on SQLite and two `fallback probe` agents;
- quorum 2 on PostgreSQL: two instances sharing a throw-away PostgreSQL database, and one agent.

    python bench/quorum.py                # about 2 minutes: 5 rounds of each
    python bench/quorum.py --rounds 10
    python bench/quorum.py --no-postgres  # without the third set-up (and its cluster)
    python bench/quorum.py --json

Everything runs on 127.0.0.1: the main site is tests/standin.py's stand-in, the instances (2 gunicorn workers each)
and agents tests/served.py's process groups, PostgreSQL tests/pg.py's throw-away cluster. Inherited FALLBACK_*,
PORT and proxy variables are dropped. A round: every vantage point says up and so does the flag; a random wait of
up to one interval, so that the refusal falls anywhere in the probes' cycle; the stand-in stops listening
(connections refused); the seconds until the stored flip (`state_since`, the same machine's clock); once every
vantage point says down, another random wait, the stand-in listens again, and the seconds until the flip up.

For bench/run.py's kind of table: `quorum.measure(folder, rounds, postgres, log)` returns the figures,
`quorum.rows(figures)` the rows (row, figure, ratio, detail, target).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent / "tests") not in sys.path:
    sys.path.append(str(HERE.parent / "tests"))  # last: no test helper may shadow a module the bench imports

from helpers import wait_for  # noqa: E402 - tests/ is not a package: its folder goes on the path first
from served import PROXY_VARIABLES, Served, quorum_agent, quorum_env  # noqa: E402
from standin import StandIn  # noqa: E402

from fallback.core.clock import utcnow  # noqa: E402
from fallback.storage import Storage, open_storage  # noqa: E402

INTERVAL = 1.0
# A flip that has not come in this long is a failure, not a figure.
FLIP_DEADLINE = 30.0
SETUPS = (
    ("quorum 1, one instance (SQLite)", "single"),
    ("quorum 2, one instance (SQLite) + two agents", "agents"),
    ("quorum 2, two instances (PostgreSQL) + one agent", "postgres"),
)


def verdicts(storage: Storage) -> dict[str, str]:
    """Each vantage point's last state, by name (none under a quorum of 1)."""
    return {verdict.name: verdict.state for verdict in storage.verdicts.latest()}


def settled(storage: Storage, names: set[str], state: str) -> bool:
    """Whether the flag and every vantage point in `names` say `state`."""
    return storage.flag.read().state == state and verdicts(storage) == dict.fromkeys(names, state)


def flip(storage: Storage, site: StandIn, state: str, rand: random.Random) -> float:
    """Stop (for down) or start (for up) the stand-in at a random point of the probes' cycle; seconds to the flip."""
    time.sleep(rand.uniform(0, INTERVAL))
    began = utcnow()
    if state == "down":
        site.stop()
    else:
        site.start()
    flag = wait_for(lambda: (f := storage.flag.read()).state == state and f, FLIP_DEADLINE, f"the flip {state}")
    return (flag.state_since - began).total_seconds()


def timed_rounds(storage: Storage, site: StandIn, names: set[str], rounds: int, rand: random.Random) -> dict:
    """`rounds` outages and recoveries of the stand-in: the seconds to each flip down and up."""
    down, up = [], []
    for _ in range(rounds):
        wait_for(lambda: settled(storage, names, "up"), FLIP_DEADLINE, "every vantage point up")
        down.append(flip(storage, site, "down", rand))
        wait_for(lambda: settled(storage, names, "down"), FLIP_DEADLINE, "every vantage point down")
        up.append(flip(storage, site, "up", rand))
    return {"down": down, "up": up}


def run_setup(kind: str, folder: Path, rounds: int, rand: random.Random, database: str | None) -> dict:
    """One set-up, started in `folder`, measured for `rounds` rounds, stopped."""
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        site = stack.enter_context(StandIn())
        env = quorum_env(site.url, 1 if kind == "single" else 2, database)
        first = stack.enter_context(Served(env, folder))
        instances = [first] + ([stack.enter_context(Served(env, folder))] if kind == "postgres" else [])
        names = {instance.vantage for instance in instances} if kind != "single" else set()
        agent_names = {"single": [], "agents": ["east probe", "west probe"], "postgres": ["east probe"]}[kind]
        for name in agent_names:
            agent = quorum_agent(folder, first.url, site.url, name)
            stack.callback(agent.stop)
            names.add(name)
        storage = stack.enter_context(closing(open_storage(database or str(folder / "fallback.db"))))
        figures = timed_rounds(storage, site, names, rounds, rand)
    return {"vantage_points": len(names) or 1, "instances": len(instances), "agents": len(agent_names), **figures}


def postgres_database(stack: ExitStack, log) -> tuple[str | None, str | None]:
    """A database on a throw-away cluster (tests/pg.py), destroyed with `stack`: (URL, None), or (None, why not)."""
    try:
        from pg import Cluster

        cluster = Cluster()
        stack.callback(cluster.destroy)
        log("starting a throw-away PostgreSQL cluster")
        return cluster.start().create_database(), None
    except Exception as error:  # no PostgreSQL here: the other set-ups still run, and the table says why
        return None, (str(error).strip() or type(error).__name__).splitlines()[0]


def measure(folder: Path, rounds: int = 5, postgres: bool = True, log=print, seed: int | None = None) -> dict:
    """Every set-up of SETUPS, `rounds` rounds each; a skipped one holds {"skipped": why}."""
    rand = random.Random(seed)
    figures: dict = {}
    with ExitStack() as stack:
        for label, kind in SETUPS:
            database = None
            if kind == "postgres":
                database, why = postgres_database(stack, log) if postgres else (None, "--no-postgres")
                if database is None:
                    figures[kind] = {"label": label, "skipped": why}
                    log(f"{label}: skipped ({why})")
                    continue
            log(f"{label}: {rounds} round{'s' if rounds != 1 else ''}")
            figures[kind] = {"label": label, **run_setup(kind, folder / kind, rounds, rand, database)}
    return figures


def spread(seconds: list[float]) -> tuple[str, str]:
    """The median as the figure, and min / median / max with every round as the detail."""
    low, middle, high = min(seconds), statistics.median(seconds), max(seconds)
    each = " / ".join(f"{value:.2f}" for value in seconds)
    return f"{middle:.2f} s", f"min / median / max {low:.2f} / {middle:.2f} / {high:.2f} s; rounds {each}"


def rows(figures: dict) -> list[tuple]:
    """The table rows: (row, figure, ratio to quorum 1's median, detail, target)."""
    table = []
    for direction, what in (("down", "refused site to the flip down"), ("up", "site back to the flip up")):
        baseline = figures.get("single", {}).get(direction)
        for _, kind in SETUPS:
            setup = figures.get(kind)
            if setup is None:
                continue
            if "skipped" in setup:
                table.append((f"{setup['label']}: {what}", "skipped", "", setup["skipped"], ""))
                continue
            figure, detail = spread(setup[direction])
            ratio = f"{statistics.median(setup[direction]) / statistics.median(baseline):.2f}x" if baseline else ""
            table.append((f"{setup['label']}: {what}", figure, ratio, detail, ""))
    return table


def header(rounds: int) -> str:
    """When, where and what was run: the figures drift with the machine's other work."""
    from report import load_average  # bench/report.py, only for the printed table

    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    plural = "s" if rounds != 1 else ""
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}, {os.cpu_count()} cores, "
        f"load average {load_average()} at start; interval 1 s, timeout 1 s, fall 2, rise 2; {rounds} round{plural}"
        " of each"
    )


def main() -> int:
    """Measure, then print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="outages (and recoveries) per set-up (default 5)")
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL set-up")
    parser.add_argument("--seed", type=int, help="seed the random waits before each refusal and return")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for name in [name for name in os.environ if name.startswith("FALLBACK_") or name == "PORT"] + [*PROXY_VARIABLES]:
        os.environ.pop(name, None)  # nothing inherited may point the servers or agents elsewhere
    started = header(args.rounds)
    with tempfile.TemporaryDirectory(prefix="fallback-quorum-bench-") as tmp:
        figures = measure(Path(tmp), args.rounds, not args.no_postgres, lambda m: print(m, file=sys.stderr), args.seed)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = ["| row | figure | ratio | detail | target |", "|---|---:|---:|---|---|"]
    from report import load_average

    print(started + f"; load average {load_average()} at end\n")
    print("\n".join(table + ["| " + " | ".join(row) + " |" for row in rows(figures)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
