"""`fallback drill --rehearse`: the page forced on for at most a minute, fetched and timed through the public
URL, one drill lead sent, read back and erased, and the mode put back exactly as it was, whatever happens.

The forced mode carries its own expiry (a minute by default), so even a `kill -9` of drill leaves nothing
forced for longer than that; Ctrl-C, SIGTERM (which the command turns into the same interruption) and any
error restore the mode the flag had (mode, expiry, reason, who and since when) before drill stops.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from fallback.core.clock import iso, utcnow
from fallback.core.flag import Flag
from fallback.core.redact import redact_url
from fallback.core.settings import Settings
from fallback.drill.items import FAIL, PASS, WARN, Item
from fallback.drill.public import Fetched, fetch, page_size_item
from fallback.storage import Storage, StorageError
from fallback.team.modes import change_mode, restore_mode
from fallback.visitor.drillmark import FIELD, drill_key, drill_mark

if TYPE_CHECKING:  # imported where used: only a drill that rehearses needs `requests`
    import requests

MAX_EXPIRY = timedelta(seconds=60)
PAGE_WAIT_SECONDS = 15.0  # how long visitors may take to get the page before the rehearsal says they do not
POLL_SECONDS = 0.05
CONTACT_PATH = "/_fallback/contact"
_TOKEN = re.compile(r'name="token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="token"')


class Interrupted(KeyboardInterrupt):
    """A rehearsal stopped by Ctrl-C or SIGTERM once the mode was restored: `restored` says how that went."""

    def __init__(self, restored: Item):
        super().__init__(restored.detail)
        self.restored = restored


def describe(flag: Flag) -> str:
    """A flag's mode for people: `auto`, or `down until ... by ... (reason)`."""
    if flag.mode == "auto":
        return "auto"
    until = f" until {iso(flag.mode_until)[:19]}Z" if flag.mode_until else ""
    reason = f" ({flag.mode_reason})" if flag.mode_reason else ""
    return f"{flag.mode}{until} by {flag.mode_by or 'unknown'}{reason}"


@contextlib.contextmanager
def interruptions_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is over, then interrupt as usual: the mode forced inside it is known
    to the code that restores it (an interruption between the write and the `try` would leave it forced)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.signal(number, lambda number, frame: caught.append(number)) for number in held}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
    if caught:
        signal.raise_signal(caught[0])  # the handler in force (KeyboardInterrupt for both, see drill.interruptible)


def rehearse(
    settings: Settings,
    storage: Storage,
    expiry: timedelta = MAX_EXPIRY,
    page_wait: float = PAGE_WAIT_SECONDS,
) -> list[Item]:
    """Force the page on, time it and send a drill lead through the public URL, then restore the mode."""
    import requests

    public_url = settings.public_url
    if not public_url:
        return [
            Item(
                "rehearsal",
                FAIL,
                "FALLBACK_PUBLIC_URL is not set: the page cannot be fetched as visitors do",
                "set FALLBACK_PUBLIC_URL to the standby's address",
            )
        ]
    expiry = min(expiry, MAX_EXPIRY)
    previous = storage.flag.read()
    by = f"drill ({os.environ.get('USER', 'unknown')}, pid {os.getpid()})"  # as `fallback mode` names its user
    reason = f"fallback drill rehearsal; before it: {describe(previous)}"  # what to set again after a kill -9
    started = time.monotonic()
    visitor = public_url.rstrip("/") + "/"
    items: list[Item] = []
    try:
        with interruptions_held():
            ours = change_mode(storage, "down", until=utcnow() + expiry, reason=reason, by=by)
    except KeyboardInterrupt:
        raise Interrupted(restored_item(storage, previous, ours)) from None
    try:
        with requests.Session() as session:
            wait = min(page_wait, expiry.total_seconds())
            page, took, last = wait_until(session, visitor, started, wait, is_page)
            if page is None:
                items.append(
                    Item(
                        "rehearsal: page shown",
                        FAIL,
                        f"{redact_url(visitor)} did not answer the page within {wait:g} s (last: {last})",
                        "FALLBACK_PUBLIC_URL must reach an instance on this database, with no cache keeping the"
                        " redirect",
                    )
                )
            else:
                shown = f"visitors got the page {took:.2f} s after the mode changed"
                items.append(Item("rehearsal: page shown", PASS, shown))
                items.append(page_size_item(page))
                items.extend(send_drill_lead(session, settings, storage, page, public_url))
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see drill.interruptible)
        raise Interrupted(restored_item(storage, previous, ours)) from None
    except BaseException:
        restored_item(storage, previous, ours)
        raise
    items.append(restored_item(storage, previous, ours))
    if items[-1].status == PASS and previous.served_state(utcnow()) == "up":
        items.append(redirect_again_item(visitor, page_wait))
    return items


def is_page(answer: Fetched) -> bool:
    """Whether an answer is the contact page (a 503 with the form)."""
    return answer.status == 503 and _TOKEN.search(answer.text) is not None


def is_redirect(answer: Fetched) -> bool:
    """Whether an answer sends the visitor to the main site."""
    return answer.status in (302, 307)


def wait_until(
    session: requests.Session, url: str, started: float, wait: float, wanted: Callable[[Fetched], bool]
) -> tuple[Fetched | None, float, str]:
    """Poll `url` until an answer is `wanted`, for `wait` seconds from `started` at most: that answer (or None),
    the seconds since `started`, and what the last answer was."""
    import requests

    last = "no answer"
    deadline = started + wait
    while True:
        try:
            answer = fetch(session, url, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
        except requests.RequestException as error:
            answer, last = None, type(error).__name__
        if answer is not None:
            if wanted(answer):
                return answer, time.monotonic() - started, f"HTTP {answer.status}"
            last = f"HTTP {answer.status}"
        if time.monotonic() >= deadline:
            return None, time.monotonic() - started, last
        time.sleep(POLL_SECONDS)


def redirect_again_item(visitor: str, wait: float) -> Item:
    """How long after the mode was restored visitors were redirected to the main site again."""
    import requests

    name = "rehearsal: redirect again"
    with requests.Session() as session:
        answer, took, last = wait_until(session, visitor, time.monotonic(), wait, is_redirect)
    if answer is None:
        return Item(
            name,
            FAIL,
            f"visitors still did not get the redirect {wait:g} s after (last: {last})",
            "see `fallback status` and the standby's log",
        )
    return Item(name, PASS, f"visitors were redirected again {took:.2f} s after the mode was restored")


def send_drill_lead(
    session: requests.Session, settings: Settings, storage: Storage, page: Fetched, public_url: str
) -> list[Item]:
    """Send one drill lead through the public form, read it back from the database, then erase it."""
    import requests

    found = _TOKEN.search(page.text)
    token = next(group for group in found.groups() if group) if found else ""
    email = f"drill-{secrets.token_hex(6)}@drill.example.com"
    key = drill_key(settings.secret_key or storage.secret_key()[0])
    fields = {
        "email": email,
        "name": "fallback drill",
        "message": "A test lead from `fallback drill --rehearse`, erased at once.",
        "consent": "y",
        "token": token,
        "path": "/",
        FIELD: drill_mark(key, token, email),
    }
    name = "rehearsal: drill lead"
    sent_at = time.monotonic()
    try:
        answer = session.post(public_url.rstrip("/") + CONTACT_PATH, data=fields, timeout=10, allow_redirects=False)
    except requests.RequestException as error:
        return [Item(name, FAIL, f"the form could not be sent ({type(error).__name__})", "see the standby's log")]
    took = time.monotonic() - sent_at
    items = []
    if answer.status_code != 303:
        items.append(
            Item(
                name,
                FAIL,
                f"the form answered HTTP {answer.status_code}, not 303 to the thanks page",
                "see the standby's log",
            )
        )
    stored = storage.leads.drill_lead(email)
    if answer.status_code == 303 and stored is not None:
        items.append(
            Item(
                name,
                PASS,
                f"sent and thanked in {took * 1000:.0f} ms, read back as a drill lead"
                f" (kept out of exports, mail and webhooks)",
            )
        )
    elif answer.status_code == 303:
        items.append(
            Item(
                name,
                FAIL,
                "thanked, but no drill lead in this database: it went elsewhere, or in as an ordinary lead",
                "FALLBACK_PUBLIC_URL must reach an instance of this database with the same FALLBACK_SECRET_KEY",
            )
        )
    items.append(erase_item(storage, email))
    return items


def erase_item(storage: Storage, email: str) -> Item:
    """Erase the drill lead (whatever it was stored as), from the database files too."""
    try:
        erased = storage.leads.forget(email)
    except StorageError as error:
        return Item("rehearsal: drill lead erased", WARN, str(error), f"run `fallback forget {email}` again")
    if not erased:
        return Item("rehearsal: drill lead erased", WARN, "nothing to erase: the lead was not stored here")
    return Item("rehearsal: drill lead erased", PASS, f"{email} erased")


def restored_item(storage: Storage, previous: Flag, ours: Flag) -> Item:
    """Put the mode back as it was, and say whether the flag now holds it exactly."""
    name = "rehearsal: mode restored"
    try:
        restored = restore_mode(storage, previous, ours)
    except StorageError as error:
        expires = f"; the forced mode expires at {iso(ours.mode_until)[:19]}Z" if ours.mode_until else ""
        return Item(
            name,
            FAIL,
            f"could not restore {describe(previous)}: {error}{expires}",
            "set the mode again with `fallback mode`",
        )
    if restored is None:
        return Item(
            name,
            WARN,
            "someone changed the mode during the rehearsal: theirs is kept",
            "check it with `fallback status`",
        )
    fields = ("mode", "mode_until", "mode_reason", "mode_by", "mode_changed_at")
    if any(getattr(restored, field) != getattr(previous, field) for field in fields):
        return Item(
            name,
            FAIL,
            f"the flag says {describe(restored)}, not {describe(previous)}",
            "set the mode again with `fallback mode`",
        )
    return Item(name, PASS, f"back to {describe(previous)}")
