"""`fallback drill`'s standby items: a visitor path (the redirect while up, the page and its size while down)
through a stand-in on 127.0.0.1, and a SQLite file in a buildpack platform's app directory."""

from __future__ import annotations

import gzip
import http.server
import json
import threading

import pytest
import requests

from fallback.drill.public import MAX_PAGE_BYTES, fetch, visitor_items
from fallback.drill.rehearsal import is_page
from fallback.drill.standby import database_item

MAIN = "https://www.example.com"
PAGE = '<form method="post"><input type="hidden" name="token" value="t0k3n"></form>'


class Standby(http.server.ThreadingHTTPServer):
    """Answers `/` with (status, headers, body) and the public status document with `status`."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, root: tuple[int, dict[str, str], bytes], status: dict | str, handler=None):
        self.root, self.status = root, status
        super().__init__(("127.0.0.1", 0), handler or StandbyHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Standby:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class StandbyHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        if self.path == "/_fallback/status.json":
            status, headers, body = 200, {"Content-Type": "application/json"}, json.dumps(self.server.status).encode()
        else:
            status, headers, body = self.server.root
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


UP = {"state": "up", "mode": "auto"}
DOWN = {"state": "down", "mode": "auto"}


def items_for(root, status: dict | str = UP) -> dict[str, tuple[str, str]]:
    with Standby(root, status) as standby:
        return {item.name: (item.status, item.detail) for item in visitor_items(standby.url, MAIN, 2)}


def test_a_visitor_path_redirected_to_the_main_site_passes():
    items = items_for((302, {"Location": MAIN + "/"}, b""))
    assert items == {"visitor path": ("pass", "redirected to the main site (https://www.example.com/)")}


def test_a_visitor_path_redirected_elsewhere_fails():
    status, detail = items_for((302, {"Location": "https://elsewhere.example.net/"}, b""))["visitor path"]
    assert status == "fail" and "not to the main site" in detail


def test_the_page_shown_while_the_site_is_down_passes_with_its_size_over_the_wire():
    items = items_for((503, {"Content-Type": "text/html"}, PAGE.encode()), DOWN)
    assert items["visitor path"][0] == "pass"
    assert items["page size"] == ("pass", f"{len(PAGE)} bytes over the wire (not compressed)")


def test_a_compressed_page_is_measured_as_it_was_sent():
    body = gzip.compress((PAGE + " " * 50_000).encode())
    items = items_for((503, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, body), DOWN)
    assert items["page size"] == ("pass", f"{len(body):,} bytes over the wire (gzip)")


class BrotliProxyHandler(StandbyHandler):
    """A proxy that compresses the page with br for whoever accepts it, with gzip otherwise."""

    def do_GET(self):  # noqa: N802 - the base class's name
        accepted = {coding.strip() for coding in self.headers.get("Accept-Encoding", "").split(",")}
        coding, body = ("br", b"\x1b\xff br bytes") if "br" in accepted else ("gzip", gzip.compress(PAGE.encode()))
        self.server.root = (503, {"Content-Type": "text/html", "Content-Encoding": coding}, body)
        super().do_GET()


def test_a_proxy_that_compresses_with_brotli_still_lets_the_rehearsal_read_the_form():
    with Standby((503, {}, b""), DOWN, BrotliProxyHandler) as standby, requests.Session() as session:
        answer = fetch(session, standby.url + "/", 2)
    assert answer.headers["Content-Encoding"] == "gzip"
    assert is_page(answer), answer.text[:80]


def test_a_page_of_20_kb_or_more_is_a_warning():
    body = (PAGE + "x" * MAX_PAGE_BYTES).encode()
    status, detail = items_for((503, {"Content-Type": "text/html"}, body), DOWN)["page size"]
    assert status == "warn" and f"{len(body):,} bytes" in detail and "20 KB or more" in detail


def test_the_page_while_the_status_says_visitors_are_redirected_fails():
    status, detail = items_for((503, {"Content-Type": "text/html"}, PAGE.encode()), UP)["visitor path"]
    assert status == "fail" and "although the status says" in detail


def test_the_page_with_an_unreadable_status_fails_saying_so():
    status, detail = items_for((503, {"Content-Type": "text/html"}, PAGE.encode()), "no document")["visitor path"]
    assert status == "fail" and "the public status could not be read" in detail


@pytest.mark.parametrize(
    ("status", "expected"),
    [({"state": "down", "mode": "down"}, "pass"), ({"state": "up", "mode": "up"}, "fail")],
    ids=["forced down", "forced up"],
)
def test_the_page_is_judged_by_the_forced_mode_while_one_is_in_force(status, expected):
    assert items_for((503, {"Content-Type": "text/html"}, PAGE.encode()), status)["visitor path"][0] == expected


def test_neither_a_redirect_nor_the_page_fails():
    assert items_for((200, {}, b"hello"))["visitor path"][0] == "fail"


def test_an_unreachable_public_url_fails_the_visitor_path():
    from procs import free_port

    items = visitor_items(f"http://127.0.0.1:{free_port()}", MAIN, 2)
    assert [(item.name, item.status) for item in items] == [("visitor path", "fail")]


# A SQLite file in a buildpack platform's app directory (deploy/paas/README.md: Heroku, Scalingo, Dokku).
CONTAINER = "overlay / overlay rw 0 0\n"
DOKKU_STORAGE = CONTAINER + "/dev/sda1 /app/storage ext4 rw 0 0\n"


@pytest.mark.parametrize(
    "path", ["/app/fallback.db", "/app/data/fallback.db", "/workspace/fallback.db", "/workspace/data/fallback.db"]
)
def test_a_sqlite_file_in_the_app_directory_of_a_paas_is_a_warning(path):
    item = database_item(path, CONTAINER)
    assert item.status == "warn" and "Heroku" in item.detail and "PostgreSQL" in item.advice


def test_a_sqlite_file_on_storage_mounted_into_the_app_directory_passes():
    assert database_item("/app/storage/fallback.db", DOKKU_STORAGE).status == "pass"
    cnb_storage = CONTAINER + "/dev/sda1 /workspace/storage ext4 rw 0 0\n"  # Dokku building with CNB (arm64)
    assert database_item("/workspace/storage/fallback.db", cnb_storage).status == "pass"
    assert database_item("/workspace/fallback.db", cnb_storage).status == "warn"


def test_an_app_folder_elsewhere_is_not_taken_for_the_paas_one():
    assert database_item("/srv/app/fallback.db", CONTAINER).status == "pass"
    assert database_item("/application/fallback.db", CONTAINER).status == "pass"
    assert database_item("/srv/workspace/fallback.db", CONTAINER).status == "pass"


def test_an_endless_answer_is_read_one_megabyte_at_most():
    import time

    from standin import StandIn

    with StandIn("endless") as site:
        started = time.monotonic()
        items = visitor_items(site.url.rstrip("/"), MAIN, 2)
        took = time.monotonic() - started
    assert [(item.name, item.status) for item in items] == [("visitor path", "fail")]
    # The stand-in sends its endless body for 30 s: reading it whole would take that long.
    assert "HTTP 200" in items[0].detail and took < 20
