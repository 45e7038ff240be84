"""What each recorded event becomes in the outbox: the notification's text, the webhook's signed body.

Storage records an event once, with its facts (storage.events); this is the one place that turns it into the
messages each configured kind sends, so a new kind of message, or a new event, is written here.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from fallback.core.clock import iso
from fallback.core.settings import Settings
from fallback.outbound.policy import POLICIES
from fallback.storage import Event, NewMessage, Storage

# The facts that are times: stored as ISO text, written as RFC 3339 in a webhook.
TIMES = ("started_at", "ended_at", "until", "created_at")


def rfc3339(moment: datetime | str | None) -> str | None:
    """A stored time (or a datetime) as RFC 3339 with `Z`, as Standard Webhooks payloads write times."""
    if moment is None:
        return None
    text = iso(moment) if isinstance(moment, datetime) else moment
    return text.replace("+00:00", "Z")


def notification_text(event: Event) -> dict[str, str] | None:
    """The announcement of a flip or a forced mode (title, body, when); None for what is not announced."""
    data = event.data
    if event.type == "incident.opened":
        title, body = "main site down", data["reason"]
    elif event.type == "incident.closed":
        title, body = "main site up", data["end_reason"]
    elif event.type == "mode.changed" and data["by"] == "expiry":
        title, body = "forced mode expired: back to auto", "the checker decides again"
    elif event.type == "mode.changed":
        title = f"mode set to {data['mode']}" + (f" until {data['until'][:16]}Z" if data["until"] else "")
        body = f"by {data['by'] or 'unknown'}" + (f": {data['reason']}" if data["reason"] else "")
    else:
        return None  # a new lead is never announced one by one: a visitor's address stays out of chat rooms
    return {"title": title, "body": body or "", "at": event.at}


def webhook_body(event: Event) -> str:
    """The JSON posted for `event`: its type, its time and its facts, times in RFC 3339."""
    data: dict[str, Any] = {key: rfc3339(value) if key in TIMES else value for key, value in event.data.items()}
    return json.dumps({"type": event.type, "timestamp": rfc3339(event.at), "data": data}, separators=(",", ":"))


def messages_for(event: Event, settings: Settings) -> list[NewMessage]:
    """The messages `event` makes under `settings`: one notification for the FALLBACK_NOTIFY_URLS (together), one
    webhook per FALLBACK_WEBHOOK_URLS, all of one event sharing its `webhook-id` (the same on every retry)."""
    messages = []
    text = notification_text(event) if settings.notify_urls else None
    if text is not None:
        messages.append(NewMessage("notification", event.type, payload=json.dumps(text)))
    if settings.webhook_urls:
        body, message_id = webhook_body(event), f"msg_{uuid.uuid4().hex}"
        until = POLICIES["webhook"].deadline(datetime.fromisoformat(event.at))
        messages.extend(
            NewMessage("webhook", event.type, url, message_id, body, event.lead_id, until)
            for url in dict.fromkeys(settings.webhook_urls)
        )
    return messages


def dispatch(storage: Storage, settings: Settings) -> int:
    """Turn every event not dispatched yet into its messages, once; how many events."""
    return storage.events.dispatch(lambda event: messages_for(event, settings))
