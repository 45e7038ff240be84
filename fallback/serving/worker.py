"""A gthread worker that hands a connection to a thread only once its whole request (head and body) has arrived.

gunicorn's gthread worker gives each connection to a thread, which reads the request with blocking
reads and no overall deadline: 150 clients that never finish their headers (slowloris), or that send
their body a byte at a time, hold every thread, and other visitors wait for as long as those
connections stay open. Here the worker's own event loop reads heads and bodies without blocking, on
new connections and kept-alive ones alike, and a thread takes a connection only when its request is
all here (or plainly malformed, which gunicorn answers with a 400 at once), so the app's reads of
the body never wait on the network.

A head still incomplete `HEAD_TIMEOUT` seconds after its connection (or its next request) started
is closed; one over `MAX_HEAD` bytes is answered 431. A body (by Content-Length, or chunked) still
incomplete `BODY_TIMEOUT` seconds after its head ended is answered 408; one over `MAX_BODY` bytes
(the app's own limit) is answered 413; both then close.

TLS and HTTP/2 cleartext read the socket before the HTTP/1 parser does; with either configured,
the worker behaves as gthread does. `fallback serve` configures neither.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

from fallback.serving.framing import (
    BODY_TIMEOUT_ANSWER,
    BODY_TOO_LARGE,
    BODY_TOO_LARGE_ANSWER,
    CLOSED,
    CONTINUE,
    READY,
    TOO_LARGE,
    TOO_LARGE_ANSWER,
    WAIT,
    Framing,
    body_framing,
    body_state,
    head_state,
)

# nginx's client_header_timeout is 60 s; a visitor's whole head comes in one packet, so 10 s is lenient.
HEAD_TIMEOUT = 10.0
# A stopping worker waits this long at most for heads already started (gthread's own linger).
STOP_LINGER = 2.0
# nginx's client_body_timeout is 60 s between two reads; a form of a few hundred bytes comes in one packet,
# and the largest body the app takes (MAX_BODY) in 10 s is a 52 kbit/s upload. Not below HEAD_TIMEOUT: a
# request whose head ends is moved to the end of the parked ones, which are kept in their deadlines' order.
BODY_TIMEOUT = 10.0
READ_SIZE = 8192


class HeadConn(TConn):
    """A connection with the bytes of its next request (head, and body if any), read before a thread took it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.head = bytearray()
        self.deadline = 0.0
        self.head_ready = False  # set by the event loop just before a thread gets it
        # Once the head is complete and a body follows: where the body starts in `head`, and its framing.
        self.body_start: int | None = None
        self.framing: Framing | None = None

    def init(self) -> None:
        """As gthread's, then give the parser the head already read (in the thread, on every request)."""
        super().init()
        if self.head:
            self.parser.unreader.unread(bytes(self.head))
            self.head = bytearray()


class HeadersFirstWorker(ThreadWorker):
    """gthread, but a connection reaches a thread only once its request head is all here (see the module)."""

    def init_process(self) -> None:
        """Prepare the parked heads before gthread's loop starts (its init_process runs the loop)."""
        # Parked connections in the order they were parked, which is their deadlines' order too.
        self.heads: dict[HeadConn, None] = {}
        self.read_heads = not self.cfg.is_ssl and getattr(self.cfg, "http2_cleartext", "off") == "off"
        self.stopping_capped = False
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and read its request without blocking; a thread gets it once the request is here."""
        if not self.read_heads:
            return super().accept(listener)
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = HeadConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking from here
        # A visitor's head is often here already: no round through the poller then.
        state = self.read_head(conn)
        if state == WAIT:
            self.park(conn)
        else:
            self.dispatch(conn, state)

    def on_client_socket_readable(self, conn: HeadConn, client: socket.socket) -> None:
        """A kept-alive connection spoke: read its next request here, not in a thread."""
        if not self.read_heads:
            return super().on_client_socket_readable(conn, client)
        self.keepalived_conns.remove(conn)
        state = self.read_head(conn)
        if state == WAIT:
            if conn.body_start is None:
                conn.deadline = self.head_deadline()
            self.heads[conn] = None
            self.poller.modify(client, selectors.EVENT_READ, partial(self.on_head_readable, conn))
        else:
            self.poller.unregister(client)
            self.dispatch(conn, state)

    def enqueue_req(self, conn: HeadConn) -> None:
        """Give a connection to a thread if its request is here; else (bytes read ahead behind a request) park it."""
        if not self.read_heads or conn.head_ready:
            conn.head_ready = False
            return super().enqueue_req(conn)
        # gthread re-enqueues a connection whose parser read ahead into the next request: that head
        # may be partial (a whole request and the start of a slow one, in one packet).
        conn.head += conn.parser.unreader.take_buffered()
        state = self.request_state(conn, 0)
        if state == WAIT:
            self.park(conn)
        else:
            self.dispatch(conn, state)

    def on_head_readable(self, conn: HeadConn, client: socket.socket) -> None:
        """More of a parked request arrived."""
        state = self.read_head(conn)
        if state != WAIT:
            self.poller.unregister(client)
            del self.heads[conn]
            self.dispatch(conn, state)

    def murder_pending(self) -> None:
        """As gthread's, then close the parked connections whose head is overdue."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and not self.stopping_capped:
            # Capping every deadline at one time keeps them in order.
            self.stopping_capped = True
            for conn in self.heads:
                conn.deadline = min(conn.deadline, now + STOP_LINGER)
        overdue = list(itertools.takewhile(lambda conn: conn.deadline <= now, self.heads))
        for conn in overdue:
            del self.heads[conn]
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(conn.sock)
            if conn.body_start is not None:  # a head is only closed; a body sent too slowly is told why
                with contextlib.suppress(OSError):
                    conn.sock.send(BODY_TIMEOUT_ANSWER)
            self.close_conn(conn)
        if overdue:
            self.log.debug("Closed %d connections whose request was not complete in time.", len(overdue))

    def head_deadline(self) -> float:
        """When a head starting now must be complete."""
        return time.monotonic() + (HEAD_TIMEOUT if self.alive else STOP_LINGER)

    def park(self, conn: HeadConn) -> None:
        """Wait in the poller, not in a thread, for the rest of a connection's request."""
        conn.sock.setblocking(False)
        if conn.body_start is None:  # a body's deadline was set when its head ended
            conn.deadline = self.head_deadline()
        self.heads[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_readable, conn))

    def read_head(self, conn: HeadConn) -> str:
        """Read what has arrived of a connection's request, without blocking; its state, or CLOSED."""
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return WAIT
        except OSError:
            return CLOSED
        if not data:
            return CLOSED
        start = len(conn.head)
        conn.head += data
        return self.request_state(conn, start)

    def request_state(self, conn: HeadConn, start: int) -> str:
        """READY once the request in `conn.head` is all here, head and body; WAIT while it arrives; else why not.

        `start` is how much of the head was looked at before. When the head ends and a body follows, the
        body's deadline starts (and a client that expects it is told to go on, with a 100 Continue).
        """
        if conn.body_start is not None and conn.framing is not None:  # set together, when the head ended
            state = body_state(conn.head, conn.body_start, conn.framing)
        else:
            state = head_state(conn.head, start)
            end = conn.head.find(b"\r\n\r\n", max(0, start - 3)) if state == READY else -1
            framing = body_framing(conn.head[:end]) if end >= 0 else None
            if framing is None:
                return state
            conn.body_start, conn.framing = end + 4, framing
            conn.deadline = time.monotonic() + (BODY_TIMEOUT if self.alive else STOP_LINGER)
            if conn in self.heads:  # parked: to the end of the deadlines' order (BODY_TIMEOUT >= HEAD_TIMEOUT)
                del self.heads[conn]
                self.heads[conn] = None
            state = body_state(conn.head, conn.body_start, framing)
            if state == WAIT and framing.expects_continue:
                with contextlib.suppress(OSError):
                    conn.sock.send(CONTINUE)
        if state != WAIT:
            conn.body_start = conn.framing = None  # the next request on this connection starts with its head
        return state

    def dispatch(self, conn: HeadConn, state: str) -> None:
        """A connection no longer parked: to a thread if its request is here, else answered (431, 413) and closed."""
        if state == READY:
            conn.head_ready = True
            conn.data_ready = True  # gthread's own wait for a first byte is not needed
            self.enqueue_req(conn)
            return
        answer = {TOO_LARGE: TOO_LARGE_ANSWER, BODY_TOO_LARGE: BODY_TOO_LARGE_ANSWER}.get(state)
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.close_conn(conn)

    def close_conn(self, conn: HeadConn) -> None:
        """Close a connection no thread holds."""
        self.nr_conns -= 1
        conn.close()
