"""What storage takes and gives back, the same for both backends: dataclasses, and a lead as its JSON document.

Rows become records in one place each: `from_row` for the dataclasses, `as_lead` for a lead. SQL's rows are
untyped; the record's fields say which columns a query must select, and what type each one is.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")


@dataclasses.dataclass(frozen=True)
class NewLead:
    """One submission of the contact form, as validated by the web layer."""

    email: str
    name: str = ""
    message: str = ""
    consent: bool = False
    consent_version: str | None = None
    consent_text: str | None = None
    landing_path: str = "/"
    language: str = "en"
    spam_reason: str | None = None
    token: str | None = None  # the form's token: with the fields, it tells a double click from a new post
    notify: bool = False  # asked to be mailed when the site is back
    notify_text: str | None = None  # the wording of that box as shown
    drill: bool = False  # sent by `fallback drill --rehearse` under the installation's key: kept apart, then erased


# Times stay the fixed-width ISO-8601 UTC text they are stored as (clock.iso), so that they print and compare as
# they always did; the checker's own times, which are computed with, are datetimes.


class SentMessage(TypedDict):
    """What one submission of a lead said, and when."""

    at: str
    name: str | None
    message: str


class Lead(TypedDict):
    """One stored lead: one per address (spam: one per submission), with what its submissions said.

    A typed dictionary, not a dataclass: it is the lead's JSON document as it is (the API answers it, the export
    writes it, fallback.storage.serialize derives its schema and the `lead.created` data from it), so an export
    of 100,000 leads builds no second object per lead.
    """

    id: int
    email: str
    name: str
    consent: bool
    consent_version: str | None
    consent_text: str | None
    consent_at: str | None
    landing_path: str | None
    language: str | None
    created_at: str  # its first submission
    updated_at: str  # its latest submission
    submissions: int
    notify: bool  # asked to be mailed when the site is back
    notify_text: str | None
    notify_at: str | None
    notified_at: str | None
    unsubscribed_at: str | None
    messages: list[SentMessage]  # every submission, oldest first (empty in the dashboard's lists)


class ListedLead(Lead):
    """A lead in the dashboard's lists: with its latest message, and why it was kept apart as spam if it was."""

    message: str  # the latest non-empty message
    spam_reason: str | None


class HeldSpam(TypedDict):
    """A suspected spam as the spam folder lists it (the API's `GET spam` too): who, why, when, what it said last."""

    id: int
    email: str
    name: str
    spam_reason: str
    created_at: str
    updated_at: str
    message: str


# The leads table's columns a Lead holds, in its order (its follow-up record last: the wish, its wording and
# time, when it was last mailed, when it unsubscribed).
LEAD_COLUMNS = tuple(name for name in Lead.__annotations__ if name != "messages")
HELD_SPAM_COLUMNS = tuple(HeldSpam.__annotations__)


def as_lead(columns: dict[str, Any], messages: list[SentMessage]) -> Lead:
    """`columns`, a leads row of exactly LEAD_COLUMNS (taken over, not copied), as a Lead with its `messages`.

    The one place where a row becomes a Lead. Its flags, stored as 0 or 1, become booleans here.
    """
    columns["consent"], columns["notify"] = bool(columns["consent"]), bool(columns["notify"])
    columns["messages"] = messages
    return cast(Lead, columns)


def lead_from_row(row: Mapping[str, Any], messages: list[SentMessage]) -> Lead:
    """A lead from a row of the leads table (other columns, such as `spam`, left out)."""
    return as_lead({name: row[name] for name in LEAD_COLUMNS}, messages)


def listed_lead(row: Mapping[str, Any]) -> ListedLead:
    """A lead of the dashboard's lists, from a row of the leads table with its latest `message`."""
    return ListedLead(**lead_from_row(row, []), message=row["message"], spam_reason=row["spam_reason"])


def held_spam(row: Mapping[str, Any]) -> HeldSpam:
    """A suspected spam of the spam folder, from a row of HELD_SPAM_COLUMNS."""
    return cast(HeldSpam, {name: row[name] for name in HELD_SPAM_COLUMNS})


def first_sent(lead_id: int, sent: NewLead, now: str) -> Lead:
    """The lead a first submission stores, at `now`: what `lead.created` tells of it."""
    return Lead(
        id=lead_id,
        email=sent.email.strip(),
        name=sent.name,
        consent=sent.consent,
        consent_version=sent.consent_version if sent.consent else None,
        consent_text=sent.consent_text if sent.consent else None,
        consent_at=now if sent.consent else None,
        landing_path=sent.landing_path,
        language=sent.language,
        created_at=now,
        updated_at=now,
        submissions=1,
        notify=sent.notify,
        notify_text=sent.notify_text if sent.notify else None,
        notify_at=now if sent.notify else None,
        notified_at=None,
        unsubscribed_at=None,
        messages=[SentMessage(at=now, name=sent.name, message=sent.message)],
    )


@dataclasses.dataclass(frozen=True)
class LeadCounts:
    """How many genuine leads and suspected spam submissions are stored (drill leads left out)."""

    leads: int
    spam: int


@dataclasses.dataclass(frozen=True)
class Incident:
    """One outage, from the flip down to the flip up (open while `ended_at` is None)."""

    id: int
    started_at: str
    ended_at: str | None
    reason: str | None
    end_reason: str | None
    leads: int  # genuine leads that arrived during it
    duration_seconds: int  # until now while it is open


@dataclasses.dataclass(frozen=True)
class ModeChange:
    """One change of the forced mode: by whom, why, until when."""

    id: int
    at: str
    mode: str
    until: str | None
    reason: str | None
    by: str | None


@dataclasses.dataclass(frozen=True)
class CheckerState:
    """Who holds the checker lease, its last heartbeat, and whether it doubts its own network."""

    owner: str | None
    lease_until: datetime | None
    heartbeat_at: datetime | None
    network_doubt: bool
    note: str | None


@dataclasses.dataclass(frozen=True)
class StoredProbe:
    """One probe's result as the checker stored it."""

    id: int
    at: str
    url: str
    ok: bool
    latency_ms: int | None
    status: int | None
    reason: str | None
    control: bool  # a probe of the control URL (is our own network up?), not of the main site


@dataclasses.dataclass(frozen=True)
class StatusCounts:
    """How many outgoing messages of one kind are in each status of the outbox (every status, zero included)."""

    pending: int
    delivered: int
    failed: int
    gone: int
    skipped: int


def from_row(record: type[Record], row: Mapping[str, Any], **computed: object) -> Record:
    """A record whose fields are the row's columns of the same names, but for those `computed` by the caller."""
    columns = {name: row[name] for name in _field_names(record) if name not in computed}
    return record(**columns, **computed)


@functools.cache
def _field_names(record: type[DataclassInstance]) -> tuple[str, ...]:
    """A record's field names, looked up once per type."""
    return tuple(field.name for field in dataclasses.fields(record))
