"""The database: migrations on open, WAL, clear errors, current-label precedence, backup."""

import sqlite3

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import (add_label, add_review, backup, current_labels, db_status, insert_queries, NewQuery,
                            open_db, pending_migrations)
from tooldistill.errors import DatabaseError


def test_fresh_database_is_migrated_in_wal_mode(tmp_path):
    db = open_db(tmp_path / "x.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"queries", "labels", "jobs", "attempts", "slots", "buckets", "runs"} <= set(db.table_names())
    assert pending_migrations(db) == []
    open_db(tmp_path / "x.db")  # migrate again: a no-op


def test_not_sqlite_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_text("hello")
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        open_db(bad)


def test_newer_database_is_refused(tmp_path):
    db = open_db(tmp_path / "x.db")
    db["_sqlite_migrations"].insert({"migration_set": "tooldistill", "name": "m999_future", "applied_at": "x"})
    with pytest.raises(DatabaseError, match="newer tooldistill"):
        open_db(tmp_path / "x.db")


def test_queries_deduplicate_on_normalised_text(db):
    res = insert_queries(db, [NewQuery("Weather in Tokyo?", "t"), NewQuery("  weather in tokyo ", "t")])
    assert (res.added, res.duplicates) == (1, 1) and res.ids[0] == res.ids[1]


def test_current_label_precedence_review_gold_adjudicated_teacher(db):
    ids = insert_queries(db, [NewQuery(f"q{i}", "t") for i in range(3)]).ids
    weather = parse_label([{"tool": "weather", "args": {"location": "Oslo"}}])
    search = parse_label([{"tool": "web_search", "args": {"query": "Oslo"}}])
    for qid in ids:
        add_label(db, qid, weather)
    db.execute("UPDATE queries SET gold_calls = ? WHERE id = ?", [search.canonical_json(), ids[1]])
    add_review(db, ids[2], "fix", search)
    cur = current_labels(db)
    assert [cur[i].source for i in ids] == ["teacher", "gold", "review"]
    assert cur[ids[2]].label == search
    add_review(db, ids[0], "reject")
    assert ids[0] not in current_labels(db)
    assert current_labels(db, include_rejected=True)[ids[0]].rejected


def test_backup_is_a_consistent_copy(db, tmp_path):
    insert_queries(db, [NewQuery("hello", "t")])
    dest = backup(db, tmp_path / "b" / "copy.db")
    assert sqlite3.connect(dest).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db_status(open_db(dest))["tables"]["queries"] == 1
    with pytest.raises(DatabaseError, match="already exists"):
        backup(db, dest)
