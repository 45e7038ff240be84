"""The control API: its token, every route and every bad input, answers checked against its own OpenAPI document."""

from __future__ import annotations

import threading

import pytest
from helpers import assert_problem
from openapi_check import check_answer

from fallback.core.settings import Settings
from fallback.serving.app import create_app
from fallback.storage import NewLead, StorageError
from fallback.storage.records import LeadCounts
from fallback.team.openapi import document

BACKENDS = ["sqlite", "postgres"]
TOKEN = "api-token-for-the-test-suite"
EXPORT_TOKEN = "export-token-for-the-test-suite"
PREFIX = "/_fallback/api/v1"
DOCUMENT = document()


@pytest.fixture
def env(env):
    """The shared test environment, with the API and export tokens set."""
    return {**env, "FALLBACK_API_TOKEN": TOKEN, "FALLBACK_EXPORT_TOKEN": EXPORT_TOKEN}


def call(client, method: str, route: str, token: str | None = TOKEN, **kwargs):
    """One API request, its answer checked against the OpenAPI document."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.open(PREFIX + route, method=method, headers=headers, **kwargs)
    check_answer(DOCUMENT, method, route.split("?")[0], response)
    return response


def test_every_route_answers_404_when_no_api_token_is_set(env, storage):
    app = create_app(Settings.from_env({**env, "FALLBACK_API_TOKEN": ""}), storage)
    client = app.test_client()
    for method, route in (("GET", "/status"), ("PUT", "/mode"), ("GET", "/leads"), ("DELETE", "/leads?email=a@b.c")):
        assert (
            client.open(PREFIX + route, method=method, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
        )
    assert client.get(PREFIX + "/openapi.json").status_code == 404


def test_a_request_without_a_token_is_a_401_problem_asking_for_a_bearer(client):
    response = call(client, "GET", "/status", token=None)
    assert_problem(response, 401, "no token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_token_is_a_401_problem(client):
    response = call(client, "GET", "/status", token="not-the-token")
    assert_problem(response, 401, "wrong token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.usefixtures("still_clock")
def test_an_address_that_keeps_sending_wrong_tokens_is_refused_even_the_right_one(client):
    for _ in range(10):
        assert call(client, "GET", "/status", token="guess").status_code == 401
    refused = call(client, "GET", "/status", token="guess")
    assert_problem(refused, 429, "wait")
    assert int(refused.headers["Retry-After"]) > 0
    assert call(client, "GET", "/status").status_code == 429


def test_right_tokens_spend_nothing_of_the_failure_budget(client):
    for _ in range(30):
        assert call(client, "GET", "/status").status_code == 200


def test_status_is_the_full_document(client, storage):
    storage.leads.save(NewLead("paul@example.org", message="hello"))
    response = call(client, "GET", "/status")
    body = response.get_json()
    assert body["mode"] == "auto" and body["leads"] == 1 and "checker" in body
    assert response.headers["Cache-Control"] == "no-store"


def test_put_mode_forces_the_page_on_for_a_while_recorded_as_by_api(client, storage):
    response = call(client, "PUT", "/mode", json={"mode": "down", "for": "30m", "reason": "migration"})
    assert response.status_code == 200
    flag = response.get_json()
    assert flag["mode"] == "down" and flag["served"] == "down" and flag["by"] == "api"
    assert flag["mode_until"] and flag["reason"] == "migration"
    assert storage.flag.mode_changes(1)[0].by == "api"
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 503  # this worker, at once
    assert client.get("/_fallback/status.json").get_json()["mode"] == "down"


def test_put_mode_auto_hands_back_to_the_checker(client):
    call(client, "PUT", "/mode", json={"mode": "down"})
    assert call(client, "PUT", "/mode", json={"mode": "auto"}).get_json()["mode"] == "auto"


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        ("{not json", 400, "JSON object"),
        ("[" * 5000, 400, "JSON object"),
        ("[1, 2]", 400, "not list"),
        ('{"mode": "sideways"}', 400, "mode must be one of"),
        ('{"mode": "down", "for": "soon"}', 400, "not a duration"),
        ('{"mode": "down", "for": "0s"}', 400, "between 1 second"),
        ('{"mode": "down", "for": 30}', 400, "for must be a text"),
        ('{"mode": "auto", "for": "1h"}', 400, "only applies"),
        ('{"mode": "down", "reason": 7}', 400, "reason must be text"),
        ('{"mode": "down", "until": "tomorrow"}', 400, "unknown fields: until"),
    ],
)
def test_put_mode_refuses_bad_input_with_a_problem(client, storage, body, status, word):
    response = call(client, "PUT", "/mode", data=body, content_type="application/json")
    assert_problem(response, status, word)
    assert storage.flag.read().mode == "auto"


def test_the_export_token_reads_leads_but_changes_nothing(client):
    assert call(client, "GET", "/leads", token=EXPORT_TOKEN).status_code == 200
    assert_problem(call(client, "PUT", "/mode", token=EXPORT_TOKEN, json={"mode": "down"}), 403, "only read leads")
    assert_problem(call(client, "GET", "/status", token=EXPORT_TOKEN), 403, "only read leads")


def test_leads_come_with_their_messages_and_without_spam(client, storage):
    storage.leads.save(NewLead("Paul@Example.org", name="Paul", message="first"))
    storage.leads.save(NewLead("paul@example.org", message="second"))
    storage.leads.save(NewLead("bot@example.org", spam_reason="honeypot"))
    body = call(client, "GET", "/leads").get_json()
    assert body["next"] is None
    [lead] = body["leads"]
    assert lead["email"] == "Paul@Example.org" and lead["submissions"] == 2  # the first spelling stays
    assert [message["message"] for message in lead["messages"]] == ["first", "second"]


def test_leads_since_leaves_out_older_ones(client, storage):
    storage.leads.save(NewLead("paul@example.org"))
    assert call(client, "GET", "/leads?since=2999-01-01").get_json() == {"leads": [], "next": None}
    assert_problem(call(client, "GET", "/leads?since=yesterday"), 400, "since")


def test_paging_meets_every_lead_exactly_once_while_new_ones_arrive(client, storage):
    for n in range(25):
        storage.leads.save(NewLead(f"early{n}@example.org"))
    arriving = threading.Event()

    def arrive():
        n = 0
        while not arriving.is_set():
            storage.leads.save(NewLead(f"late{n}@example.org"))
            n += 1

    writer = threading.Thread(target=arrive)
    writer.start()
    seen, cursor = [], None
    try:
        while True:
            body = call(client, "GET", "/leads?limit=7" + (f"&cursor={cursor}" if cursor else "")).get_json()
            seen += [lead["email"] for lead in body["leads"]]
            cursor = body["next"]
            if cursor is None:
                break
    finally:
        arriving.set()
        writer.join()
    assert len(seen) == len(set(seen))
    assert {f"early{n}@example.org" for n in range(25)} <= set(seen)
    late = sorted(int(email[4:].split("@")[0]) for email in seen if email.startswith("late"))
    assert late == list(range(len(late)))  # no late lead skipped before the last one seen


@pytest.mark.parametrize("limit", ["0", "1001", "ten", "-1"])
def test_a_bad_limit_is_a_400_problem(client, limit):
    assert_problem(call(client, "GET", f"/leads?limit={limit}"), 400, "limit")


def test_a_tampered_cursor_is_a_400_problem(client, storage):
    for n in range(3):
        storage.leads.save(NewLead(f"lead{n}@example.org"))
    cursor = call(client, "GET", "/leads?limit=1").get_json()["next"]
    payload, _, signature = cursor.rpartition(".")
    forged = payload.replace(payload[-2:], "AA") + "." + signature
    assert_problem(call(client, "GET", f"/leads?cursor={forged}"), 400, "cursor")
    assert_problem(call(client, "GET", "/leads?cursor=eyJhZnRlciI6MH0.bogus"), 400, "cursor")


def test_delete_leads_forgets_one_person_and_says_how_many(client, storage):
    storage.leads.save(NewLead("Paul@Example.org", message="hi"))
    storage.leads.save(NewLead("paul@example.org", spam_reason="honeypot"))
    storage.leads.save(NewLead("anne@example.org"))
    body = call(client, "DELETE", "/leads?email=PAUL@example.org").get_json()
    assert body == {"email": "PAUL@example.org", "erased": 2}
    assert call(client, "DELETE", "/leads?email=nobody@example.org").get_json()["erased"] == 0
    assert storage.leads.count() == LeadCounts(leads=1, spam=0)


def test_delete_leads_without_an_address_is_a_400_problem(client):
    assert_problem(call(client, "DELETE", "/leads"), 400, "address")


def test_an_erasure_that_cannot_finish_is_a_503_problem_saying_why(client, storage, monkeypatch):
    def blocked(email):
        raise StorageError("erased 1 lead(s) from the tables, but a reader kept the WAL")

    monkeypatch.setattr(storage.leads, "forget", blocked)
    body = assert_problem(call(client, "DELETE", "/leads?email=paul@example.org"), 503, "a reader kept the WAL")
    assert "again" in body["detail"]


def test_unknown_routes_and_methods_are_problems(client):
    assert_problem(client.get(PREFIX + "/nothing", headers={"Authorization": f"Bearer {TOKEN}"}), 404, "nothing")
    response = client.post(PREFIX + "/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert_problem(response, 405, "GET")
    assert response.headers["Allow"] == "GET"


def test_the_openapi_document_is_3_1_and_describes_every_route(client):
    body = call(client, "GET", "/openapi.json").get_json()
    assert body["openapi"] == "3.1.0"
    assert set(body["paths"]) == {
        "/status",
        "/mode",
        "/notice",
        "/leads",
        "/spam",
        "/spam/keep",
        "/verdicts",
        "/openapi.json",
    }
    assert set(body["paths"]["/leads"]) == {"get", "delete"}
