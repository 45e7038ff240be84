"""Changing the mode and the public notice: one function each for the CLI, the admin page and the API, logged.

The flag store records the change; the log line, for whoever reads the evening back, is written here.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fallback.core.clock import iso
from fallback.core.flag import Flag
from fallback.storage import Storage

log = logging.getLogger("fallback.mode")


def change_mode(
    storage: Storage, mode: str, until: datetime | None = None, reason: str | None = None, by: str | None = None
) -> Flag:
    """Set the mode as the admin chose, and log who set what, until when and why."""
    flag = storage.flag.set_mode(mode, until=until, reason=reason, by=by)
    # The reason is typed by a person: repr keeps a line break in it from forging a second log line.
    log.info(
        "mode set to %s by %s, %s, reason: %s",
        flag.mode,
        by or "someone unnamed",
        f"until {iso(flag.mode_until)}" if flag.mode_until else "until changed",
        repr(reason) if reason else "none given",
    )
    return flag


def restore_mode(storage: Storage, previous: Flag, ours: Flag) -> Flag | None:
    """Put back the mode `previous` had over `ours` (see FlagStore.restore_mode), and log it; None if left alone."""
    restored = storage.flag.restore_mode(previous, ours)
    if restored is None:
        log.warning("mode left as it is: someone changed it after %s set it", ours.mode_by)
    else:
        log.info(
            "mode restored to %s (set by %s), %s",
            restored.mode,
            restored.mode_by or "someone unnamed",
            f"until {iso(restored.mode_until)}" if restored.mode_until else "until changed",
        )
    return restored


MAX_NOTICE = 280


def clean_notice(text: str | None) -> str | None:
    """The notice as it will be shown (spaces trimmed; None when empty), or ValueError saying what is wrong."""
    text = (text or "").strip()
    if len(text) > MAX_NOTICE:
        raise ValueError(f"the notice is {len(text)} characters long: {MAX_NOTICE} at most")
    if any(ord(character) < 32 or ord(character) == 127 for character in text):
        raise ValueError("the notice is one line of plain text: no line breaks or control characters")
    return text or None


def change_notice(storage: Storage, text: str | None, by: str | None = None) -> Flag:
    """Set or clear the admin's public notice (checked by `clean_notice`), and log who did."""
    notice = clean_notice(text)
    flag = storage.flag.set_notice(notice)
    log.info("public notice %s by %s", f"set to {notice!r}" if notice else "cleared", by or "someone unnamed")
    return flag
