"""Erasure that erases: forget leaves no byte of an address in SQLite's files, or says what stopped it."""

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import csrf_token, log_in

import fallback.storage.sqlite
from fallback.cli import cli
from fallback.storage import NewLead

ADDRESS = b"secret.person@example.org"
MESSAGE = b"a distinctive message"


@pytest.fixture(autouse=True)
def short_erase_wait(monkeypatch):
    monkeypatch.setattr(fallback.storage.sqlite, "ERASE_WAIT_SECONDS", 0.5)


def copies(database: str, text: bytes) -> dict[str, int]:
    """How many times `text` is in the database file and in its write-ahead log, read as raw bytes."""
    found = {}
    for suffix in ("", "-wal"):
        path = Path(database + suffix)
        found[suffix or "main"] = path.read_bytes().lower().count(text) if path.exists() else 0
    return found


def seed(storage, leads: int = 0) -> None:
    storage.leads.save(NewLead("Secret.Person@Example.org", name="Secret", message=MESSAGE.decode()))
    storage.leads.save(NewLead("secret.person@example.org", message="and " + MESSAGE.decode()))
    storage.leads.save(NewLead("secret.person@example.org", spam_reason="honeypot"))
    with ThreadPoolExecutor(32) as pool:  # concurrent saves share commits: thousands of leads in a second or two
        list(pool.map(lambda n: storage.leads.save(NewLead(f"lead{n}@example.org", message="hi")), range(leads)))


@pytest.fixture
def reader(database):
    """Another connection holding a read transaction open: an export streaming to a slow client, a backup."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT COUNT(*) FROM leads").fetchall()
    yield conn
    conn.close()


def test_forget_leaves_no_byte_of_the_address_in_the_file_or_its_wal(storage, database, runner):
    seed(storage)
    result = runner.invoke(cli, ["forget", "SECRET.PERSON@example.org"])
    assert result.exit_code == 0 and "erased 2 leads" in result.output
    assert copies(database, ADDRESS) == {"main": 0, "-wal": 0}
    assert copies(database, MESSAGE) == {"main": 0, "-wal": 0}


def test_every_connection_overwrites_deleted_content(storage):
    assert storage.db.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_forget_blocked_by_an_open_reader_exits_non_zero_saying_what_blocks_it(storage, database, runner, reader):
    seed(storage)
    result = runner.invoke(cli, ["forget", "secret.person@example.org"])
    assert result.exit_code != 0
    assert "write-ahead log" in result.output and "reader" in result.output
    assert copies(database, ADDRESS)["-wal"] > 0  # what the message warns of
    reader.close()
    again = runner.invoke(cli, ["forget", "secret.person@example.org"])
    assert again.exit_code == 0 and "erased 0 leads" in again.output
    assert copies(database, ADDRESS) == {"main": 0, "-wal": 0}


def test_the_admins_delete_blocked_by_an_open_reader_says_so(client, storage, reader):
    seed(storage)
    log_in(client)
    html = client.get("/_fallback/admin").get_data(as_text=True)
    lead_id = storage.leads.search("secret.person")[0][0]["id"]
    response = client.post(f"/_fallback/admin/leads/{lead_id}/delete", data={"csrf_token": csrf_token(html)})
    assert response.status_code == 503
    assert "write-ahead log" in response.get_data(as_text=True)


def test_an_export_streaming_to_a_slow_client_does_not_block_the_checkpoint_of_forget(
    client, storage, database, runner
):
    seed(storage, leads=2500)
    log_in(client)
    response = client.get("/_fallback/admin/export.csv", buffered=False)
    chunks = iter(response.response)
    received = [next(chunks)]  # the client reads the first rows, then stalls
    result = runner.invoke(cli, ["forget", "secret.person@example.org"])
    assert result.exit_code == 0, result.output
    assert copies(database, ADDRESS) == {"main": 0, "-wal": 0}
    received.extend(chunks)
    assert b"".join(received).count(b"\r\n") == 1 + 2501  # the header, and each lead once (the first page was sent)
