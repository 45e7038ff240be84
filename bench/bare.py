"""The bench's baselines: a bare Flask app under exactly the gunicorn settings of `fallback serve`.

    python bench/bare.py --port 8001 --body page.bin --headers headers.json --database bare.db

- every GET or HEAD answers the bytes in `--body`, with the status and headers in `--headers`
  (a JSON object {"status": 503, "headers": [[name, value], ...]}): the floor for the page and
  the redirect, with the very bytes fallback sends;
- POST /_fallback/contact parses the same form fields as fallback's contact form and inserts
  one row in SQLite with the same durability as fallback's storage (WAL, synchronous=FULL,
  a 10 s busy timeout, BEGIN IMMEDIATE ... COMMIT), then answers 303 to /_fallback/thanks.

It is served by `fallback.serving.server.serve` itself, with only the app swapped (GunicornServer.load),
so the gunicorn options (workers, gthread, threads, keep-alive, timeouts, logging) are the ones
`fallback serve` uses, whatever they become. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
from pathlib import Path

from flask import Flask, Response, request

import fallback.serving.server
from fallback.core.settings import Settings

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS leads (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, message TEXT, "
    "consent INTEGER, token TEXT, landing_path TEXT, website TEXT, created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
)


def create_bare_app(body: bytes, status: int, headers: list[tuple[str, str]], database: str) -> Flask:
    """The baseline app: fixed bytes on every visitor path, one durable insert per submission."""
    app = Flask(__name__)
    local = threading.local()
    fixed_headers = [
        (name, value)
        for name, value in headers
        if name.lower() not in ("content-length", "date", "server", "connection")
    ]

    def connection() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = sqlite3.connect(database, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @app.route("/", defaults={"path": ""}, methods=["GET", "HEAD"])
    @app.route("/<path:path>", methods=["GET", "HEAD"])
    def page(path: str) -> Response:
        return Response(body, status, fixed_headers)

    @app.post("/_fallback/contact")
    def contact() -> Response:
        form = request.form
        values = (
            form.get("email", ""),
            form.get("name", ""),
            form.get("message", ""),
            int(form.get("consent") == "y"),
            form.get("token", ""),
            form.get("path", "/"),
            form.get("website", ""),
        )
        conn = connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO leads (email, name, message, consent, token, landing_path, website) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Response(status=303, headers={"Location": "/_fallback/thanks"})

    return app


class BareServer(fallback.serving.server.GunicornServer):
    """fallback's embedded gunicorn application, loading the bare app instead of fallback's."""

    bare_app: Flask | None = None

    def load(self):
        return self.bare_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", required=True, help="file holding the body to answer")
    parser.add_argument("--headers", required=True, help='JSON file: {"status": 503, "headers": [[name, value]]}')
    parser.add_argument("--database", required=True, help="SQLite file for submissions (created if missing)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with sqlite3.connect(args.database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SCHEMA)
    answer = json.loads(Path(args.headers).read_text())
    BareServer.bare_app = create_bare_app(
        Path(args.body).read_bytes(), int(answer["status"]), [tuple(pair) for pair in answer["headers"]], args.database
    )
    # `serve` builds its GunicornServer by name: swap the class, keep every option as fallback sets it.
    fallback.serving.server.GunicornServer = BareServer
    fallback.serving.server.serve(Settings(), "127.0.0.1", args.port, args.workers, args.threads, checker=False)


if __name__ == "__main__":
    main()
