"""The unsubscribe token: a signature scoped to one lead, carried by every follow-up message's link and headers.

The lead's id travels enciphered, so a token tells nothing of how many leads there are: `NONCE_AND_ID.SIGNATURE`,
where the first part is a random nonce and the id masked with a keyed pad drawn from it (HMAC-SHA256 as the
pseudo-random function, a fresh nonce per token), and the signature binds the id to the lead's address key.
Tokens of the earlier form, `ID.SIGNATURE`, already mailed, are still honoured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from urllib.parse import quote

from itsdangerous import Signer

from fallback.storage import Storage

UNSUBSCRIBE_PATH = "/_fallback/unsubscribe"
NONCE_BYTES = ID_BYTES = 8
MAX_TOKEN = 200


class UnsubscribeToken:
    """Issues and reads the tokens that end follow-up mail for one lead (see the module)."""

    def __init__(self, secret_key: str):
        self._signer = Signer(secret_key, salt="fallback.unsubscribe", digest_method=hashlib.sha256)
        self._pad_key = hmac.new(secret_key.encode(), b"fallback.unsubscribe.id", hashlib.sha256).digest()

    def _value(self, lead_id: int, email_key: str) -> bytes:
        return f"{lead_id}:{email_key}".encode()

    def _pad(self, nonce: bytes) -> int:
        return int.from_bytes(hmac.new(self._pad_key, nonce, hashlib.sha256).digest()[:ID_BYTES], "big")

    def issue(self, lead_id: int, email_key: str) -> str:
        """The token ending follow-up for this lead."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        masked = (lead_id ^ self._pad(nonce)).to_bytes(ID_BYTES, "big")
        opaque = base64.urlsafe_b64encode(nonce + masked).decode("ascii").rstrip("=")
        return f"{opaque}.{self._signer.get_signature(self._value(lead_id, email_key)).decode('ascii')}"

    def _lead_id(self, opaque: str) -> int | None:
        if opaque.isdigit():  # the earlier form, in messages sent before
            return int(opaque)
        try:
            raw = base64.urlsafe_b64decode(opaque + "=" * (-len(opaque) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != NONCE_BYTES + ID_BYTES:
            return None
        return int.from_bytes(raw[NONCE_BYTES:], "big") ^ self._pad(raw[:NONCE_BYTES])

    def lead(self, token: str, storage: Storage) -> int | None:
        """The lead a token was issued for, if it is genuine and that lead is still there; else None."""
        opaque, _, signature = token.partition(".")
        lead_id = self._lead_id(opaque) if signature and len(token) <= MAX_TOKEN else None
        if lead_id is None or lead_id >= 2**63:  # beyond any database's ids
            return None
        email_key = storage.followups.email_key(lead_id)
        if email_key is None:
            return None
        genuine = self._signer.verify_signature(self._value(lead_id, email_key), signature.encode("ascii", "replace"))
        return lead_id if genuine else None

    def url(self, public_url: str, lead_id: int, email_key: str) -> str:
        """The unsubscribe link of a message to this lead, on FALLBACK_PUBLIC_URL."""
        return f"{public_url.rstrip('/')}{UNSUBSCRIBE_PATH}?t={quote(self.issue(lead_id, email_key))}"
