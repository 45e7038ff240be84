"""Log lines: plain text by default, or one JSON object per line (FALLBACK_LOG_FORMAT=json) for log indexers.

The access log, when FALLBACK_ACCESS_LOG turns it on, is gunicorn's, in Apache's combined format; as JSON,
its lines also carry the request's fields one by one. No gunicorn here: fallback.server applies these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

# Apache's "combined" format, in gunicorn's access-log atoms.
COMBINED = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER = "gunicorn.access"
# A JSON access line's request fields, by the gunicorn atom each comes from.
REQUEST_FIELDS = {
    "remote_addr": "h",
    "method": "m",
    "path": "U",
    "protocol": "H",
    "status": "s",
    "bytes": "B",
    "referer": "f",
    "user_agent": "a",
    "duration_ms": "M",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the request's fields on an access line)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == ACCESS_LOGGER and isinstance(record.args, Mapping):
            entry.update(request_fields(record.args))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def request_fields(atoms: Mapping) -> dict:
    """The request's fields from gunicorn's access-log atoms: numbers as numbers, absent ones left out."""
    fields = {}
    for name, atom in REQUEST_FIELDS.items():
        value = atoms.get(atom)
        if value in (None, "", "-"):
            continue
        fields[name] = int(value) if name == "status" and str(value).isdigit() else value
    return fields


def use_json(loggers: Iterable[logging.Logger] = ()) -> None:
    """Write JSON lines through every handler of the root logger (fallback's own loggers) and of `loggers`."""
    for logger in (logging.getLogger(), *loggers):
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())
