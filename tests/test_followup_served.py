"""The follow-up mail from a real `fallback serve`: a `kill -9` while the server is slow to answer DATA, and two
instances on one PostgreSQL database, each with one real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import collections
import signal
import time

import pytest
import requests
from helpers import ADMIN_PASSWORD, csrf_token, form_token, wait_for
from mailserver import SMTPServer
from served import Served, run_cli
from standin import StandIn

from fallback.storage import NewLead, open_storage

pytestmark = pytest.mark.slow  # starts server processes (tests/test_markers.py)

BACKENDS = ["sqlite", "postgres"]
pytestmark = pytest.mark.slow  # `fallback serve` and aiosmtpd on 127.0.0.1
API_TOKEN = "follow-up-served-api-token"


def environment(database: str, site: StandIn, smtp: SMTPServer) -> dict:
    """An instance whose checker sees the stand-in up within a second, mailing at once after a recovery."""
    return {
        "FALLBACK_MAIN_URL": "https://www.example.com",
        "FALLBACK_CHECK_URLS": site.url,
        "FALLBACK_DATABASE": database,
        "FALLBACK_CHECK_INTERVAL": "1",
        "FALLBACK_CHECK_TIMEOUT": "2",
        "FALLBACK_RISE": "1",
        "FALLBACK_RATE_LIMIT": "0",
        "FALLBACK_FORM_MIN_SECONDS": "0",
        "FALLBACK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "FALLBACK_API_TOKEN": API_TOKEN,
        "FALLBACK_SMTP_URL": smtp.url,
        "FALLBACK_MAIL_FROM": "Shop <news@example.com>",
        "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
        "FALLBACK_FOLLOWUP_DELAY": "0",
    }


def recipients(smtp: SMTPServer) -> collections.Counter:
    """How many messages the server accepted for each address."""
    with smtp.mailbox.lock:
        return collections.Counter(message["To"] for message in smtp.mailbox.messages)


def queue_of(url: str) -> dict:
    """The follow-up queue in a running instance's status document, read through its API."""
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    return requests.get(url + "/_fallback/api/v1/status", headers=headers, timeout=5).json()["followup"]


def over_plain_http(session: requests.Session) -> None:
    """Keep the admin cookie, Secure as FALLBACK_PUBLIC_URL is https, for this loopback instance that speaks http."""
    fresh = [cookie.value for cookie in session.cookies if cookie.secure]  # what the last answer set
    if not fresh:
        return
    value = fresh[-1]
    session.cookies.clear()
    session.cookies.set("fallback_admin", value, path="/_fallback/admin")


def press_send_now(url: str) -> None:
    """Log in to a running instance's dashboard and press its "send the pending now" button."""
    with requests.Session() as session:
        page = session.get(url + "/_fallback/admin", timeout=5).text
        over_plain_http(session)
        login = {"password": ADMIN_PASSWORD, "csrf_token": csrf_token(page)}
        session.post(url + "/_fallback/admin/login", data=login, allow_redirects=False, timeout=5)
        over_plain_http(session)
        token = csrf_token(session.get(url + "/_fallback/admin", timeout=5).text)
        over_plain_http(session)
        response = session.post(url + "/_fallback/admin/followup/send", data={"csrf_token": token}, timeout=5)
        assert [answer.status_code for answer in response.history] == [303], response.text
        assert "Follow-up mail" in response.text


@pytest.mark.sqlite_only("the kill of one instance; two instances share a database only on PostgreSQL")
def test_a_kill_9_mid_send_misses_nobody_and_repeats_only_the_message_the_server_had_accepted(database, tmp_path):
    leads = [f"lead{index}@example.org" for index in range(6)]
    storage = open_storage(database)
    storage.flag.flip("unknown", "down", "the main site is down")
    for address in leads:
        storage.leads.save(NewLead(address, notify=True, notify_text="E-mail me when the site is back"))
    with StandIn() as site, SMTPServer() as smtp:
        smtp.mailbox.delay = 1.5  # slow to answer DATA: the kill lands between its taking a message and its 250
        env = {**environment(database, site, smtp), "FALLBACK_MAIL_RATE": "1000/second"}
        server = Served(env, tmp_path).start()
        try:
            wait_for(lambda: sum(recipients(smtp).values()) >= 3, 30, "three messages taken by the server")
            server.stop(signal.SIGKILL)  # master and workers, while the third waits for its 250
        finally:
            server.stop(signal.SIGKILL)
        at_kill = recipients(smtp)
        in_flight = smtp.mailbox.messages[-1]["To"]
        assert sum(at_kill.values()) == 3 and max(at_kill.values()) == 1
        smtp.mailbox.delay = 0
        with Served(env, tmp_path) as restarted:
            # Nobody missed: each lead not mailed before the kill is mailed by the restarted instance.
            wait_for(lambda: set(recipients(smtp)) == set(leads), 30, "a message to every lead")
            # The mailbox holds a message from its DATA on, before the sender records its 250: wait for the record.
            settled = wait_for(lambda: (now := queue_of(restarted.url))["sent"] == 5 and now, 30, "five recorded sent")
            # The message in flight stays claimed for two minutes; the dashboard's button sends it at once.
            assert settled["pending"] == 1
            press_send_now(restarted.url)
            queue = wait_for(lambda: (now := queue_of(restarted.url))["pending"] == 0 and now, 30, "the held one sent")
    assert queue == {"pending": 0, "sent": 6, "failed": 0, "last_error": None}
    # The only repeat is the message the server had accepted when the kill came, sent once more.
    assert recipients(smtp) == {**{address: 1 for address in leads}, in_flight: 2}


def submit_asking(url: str, email: str) -> None:
    """As a visitor of `url`'s page: send the form with the "e-mail me when the site is back" box ticked."""
    page = wait_for(
        lambda: (
            (answer := requests.get(url + "/shop?item=3", allow_redirects=False, timeout=3)).status_code == 503
            and answer.text
        ),
        5,
        "the page",
    )
    assert 'name="notify"' in page
    fields = {"token": form_token(page), "path": "/shop?item=3", "email": email, "consent": "y", "notify": "y"}
    response = requests.post(url + "/_fallback/contact", data=fields, allow_redirects=False, timeout=10)
    assert response.status_code == 303


@pytest.mark.postgres_only("two instances on one database")
def test_two_instances_on_one_postgresql_database_mail_each_lead_exactly_once(database, tmp_path):
    leads = [f"lead{index}@example.org" for index in range(10)]
    with StandIn() as site, SMTPServer() as smtp:
        env = environment(database, site, smtp)  # at the default rate, 5 a second, across both
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir()
        second_dir.mkdir()
        with Served(env, first_dir) as first, Served(env, second_dir) as second:
            assert run_cli(["mode", "down"], first.env, first_dir).returncode == 0
            for index, address in enumerate(leads):
                submit_asking((first, second)[index % 2].url, address)
            assert run_cli(["mode", "auto"], second.env, second_dir).returncode == 0
            wait_for(lambda: set(recipients(smtp)) == set(leads), 30, "a message to every lead")
            time.sleep(2)  # time enough for a second message to anyone, had either instance sent one
            assert recipients(smtp) == {address: 1 for address in leads}
            assert all(message["List-Unsubscribe"] for message in smtp.mailbox.messages)
            # `fallback status --url` from a shell with no database and no SMTP settings: the instance's queue.
            laptop = {"FALLBACK_URL": first.url, "FALLBACK_API_TOKEN": API_TOKEN}
            shown = run_cli(["status"], laptop, tmp_path)
            assert "follow-up mail: 0 pending, 10 sent, 0 failed\n" in shown.stdout, shown.stdout + shown.stderr
    link = smtp.mailbox.messages[0].get_body(("plain",)).get_content()
    assert "https://www.example.com/shop\r\n" in link and "item=3" not in link  # the path, never the query
