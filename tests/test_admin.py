"""The admin area: log-in, the dashboard, the mode toggle, the CSV export."""

import csv
import io
import logging

import pytest
from helpers import ADMIN_PASSWORD, contact_fields, csrf_token, log_in

from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage.records import StoredProbe

BACKENDS = ["sqlite", "postgres"]


def test_the_admin_area_is_404_without_a_password(env, caplog):
    del env["FALLBACK_ADMIN_PASSWORD"]
    with caplog.at_level("WARNING"):
        client = create_app(Settings.from_env(env)).test_client()
    assert "FALLBACK_ADMIN_PASSWORD is not set" in caplog.text
    for path in ("/_fallback/admin", "/_fallback/admin/export.csv"):
        assert client.get(path).status_code == 404
    assert client.post("/_fallback/admin/login", data={"password": ""}).status_code == 404


def test_the_dashboard_asks_for_the_password_first(client):
    response = client.get("/_fallback/admin")
    assert response.status_code == 200
    assert 'type="password"' in response.get_data(as_text=True)


def test_a_wrong_password_is_refused(client):
    response = log_in(client, "wrong")
    assert response.status_code == 401
    assert "Wrong password" in response.get_data(as_text=True)
    assert "Mode" not in client.get("/_fallback/admin").get_data(as_text=True)


def test_a_log_in_without_its_csrf_token_is_refused(client):
    assert client.post("/_fallback/admin/login", data={"password": ADMIN_PASSWORD}).status_code == 401


def test_the_right_password_opens_an_httponly_samesite_session(client):
    response = log_in(client)
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/_fallback/admin" in cookie
    assert "Set mode" in client.get("/_fallback/admin").get_data(as_text=True)


def test_the_dashboard_escapes_what_visitors_typed(client, down):
    client.post("/_fallback/contact", data=contact_fields(client, name="<script>alert(1)</script>"))
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


def set_mode(client, **fields):
    html = client.get("/_fallback/admin").get_data(as_text=True)
    return client.post("/_fallback/admin/mode", data={"csrf_token": csrf_token(html), **fields})


def test_the_admin_forces_the_page_on_and_visitors_see_it(client, storage):
    log_in(client)
    assert client.get("/").status_code == 302
    response = set_mode(client, mode="down", duration="2h", reason="TV at 8")
    assert response.status_code == 303
    flag = storage.flag.read()
    assert (flag.mode, flag.mode_reason, flag.mode_by) == ("down", "TV at 8", "admin (web)")
    assert flag.mode_until is not None
    assert client.get("/").status_code == 503


def test_the_mode_form_refuses_a_post_without_csrf(client, storage):
    log_in(client)
    assert client.post("/_fallback/admin/mode", data={"mode": "down"}).status_code == 400
    assert storage.flag.read().mode == "auto"


def test_the_mode_form_refuses_a_bad_duration(client, storage):
    log_in(client)
    assert set_mode(client, mode="down", duration="forever").status_code == 400
    assert storage.flag.read().mode == "auto"


def test_the_mode_form_needs_a_session(client, storage):
    assert client.post("/_fallback/admin/mode", data={"mode": "down"}).status_code == 403


@pytest.mark.parametrize(
    "button", ["/leads/1/delete", "/webhooks/1/retry", "/spam/1/keep", "/notice", "/followup/send"]
)
def test_every_dashboard_button_needs_a_session_and_its_csrf_token(client, storage, button):
    path = "/_fallback/admin" + button
    assert client.post(path, data={"notice": "Back at 9"}).status_code == 403
    log_in(client)
    refused = client.post(path, data={"notice": "Back at 9"})
    assert refused.status_code == 400
    assert "The form expired" in refused.get_data(as_text=True)
    assert storage.flag.read().notice is None


def test_log_out_closes_the_session(client):
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    client.post("/_fallback/admin/logout", data={"csrf_token": csrf_token(html)})
    assert 'type="password"' in client.get("/_fallback/admin").get_data(as_text=True)


def exported(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))


def test_an_admin_exports_the_leads_as_csv(client, down):
    client.post("/_fallback/contact", data=contact_fields(client, name='=HYPERLINK("http://x")'))
    log_in(client)
    response = client.get("/_fallback/admin/export.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    [row] = exported(response)
    assert row["email"] == "paul@example.org"
    assert row["name"] == '\'=HYPERLINK("http://x")'


def test_the_export_needs_a_session_or_the_bearer_token(env, down):
    env["FALLBACK_EXPORT_TOKEN"] = token = "s3cret-token-of-24-characters"
    del env["FALLBACK_ADMIN_PASSWORD"]
    client = create_app(Settings.from_env(env)).test_client()
    assert client.get("/_fallback/admin/export.csv").status_code == 401
    assert client.get("/_fallback/admin/export.csv", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/_fallback/admin/export.csv", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("email,")


def test_the_export_filters_by_since_and_until(client, storage):
    from datetime import UTC, datetime

    from fallback.storage import NewLead

    for day in (1, 2, 3):
        storage.db.clock = lambda day=day: datetime(2026, 11, day, 12, tzinfo=UTC)
        storage.leads.save(NewLead(f"day{day}@example.org"))
    log_in(client)
    response = client.get("/_fallback/admin/export.csv?since=2026-11-02&until=2026-11-03T12:00:00%2B00:00")
    assert [row["email"] for row in exported(response)] == ["day2@example.org"]


@pytest.mark.parametrize("query", ["since=yesterday", "until=2026-13-01", "since=2026-11-02T25:00"])
def test_a_bad_export_bound_is_a_400_naming_it(client, query):
    log_in(client)
    response = client.get(f"/_fallback/admin/export.csv?{query}")
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith(query.split("=")[0] + ": expected")


def test_admin_pages_are_never_cached(client):
    assert client.get("/_fallback/admin").headers["Cache-Control"] == "no-store"


def test_the_dashboard_shows_probes_incidents_and_checker_health(client, storage):
    storage.checker.claim("host:1", 60)
    storage.checker.record_round(
        "host:1",
        [
            {
                "url": "http://127.0.0.1:9/",
                "ok": 0,
                "latency_ms": 1234,
                "status": 503,
                "reason": "HTTP 503",
                "control": 0,
            }
        ],
        network_doubt=False,
        note=None,
    )
    storage.flag.flip("unknown", "down", "http://127.0.0.1:9/: HTTP 503")
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    assert "1234 ms" in html and "HTTP 503" in html
    assert "ongoing" in html
    assert "The checker is not running" not in html


def test_the_dashboard_warns_when_the_checker_is_not_running(client):
    log_in(client)
    assert "The checker is not running" in client.get("/_fallback/admin").get_data(as_text=True)


def test_the_latency_chart_marks_failures_and_the_limit():
    from fallback.team.charts import latency_chart

    probes = [
        StoredProbe(
            id=n,
            at="2026-11-28T20:00:0%d.000000+00:00" % n,
            url="https://example.org/",
            ok=n != 2,
            latency_ms=100 * n,
            status=503 if n == 2 else 200,
            reason="HTTP 503" if n == 2 else "ok",
            control=False,
        )
        for n in range(1, 4)
    ]
    svg = str(latency_chart(probes, 2000))
    assert svg.count('class="ok"') == 2 and svg.count('class="fail"') == 1
    assert 'class="limit"' in svg and "1 failed" in svg and "<script" not in svg
    assert str(latency_chart([], 2000)) == ""


def test_the_dashboard_refreshes_itself_with_its_own_script_only(client):
    log_in(client)
    page = client.get("/_fallback/admin")
    html = page.get_data(as_text=True)
    assert '<script src="/_fallback/admin/app.js" defer></script>' in html
    assert '<meta http-equiv="refresh"' in html  # inside <noscript>, for browsers without JavaScript
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = client.get("/_fallback/admin/app.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert b"/_fallback/admin/status.json" in script.data


def seed(storage, count):
    from fallback.storage import NewLead

    for number in range(count):
        storage.leads.save(NewLead(f"lead{number}@example.org", name=f"Person {number}", message="hello"))


def test_the_leads_table_searches_and_pages(client, storage):
    seed(storage, 30)
    storage.leads.save(__import__("fallback.storage", fromlist=["NewLead"]).NewLead("zoe@example.org", name="Zoé 50%"))
    log_in(client)
    first = client.get("/_fallback/admin").get_data(as_text=True)
    assert "31 leads, page 1 of 2" in first and "zoe@example.org" in first
    second = client.get("/_fallback/admin?page=2").get_data(as_text=True)
    assert "lead0@example.org" in second and "zoe@example.org" not in second
    found = client.get("/_fallback/admin?q=50%25").get_data(as_text=True)
    assert "1 lead matching" in found and "zoe@example.org" in found and "lead5@" not in found
    assert client.get("/_fallback/admin?page=abc").status_code == 200


def test_an_admin_deletes_one_lead(client, storage):
    seed(storage, 2)
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    lead_id = storage.leads.search("lead1@")[0][0]["id"]
    response = client.post(f"/_fallback/admin/leads/{lead_id}/delete", data={"csrf_token": csrf_token(html)})
    assert response.status_code == 303
    assert [lead["email"] for lead in storage.leads.iter()] == ["lead0@example.org"]
    assert (
        client.post(f"/_fallback/admin/leads/{lead_id}/delete", data={"csrf_token": csrf_token(html)}).status_code
        == 404
    )
    assert client.post("/_fallback/admin/leads/1/delete", data={}).status_code == 400


def test_a_mode_set_from_the_admin_page_is_logged_with_who_what_until_and_why(client, storage, caplog):
    caplog.set_level(logging.INFO, "fallback.mode")
    log_in(client)
    set_mode(client, mode="down", duration="2h", reason="TV at 8")
    [record] = caplog.records
    until = storage.flag.read().mode_until.isoformat(timespec="microseconds")
    assert record.getMessage() == f"mode set to down by admin (web), until {until}, reason: 'TV at 8'"
