"""A visitor under admission: sent on at once under the rate, else a signed place, an honest wait and the form."""

import re
import time
from datetime import timedelta

import pytest
from helpers import live_delay, refuse_writes

from fallback.serving.app import create_app
from fallback.web.admission import COOKIE, cookie_value

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def env(env):
    return {**env, "FALLBACK_ADMIT_RATE": "30/minute"}


class Clock:
    def __init__(self) -> None:
        self.now = time.time() + 5  # past the gate's start: it banked its half-second's worth

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app):
    clock = Clock()
    app.extensions["fallback"].admission.wall = clock
    return clock


def visitor(app):
    return app.test_client()


def place_cookie(response) -> str:
    return cookie_value(response.headers["Set-Cookie"].split(";", 1)[0])


def test_a_visitor_under_the_rate_is_sent_on_at_once_and_not_made_to_wait_for_30_minutes(app, clock):
    client = visitor(app)
    response = client.get("/pricing?plan=pro")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/pricing?plan=pro")
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(COOKIE + "=") and "Max-Age=1800" in cookie and "HttpOnly" in cookie
    # Many others arrive: a queue forms; this visitor, once sent on, still goes straight through.
    for _ in range(5):
        visitor(app).get("/")
    clock.now += 29 * 60
    again = client.get("/pricing")
    assert again.status_code == 302 and "Set-Cookie" not in again.headers


def test_over_the_rate_a_new_visitor_waits_with_their_place_and_an_honest_estimate(app, clock):
    assert visitor(app).get("/").status_code == 302  # the half second banked: one visitor at 0.5/s
    waiting = visitor(app)
    response = waiting.get("/shop", headers={"Accept-Language": "en"})
    assert response.status_code == 503
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Retry-After"] == "2"
    html = response.get_data(as_text=True)
    assert "You are number 1 in line" in html and "about 2 seconds" in html
    assert 'action="/_fallback/contact"' in html and 'name="token" value="' in html
    assert "Max-Age=21600" in response.headers["Set-Cookie"]


def test_reloading_keeps_the_place_and_the_turn_comes_at_the_rate(app, clock):
    visitor(app).get("/")
    first, second = visitor(app), visitor(app)
    assert first.get("/").status_code == 503
    assert second.get("/").headers["Retry-After"] == "4"
    clock.now += 1
    again = second.get("/")
    assert again.status_code == 503 and "Set-Cookie" not in again.headers
    assert again.headers["Retry-After"] == "3"
    assert "number 2 in line" in again.get_data(as_text=True)
    clock.now += 1.5
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 503
    clock.now += 2
    admitted = second.get("/")
    assert admitted.status_code == 302 and "Max-Age=1800" in admitted.headers["Set-Cookie"]


def test_a_forged_or_foreign_place_cookie_buys_no_earlier_turn(app, clock, settings, storage):
    visitor(app).get("/")
    client = visitor(app)
    client.set_cookie(COOKIE, "p.0.9999999999.forged")
    assert client.get("/").status_code == 503
    other_app = create_app(settings.__class__.from_env({**_env(settings), "FALLBACK_SECRET_KEY": "another"}), storage)
    foreign = other_app.extensions["fallback"].admission.cookie(f"a.{int(clock.now) + 600}", 600)
    stranger = visitor(app)
    stranger.set_cookie(COOKIE, cookie_value(foreign.split(";", 1)[0]))
    assert stranger.get("/").status_code == 503


def _env(settings) -> dict:
    return {
        "FALLBACK_MAIN_URL": settings.main_url,
        "FALLBACK_DATABASE": settings.database,
        "FALLBACK_ADMIT_RATE": "1/second",
    }


def test_a_waiting_visitor_can_leave_a_lead_and_keeps_their_place(app, clock, storage):
    visitor(app).get("/")
    client = visitor(app)
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    posted = client.post(
        "/_fallback/contact", data={"token": token, "path": "/", "email": "queue@example.com", "consent": "y"}
    )
    assert posted.status_code == 303 and "Set-Cookie" not in posted.headers
    assert storage.leads.count().leads == 1
    again = client.get("/")
    assert again.status_code == 503 and "number 1 in line" in again.get_data(as_text=True)


def test_a_waiting_visitor_asking_for_json_gets_their_place_and_wait(app, clock):
    visitor(app).get("/")
    response = visitor(app).get("/", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.get_json() == {"state": "waiting", "place_in_line": 1, "retry_after": 2}


def test_the_waiting_page_is_in_french_for_a_french_visitor(app, clock):
    visitor(app).get("/")
    html = visitor(app).get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "file" in html and "secondes" in html


def test_the_down_page_gives_no_place(app, clock, down):
    response = visitor(app).get("/")
    assert response.status_code == 503 and "Set-Cookie" not in response.headers


def test_a_visitor_in_line_when_the_site_falls_looks_again_within_seconds_and_keeps_their_place(app, clock, storage):
    visitor(app).get("/")
    waiting = visitor(app)
    told = waiting.get("/")
    assert told.status_code == 503 and "number 1 in line" in told.get_data(as_text=True)
    storage.flag.set_mode("down", reason="test")
    app.extensions["fallback"].flag.invalidate()
    for _ in range(2):  # Flask renders the first page of a flag; the fast path serves the next from memory
        page = waiting.get("/")
        assert page.status_code == 503 and page.headers["Retry-After"] == "15"
        assert page.headers["Cache-Control"] == "no-store" and "Set-Cookie" not in page.headers
        assert 10 <= live_delay(page.get_data(as_text=True)) <= 20
    assert waiting.get("/", headers={"Accept": "application/json"}).get_json()["retry_after"] == 15
    newcomer = visitor(app).get("/")
    assert newcomer.headers["Retry-After"] == "120" and "s-maxage" in newcomer.headers["Cache-Control"]
    storage.flag.set_mode("down", until=storage.clock() + timedelta(seconds=8), reason="test")
    app.extensions["fallback"].flag.invalidate()
    assert waiting.get("/").headers["Retry-After"] == "8"  # a forced outage that ends sooner: its own end
    storage.flag.set_mode("auto", reason="test")
    app.extensions["fallback"].flag.invalidate()
    again = waiting.get("/")
    assert again.status_code == 503 and "number 1 in line" in again.get_data(as_text=True)


def test_without_a_rate_nobody_gets_a_cookie(settings, storage):
    plain = create_app(settings.__class__.from_env({**_env(settings), "FALLBACK_ADMIT_RATE": "off"}), storage)
    response = plain.test_client().get("/")
    assert response.status_code == 302 and "Set-Cookie" not in response.headers


@pytest.mark.sqlite_only("PRAGMA query_only")
def test_when_the_gate_cannot_be_written_visitors_are_sent_on_unmetered_and_the_log_says_so(
    app, clock, storage, caplog, backend
):
    refuse_writes(storage)
    response = visitor(app).get("/")
    assert response.status_code == 302 and "Set-Cookie" not in response.headers
    assert "admission cannot reach its gate" in caplog.text
    refuse_writes(storage, refuse=False)
    assert "Set-Cookie" in visitor(app).get("/").headers
    assert "admission reaches its gate again" in caplog.text


def test_visitors_who_come_back_together_after_their_turn_go_on_one_at_a_time_at_the_rate(app, clock):
    visitor(app).get("/")
    late = [visitor(app) for _ in range(3)]
    assert all(client.get("/").status_code == 503 for client in late)
    clock.now += 30  # every turn has come; they all come back in the same instant
    answers = [client.get("/") for client in late]
    assert [answer.status_code for answer in answers] == [302, 503, 503]
    # 30 a minute: one every 2 s (a quarter of a second's worth is less than one visitor, so none extra at once).
    assert [answer.headers["Retry-After"] for answer in answers[1:]] == ["2", "4"]
    assert "number 1 in line" in answers[1].get_data(as_text=True)
    # Somebody new, whose turn has come as well, is booked behind them rather than sent ahead.
    newcomer = visitor(app).get("/")
    assert newcomer.status_code == 503 and int(newcomer.headers["Retry-After"]) > 4
    clock.now += 2
    assert [client.get("/").status_code for client in late[1:]] == [302, 503]
    clock.now += 2
    assert late[2].get("/").status_code == 302


def test_booked_visitors_who_come_back_late_together_book_again_and_go_on_one_at_a_time(app, clock):
    visitor(app).get("/")
    late = [visitor(app) for _ in range(3)]
    assert all(client.get("/").status_code == 503 for client in late)
    clock.now += 30
    assert [client.get("/").status_code for client in late] == [302, 503, 503]  # booked 2 s and 4 s on
    clock.now += 4.5  # both booked times have passed: they come back late, in the same instant
    again = [client.get("/") for client in late[1:]]
    assert [answer.status_code for answer in again] == [503, 503]
    assert [answer.headers["Retry-After"] for answer in again] == ["2", "4"]


def test_a_booking_kept_long_past_its_time_lapses_and_the_visitor_books_again(app, clock, storage):
    visitor(app).get("/")
    first, second = visitor(app), visitor(app)
    first.get("/"), second.get("/")
    clock.now += 30
    assert first.get("/").status_code == 302
    assert second.get("/").status_code == 503  # booked 2 s on
    clock.now += 60  # they went away; meanwhile others were booked
    storage.admission.book(clock.now)
    storage.admission.book(clock.now)
    again = second.get("/")
    assert again.status_code == 503 and again.headers["Retry-After"] == "4"


def test_the_waiting_page_looks_again_by_the_visitors_turn_to_the_millisecond_and_without_script_too(app, clock):
    visitor(app).get("/")
    html = visitor(app).get("/").get_data(as_text=True)
    assert 'data-refresh="2.000"' in html
    assert '<meta http-equiv="refresh" content="2">' in html
    for _ in range(40):
        visitor(app).get("/")
    far = visitor(app).get("/")
    wait = int(far.headers["Retry-After"])
    refresh = float(re.search(r'data-refresh="([\d.]+)"', far.get_data(as_text=True)).group(1))
    assert 0.7 * (wait - 1) <= refresh <= wait
