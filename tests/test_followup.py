"""The "we're back" mail: queued after a lasting recovery, sent once per lead through a real SMTP server
(aiosmtpd on 127.0.0.1), in the lead's language, with the link and the unsubscribe headers; throttled, retried,
recorded; unsubscribe; and never on a visitor's request."""

from __future__ import annotations

import functools
import re
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from helpers import contact_fields, forged
from mailserver import FOLLOWUP_DELAY

from fallback.core.settings import Settings
from fallback.outbound import smtp
from fallback.outbound.followup import FollowupSender
from fallback.outbound.unsubscribe_token import UnsubscribeToken
from fallback.serving.app import create_app
from fallback.storage import NewLead, email_key, open_storage
from fallback.storage.followups import FollowupCounts

BACKENDS = ["sqlite", "postgres"]


def sender_for(env, storage, **overrides) -> FollowupSender:
    return FollowupSender(Settings.from_env({**env, **overrides}), storage, "test-secret")


def asked(storage, email, language="en", path="/", **fields) -> int:
    lead = NewLead(email, notify=True, notify_text="E-mail me", language=language, landing_path=path, **fields)
    return storage.leads.save(lead)


def outage(storage, clock, *emails, language="en", path="/"):
    """The site goes down, each of `emails` asks to be told, and the site comes back."""
    storage.flag.flip(storage.flag.read().state, "down", "test outage")
    clock.now += timedelta(seconds=5)
    for address in emails:
        asked(storage, address, language, path)
    clock.now += timedelta(seconds=5)
    storage.flag.flip("down", "up", "back")


def run(sender, clock, seconds=0) -> int:
    clock.now += timedelta(seconds=seconds)
    sender.queue_after_recovery()
    return sender.deliver_pending()


def header_link(message) -> str:
    """The URL in a received message's List-Unsubscribe header (folded onto its own line when long: Python's
    parser keeps the space that began that line, which RFC 5322's unfolding makes the usual one after the colon)."""
    return re.fullmatch(r"\s*<(.+)>", message["List-Unsubscribe"]).group(1)


def test_each_lead_that_asked_gets_one_message_once_the_site_stayed_up(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, "anne@example.org", "paul@example.org")
    mail_storage.leads.save(NewLead("never@example.org"))  # did not tick the box
    sender = sender_for(mail_env, mail_storage)
    assert run(sender, clock, FOLLOWUP_DELAY - 10) == 0 and smtp_server.mailbox.messages == []
    assert run(sender, clock, 10) == 2
    assert sorted(message["To"] for message in smtp_server.mailbox.messages) == ["anne@example.org", "paul@example.org"]
    assert run(sender, clock, 600) == 0 and run(sender_for(mail_env, mail_storage), clock, 600) == 0  # a restart
    assert len(smtp_server.mailbox.messages) == 2
    assert mail_storage.followups.counts() == FollowupCounts(pending=0, sent=2, failed=0, last_error=None)
    assert all(lead["notified_at"] for lead in mail_storage.leads.iter() if lead["notify"])


def test_the_message_is_in_the_leads_language_with_the_link_and_the_unsubscribe_headers(
    mail_env, mail_storage, clock, smtp_server
):
    outage(mail_storage, clock, "anne@example.org", language="fr", path="/shop/été?item=3&colour=red")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    (message,) = smtp_server.mailbox.messages
    assert message["Subject"] == "Shop est de retour" and message["From"] == "Shop <news@example.com>"
    assert message["Message-ID"].endswith("@example.com>") and message["Date"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = header_link(message)
    assert unsubscribe.startswith("https://sorry.example.com/_fallback/unsubscribe?t=")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Vous nous avez demandé de vous prévenir" in text and unsubscribe in text
    assert "https://www.example.com/shop/%C3%A9t%C3%A9\r\n" in text and "item=3" not in text
    assert 'href="https://www.example.com/shop/%C3%A9t%C3%A9"' in html and 'lang="fr"' in html


def test_the_unsubscribe_header_goes_out_as_a_plain_url_in_angle_brackets_never_encoded(
    mail_env, mail_storage, clock, smtp_server
):
    outage(mail_storage, clock, "anne@example.org")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    (raw,) = smtp_server.mailbox.raw
    head = raw.split(b"\r\n\r\n", 1)[0]
    # Unfolding (RFC 5322 2.2.3) must give back the URL itself: a mail client reads no RFC 2047 word in this header.
    unfolded = re.sub(rb"\r\n(?=[ \t])", b"", head)
    (line,) = [line for line in unfolded.split(b"\r\n") if line.lower().startswith(b"list-unsubscribe:")]
    assert b"=?" not in line
    assert re.fullmatch(rb"List-Unsubscribe: *<https://sorry\.example\.com/_fallback/unsubscribe\?t=[^\s>]+>", line)
    assert all(len(folded) <= 998 for folded in head.split(b"\r\n"))  # RFC 5322 2.1.1's hard limit


def test_nothing_goes_out_while_the_site_flaps_within_the_delay(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, "anne@example.org")
    sender = sender_for(mail_env, mail_storage)
    assert run(sender, clock, FOLLOWUP_DELAY - 20) == 0
    mail_storage.flag.flip("up", "down", "again")
    assert run(sender, clock, FOLLOWUP_DELAY * 3) == 0
    mail_storage.flag.flip("down", "up", "back")
    assert run(sender, clock, FOLLOWUP_DELAY - 1) == 0 and smtp_server.mailbox.messages == []
    assert run(sender, clock, 1) == 1 and len(smtp_server.mailbox.messages) == 1


def test_a_forced_down_handed_back_counts_as_a_recovery(mail_env, mail_storage, clock, smtp_server):
    mail_storage.flag.flip("unknown", "up", "first verdict")
    mail_storage.flag.set_mode("down", reason="maintenance")
    asked(mail_storage, "anne@example.org")
    clock.now += timedelta(seconds=5)
    mail_storage.flag.set_mode("auto")
    sender = sender_for(mail_env, mail_storage)
    assert run(sender, clock, FOLLOWUP_DELAY - 1) == 0
    assert run(sender, clock, 1) == 1


def test_spam_and_unsubscribed_leads_get_nothing(mail_env, mail_storage, clock, smtp_server):
    mail_storage.flag.flip("unknown", "down", "test")
    asked(mail_storage, "bot@example.org", spam_reason="honeypot")
    gone = asked(mail_storage, "gone@example.org")
    mail_storage.followups.unsubscribe(gone)
    asked(mail_storage, "anne@example.org")
    mail_storage.flag.flip("down", "up", "back")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    assert [message["To"] for message in smtp_server.mailbox.messages] == ["anne@example.org"]


def test_a_temporary_refusal_is_retried_and_a_permanent_one_recorded(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, "anne@example.org")
    smtp_server.mailbox.answers = ["451 4.3.0 try again later"]
    sender = sender_for(mail_env, mail_storage)
    run(sender, clock, FOLLOWUP_DELAY)
    counts = mail_storage.followups.counts()
    assert (counts.pending, counts.sent, counts.last_error) == (1, 0, "451 4.3.0 try again later")
    assert run(sender, clock, 1) == 0  # backing off
    assert run(sender, clock, 10) == 1 and len(smtp_server.mailbox.messages) == 1
    outage(mail_storage, clock, "bounce@example.org")
    smtp_server.mailbox.answers = ["550 5.1.1 no such mailbox"]
    run(sender, clock, FOLLOWUP_DELAY)
    counts = mail_storage.followups.counts()
    assert (counts.failed, counts.last_error) == (1, "550 5.1.1 no such mailbox")
    assert run(sender, clock, 3600) == 0 and len(smtp_server.mailbox.messages) == 1


def test_no_server_at_all_is_retried(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, "anne@example.org")
    sender = sender_for(mail_env, mail_storage, FALLBACK_SMTP_URL="smtp://127.0.0.1:1")
    run(sender, clock, FOLLOWUP_DELAY)
    counts = mail_storage.followups.counts()
    assert counts.pending == 1 and "ConnectionRefusedError" in counts.last_error


def test_the_rate_holds_across_senders(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, *[f"lead{index}@example.org" for index in range(7)])
    first = sender_for(mail_env, mail_storage, FALLBACK_MAIL_RATE="3/second")
    second = sender_for(mail_env, open_storage(mail_env["FALLBACK_DATABASE"]), FALLBACK_MAIL_RATE="3/second")
    second.storage.db.clock = clock
    assert run(first, clock, FOLLOWUP_DELAY) == 3 and run(second, clock) == 0
    assert run(second, clock, 1) == 3 and run(first, clock) == 0
    assert run(first, clock, 1) == 1 and len(smtp_server.mailbox.messages) == 7


def test_two_instances_sending_at_once_send_each_message_once(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, *[f"lead{index}@example.org" for index in range(12)])
    clock.now += timedelta(seconds=FOLLOWUP_DELAY)
    senders = []
    for _ in range(3):
        storage = open_storage(mail_env["FALLBACK_DATABASE"])
        storage.db.clock = clock
        senders.append(sender_for(mail_env, storage))
    senders[0].queue_after_recovery()
    threads = [threading.Thread(target=sender.deliver_pending) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(message["To"] for message in smtp_server.mailbox.messages) == sorted(
        f"lead{index}@example.org" for index in range(12)
    )


def unsubscribe_link(smtp_server) -> str:
    link = header_link(smtp_server.mailbox.messages[-1])
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize("body", [{}, {"List-Unsubscribe": "One-Click"}])
def test_unsubscribe_confirms_on_get_and_ends_follow_up_on_post(mail_env, mail_storage, clock, smtp_server, body):
    outage(mail_storage, clock, "anne@example.org")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    client = create_app(Settings.from_env(mail_env), mail_storage).test_client()
    link = unsubscribe_link(smtp_server)
    page = client.get(link)
    assert page.status_code == 200 and 'method="post"' in page.get_data(as_text=True)
    assert mail_storage.leads.recent()[0]["notify"] == 1  # a link scanner's GET ends nothing
    assert client.post(link, data=body).status_code == 200
    lead = mail_storage.leads.recent()[0]
    assert lead["notify"] == 0 and lead["unsubscribed_at"]
    # Asked again, without ticking: still nothing.
    mail_storage.flag.flip("up", "down", "again")
    mail_storage.leads.save(NewLead("anne@example.org", message="hello"))
    mail_storage.flag.flip("down", "up", "back")
    assert run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY) == 0


def test_the_mail_holds_no_text_a_visitor_wrote(mail_env, mail_storage, clock, smtp_server):
    bait = "Your account was suspended. Restore it at https://evil.example/restore"
    mail_storage.flag.flip(mail_storage.flag.read().state, "down", "test outage")
    asked(mail_storage, "victim@example.org", path="/account/close?confirm=1", name=bait)
    mail_storage.flag.flip("down", "up", "back")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    (message,) = smtp_server.mailbox.messages
    for body in (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()):
        assert "suspended" not in body and "evil" not in body and "confirm=1" not in body
        assert "Hello," in body and "https://www.example.com/account/close" in body
    assert "suspended" not in message["Subject"]


def test_an_unsubscribed_address_is_not_subscribed_again_by_ticking_the_box(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, "anne@example.org")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    lead_id = mail_storage.leads.recent()[0]["id"]
    assert mail_storage.followups.unsubscribe(lead_id)
    clock.now += timedelta(hours=1)
    outage(mail_storage, clock, "anne@example.org")  # anyone ticks the box again with her address
    assert (
        run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY) == 0 and len(smtp_server.mailbox.messages) == 1
    )
    lead = mail_storage.leads.recent()[0]
    assert lead["notify"] == 0 and lead["unsubscribed_at"]


def test_an_unsubscribe_token_does_not_tell_the_lead_id_and_still_works(mail_storage):
    first, second = (mail_storage.leads.save(NewLead(f"lead{n}@example.org")) for n in (1, 2))
    tokens = UnsubscribeToken("test-secret")
    issued = [tokens.issue(lead_id, email_key(f"lead{n}@example.org")) for n, lead_id in ((1, first), (2, second))]
    assert not any(token.split(".")[0] in (str(first), str(second)) for token in issued)
    assert issued[0] != tokens.issue(first, email_key("lead1@example.org"))  # a fresh nonce each time
    assert [tokens.lead(token, mail_storage) for token in issued] == [first, second]
    # A token of the earlier form (ID.SIGNATURE), in messages already sent, still ends the mail.
    legacy = f"{first}.{tokens._signer.get_signature(tokens._value(first, 'lead1@example.org')).decode()}"
    assert tokens.lead(legacy, mail_storage) == first
    assert tokens.lead(forged(issued[0]), mail_storage) is None


def test_a_bad_unsubscribe_token_is_a_400(mail_env, mail_storage, clock, smtp_server):
    outage(mail_storage, clock, "anne@example.org")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    client = create_app(Settings.from_env(mail_env), mail_storage).test_client()
    link = unsubscribe_link(smtp_server)
    for bad in (forged(link), "/_fallback/unsubscribe?t=1.forged", "/_fallback/unsubscribe"):
        assert client.get(bad).status_code == 400 and client.post(bad).status_code == 400
    assert mail_storage.leads.recent()[0]["notify"] == 1


def test_a_slow_smtp_server_never_delays_a_visitor(mail_env, mail_storage, clock):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        outage(mail_storage, clock, "anne@example.org")
        mail_storage.flag.set_mode("down", reason="again")
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}"
        sender = sender_for(mail_env, mail_storage, FALLBACK_SMTP_URL=url)
        sender.transport = functools.partial(smtp.send, timeout=30)  # a visitor made to wait would wait this long
        clock.now += timedelta(seconds=FOLLOWUP_DELAY)
        mail_storage.followups.queue(clock.now)
        sending = threading.Thread(target=sender.deliver_pending)
        sending.start()
        app = create_app(Settings.from_env({**mail_env, "FALLBACK_SMTP_URL": url}), mail_storage)
        client = app.test_client()
        started = time.monotonic()
        response = client.post("/_fallback/contact", data=contact_fields(client, email="new@example.org", notify="y"))
        assert response.status_code == 303 and time.monotonic() - started < 10  # loose, for a busy machine
        assert sending.is_alive()  # still waiting on the server: the visitor was thanked meanwhile
    finally:
        silent.close()  # resets the connection the sender waits on
    sending.join(15)
    assert not sending.is_alive()


def test_mail_test_exits_0_when_the_server_accepts_and_1_with_its_answer(runner, mail_env, smtp_server, monkeypatch):
    from fallback.cli import cli

    for name, value in mail_env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(cli, ["mail-test", "me@example.org"])
    assert result.exit_code == 0, result.output
    assert smtp_server.mailbox.to("me@example.org")[0]["Subject"] == "[test] Shop is back"
    smtp_server.mailbox.answers = ["550 5.7.1 relaying denied"]
    result = runner.invoke(cli, ["mail-test", "me@example.org"])
    assert result.exit_code == 1 and "550 5.7.1 relaying denied" in result.output


def test_status_reports_the_queue(runner, mail_env, mail_storage, clock, smtp_server, monkeypatch):
    from fallback.cli import cli

    outage(mail_storage, clock, "anne@example.org")
    run(sender_for(mail_env, mail_storage), clock, FOLLOWUP_DELAY)
    for name, value in mail_env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(cli, ["status"])
    assert "follow-up mail: 0 pending, 1 sent, 0 failed" in result.output, result.output
