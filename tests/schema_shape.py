"""The shape of a schema in terms both backends share, so that their DDL can be compared (test_postgres).

Types are mapped between the dialects (PostgreSQL's bigint is SQLite's INTEGER, both 64-bit), defaults
lose PostgreSQL's casts, and an auto-numbered id (bigserial) is SQLite's INTEGER PRIMARY KEY, which
numbers its rows the same way. Indexes are compared by what they index, not by name.
"""

from __future__ import annotations

import re

TYPES = {
    "TEXT": "text",
    "INTEGER": "integer",
    "REAL": "real",
    "text": "text",
    "integer": "integer",
    "bigint": "integer",
    "double precision": "real",
}


def _default(text: str | None) -> str | None:
    if text is None or text.startswith("nextval("):
        return None
    return re.sub(r"::[a-z ]+$", "", text.strip())


def _where(text: str | None) -> str | None:
    # PostgreSQL writes `((kind = 'followup'::text) AND ...)`: its casts and parentheses go.
    if not text:
        return None
    text = re.sub(r"::[a-z ]+", "", text).replace("(", "").replace(")", "")
    return " ".join(text.split())


def _names(rows: list) -> list[str]:
    return [row[0] for row in rows]  # never `for (name,) in rows`: a PostgreSQL row iterates over its keys


def _shape(columns: list[tuple], primary_key: tuple, indexes: set[tuple]) -> dict:
    return {
        "columns": [
            (name, TYPES.get(kind, kind), bool(not_null) or name in primary_key, _default(default))
            for name, kind, not_null, default in columns
        ],
        "primary key": primary_key,
        "indexes": indexes,
    }


def sqlite_shape(storage) -> dict[str, dict]:
    """Each table's columns (name, type, NOT NULL, default), primary key and indexes, as SQLite has them."""
    read = storage.db.read
    shape = {}
    for table in _names(read("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")):
        info = read(f"PRAGMA table_info({table})")
        primary_key = tuple(row["name"] for row in sorted(info, key=lambda row: row["pk"]) if row["pk"])
        indexes = set()
        for index in read(f"PRAGMA index_list({table})"):
            if index["origin"] == "pk":
                continue
            columns = tuple(row["name"] for row in read(f"PRAGMA index_info({index['name']})"))
            sql = read("SELECT sql FROM sqlite_master WHERE name = ?", (index["name"],))[0][0]
            where = sql.split(" WHERE ", 1)[1] if " WHERE " in sql else None
            indexes.add((columns, bool(index["unique"]), _where(where)))
        columns = [(row["name"], row["type"], row["notnull"], row["dflt_value"]) for row in info]
        shape[table] = _shape(columns, primary_key, indexes)
    return shape


def postgres_shape(storage) -> dict[str, dict]:
    """Each table's columns (name, type, NOT NULL, default), primary key and indexes, as PostgreSQL has them."""
    read = storage.db.read
    shape = {}
    for table in _names(read("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")):
        columns = [
            (row[0], row[1], row[2], row[3])
            for row in read(
                "SELECT column_name, data_type, is_nullable = 'NO', column_default FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
        ]
        primary_key = tuple(
            row[0]
            for row in read(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = ?::regclass AND i.indisprimary ORDER BY a.attnum",
                (table,),
            )
        )
        indexes = set()
        for row in read(
            "SELECT i.indisunique, pg_get_expr(i.indpred, i.indrelid), "
            "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) "
            "FROM pg_index i WHERE i.indrelid = ?::regclass AND NOT i.indisprimary",
            (table,),
        ):
            indexes.add((tuple(row[2]), row[0], _where(row[1])))
        shape[table] = _shape(columns, primary_key, indexes)
    return shape
