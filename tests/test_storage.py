"""Storage: schema, de-duplication, spam kept apart, the flag's history, erasure."""

from datetime import UTC, datetime, timedelta

import pytest
from helpers import refuse_writes

from fallback.storage import MIGRATIONS, NewLead, NewMessage, StorageError, open_storage
from fallback.storage.records import LeadCounts

BACKENDS = ["sqlite", "postgres"]


@pytest.mark.sqlite_only("PRAGMAs")
def test_it_uses_wal_a_busy_timeout_and_full_sync(clocked_storage):
    assert clocked_storage.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert clocked_storage.db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert clocked_storage.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_migrating_twice_changes_nothing(clocked_storage):
    assert clocked_storage.migrate() == len(MIGRATIONS)
    assert clocked_storage.migrate() == len(MIGRATIONS)
    assert clocked_storage.db.read("SELECT value FROM meta WHERE key = 'schema_version'")[0][0] == str(len(MIGRATIONS))


def opened_from_version(version: int, lead_sql: str, database: str, clock):
    """A SQLite database left at schema `version` holding the lead `lead_sql` inserts, opened (so migrated)."""
    import sqlite_utils

    old = sqlite_utils.Database(database)
    for migration in MIGRATIONS[:version]:
        migration(old)
    old["meta"].insert({"key": "schema_version", "value": str(version)}, pk="key")
    old.execute(lead_sql)
    old.conn.commit()
    old.close()
    return open_storage(database, clock)


@pytest.mark.sqlite_only("builds an old schema with sqlite-utils")
def test_a_database_of_an_older_version_is_brought_up_to_date_when_opened(database, clock):
    import sqlite_utils

    old = sqlite_utils.Database(database)
    MIGRATIONS[0](old)
    old["meta"].insert({"key": "schema_version", "value": "1"}, pk="key")
    old["leads"].insert(
        {
            "email": "kept@example.org",
            "email_key": "kept@example.org",
            "created_at": "2026-01-01",
            "updated_at": "2026-01-01",
        }
    )
    old.close()
    clocked_storage = open_storage(database, clock)
    assert clocked_storage.db.read("SELECT value FROM meta WHERE key = 'schema_version'")[0][0] == str(len(MIGRATIONS))
    assert (
        clocked_storage.db.read("SELECT COUNT(*) FROM rate_limits")[0][0] == 0
        and clocked_storage.checker.read().owner is None
    )
    assert [lead["email"] for lead in clocked_storage.leads.iter()] == ["kept@example.org"]


@pytest.mark.sqlite_only("builds an old schema with sqlite-utils")
def test_leads_of_a_version_3_database_keep_their_ids_and_get_empty_details_for_missing_ones(database, clock):
    sql = (
        "INSERT INTO leads (id, email, email_key, name, message, consent, created_at, updated_at) "
        "VALUES (7, 'old@example.org', 'old@example.org', NULL, NULL, NULL, '2026-01-01', '2026-01-01')"
    )
    clocked_storage = opened_from_version(3, sql, database, clock)
    [lead] = clocked_storage.leads.recent()
    assert (lead["id"], lead["name"], lead["message"], lead["consent"]) == (7, "", "", 0)
    assert clocked_storage.leads.save(NewLead("OLD@example.org", name="Old")) == 7  # still one lead per address


@pytest.mark.sqlite_only("builds an old schema with sqlite-utils")
def test_the_message_each_lead_of_a_version_4_database_holds_becomes_its_first_submission(database, clock):
    clocked_storage = opened_from_version(
        4,
        "INSERT INTO leads (email, email_key, name, message, created_at, updated_at, submissions, landing_path) "
        "VALUES ('old@example.org', 'old@example.org', 'Old', 'call me', '2026-01-01', '2026-01-02', 2, '/tv')",
        database,
        clock,
    )
    [lead] = clocked_storage.leads.iter()
    assert lead["messages"] == [{"at": "2026-01-02", "name": "Old", "message": "call me"}]
    assert "message" not in clocked_storage.db.read("SELECT * FROM leads")[0].keys()


def test_the_same_address_in_another_case_updates_one_lead(clocked_storage, clock):
    first = clocked_storage.leads.save(
        NewLead(
            "Paul@Example.org",
            name="Paul",
            message="call me",
            consent=True,
            consent_version="en-1",
            consent_text="I agree",
        )
    )
    clock.now += timedelta(minutes=5)
    second = clocked_storage.leads.save(NewLead("paul@example.org", message="", consent=False))
    assert first == second
    [lead] = list(clocked_storage.leads.iter())
    assert lead["email"] == "Paul@Example.org"  # the address as first sent stays
    assert lead["name"] == "Paul" and [sent["message"] for sent in lead["messages"]] == ["call me", ""]
    assert lead["consent"] == 1 and lead["consent_version"] == "en-1"
    assert lead["consent_at"] == "2026-11-28T20:00:00.000000+00:00"
    assert lead["submissions"] == 2
    assert lead["created_at"] < lead["updated_at"] == "2026-11-28T20:05:00.000000+00:00"


def test_spam_is_kept_apart_and_out_of_the_export(clocked_storage):
    clocked_storage.leads.save(NewLead("paul@example.org", consent=True))
    clocked_storage.leads.save(NewLead("paul@example.org", name="bot", spam_reason="honeypot"))
    clocked_storage.leads.save(NewLead("paul@example.org", name="bot", spam_reason="honeypot"))
    assert [lead["name"] for lead in clocked_storage.leads.iter()] == [""]
    assert clocked_storage.leads.count() == LeadCounts(leads=1, spam=2)
    assert {row["spam_reason"] for row in clocked_storage.leads.recent(spam=True)} == {"honeypot"}


def test_consent_is_recorded_only_when_given(clocked_storage):
    clocked_storage.leads.save(NewLead("a@example.org", consent=False, consent_version="en-1", consent_text="I agree"))
    [lead] = list(clocked_storage.leads.iter())
    assert (lead["consent"], lead["consent_version"], lead["consent_at"]) == (0, None, None)


def test_leads_are_filtered_by_their_latest_submission(clocked_storage, clock):
    for day in (1, 2, 3):
        clock.now = datetime(2026, 11, day, 12, tzinfo=UTC)
        clocked_storage.leads.save(NewLead(f"day{day}@example.org"))
    since, until = datetime(2026, 11, 2, 12, tzinfo=UTC), datetime(2026, 11, 3, 12, tzinfo=UTC)
    assert [lead["email"] for lead in clocked_storage.leads.iter(since, until)] == ["day2@example.org"]


def test_mode_changes_are_recorded_with_who_when_why_and_until(clocked_storage, clock):
    until = clock.now + timedelta(hours=2)
    flag = clocked_storage.flag.set_mode("down", until=until, reason="TV", by="cli (ops)")
    assert (flag.mode, flag.mode_until, flag.mode_reason, flag.mode_by) == ("down", until, "TV", "cli (ops)")
    clocked_storage.flag.set_mode("auto", by="admin (web)")
    changes = clocked_storage.flag.mode_changes()
    assert [(c.mode, c.by) for c in changes] == [("auto", "admin (web)"), ("down", "cli (ops)")]
    assert changes[1].until == "2026-11-28T22:00:00.000000+00:00"
    assert clocked_storage.flag.read().version == 2


def test_the_flag_survives_a_reopen(clocked_storage, database):
    clocked_storage.flag.set_mode("down", reason="kept")
    assert open_storage(database).flag.read().mode == "down"


def test_an_unknown_mode_is_refused(clocked_storage):
    with pytest.raises(ValueError):
        clocked_storage.flag.set_mode("sideways")


def test_the_secret_key_is_generated_once(clocked_storage):
    key, generated = clocked_storage.secret_key()
    assert generated and len(key) >= 32
    assert clocked_storage.secret_key() == (key, False)


@pytest.mark.sqlite_only("reads the database file's bytes")
def test_forget_erases_every_lead_of_an_address_from_the_file(clocked_storage, tmp_path):
    clocked_storage.leads.save(NewLead("Secret.Person@Example.org", message="a distinctive message"))
    clocked_storage.leads.save(NewLead("secret.person@example.org", spam_reason="honeypot"))
    clocked_storage.leads.save(NewLead("other@example.org"))
    assert clocked_storage.leads.forget("SECRET.PERSON@example.org") == 2
    assert clocked_storage.leads.forget("nobody@example.org") == 0
    clocked_storage.close()
    for suffix in ("", "-wal"):
        path = tmp_path / f"fallback.db{suffix}"
        if path.exists():
            assert b"a distinctive message" not in path.read_bytes()
            assert b"secret.person" not in path.read_bytes().lower()


def test_purge_erases_only_old_leads(clocked_storage, clock):
    clock.now = datetime(2026, 1, 1, tzinfo=UTC)
    clocked_storage.leads.save(NewLead("old@example.org"))
    clock.now = datetime(2026, 11, 1, tzinfo=UTC)
    clocked_storage.leads.save(NewLead("new@example.org"))
    assert clocked_storage.leads.purge(datetime(2026, 6, 1, tzinfo=UTC)) == 1
    assert [lead["email"] for lead in clocked_storage.leads.iter()] == ["new@example.org"]


@pytest.mark.sqlite_only("PRAGMA query_only")
def test_a_refused_write_gives_a_storage_error_and_keeps_what_was_stored(clocked_storage):
    clocked_storage.leads.save(NewLead("kept@example.org"))
    refuse_writes(clocked_storage)
    with pytest.raises(StorageError, match="not writable|write failed"):
        clocked_storage.leads.save(NewLead("refused@example.org"))
    with pytest.raises(StorageError):
        clocked_storage.check_writable()
    assert [lead["email"] for lead in clocked_storage.leads.iter()] == ["kept@example.org"]


def test_rate_limit_counters_reset_each_window_and_are_pruned(clocked_storage, clock):
    from fallback.storage import RateCheck

    rate = RateCheck("contact:abc", limit=2, seconds=60)
    clock.now = datetime(2026, 11, 28, 20, 0, 10, tzinfo=UTC)
    assert [clocked_storage.leads.hit_rate(rate) for _ in range(3)] == [None, None, 50.0]
    clock.now += timedelta(seconds=50)
    assert clocked_storage.leads.hit_rate(rate) is None  # a new window
    clock.now += timedelta(hours=3)
    assert clocked_storage.limits.prune(clock.now - timedelta(hours=2)) == 1


def test_forget_leaves_no_row_of_the_address(clocked_storage):
    clocked_storage.leads.save(NewLead("Gone@Example.org", message="bye"))
    clocked_storage.leads.save(NewLead("kept@example.org"))
    assert clocked_storage.leads.forget("gone@example.org") == 1
    assert clocked_storage.db.read("SELECT COUNT(*) FROM leads WHERE email_key = 'gone@example.org'")[0][0] == 0
    assert [lead["email"] for lead in clocked_storage.leads.iter()] == ["kept@example.org"]


def test_leads_are_streamed_in_batches(clocked_storage):
    for number in range(25):
        clocked_storage.leads.save(NewLead(f"s{number}@example.org"))
    assert len(list(clocked_storage.leads.iter(batch=7))) == 25


def test_the_search_escapes_like_wildcards(clocked_storage):
    clocked_storage.leads.save(NewLead("a@example.org", name="100% real"))
    clocked_storage.leads.save(NewLead("b@example.org", name="1000 real"))
    assert [lead["email"] for lead in clocked_storage.leads.search("100%")[0]] == ["a@example.org"]


def test_concurrent_submissions_share_commits_and_each_gets_its_own_answer(clocked_storage):
    import concurrent.futures

    from fallback.storage import RateCheck

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(lambda n: clocked_storage.leads.save(NewLead(f"c{n}@example.org")), range(200)))
    assert len(set(ids)) == 200
    assert clocked_storage.leads.count().leads == 200
    rate = RateCheck("contact:same-client", limit=3, seconds=3600)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        waits = list(pool.map(lambda n: clocked_storage.leads.hit_rate(rate), range(8)))
    assert waits.count(None) == 3 and all(wait for wait in waits if wait is not None)


def test_a_failed_commit_fails_every_submission_of_its_batch(clocked_storage, monkeypatch):
    from fallback.storage.batch import GroupCommit

    def broken_write():
        raise StorageError("the database is not writable: disk I/O error")

    group = GroupCommit(broken_write, lambda conn, *work: "never")
    with pytest.raises(StorageError, match="disk I/O"):
        group.run(NewLead("x@example.org"), None)


# Races between processes: two Storage objects on one database stand for two instances, each with
# several threads. The guarded updates must let exactly one of them win, on either backend.


def race(storages, calls_each: int, call) -> list:
    """`call(storage, n)` from `calls_each` threads per storage, all at once; the results."""
    import concurrent.futures
    import threading

    total = len(storages) * calls_each
    barrier = threading.Barrier(total)

    def run(n):
        barrier.wait(timeout=30)
        return call(storages[n % len(storages)], n)

    with concurrent.futures.ThreadPoolExecutor(max_workers=total) as pool:
        return list(pool.map(run, range(total)))


@pytest.fixture
def instances(database, clock):
    return [open_storage(database, clock), open_storage(database, clock)]


def test_a_flip_raced_by_two_instances_happens_once(instances):
    results = race(instances, 6, lambda storage, n: storage.flag.flip("unknown", "down", f"round {n}"))
    assert results.count(True) == 1
    assert len(instances[0].flag.incidents()) == 1
    assert [event.type for event in instances[1].events.recent()] == ["incident.opened"]


def test_the_checker_lease_raced_by_two_instances_has_one_holder(instances):
    results = race(instances, 6, lambda storage, n: storage.checker.claim(f"owner-{n}", 30))
    assert results.count(True) == 1
    assert instances[0].checker.read().owner == f"owner-{results.index(True)}"


def one_notification(event):
    return [NewMessage("notification", event.type, payload=str(event.id))]


def test_events_dispatched_by_two_instances_at_once_make_their_messages_once_in_order(instances):
    for number in range(12):
        instances[0].flag.set_mode("down" if number % 2 else "up", reason=f"change {number}")
    race(instances, 4, lambda storage, n: storage.events.dispatch(one_notification, limit=5))
    made = [int(message.payload) for message in reversed(instances[0].outbox.recent("notification", 50))]
    assert made == sorted(event.id for event in instances[0].events.recent(50))


def test_messages_raced_for_by_two_instances_are_each_claimed_once(instances):
    for number in range(12):
        instances[0].flag.set_mode("down" if number % 2 else "up", reason=f"change {number}")
    instances[0].events.dispatch(one_notification)
    claimed = race(
        instances, 4, lambda storage, n: [message.id for message in storage.outbox.claim("notification", 60, 5)[0]]
    )
    ids = [message_id for batch in claimed for message_id in batch]
    assert sorted(ids) == sorted(message.id for message in instances[0].outbox.recent("notification", 50))


def test_one_address_sent_to_two_instances_at_once_is_one_lead(instances):
    addresses = ["same@example.org", "SAME@Example.ORG"]
    race(instances, 6, lambda storage, n: storage.leads.save(NewLead(addresses[n % 2])))
    [lead] = list(instances[0].leads.iter())
    assert lead["submissions"] == 12


def test_the_rate_limit_is_shared_by_two_instances(instances):
    from fallback.storage import RateCheck

    rate = RateCheck("contact:shared-client", limit=5, seconds=3600)
    waits = race(instances, 5, lambda storage, n: storage.leads.hit_rate(rate))
    assert waits.count(None) == 5


def test_a_vantage_point_s_latest_verdict_replaces_its_previous_one(clocked_storage, clock):
    observed = clock.now - timedelta(seconds=1)
    clocked_storage.verdicts.record("web-1:8000", "instance", "up", True, "all 1 check URL answered", observed)
    clock.now += timedelta(seconds=5)
    clocked_storage.verdicts.record("agent-eu probe", "agent", "unknown", False, "refused", observed)
    clocked_storage.verdicts.record("web-1:8000", "instance", "down", False, "refused", clock.now)
    verdicts = {verdict.name: verdict for verdict in clocked_storage.verdicts.latest()}
    assert sorted(verdicts) == ["agent-eu probe", "web-1:8000"]
    assert verdicts["web-1:8000"].state == "down" and verdicts["web-1:8000"].ok is False
    assert verdicts["web-1:8000"].received_at == clock.now
    assert verdicts["web-1:8000"].first_seen_at == clock.now - timedelta(seconds=5)
    assert clocked_storage.verdicts.forget("agent-eu probe") and not clocked_storage.verdicts.forget("agent-eu probe")


def test_pruning_drops_only_the_vantage_points_silent_since_then(clocked_storage, clock):
    clocked_storage.verdicts.record("old probe", "agent", "up", True, None, clock.now)
    clock.now += timedelta(days=2)
    clocked_storage.verdicts.record("web-1:8000", "instance", "up", True, None, clock.now)
    assert clocked_storage.verdicts.prune(clock.now - timedelta(days=1)) == 1
    assert [verdict.name for verdict in clocked_storage.verdicts.latest()] == ["web-1:8000"]


def test_an_agent_s_verdict_never_replaces_an_instance_s_but_an_instance_takes_its_name_back(clocked_storage, clock):
    taken = clocked_storage.verdicts.record("web-1:8000", "agent", "down", False, "squatting", clock.now)
    assert taken is not None and taken.kind == "agent" and taken.received_at == taken.first_seen_at == clock.now
    clock.now += timedelta(seconds=1)
    mine = clocked_storage.verdicts.record("web-1:8000", "instance", "up", True, "all 1 check URL answered", clock.now)
    assert mine is not None and (mine.kind, mine.state, mine.first_seen_at) == ("instance", "up", taken.first_seen_at)
    clock.now += timedelta(seconds=1)
    assert clocked_storage.verdicts.record("web-1:8000", "agent", "down", False, "squatting", clock.now) is None
    assert clocked_storage.verdicts.latest() == [mine]
