"""Public views: redirect while up, the contact page while down, the form, status endpoints."""

import json
import re
from datetime import timedelta

import pytest
from helpers import contact_fields, form_token, live_delay, log_in, refuse_writes

from fallback.core.clock import utcnow
from fallback.storage import StorageError
from fallback.visitor.hotpath import HotPath

BACKENDS = ["sqlite", "postgres"]


def test_a_visitor_is_redirected_to_the_same_path_while_the_site_is_up(client):
    response = client.get("/pricing/plans?utm=tv&x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://www.example.com/pricing/plans?utm=tv&x=1"
    assert response.headers["Cache-Control"] == "no-store"


def test_head_is_redirected_too(client):
    assert client.head("/a").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/@evil.example",
        "/%09/evil.example",
        "/\t/evil.example",
        "/..//evil.example",
    ],
)
def test_a_redirect_never_leaves_the_main_origin(client, path):
    # PATH_INFO as a server hands it over: the test client would read "//host" as a host.
    location = client.get("/", environ_overrides={"PATH_INFO": path}).headers["Location"]
    assert location.startswith("https://www.example.com/")
    assert "\\" not in location and "\t" not in location


def test_it_serves_the_page_instead_of_looping_when_the_main_host_is_its_own(client):
    response = client.get("/x", headers={"Host": "www.example.com"})
    assert response.status_code == 503


def test_the_contact_page_is_a_503_with_retry_after_while_down(client, down):
    response = client.get("/pricing?x=1")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["Cache-Control"] == "public, max-age=0, s-maxage=5"
    assert "Set-Cookie" not in response.headers
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    assert 'name="path" value="/pricing?x=1"' in html
    assert '<label for="email">' in html
    assert len(response.data) < 20_000


def test_the_page_escapes_the_path_it_embeds(client, down):
    html = client.get('/"><script>alert(1)</script>').get_data(as_text=True)
    assert "<script>" not in html


def test_retry_after_follows_a_forced_expiry(client, storage, app):
    from datetime import timedelta

    from fallback.core.clock import utcnow

    storage.flag.set_mode("down", until=utcnow() + timedelta(minutes=30))
    app.extensions["fallback"].flag.invalidate()
    assert 1790 <= int(client.get("/").headers["Retry-After"]) <= 1800


def test_a_json_client_gets_a_json_503(client, down):
    response = client.get("/api/orders", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.get_json()["state"] == "down"
    assert client.get("/", headers={"Accept": "*/*"}).mimetype == "text/html"


def test_robots_txt_is_always_200(client, down):
    assert client.get("/robots.txt").status_code == 200


def test_unknown_app_routes_are_404_not_visitor_paths(client, down):
    assert client.get("/_fallback/nope").status_code == 404


def test_every_answer_has_the_security_headers(client, down):
    for response in (client.get("/"), client.get("/_fallback/thanks"), client.get("/robots.txt")):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        policy = response.headers["Content-Security-Policy"]
        # Scripts only from fallback itself (the page's live.js): nothing inline, nothing from elsewhere.
        assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"]


def test_a_valid_submission_is_stored_then_thanked(client, down, storage):
    response = client.post("/_fallback/contact", data=contact_fields(client, name="Paul", message="Call me"))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/_fallback/thanks")
    [lead] = list(storage.leads.iter())
    assert (lead["email"], lead["name"], lead["consent"]) == ("paul@example.org", "Paul", 1)
    assert [sent["message"] for sent in lead["messages"]] == ["Call me"]
    assert lead["consent_version"] and lead["consent_text"]
    assert client.get("/_fallback/thanks").status_code == 200


def test_two_cases_of_one_address_make_one_lead(client, down, storage):
    client.post("/_fallback/contact", data=contact_fields(client, email="Paul@Example.org"))
    client.post("/_fallback/contact", data=contact_fields(client, email="paul@example.org"))
    [lead] = list(storage.leads.iter())
    assert lead["submissions"] == 2


def test_invalid_input_is_a_400_with_errors_beside_fields_and_input_kept(client, down, storage):
    response = client.post(
        "/_fallback/contact", data=contact_fields(client, email="not-an-address", name="Paul & Co", consent=None)
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="email-error"' in html and 'aria-describedby="email-error"' in html
    assert 'id="consent-error"' in html
    assert 'value="not-an-address"' in html and 'value="Paul &amp; Co"' in html
    assert 'role="alert"' in html
    assert form_token(html)
    assert list(storage.leads.iter()) == []


@pytest.mark.parametrize("token", [None, "", "garbage", "1a2b.c3d4"])
def test_a_missing_or_forged_token_is_a_400_with_a_fresh_token(client, down, storage, token):
    data = contact_fields(client, token=token)
    response = client.post("/_fallback/contact", data=data)
    assert response.status_code == 400
    assert form_token(response.get_data(as_text=True)) != token
    assert list(storage.leads.iter()) == []


def test_a_filled_honeypot_is_thanked_but_kept_apart(client, down, storage):
    response = client.post("/_fallback/contact", data=contact_fields(client, website="http://spam.example"))
    assert response.status_code == 303
    assert list(storage.leads.iter()) == []
    assert storage.leads.recent(spam=True)[0]["spam_reason"] == "honeypot"


def test_a_form_sent_too_fast_is_thanked_but_kept_apart(env, tmp_path):
    from fallback.core.settings import Settings
    from fallback.serving.app import create_app

    env["FALLBACK_FORM_MIN_SECONDS"] = "3"
    app = create_app(Settings.from_env(env))
    storage = app.extensions["fallback"].storage
    storage.flag.set_mode("down")
    client = app.test_client()
    assert client.post("/_fallback/contact", data=contact_fields(client)).status_code == 303
    assert list(storage.leads.iter()) == []
    assert "after the page was shown" in storage.leads.recent(spam=True)[0]["spam_reason"]


@pytest.mark.sqlite_only("PRAGMA query_only")
def test_a_lead_the_database_refuses_is_not_thanked(client, down, storage):
    data = contact_fields(client)
    refuse_writes(storage)
    response = client.post("/_fallback/contact", data=data)
    assert response.status_code == 503
    assert "not saved" in response.get_data(as_text=True)
    refuse_writes(storage, False)
    assert list(storage.leads.iter()) == []


def test_status_json_tells_state_mode_and_since(client, down):
    document = json.loads(client.get("/_fallback/status.json").data)
    assert document["state"] == "down" and document["mode"] == "down"
    assert re.match(r"\d{4}-\d\d-\d\dT", document["since"])


def test_a_new_database_reports_unknown(client):
    assert client.get("/_fallback/status.json").get_json()["state"] == "unknown"


def beat(storage):
    storage.checker.claim("test-checker", 60)
    storage.checker.record_round("test-checker", [], network_doubt=False, note=None)


def test_healthz_is_200_while_the_database_is_writable_and_the_checker_beats(client, storage, monkeypatch):
    beat(storage)
    assert client.get("/_fallback/healthz").status_code == 200

    def refuse():
        raise StorageError("the database is not writable: disk I/O error")

    monkeypatch.setattr(storage, "check_writable", refuse)
    response = client.get("/_fallback/healthz")
    assert response.status_code == 503 and response.data == b"database\n"


def test_the_stylesheet_is_served_from_the_templates(client):
    response = client.get("/_fallback/page.css")
    assert response.status_code == 200 and response.mimetype == "text/css"


def test_an_operator_template_folder_overrides_the_shipped_page(env, tmp_path):
    from fallback.core.settings import Settings
    from fallback.serving.app import create_app

    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "thanks.html").write_text("Merci from {{ site_name }}")
    env["FALLBACK_TEMPLATES"] = str(tmp_path / "brand")
    env["FALLBACK_SITE_NAME"] = "Acme"
    client = create_app(Settings.from_env(env)).test_client()
    assert client.get("/_fallback/thanks").data == b"Merci from Acme"


def test_healthz_is_503_until_the_checker_has_run_a_round(client, storage, caplog):
    response = client.get("/_fallback/healthz")
    assert response.status_code == 503 and response.data == b"checker\n"
    assert "checker has not completed a round" in caplog.text


def test_healthz_is_503_when_the_heartbeat_is_stale(client, storage, settings, caplog):
    from datetime import timedelta

    from fallback.core.clock import utcnow

    beat(storage)
    stale = settings.check_interval * 3 + settings.check_timeout + 1
    storage.db.clock = lambda: utcnow() - timedelta(seconds=stale)
    beat(storage)
    response = client.get("/_fallback/healthz")
    assert response.status_code == 503 and response.data == b"checker\n"
    assert "last round ended" in caplog.text


def test_the_admin_status_json_reports_the_checker_and_its_doubts(client, storage):
    storage.checker.claim("host:1", 60)
    storage.checker.record_round("host:1", [], network_doubt=True, note="network in doubt: control failed")
    log_in(client)
    document = client.get("/_fallback/admin/status.json").get_json()
    assert document["network_doubt"] is True
    assert document["checker"]["owner"] == "host:1" and document["checker"]["healthy"]


def test_the_page_is_rendered_once_per_flag_change_with_a_fresh_token_each_time(
    client, down, storage, app, monkeypatch
):
    import fallback.visitor.pages

    renders = []
    original = fallback.visitor.pages.render_page
    monkeypatch.setattr(
        fallback.visitor.pages, "render_page", lambda *args, **kw: renders.append(1) or original(*args, **kw)
    )
    # (the second request is answered by the WSGI fast path, from the page the first one rendered)
    first, second = client.get("/a").get_data(as_text=True), client.get("/b?x=1").get_data(as_text=True)
    assert len(renders) == 1
    assert form_token(first) != form_token(second)
    assert 'name="path" value="/b?x=1"' in second
    storage.flag.set_mode("down", reason="changed")
    app.extensions["fallback"].flag.invalidate()
    client.get("/a")
    assert len(renders) == 2


def test_the_page_says_when_the_site_is_back_only_when_it_is_known(client, storage, app):
    from datetime import timedelta

    from fallback.core.clock import utcnow

    storage.flag.set_mode("down")
    app.extensions["fallback"].flag.invalidate()
    assert "Back soon" in client.get("/").get_data(as_text=True)
    storage.flag.set_mode("down", until=utcnow() + timedelta(minutes=30))
    app.extensions["fallback"].flag.invalidate()
    assert "Back in about 30 minutes" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("main", "host", "loops"),
    [
        ("www.example.com", "www.example.com", True),
        ("www.example.com", "WWW.example.com:443", True),
        ("www.example.com:8443", "www.example.com:8443", True),
        ("www.example.com", "www.example.com:8000", False),
        ("www.example.com", "standby.example.com", False),
        ("[::1]:8000", "[::1]:8000", True),
    ],
)
def test_the_loop_guard_compares_host_names_and_non_default_ports(main, host, loops):
    from fallback.core.urls import same_host

    assert same_host(main, host) is loops


def test_a_forwarded_host_is_never_trusted(env):
    from fallback.core.settings import Settings
    from fallback.serving.app import create_app

    env["FALLBACK_TRUSTED_PROXIES"] = "1"
    client = create_app(Settings.from_env(env)).test_client()
    response = client.get("/x", headers={"X-Forwarded-Host": "www.example.com"})
    assert response.status_code == 302  # not mistaken for a loop: the page would hide a healthy site


def hot_path_of(app) -> HotPath:
    """The app's WSGI fast path, under the middleware around it (ProxyFix, or the X-Forwarded-For warning)."""
    wrapped = app.wsgi_app
    while not isinstance(wrapped, HotPath):
        wrapped = getattr(wrapped, "wsgi_app", None) or wrapped.app
    return wrapped


def test_the_fast_path_answers_visitors_without_entering_flask(client, down, app):
    client.get("/warm-up")  # Flask renders the page once for this flag version and language
    app.extensions["fallback"].flag.invalidate()
    hot_path = hot_path_of(app)

    def refuse(environ, start_response):
        raise AssertionError(f"Flask was asked for {environ['PATH_INFO']}")

    hot_path.flask_wsgi = refuse
    response = client.get("/pricing?x=1")
    assert response.status_code == 503
    assert 'name="path" value="/pricing?x=1"' in response.get_data(as_text=True)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    head = client.head("/pricing")
    assert head.status_code == 503 and head.data == b"" and int(head.headers["Content-Length"]) > 1000
    assert "Strict-Transport-Security" in client.get("/x", base_url="https://standby.test").headers


def test_a_valid_submission_is_thanked_without_entering_flask(client, down, app, storage):
    fields = contact_fields(client, name="Lean")
    asked = []
    hot_path = hot_path_of(app)
    flask_wsgi = hot_path.flask_wsgi

    def record(environ, start_response):
        asked.append(environ["PATH_INFO"])
        return flask_wsgi(environ, start_response)

    hot_path.flask_wsgi = record
    response = client.post("/_fallback/contact", data=fields)
    assert (response.status_code, response.headers["Location"]) == (303, "/_fallback/thanks")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert asked == [] and storage.leads.recent()[0]["name"] == "Lean"
    invalid = client.post("/_fallback/contact", data={**contact_fields(client), "email": "nope"})
    assert invalid.status_code == 400 and asked == ["/_fallback/contact"]


def test_the_fast_path_redirects_with_the_same_headers_as_flask(client, app):
    fast = client.get("/a/b?q=1")
    slow = client.post("/a/b?q=1")  # other methods go through Flask
    assert (fast.status_code, slow.status_code) == (302, 307)
    assert fast.headers["Location"] == slow.headers["Location"] == "https://www.example.com/a/b?q=1"
    for name in ("Cache-Control", "Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
        assert fast.headers[name] == slow.headers[name]


def test_non_ascii_paths_and_queries_are_percent_encoded_once(client):
    location = client.get("/caf%C3%A9?q=%C3%A9t%C3%A9&x=a+b").headers["Location"]
    assert location == "https://www.example.com/caf%C3%A9?q=%C3%A9t%C3%A9&x=a+b"


@pytest.mark.parametrize("path", ["/any/visitor/path", "/_fallback/status.json", "/_fallback/healthz"])
def test_every_answer_to_a_probe_carries_the_installations_mark_of_its_challenge(client, app, path):
    from fallback.checking.selfprobe import MARK_HEADER, mark, probe_key

    key = probe_key(app.config["SECRET_KEY"])
    marked = client.get(path, headers={"Fallback-Probe": "a-challenge"})
    assert marked.headers[MARK_HEADER] == mark(key, "a-challenge")
    assert MARK_HEADER not in client.get(path).headers


def test_the_fast_paths_page_is_marked_too(client, app, down):
    from fallback.checking.selfprobe import MARK_HEADER, mark, probe_key

    client.get("/warm")  # Flask renders the page once; the fast path serves it from then on
    response = client.get("/x", headers={"Fallback-Probe": "c2"})
    assert response.status_code == 503
    assert response.headers[MARK_HEADER] == mark(probe_key(app.config["SECRET_KEY"]), "c2")


def test_the_page_looks_again_by_itself_around_retry_after_each_visitor_at_another_moment(client, storage, app):
    storage.flag.set_mode("down", until=utcnow() + timedelta(seconds=100), reason="test")
    app.extensions["fallback"].flag.invalidate()
    delays = []
    for _ in range(30):
        response = client.get("/shop?item=1", headers={"Accept": "text/html"})
        assert response.status_code == 503
        retry_after = int(response.headers["Retry-After"])
        delays.append(live_delay(response.get_data(as_text=True)) / retry_after)
    assert all(0.69 <= ratio <= 1.31 for ratio in delays), delays
    assert len({round(ratio, 2) for ratio in delays}) > 5  # drawn for each visitor, not once per page


def test_the_live_script_is_served_from_here_and_a_form_sent_back_does_not_reload_itself(client, down):
    script = client.get("/_fallback/live.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "public" in script.headers["Cache-Control"]
    refused = client.post("/_fallback/contact", data={"email": "not an address", "token": "x"})
    assert refused.status_code == 400
    assert 'id="live"' not in refused.get_data(as_text=True)
