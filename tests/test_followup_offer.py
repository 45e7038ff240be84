"""The follow-up offer: with SMTP set, an unticked box on the form, its choice stored with its wording and exported."""

from __future__ import annotations

import csv
import io

import pytest
from helpers import contact_fields, log_in

from fallback.serving.app import create_app

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def offer_env(env):
    env.update(
        {
            "FALLBACK_SMTP_URL": "smtp://127.0.0.1:2525",
            "FALLBACK_MAIL_FROM": "Shop <news@example.com>",
            "FALLBACK_PUBLIC_URL": "https://sorry.example.com",
        }
    )
    return env


@pytest.fixture
def mail_client(offer_env, storage):
    from fallback.core.settings import Settings

    app = create_app(Settings.from_env(offer_env), storage)
    app.config["TESTING"] = True
    storage.flag.set_mode("down", reason="test")
    return app.test_client()


def exported(client) -> list[dict]:
    log_in(client)
    return list(csv.DictReader(io.StringIO(client.get("/_fallback/admin/export.csv").get_data(as_text=True))))


def test_without_smtp_the_form_offers_no_box_and_ignores_one_sent_anyway(client, down, storage):
    assert 'name="notify"' not in client.get("/").get_data(as_text=True)
    client.post("/_fallback/contact", data=contact_fields(client, notify="y"))
    assert storage.leads.recent()[0]["notify"] == 0


def test_with_smtp_the_form_offers_an_unticked_box_in_english_and_french(mail_client):
    english = mail_client.get("/").get_data(as_text=True)
    assert 'name="notify" type="checkbox" value="y">' in english and "E-mail me when the site is back." in english
    french = mail_client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Prévenez-moi par e-mail quand le site sera de retour." in french


def test_a_ticked_box_is_stored_with_the_wording_shown_and_exported(mail_client, storage):
    fields = contact_fields(mail_client, notify="y", path="/shop?item=3")
    mail_client.post("/_fallback/contact", data=fields, headers={"Accept-Language": "fr"})
    lead = storage.leads.recent()[0]
    assert lead["notify"] == 1 and lead["notify_at"] and lead["notified_at"] is None
    assert lead["notify_text"] == "Prévenez-moi par e-mail quand le site sera de retour."
    row = exported(mail_client)[0]
    assert (row["notify"], row["notified_at"]) == ("yes", "")


def test_an_unticked_box_stores_no_wish_and_a_later_tick_adds_it(mail_client, storage):
    mail_client.post("/_fallback/contact", data=contact_fields(mail_client))
    assert storage.leads.recent()[0]["notify"] == 0
    assert exported(mail_client)[0]["notify"] == "no"
    mail_client.post("/_fallback/contact", data=contact_fields(mail_client, notify="y", message="again"))
    lead = storage.leads.recent()[0]
    assert (lead["notify"], lead["submissions"]) == (1, 2)
