"""The mark of a drill lead: proof that `fallback drill --rehearse` sent it, which only the installation can make.

The rehearsal sends one test lead through the public form with a `drill` field: an HMAC, under a key derived
from the installation's secret key, of the form's own signed token and the lead's address. Only someone holding
the secret key can compute it; it names one address and one form, so a mark seen once cannot turn anyone
else's lead, or a later form, into a drill lead. A wrong or missing mark is ignored: the post is an ordinary
lead, so nobody can make a visitor's lead disappear from the export by adding the field.

No Flask and no `requests` here: the contact check and the drill both import this module.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping

FIELD = "drill"
# A mark is a hex SHA-256; anything longer is not ours.
MAX_MARK = 64


@functools.lru_cache(maxsize=4)
def drill_key(secret_key: str) -> bytes:
    """The key of drill marks, derived from the installation's secret key (never used as is)."""
    return hmac.new(secret_key.encode("utf-8"), b"fallback drill lead mark", hashlib.sha256).digest()


def drill_mark(key: bytes, token: str, email: str) -> str:
    """The mark of a drill lead sent with the form `token` for `email` (compared case-folded, as leads are)."""
    message = f"{token}\0{email.strip().casefold()}".encode("utf-8", "replace")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def is_drill(key: bytes | None, fields: Mapping[str, str]) -> bool:
    """Whether a submission's fields carry a valid drill mark for their own token and address."""
    if key is None:
        return False
    mark, token, email = fields.get(FIELD, ""), fields.get("token", ""), fields.get("email", "")
    if not mark or not token or len(mark) > MAX_MARK:
        return False
    return hmac.compare_digest(drill_mark(key, token, email), mark.strip())
