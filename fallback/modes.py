"""Changing the mode: the one function the command line, the admin page and the API call, so every change is logged.

The flag store records the change; the log line, for whoever reads the evening back, is written here.
"""

from __future__ import annotations

import logging
from datetime import datetime

from .state import Flag, iso
from .storage import Storage

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
