"""The visitor's side of admission (FALLBACK_ADMIT_RATE): a signed place in line, kept in a cookie.

Each worker takes places from the shared gate (fallback.storage.admission) in small blocks, one write per block,
and decides from its copy of the gate, re-read at most every GATE_TTL: while nobody waits, a visitor costs a
signature and, now and then, a write. A block is handed out for BLOCK_LIFETIME at most, so a later visitor never
holds an earlier place than someone who arrived more than a second before.

A visitor who waited is booked on the gate's send-on schedule once their turn has come (one write), and goes on at
the time booked, kept in their cookie: visitors who come back together still reach the main site at the rate.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable

from fallback.core.admission import BLOCK_LIFETIME, Gate, block_size, retry_after, send_time
from fallback.storage import Storage, StorageError

log = logging.getLogger("fallback.web")

COOKIE = "fallback_place"
# A visitor sent on is not made to wait again for this long.
ADMITTED_SECONDS = 30 * 60
# A place not used for this long is void (the visitor takes a new one): a ticket is not kept for ever.
PLACE_SECONDS = 6 * 3600
# How stale a worker's copy of the gate may be: a waiting visitor's turn is seen at most this late.
GATE_TTL = 0.2
# A visitor booked to go on within this is sent on now rather than told to wait a few milliseconds.
DUE_SLACK = 0.02
# A booking this long past its time has lapsed: the visitor books again, at the end of the schedule. Visitors who
# come back late (a slow network, a busy device, one who went away) would otherwise go on together with those on
# time: the bench, its visitors' threads woken late in bunches on a loaded machine, sent 45 in one second at 20/s
# with 2 s here. Half a second covers a network's delay, so a visitor on time seldom pays the extra write.
BOOKING_LAPSES = 0.5
_MARK = COOKIE.encode() + b"="


@dataclasses.dataclass(frozen=True)
class Turn:
    """What admission says of one request: go on now, or wait `wait` seconds at `place`, `ahead` others first."""

    admitted: bool
    cookie: str | None = None  # a Set-Cookie header value, when the cookie changes
    place: int | None = None
    wait: float = 0.0
    ahead: int = 0

    @property
    def retry_after(self) -> int:
        """The waiting answer's Retry-After: this visitor's estimated wait, in whole seconds."""
        return retry_after(self.wait)


ALREADY_ADMITTED = Turn(admitted=True)


@dataclasses.dataclass(frozen=True)
class Held:
    """A valid place cookie: the place, when it was first given (whole seconds), and the booked send-on time."""

    place: int
    issued: int
    send_at: float | None = None

    def value(self) -> str:
        """The cookie's value before its signature."""
        booked = "" if self.send_at is None else f".{round(self.send_at * 1000)}"
        return f"p.{self.place}.{self.issued}{booked}"


def cookie_value(header: str) -> str | None:
    """The place cookie's value in a Cookie header, without parsing the others (most visitors send none)."""
    raw = header.encode("latin-1", "replace")
    start = raw.find(_MARK)
    while start > 0 and raw[start - 1 : start] not in (b" ", b";"):
        start = raw.find(_MARK, start + 1)
    if start < 0:
        return None
    start += len(_MARK)
    end = raw.find(b";", start)
    return raw[start : end if end >= 0 else None].decode("latin-1").strip()


class Admission:
    """One worker's gatekeeper: its block of places, its copy of the gate, the cookie's signer."""

    def __init__(
        self,
        storage: Storage,
        secret_key: str,
        secure: bool,
        wall: Callable[[], float] = time.time,
        counted: Callable[[], None] = lambda: None,
        ceiling: float = 0.0,
        adapt: bool = False,
    ):
        self.storage = storage
        # FALLBACK_ADMIT_RATE and FALLBACK_ADMIT_ADAPT, for the waits: while the rate climbs, at the pace it climbs.
        self.ceiling, self.adapt = ceiling, adapt
        # A key of its own, so a place cookie is never mistaken for another signed value.
        self.key = hashlib.sha256(b"fallback admission\0" + secret_key.encode()).digest()
        self.attributes = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        self.wall = wall
        self.counted = counted  # fallback_admitted_total
        self.lock = threading.Lock()
        self.gate = Gate()
        self.gate_read_at = float("-inf")
        # The block: places [block_next, block_end) reserved at block_at; and how many this worker handed lately.
        self.block_next = self.block_end = 0
        self.block_at = float("-inf")
        self.handed = 0
        self.gate_lost = False  # whether the database could not be reached last time (logged once)
        self.last_sent_on = (0, ALREADY_ADMITTED)  # the second's "sent on" answer and when its cookie ends

    def turn(self, cookie_header: str, now: float | None = None) -> Turn:
        """Whether this request goes on now; a new visitor takes a place first."""
        now = self.wall() if now is None else now
        held = self.read_cookie(cookie_header, now)
        if held == "admitted":
            return ALREADY_ADMITTED
        if isinstance(held, Held) and held.send_at is not None and now < held.send_at + BOOKING_LAPSES:
            return self.when_booked(held, now)
        try:
            if isinstance(held, Held):
                turn = self.judge(Held(held.place, held.issued), self.current(now), now, new=False)
            else:
                place, gate = self.take_place(now)
                turn = self.judge(Held(place, int(now)), gate, now, new=True)
        except StorageError as error:
            # The main site is up and only the gate is out of reach: send the visitor on rather than fail them.
            if not self.gate_lost:
                self.gate_lost = True
                log.error("admission cannot reach its gate, visitors are sent on unmetered until it can: %s", error)
            return ALREADY_ADMITTED
        if self.gate_lost:
            self.gate_lost = False
            log.warning("admission reaches its gate again")
        return turn

    def holds_place(self, cookie_header: str) -> bool:
        """Whether this cookie holds a place in line, not yet sent on (booked or not)."""
        return isinstance(self.read_cookie(cookie_header, self.wall()), Held)

    def judge(self, held: Held, gate: Gate, now: float, new: bool) -> Turn:
        """Send `held` on if its turn came (the cookie then says so for 30 minutes), else say how long to wait.

        Whose turn came goes on at once only when new and nobody who waited is due (so under the rate a visitor
        costs no write); otherwise they are booked on the send-on schedule first."""
        if gate.admits(held.place, now):
            if new and gate.sending_freely(now):
                return self.send_on(now)
            booked = Held(held.place, held.issued, send_time(self.storage.admission.book(now), now))
            return self.when_booked(booked, now, changed=True)
        wait = gate.wait(held.place, now, self.ceiling, self.adapt)
        cookie = self.cookie(held.value(), PLACE_SECONDS) if new else None
        return Turn(False, cookie, held.place, wait, gate.ahead(held.place, now))

    def when_booked(self, held: Held, now: float, changed: bool = False) -> Turn:
        """A booked visitor: sent on once their booked time has come, else told the time left (nobody ahead)."""
        assert held.send_at is not None
        if held.send_at <= now + DUE_SLACK:
            return self.send_on(now)
        cookie = self.cookie(held.value(), PLACE_SECONDS) if changed else None
        return Turn(False, cookie, held.place, held.send_at - now, 0)

    def send_on(self, now: float) -> Turn:
        """This visitor goes on now, and is not made to wait again for 30 minutes."""
        self.counted()
        until = int(now) + ADMITTED_SECONDS
        last_until, turn = self.last_sent_on
        if until != last_until:
            # The cookie names no visitor, only its end: everyone sent on within a second shares it, signed once.
            turn = Turn(True, self.cookie(f"a.{until}", ADMITTED_SECONDS))
            self.last_sent_on = (until, turn)
        return turn

    def read_cookie(self, header: str, now: float) -> str | Held | None:
        """ "admitted" while a sent-on visitor's 30 minutes last, their place while it is valid, else None."""
        value = cookie_value(header) if header else None
        if not value:
            return None
        signed, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac, self.mac(signed)):
            return None  # forged, damaged or from another key: a new place, as for a new visitor
        fields = signed.split(".")
        try:
            if fields[0] == "a" and int(fields[1]) > now:
                return "admitted"
            if fields[0] == "p" and int(fields[2]) + PLACE_SECONDS > now:
                booked = int(fields[3]) / 1000 if len(fields) > 3 else None
                return Held(int(fields[1]), int(fields[2]), booked)
        except (ValueError, IndexError):
            pass
        return None

    def mac(self, value: str) -> str:
        """The signature of `value`: keyed BLAKE2b (RFC 7693's MAC mode), a few microseconds on every new visitor."""
        digest = hashlib.blake2b(value.encode("ascii", "replace"), key=self.key, digest_size=16).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def cookie(self, value: str, max_age: int) -> str:
        """A Set-Cookie value holding `value`, signed."""
        return f"{COOKIE}={value}.{self.mac(value)}; Max-Age={max_age}{self.attributes}"

    def current(self, now: float) -> Gate:
        """The gate, re-read when this worker's copy is older than GATE_TTL."""
        if now - self.gate_read_at >= GATE_TTL:
            self.gate, self.gate_read_at = self.storage.admission.read(), now
        return self.gate

    def take_place(self, now: float) -> tuple[int, Gate]:
        """The next place of this worker's block, reserving a new block when it is used up or too old."""
        with self.lock:
            if self.block_next >= self.block_end or now - self.block_at >= BLOCK_LIFETIME:
                # About what this worker hands out in a block's time (twice the last block when it ran out),
                # so a quiet worker wastes few places and a busy one writes seldom.
                used_up = self.block_next >= self.block_end and self.handed > 0
                size = block_size(self.gate.rate, self.handed * 2 if used_up else self.handed + 1)
                first, self.gate = self.storage.admission.reserve(size, now)
                self.gate_read_at = now
                self.block_next, self.block_end, self.block_at, self.handed = first, first + size, now, 0
            place = self.block_next
            self.block_next += 1
            self.handed += 1
            return place, self.gate
