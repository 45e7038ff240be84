"""Changing the mode: the one function the command line, the admin page and the API call, so every change is logged.

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
