"""Whether a request read so far is all here: its head (up to its blank line) and its body (by length or chunks).

Pure functions over the bytes received, for the worker's event loop (fallback.serving.worker), which
gives a connection to a thread only once its request is complete, so that no thread waits on a slow client.
"""

from __future__ import annotations

import dataclasses

# nginx's default is 4 × 8 KiB; this bounds what a parked connection holds (worker_connections × MAX_HEAD).
MAX_HEAD = 32 * 1024
# The app's own limit (serving.app's MAX_CONTENT_LENGTH): a longer body is refused before it is read.
MAX_BODY = 64 * 1024


def _answer(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n"


TOO_LARGE_ANSWER = _answer(b"431 Request Header Fields Too Large")
BODY_TOO_LARGE_ANSWER = _answer(b"413 Content Too Large")
BODY_TIMEOUT_ANSWER = _answer(b"408 Request Timeout")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

WAIT, READY, TOO_LARGE, BODY_TOO_LARGE, CLOSED = "wait", "ready", "too large", "body too large", "closed"


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


@dataclasses.dataclass(frozen=True)
class Framing:
    """How a request's body ends: after `length` bytes, or at its last chunk; and whether the client awaits a 100."""

    length: int | None
    chunked: bool
    expects_continue: bool


def body_framing(head: bytes | bytearray) -> Framing | None:
    """The framing of the body behind a complete `head`; None when there is no body to wait for.

    Also None when gunicorn refuses the framing at once (a 400: several lengths, a length and a coding,
    codings not ending in one chunked): nothing is to be waited for then either.
    """
    lines = bytes(head).lstrip(b"\r\n").split(b"\r\n")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expects = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        name, value = name.strip().lower(), value.strip(b" \t")
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings += [coding.strip(b" \t").lower() for coding in value.split(b",")]
        elif name == b"expect":
            expects = value.lower() == b"100-continue" and lines[0].endswith(b"HTTP/1.1")
    if codings:
        if lengths or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            return None
        return Framing(None, True, expects)
    if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) == 0:
        return None
    return Framing(int(lengths[0]), False, expects)


_HEX = frozenset(b"0123456789abcdefABCDEF")


def chunked_end(data: bytes | bytearray, start: int) -> int | None:
    """Where the chunked body that starts at `start` in `data` ends (its trailers included); None while it arrives.

    A malformed size line ends it at once: gunicorn answers that with a 400 without reading further.
    """
    position = start
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = bytes(data[position:line_end]).split(b";", 1)[0].strip(b" \t")
        if not size or not _HEX.issuperset(size):
            return len(data)
        if int(size, 16) == 0:
            end = data.find(b"\r\n\r\n", line_end)  # the empty line after the trailers, if any
            return None if end < 0 else end + 4
        position = line_end + 2 + int(size, 16) + 2
        if position > len(data):
            return None


def body_state(data: bytes | bytearray, start: int, framing: Framing) -> str:
    """READY once the body that starts at `start` in `data` is all here, WAIT while it arrives, or BODY_TOO_LARGE."""
    if framing.chunked:
        if chunked_end(data, start) is not None:
            return READY
        # Room for the chunks' own framing and trailers above the app's limit.
        return BODY_TOO_LARGE if len(data) - start > MAX_BODY + MAX_HEAD else WAIT
    assert framing.length is not None
    if framing.length > MAX_BODY:
        return BODY_TOO_LARGE
    return READY if len(data) - start >= framing.length else WAIT
