"""Schema step: every lead's key recomputed by the address rule of `leads.email_key`, on SQLite and PostgreSQL alike.

Leads used to be keyed on the address case-folded (ß became ss). What this step does with the rows
already stored, and why:

- Each row's key is recomputed from its stored address. A row that held two look-alike spellings
  (`straße.de` and `strasse.de`, merged by the old key) cannot be split: its submissions do not say
  which spelling sent them. It keeps the key of the address it now shows, and stays one lead.
- Two genuine rows whose new keys are equal (`a@xn--strae-oqa.de` and `a@straße.de`, one domain written
  two ways, kept apart by the old key) are one address under the new rule, and the unique key allows one
  row: the later is merged into the earlier, nothing lost. The earlier keeps its address, its name and
  its first consent (the later's consent is taken only if the earlier had none); every submission,
  follow-up mail and webhook delivery of the later moves to it; the counts add up; the first and latest
  times span both; an unsubscription of either stays.
- Spam is never merged: its rows are only re-keyed.

The unique index is dropped while keys change (a key may pass through another row's old one) and made
again at the end, with the same definition on both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fallback.storage.leads import email_key

Execute = Callable[..., Any]  # (sql, params=()) -> a cursor, as sqlite3 and storage.postgres give
_WAITING = "sent_at IS NULL AND failed_at IS NULL"
UNIQUE_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS leads_email_key ON leads (email_key) WHERE spam = 0"
_MERGED = """UPDATE leads SET
    submissions = submissions + ?,
    created_at = CASE WHEN created_at <= ? THEN created_at ELSE ? END,
    updated_at = CASE WHEN updated_at >= ? THEN updated_at ELSE ? END,
    name = CASE WHEN name = '' THEN ? ELSE name END,
    consent_version = CASE WHEN consent = 1 THEN consent_version ELSE ? END,
    consent_text = CASE WHEN consent = 1 THEN consent_text ELSE ? END,
    consent_at = CASE WHEN consent = 1 THEN consent_at ELSE ? END,
    consent = CASE WHEN consent = 1 THEN 1 ELSE ? END,
    notify = CASE WHEN unsubscribed_at IS NOT NULL OR ? = 1 THEN 0 WHEN notify = 1 THEN 1 ELSE ? END,
    notify_text = COALESCE(notify_text, ?),
    notify_at = COALESCE(notify_at, ?),
    notified_at = COALESCE(notified_at, ?),
    unsubscribed_at = COALESCE(unsubscribed_at, ?)
    WHERE id = ?"""
_LATER = (
    "SELECT submissions, created_at, updated_at, name, consent_version, consent_text, consent_at, consent, "
    "unsubscribed_at, notify, notify_text, notify_at, notified_at FROM leads WHERE id = ?"
)


def rekey_leads(execute: Execute) -> None:
    """Recompute every lead's key, merging genuine rows whose new keys meet (see the module)."""
    execute("DROP INDEX IF EXISTS leads_email_key")
    rows = [
        tuple(row[i] for i in range(4)) for row in execute("SELECT id, email, email_key, spam FROM leads").fetchall()
    ]
    kept: dict[str, int] = {}
    for lead_id, email, old_key, spam in sorted(rows):
        key = email_key(email)
        if not spam and key in kept:
            merge_lead(execute, kept[key], lead_id)
            continue
        if key != old_key:
            execute("UPDATE leads SET email_key = ? WHERE id = ?", (key, lead_id))
        if not spam:
            kept[key] = lead_id
    execute(UNIQUE_KEY)


def merge_lead(execute: Execute, earlier: int, later: int) -> None:
    """Fold the lead `later` into `earlier`: its history moves there, and its row goes."""
    row = execute(_LATER, (later,)).fetchall()[0]
    (submissions, created, updated, name, version, text, consent_at, consent, unsubscribed, notify, *wish) = (
        row[i] for i in range(13)
    )
    execute(
        _MERGED,
        (submissions, created, created, updated, updated, name, version, text, consent_at, consent)
        + (int(unsubscribed is not None), notify, *wish, unsubscribed, earlier),
    )
    execute("UPDATE submissions SET lead_id = ? WHERE lead_id = ?", (earlier, later))
    execute("UPDATE webhook_deliveries SET lead_id = ? WHERE lead_id = ?", (earlier, later))
    # One waiting message per lead: the earlier's, if it has one, stands for both.
    execute(
        f"DELETE FROM followups WHERE lead_id = ? AND {_WAITING} AND EXISTS "
        "(SELECT 1 FROM followups f WHERE f.lead_id = ? AND f.sent_at IS NULL AND f.failed_at IS NULL)",
        (later, earlier),
    )
    execute("UPDATE followups SET lead_id = ? WHERE lead_id = ?", (earlier, later))
    execute("DELETE FROM leads WHERE id = ?", (later,))
