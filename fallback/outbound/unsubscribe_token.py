"""The unsubscribe token: a signature scoped to one lead, carried by every follow-up message's link and headers."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from itsdangerous import Signer

from fallback.storage import Storage

UNSUBSCRIBE_PATH = "/_fallback/unsubscribe"


class UnsubscribeToken:
    """`ID.SIGNATURE`: the lead's id, signed with its address, so a token outlives neither the lead nor its id."""

    def __init__(self, secret_key: str):
        self._signer = Signer(secret_key, salt="fallback.unsubscribe", digest_method=hashlib.sha256)

    def _value(self, lead_id: int, email_key: str) -> bytes:
        return f"{lead_id}:{email_key}".encode()

    def issue(self, lead_id: int, email_key: str) -> str:
        """The token ending follow-up for this lead."""
        return f"{lead_id}.{self._signer.get_signature(self._value(lead_id, email_key)).decode('ascii')}"

    def lead(self, token: str, storage: Storage) -> int | None:
        """The lead a token was issued for, if it is genuine and that lead is still there; else None."""
        lead_text, _, signature = token.partition(".")
        if not lead_text.isdigit() or not signature or len(token) > 200:
            return None
        lead_id = int(lead_text)
        email_key = storage.followups.email_key(lead_id)
        if email_key is None:
            return None
        genuine = self._signer.verify_signature(self._value(lead_id, email_key), signature.encode("ascii", "replace"))
        return lead_id if genuine else None

    def url(self, public_url: str, lead_id: int, email_key: str) -> str:
        """The unsubscribe link of a message to this lead, on FALLBACK_PUBLIC_URL."""
        return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={quote(self.issue(lead_id, email_key))}"
