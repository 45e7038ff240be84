"""The channels the team and the visitors are reached by: the notification URLs, and SMTP for follow-up mail."""

from __future__ import annotations

from collections.abc import Sequence

from fallback.core.redact import redact_text, redact_url
from fallback.core.settings import Settings
from fallback.drill.items import FAIL, PASS, WARN, Item

TEST_TITLE = "fallback drill: test notification"
TEST_BODY = "A test sent by `fallback drill --notify-test`: this channel will carry the alerts of the show."


def notify_items(urls: Sequence[str], send_test: bool) -> list[Item]:
    """Each notification URL: a real test notification with `send_test`, else only whether Apprise reads it."""
    if not urls:
        return [
            Item(
                "notifications",
                WARN,
                "FALLBACK_NOTIFY_URLS is not set: nobody is told when the site goes down or comes back",
                "set FALLBACK_NOTIFY_URLS (Slack, e-mail, a webhook...) and run drill --notify-test",
            )
        ]
    return [notify_item(url, send_test) for url in urls]


def notify_item(url: str, send_test: bool) -> Item:
    """One Apprise URL: read, and with `send_test` sent one test notification, which the service must accept."""
    import apprise

    name = f"notify {redact_url(url)}"
    channel = apprise.Apprise()
    if not channel.add(url):
        return Item(name, FAIL, "Apprise cannot read this URL", "fix it in FALLBACK_NOTIFY_URLS")
    if not send_test:
        return Item(name, PASS, "a valid Apprise URL (not tried: --notify-test sends a test notification)")
    try:
        sent = bool(channel.notify(title=TEST_TITLE, body=TEST_BODY))
    except Exception as failure:  # noqa: BLE001 - a plugin's own error: reported, never a traceback
        sent, why = False, redact_text(f"{type(failure).__name__}: {failure}", url)
    else:
        why = "the service refused it or did not answer"
    if not sent:
        return Item(
            name,
            FAIL,
            f"the test notification was not delivered: {why}",
            "renew the token or fix the URL in FALLBACK_NOTIFY_URLS (Apprise's log line above says what it got)",
        )
    return Item(name, PASS, "the service accepted a test notification")


def smtp_item(settings: Settings, timeout: float) -> Item | None:
    """SMTP for follow-up mail, when it is on: EHLO, STARTTLS when offered, the log-in; nothing is sent."""
    if not settings.smtp_url:
        return None
    from fallback.outbound import smtp

    name = f"SMTP {redact_url(settings.smtp_url)}"
    try:
        steps = smtp.greet(settings.smtp_url, timeout)
    except smtp.MailRefused as refused:
        return Item(
            name,
            FAIL,
            f"not usable: {redact_text(refused.answer, settings.smtp_url)}",
            "check FALLBACK_SMTP_URL (host, port, credentials), then `fallback mail-test ADDRESS`",
        )
    if "STARTTLS" not in steps and "implicit TLS" not in steps:
        return Item(
            name,
            WARN,
            f"{', '.join(steps)} ok, but no TLS: follow-up mail would cross the network in clear",
            "use a server that offers STARTTLS, or smtps://",
        )
    return Item(name, PASS, f"{', '.join(steps)} ok")
