"""A gthread worker that hands a connection to a thread only once its request head has arrived.

gunicorn's gthread worker gives each connection to a thread, which reads the request head with a
blocking read and no deadline: 150 clients that never finish their headers (slowloris) hold every
thread, and other visitors wait for as long as those connections stay open. Here the worker's own
event loop reads heads without blocking, on new connections and kept-alive ones alike, and a thread
takes a connection only when its head is complete (or plainly malformed, which gunicorn answers
with a 400 at once). A head still incomplete `HEAD_TIMEOUT` seconds after its connection (or its
next request) started is closed; one over `MAX_HEAD` bytes is answered 431 and closed.

TLS and HTTP/2 cleartext read the socket before the HTTP/1 parser does; with either configured,
the worker behaves as gthread does. `fallback serve` configures neither.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

# nginx's client_header_timeout is 60 s; a visitor's whole head comes in one packet, so 10 s is lenient.
HEAD_TIMEOUT = 10.0
# A stopping worker waits this long at most for heads already started (gthread's own linger).
STOP_LINGER = 2.0
# nginx's default is 4 × 8 KiB; this bounds what a parked connection holds (worker_connections × MAX_HEAD).
MAX_HEAD = 32 * 1024
READ_SIZE = 8192
TOO_LARGE_ANSWER = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

WAIT, READY, TOO_LARGE, CLOSED = "wait", "ready", "too large", "closed"


def head_state(data: bytes | bytearray, start: int = 0, limit: int = MAX_HEAD) -> str:
    """READY when a thread can take the head in `data` without waiting, WAIT while it is arriving, else TOO_LARGE.

    `start` is how many bytes of `data` were looked at before, so a head trickled a byte at a time
    costs linear time, not quadratic.
    """
    # A blank line ends the head. One that opens it (RFC 9112 2.2 allows a CRLF first) is not
    # mistaken for the end: "\r\nGET" does not hold "\r\n\r\n", and a head that starts with
    # "\r\n\r\n" is one gunicorn rejects at once.
    if data.find(b"\r\n\r\n", max(0, start - 3)) >= 0:
        return READY
    # A bare LF: gunicorn rejects the head at once (400), so a thread need not wait for more.
    newline = data.find(b"\n", start)
    while newline >= 0:
        if newline == 0 or data[newline - 1] != 0x0D:
            return READY
        newline = data.find(b"\n", newline + 1)
    return TOO_LARGE if len(data) > limit else WAIT


class HeadConn(TConn):
    """A connection with the bytes of its next request's head, read before a thread took it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.head = bytearray()
        self.deadline = 0.0
        self.head_ready = False  # set by the event loop just before a thread gets it

    def init(self):
        """As gthread's, then give the parser the head already read (in the thread, on every request)."""
        super().init()
        if self.head:
            self.parser.unreader.unread(bytes(self.head))
            self.head = bytearray()


class HeadersFirstWorker(ThreadWorker):
    """gthread, but a connection reaches a thread only once its request head is all here (see the module)."""

    def init_process(self):
        """Prepare the parked heads before gthread's loop starts (its init_process runs the loop)."""
        # Parked connections in the order they were parked, which is their deadlines' order too.
        self.heads: dict[HeadConn, None] = {}
        self.read_heads = not self.cfg.is_ssl and getattr(self.cfg, "http2_cleartext", "off") == "off"
        self.stopping_capped = False
        super().init_process()

    def accept(self, listener):
        """Accept a connection and read its head without blocking; a thread gets it once the head is here."""
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

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection spoke: read its next head here, not in a thread."""
        if not self.read_heads:
            return super().on_client_socket_readable(conn, client)
        self.keepalived_conns.remove(conn)
        state = self.read_head(conn)
        if state == WAIT:
            conn.deadline = self.head_deadline()
            self.heads[conn] = None
            self.poller.modify(client, selectors.EVENT_READ, partial(self.on_head_readable, conn))
        else:
            self.poller.unregister(client)
            self.dispatch(conn, state)

    def enqueue_req(self, conn):
        """Give a connection to a thread if its head is here; else (bytes read ahead behind a request) park it."""
        if not self.read_heads or conn.head_ready:
            conn.head_ready = False
            return super().enqueue_req(conn)
        # gthread re-enqueues a connection whose parser read ahead into the next request: that head
        # may be partial (a whole request and the start of a slow one, in one packet).
        conn.head += conn.parser.unreader.take_buffered()
        state = head_state(conn.head)
        if state == WAIT:
            self.park(conn)
        else:
            self.dispatch(conn, state)

    def on_head_readable(self, conn, client):
        """More of a parked head arrived."""
        state = self.read_head(conn)
        if state != WAIT:
            self.poller.unregister(client)
            del self.heads[conn]
            self.dispatch(conn, state)

    def murder_pending(self):
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
            self.close_conn(conn)
        if overdue:
            self.log.debug("Closed %d connections whose request head was not complete in time.", len(overdue))

    def head_deadline(self) -> float:
        """When a head starting now must be complete."""
        return time.monotonic() + (HEAD_TIMEOUT if self.alive else STOP_LINGER)

    def park(self, conn):
        """Wait in the poller, not in a thread, for the rest of a connection's head."""
        conn.sock.setblocking(False)
        conn.deadline = self.head_deadline()
        self.heads[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_head_readable, conn))

    def read_head(self, conn) -> str:
        """Read what has arrived of a connection's head, without blocking; its state, or CLOSED."""
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
        return head_state(conn.head, start)

    def dispatch(self, conn, state: str):
        """A connection no longer parked: to a thread if its head is ready, else answered (431) and closed."""
        if state == READY:
            conn.head_ready = True
            conn.data_ready = True  # gthread's own wait for a first byte is not needed
            self.enqueue_req(conn)
            return
        if state == TOO_LARGE:
            with contextlib.suppress(OSError):
                conn.sock.send(TOO_LARGE_ANSWER)
        self.close_conn(conn)

    def close_conn(self, conn):
        """Close a connection no thread holds."""
        self.nr_conns -= 1
        conn.close()
