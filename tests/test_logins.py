"""Log-in brute force: failures limited per address (IPv6 per /64) and globally, whatever FALLBACK_RATE_LIMIT says."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from helpers import ADMIN_PASSWORD, FixedClock, log_in

from fallback.core.settings import ConfigError, Settings
from fallback.serving.app import create_app
from fallback.team import logins
from fallback.web import guard

BACKENDS = ["sqlite", "postgres"]


def from_address(app, address: str):
    """A test client whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.mark.usefixtures("still_clock")
def test_ten_failures_from_one_address_lock_it_out_even_with_rate_limit_0(app, settings):
    assert settings.rate_limit is None
    client = from_address(app, "198.51.100.7")
    assert [log_in(client, "wrong guess").status_code for _ in range(10)] == [401] * 10
    refused = log_in(client, ADMIN_PASSWORD)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert log_in(from_address(app, "198.51.100.8"), ADMIN_PASSWORD).status_code == 303


@pytest.mark.usefixtures("still_clock")
def test_the_addresses_of_one_ipv6_64_share_one_budget(app):
    for host in range(10):
        assert log_in(from_address(app, f"2001:db8:1:2::{host + 1:x}"), "wrong guess").status_code == 401
    assert log_in(from_address(app, "2001:db8:1:2:ffff::1"), ADMIN_PASSWORD).status_code == 429
    assert log_in(from_address(app, "2001:db8:1:3::1"), ADMIN_PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("address", "group"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::/64"),
        ("2001:db8:0:0:ffff:1:2:3", "2001:db8::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
        (None, "unknown"),
    ],
)
def test_an_address_is_grouped_as_its_owner_holds_it(address, group):
    assert logins.address_group(address) == group


@pytest.mark.usefixtures("still_clock")
def test_a_successful_log_in_costs_no_failure_budget(app):
    client = from_address(app, "198.51.100.9")
    for _ in range(9):
        log_in(client, "wrong guess")
    for _ in range(5):
        assert log_in(from_address(app, "198.51.100.9"), ADMIN_PASSWORD).status_code == 303
    assert log_in(client, "wrong guess").status_code == 401
    assert log_in(client, "wrong guess").status_code == 429


def test_failures_from_many_networks_spend_a_global_budget_with_growing_waits(app, storage, monkeypatch):
    monkeypatch.setattr(logins, "GLOBAL_BUDGET", ((8, 2 * 3600), (4, 15 * 60)))
    clock = FixedClock(datetime(2026, 11, 28, 20, 0, tzinfo=UTC))
    storage.db.clock = clock
    networks = iter(range(1, 1000))

    def attempt(password="wrong guess"):
        return log_in(from_address(app, f"2001:db8:{next(networks):x}::1"), password)

    assert [attempt().status_code for _ in range(4)] == [401] * 4
    first = attempt()
    assert first.status_code == 429 and int(first.headers["Retry-After"]) == 15 * 60
    assert "many addresses" in first.get_data(as_text=True) and "this address" not in first.get_data(as_text=True)
    clock.now += timedelta(minutes=15)
    assert [attempt().status_code for _ in range(4)] == [401] * 4
    second = attempt()
    assert second.status_code == 429 and int(second.headers["Retry-After"]) > int(first.headers["Retry-After"])
    clock.now += timedelta(hours=2)
    assert attempt().status_code == 401


def test_the_right_password_from_an_address_without_failures_gets_in_while_the_global_budget_is_spent(
    app, storage, monkeypatch
):
    monkeypatch.setattr(logins, "GLOBAL_BUDGET", ((4, 15 * 60),))
    storage.db.clock = FixedClock(datetime(2026, 11, 28, 20, 0, tzinfo=UTC))
    for network in range(1, 6):
        log_in(from_address(app, f"2001:db8:{network:x}::1"), "wrong guess")
    assert log_in(from_address(app, "2001:db8:99::1"), "wrong guess").status_code == 429
    # The owner, who never failed, gets in; an address that failed once is heard no more until the window ends.
    assert log_in(from_address(app, "2001:db8:100::1"), ADMIN_PASSWORD).status_code == 303
    assert log_in(from_address(app, "2001:db8:1::1"), ADMIN_PASSWORD).status_code == 429


def test_the_global_budget_holds_whatever_rate_limit_says(env, monkeypatch):
    monkeypatch.setattr(logins, "GLOBAL_BUDGET", ((2, 15 * 60),))
    for limit in ("0", "1000/second"):
        env["FALLBACK_RATE_LIMIT"] = limit
        app = create_app(Settings.from_env(env))
        app.extensions["fallback"].storage.limits.prune(datetime(2100, 1, 1, tzinfo=UTC))
        statuses = [log_in(from_address(app, f"192.0.2.{n}"), "wrong guess").status_code for n in range(1, 4)]
        assert statuses == [401, 401, 429]


def test_failed_log_ins_are_logged_with_the_client_address(app, caplog):
    with caplog.at_level(logging.WARNING, logger="fallback.tokens"):
        log_in(from_address(app, "203.0.113.5"), "wrong guess")
    assert "wrong admin password from 203.0.113.5" in caplog.text
    assert "wrong guess" not in caplog.text


@pytest.mark.parametrize("password", ["short", "eleven char", "           x"])
def test_an_admin_password_under_12_characters_stops_start_up_without_showing_it(env, password):
    env["FALLBACK_ADMIN_PASSWORD"] = password
    with pytest.raises(ConfigError, match="FALLBACK_ADMIN_PASSWORD") as raised:
        Settings.from_env(env)
    assert "12 characters" in str(raised.value) and password not in str(raised.value)


def test_the_test_password_is_long_enough():
    assert len(ADMIN_PASSWORD) >= 12


def test_x_forwarded_for_without_trusted_proxies_is_warned_about_once(app, caplog, monkeypatch):
    monkeypatch.setattr(guard.ForwardedWarning, "warned", False)
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        client.get("/")
        assert "FALLBACK_TRUSTED_PROXIES" not in caplog.text
        for _ in range(3):
            client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
            client.get("/_fallback/admin", headers={"X-Forwarded-For": "203.0.113.9"})
    assert len([record for record in caplog.records if "FALLBACK_TRUSTED_PROXIES" in record.getMessage()]) == 1


def test_x_forwarded_for_from_a_trusted_proxy_is_not_warned_about(env, caplog, monkeypatch):
    monkeypatch.setattr(guard.ForwardedWarning, "warned", False)
    env["FALLBACK_TRUSTED_PROXIES"] = "1"
    client = create_app(Settings.from_env(env)).test_client()
    with caplog.at_level(logging.WARNING):
        client.get("/", headers={"X-Forwarded-For": "203.0.113.9"})
    assert "FALLBACK_TRUSTED_PROXIES" not in caplog.text
