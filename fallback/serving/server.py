"""Serving: the app under gunicorn, configured from the command line; gunicorn's hooks start and stop the
checker's threads (fallback.serving.background) in each worker."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from fallback.core.logs import COMBINED, use_json
from fallback.core.paths import owner_only
from fallback.core.settings import Settings
from fallback.serving.background import Background, start_in_background

if TYPE_CHECKING:  # gunicorn ships no type information: these name what gunicorn passes
    from flask import Flask
    from gunicorn.arbiter import Arbiter
    from gunicorn.config import Config
    from gunicorn.http.message import Request as GunicornRequest
    from gunicorn.http.wsgi import Response as GunicornResponse
    from gunicorn.workers.base import Worker

# prometheus_client's variable (fallback.metrics reads it; not imported here, so that the master never loads it early).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The workers' counts folder, named after the master's pid: fallback-metrics-<pid>-<random>.
COUNTS_PREFIX = "fallback-metrics-"


class GunicornServer(BaseApplication):
    """gunicorn, embedded: each worker builds its own app (and its own database connections)."""

    def __init__(self, settings: Settings, options: dict, vantage: str | None = None):
        self.settings = settings
        self.options = options
        self.vantage = vantage  # this instance's name as a vantage point (FALLBACK_QUORUM)
        super().__init__()

    def load_config(self) -> None:
        """Apply our options; gunicorn's own command line is not ours to parse."""
        for key, value in self.options.items():
            # Settings a given gunicorn release lacks are skipped, so a range of releases works.
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        """Build the app inside the worker, after the fork."""
        from fallback.serving.app import create_app

        return create_app(self.settings, threads=self.options["threads"])


class PrivateLogger(glogging.Logger):
    """gunicorn's logger, but the access log holds no query string and its file is readable by its owner only.

    A query can hold a lead's address (`DELETE leads?email=`, logged even when refused, and kept after the
    erasure), an unsubscribe token (`?t=`) or an admin's search (`q=`): the request line and the referer
    are logged without theirs (SPEC 5, Privacy).
    """

    def setup(self, cfg: Config) -> None:
        """Create (or tighten) the access log file 0600 before gunicorn opens it for appending."""
        if cfg.accesslog and cfg.accesslog != "-":
            owner_only(cfg.accesslog, create=True)
        super().setup(cfg)

    def atoms(
        self, resp: GunicornResponse, req: GunicornRequest, environ: dict[str, Any], request_time: timedelta
    ) -> dict[str, Any]:
        """gunicorn's atoms, the request line's and the referer's queries left out."""
        atoms = super().atoms(resp, req, environ, request_time)
        target = environ.get("RAW_URI", "").partition("?")[0]
        atoms["r"] = f"{environ['REQUEST_METHOD']} {target} {environ['SERVER_PROTOCOL']}"
        atoms["q"] = "-"
        atoms["f"] = without_query(atoms.get("f", "-"))
        atoms["{referer}i"] = atoms["f"]
        return atoms


def without_query(url: str) -> str:
    """A logged URL without its query or fragment (the referer of an admin search, an unsubscribe page)."""
    return url.partition("?")[0].partition("#")[0]


class JsonLogger(PrivateLogger):
    """gunicorn's logger writing JSON lines, and fallback's own loggers with it (FALLBACK_LOG_FORMAT=json)."""

    def setup(self, cfg: Config) -> None:
        """gunicorn's set-up (run again on a reload), then every handler writes JSON."""
        super().setup(cfg)
        use_json([self.error_log, self.access_log])


def start_checker(worker: Worker) -> None:
    """gunicorn hook: every worker runs a checker thread; the database lease lets only one probe."""
    from fallback.checking.selfprobe import probe_key

    runtime = worker.wsgi.extensions["fallback"]
    worker.fallback_background = background = start_in_background(
        runtime.settings,
        runtime.storage,
        probe_key(runtime.secret_key),
        runtime.metrics,
        worker.app.vantage,
        counts_folder=os.environ.get(MULTIPROC_ENV),  # set by serve() in the master, before the fork
    )
    release_on_sigterm(background)


def release_on_sigterm(background: Background) -> None:
    """Give the lease up when the worker is told to stop, before gunicorn's own handler begins the graceful exit.

    A worker may take seconds to exit after SIGTERM (it ends its requests first; its master then reaps it):
    the checker moves to another process at once instead, while this one still answers visitors.
    """
    graceful = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        background.stop_soon()
        if callable(graceful):
            graceful(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn set it: a stop must not interrupt a request's I/O


def stop_checker(server: Arbiter, worker: Worker) -> None:
    """gunicorn hook, in a leaving worker (its requests done): give the lease up, so another takes over at once."""
    background = getattr(worker, "fallback_background", None)
    if background is not None:
        background.stop()


def forget_worker(server: Arbiter, worker: Worker) -> None:
    """gunicorn hook, in the master: a worker has gone; its counts stay in the folder, its live gauges go."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(worker.pid, os.environ[MULTIPROC_ENV])


def bind_host(host: str | None, environ: Mapping[str, str]) -> str:
    """Where `fallback serve` listens: `--host` when given; every interface when the platform set PORT; else loopback.

    A laptop's quick start must not show the page to the local network, while a PaaS routes to the port it set.
    """
    if host:
        return host
    return "0.0.0.0" if environ.get("PORT", "").strip() else "127.0.0.1"


def share_counts() -> str:
    """Give the workers to come a private folder (mode 0700) for their counts (fallback.metrics); removed at exit.

    One for this run only: a folder kept from an earlier run could hold a recycled pid's file, and a restart
    of the server is a counter reset, which Prometheus expects.
    """
    master = os.getpid()
    remove_stale_counts(Path(tempfile.gettempdir()))
    folder = tempfile.mkdtemp(prefix=f"{COUNTS_PREFIX}{master}-")
    os.environ[MULTIPROC_ENV] = folder  # before the workers fork, and before they import prometheus_client

    def remove() -> None:
        if os.getpid() == master:  # forked workers run the exit handlers too
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    return folder


def remove_stale_counts(temporary: Path) -> None:
    """Remove our folders of counts whose server is gone: one killed with SIGKILL had no exit to remove its own."""
    for folder in temporary.glob(COUNTS_PREFIX + "*-*"):
        try:
            pid = int(folder.name[len(COUNTS_PREFIX) :].split("-")[0])
            if folder.stat().st_uid != os.getuid():
                continue
            os.kill(pid, 0)  # no signal sent: only whether that process still exists
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):  # not one of ours, or a process of another user's: left alone
            continue


def serve(settings: Settings, host: str, port: int, workers: int, threads: int, checker: bool = True) -> None:
    """Run the web app, and the health checker unless told not to, until stopped."""
    from fallback.checking.quorum import default_vantage

    hooks = {"post_worker_init": start_checker, "worker_exit": stop_checker} if checker else {}
    share_counts()
    GunicornServer(
        settings,
        {
            **hooks,
            "child_exit": forget_worker,
            "bind": f"{host}:{port}",
            "workers": workers,
            # gthread, but a thread takes a connection only once its request head is here (slow clients).
            "worker_class": "fallback.serving.worker.HeadersFirstWorker",
            "threads": threads,
            "timeout": 30,
            "graceful_timeout": 10,
            "keepalive": 5,
            # Headers and request line bounded well below gunicorn's defaults: nothing here needs more.
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            # Off by default: writing a line per request costs the hot path (docs/configuration.md, Logs).
            "accesslog": settings.access_log,
            "access_log_format": COMBINED,
            "logger_class": JsonLogger if settings.log_format == "json" else PrivateLogger,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "fallback",
            # One machine may run several instances: no shared control socket in $HOME.
            "control_socket_disable": True,
        },
        default_vantage(port),
    ).run()
