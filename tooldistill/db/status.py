"""Counts per table and per stage, for ``db status`` and the summaries of other commands."""

from __future__ import annotations

from sqlite_utils import Database


def _grouped(db: Database, sql: str) -> dict[str, int]:
    return {str(k): v for k, v in db.execute(sql).fetchall()}


def db_status(db: Database) -> dict:
    """Return ``{"tables": {name: rows}, "stages": {...}}`` describing what the database holds."""
    tables = {
        name: db.execute(f"SELECT count(*) FROM [{name}]").fetchone()[0]
        for name in sorted(db.table_names())
        if not name.startswith(("_", "sqlite_"))
    }
    stages = {
        "queries_by_source": _grouped(db, "SELECT coalesce(source,'?'), count(*) FROM queries GROUP BY 1"),
        "queries_with_gold": db.execute("SELECT count(*) FROM queries WHERE gold_calls IS NOT NULL").fetchone()[0],
        "labels": _grouped(
            db, "SELECT CASE WHEN valid THEN 'accepted' ELSE 'rejected' END, count(*) FROM labels GROUP BY 1"
        ),
        "jobs_by_state": _grouped(db, "SELECT purpose || ':' || state, count(*) FROM jobs GROUP BY 1"),
        "runs": _grouped(db, "SELECT kind || ':' || coalesce(status,'?'), count(*) FROM runs GROUP BY 1"),
    }
    return {"tables": tables, "stages": stages}
