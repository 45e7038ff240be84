"""The request-first worker's pure parts: when a request head and body are complete, and when one is overdue."""

from __future__ import annotations

import selectors
import socket
import time
from types import SimpleNamespace

import pytest

from fallback.serving import worker
from fallback.serving.framing import (
    BODY_TOO_LARGE,
    MAX_BODY,
    MAX_HEAD,
    READY,
    TOO_LARGE,
    WAIT,
    Framing,
    body_framing,
    body_state,
    chunked_end,
    head_state,
)
from fallback.serving.worker import STOP_LINGER, HeadConn, HeadersFirstWorker

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("head", [GET, b"\r\n" + GET, GET + b"GET /next HTTP/1.1\r\n", b"POST / HTTP/1.1\r\n\r\nbody"])
def test_a_head_ending_in_a_blank_line_is_ready(head):
    assert head_state(head) == READY


@pytest.mark.parametrize("head", [b"", b"G", b"GET / HTTP/1.1\r\nHost: x\r\n", b"\r\n", b"GET / HTTP/1.1\r\n\r"])
def test_a_head_without_its_blank_line_waits(head):
    assert head_state(head) == WAIT


def test_a_head_trickled_a_byte_at_a_time_is_ready_on_its_last_byte_exactly():
    data = bytearray()
    states = []
    for byte in GET:
        start = len(data)
        data.append(byte)
        states.append(head_state(data, start))
    assert states == [WAIT] * (len(GET) - 1) + [READY]


def test_a_bare_line_feed_goes_to_gunicorn_at_once_to_be_refused():
    assert head_state(b"GET / HTTP/1.1\nHost: x") == READY
    assert head_state(b"\nGET") == READY


def test_a_head_over_the_limit_without_its_end_is_too_large():
    assert head_state(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD) == TOO_LARGE
    assert head_state(b"GET / HTTP/1.1\r\nX: " + b"a" * 10, limit=8) == TOO_LARGE


def parked_worker(alive: bool = True):
    """A worker with only what murder_pending uses, and no gunicorn around it."""
    self = HeadersFirstWorker.__new__(HeadersFirstWorker)
    self.heads, self.pending_conns, self.alive, self.stopping_capped = {}, [], alive, False
    self.poller, self.nr_conns = selectors.DefaultSelector(), 0
    self.log = SimpleNamespace(debug=lambda *args: None)
    return self


def parked_conn(self, deadline: float) -> tuple[HeadConn, socket.socket]:
    ours, theirs = socket.socketpair()
    conn = HeadConn(SimpleNamespace(), ours, ("127.0.0.1", 1), ("127.0.0.1", 2))
    self.nr_conns += 1
    self.park(conn)
    conn.deadline = deadline
    return conn, theirs


def test_a_parked_head_past_its_deadline_is_closed_and_a_later_one_kept():
    self = parked_worker()
    now = time.monotonic()
    late, late_peer = parked_conn(self, now - 0.1)
    early, early_peer = parked_conn(self, now + 5)
    self.murder_pending()
    assert list(self.heads) == [early] and self.nr_conns == 1
    assert late.sock.fileno() == -1 and late_peer.recv(1) == b""  # closed, the client sees the end
    assert self.poller.get_map() and early.sock in [key.fileobj for key in self.poller.get_map().values()]
    for sock in (late_peer, early_peer, early.sock):
        sock.close()


def test_a_stopping_worker_waits_for_parked_heads_briefly_not_their_whole_deadline():
    self = parked_worker(alive=False)
    conn, peer = parked_conn(self, time.monotonic() + worker.HEAD_TIMEOUT)
    self.murder_pending()
    assert conn.deadline <= time.monotonic() + STOP_LINGER
    assert self.head_deadline() <= time.monotonic() + STOP_LINGER
    peer.close()
    conn.sock.close()


POST_HEAD = b"POST /_fallback/contact HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"


@pytest.mark.parametrize(
    ("head", "framing"),
    [
        (POST_HEAD, Framing(5, False, False)),
        (b"PUT /m HTTP/1.1\r\ncontent-length:  12 \r\nExpect: 100-continue\r\n", Framing(12, False, True)),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n", Framing(None, True, False)),
        (b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n", Framing(3, False, False)),
    ],
)
def test_the_framing_of_a_body_is_read_from_its_head(head, framing):
    assert body_framing(head) == framing


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # no body
        b"POST / HTTP/1.1\r\nContent-Length: 0\r\n",
        # What gunicorn refuses at once (400): nothing to wait for.
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n",
    ],
)
def test_a_request_without_a_body_to_wait_for_has_no_framing(head):
    assert body_framing(head) is None


def test_a_body_by_length_is_ready_on_its_last_byte_and_too_large_over_the_limit():
    framing = Framing(5, False, False)
    assert [body_state(b"x" * size, 0, framing) for size in range(7)] == [WAIT] * 5 + [READY] * 2
    assert body_state(b"", 0, Framing(MAX_BODY + 1, False, False)) == BODY_TOO_LARGE


def test_a_chunked_body_ends_after_its_last_chunk_and_its_trailers():
    body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: y\r\n\r\nGET /next"
    ends = [chunked_end(body[:size], 0) for size in range(len(body) + 1)]
    end = body.index(b"GET /next")
    assert ends[:end] == [None] * end and ends[end] == end
    assert chunked_end(b"0\r\n\r\n", 0) == 5
    # A malformed size: gunicorn answers 400 at once, nothing to wait for.
    assert chunked_end(b"zz\r\n", 0) == 4  # all of it: a thread takes it now


def test_a_chunked_body_that_never_ends_is_too_large_past_the_limit():
    framing = Framing(None, True, False)
    chunk = b"1000\r\n" + b"a" * 0x1000 + b"\r\n"
    assert body_state(chunk, 0, framing) == WAIT
    assert body_state(chunk * (MAX_BODY // 0x1000 + MAX_HEAD // 0x1000 + 1), 0, framing) == BODY_TOO_LARGE
