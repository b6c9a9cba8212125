"""Audit runs and flags in the database (tables ``audit_runs`` and ``audit_flags``, migration m030).

A flag's ``status`` moves ``open -> reviewed`` (a human decided), ``open -> relabel -> adjudicated`` (votes
decided) or ``relabel -> needs_review`` (the votes tied and the tie goes to a human).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable

from sqlite_utils import Database

from ...catalog import Label, parse_label
from ...db import now_iso
from ...errors import ToolDistillError

FLAG_STATUSES = ("open", "reviewed", "relabel", "adjudicated", "needs_review")


@dataclass
class Flag:
    """One suspected mislabel: the audited label, the suggestion, the score and the evidence."""

    id: int
    run_id: int
    query_id: int
    rank: int
    score: float
    """0-1, higher = more likely mislabeled (1 - the product of (1 - strength) over the signals that fired)."""
    text: str
    label: Label
    label_id: int | None
    suggested: Label | None
    suggested_class: str | None
    signals: list[str]
    evidence: dict
    status: str = "open"

    def to_dict(self) -> dict:
        """The flag as JSON-ready data (labels as lists of calls)."""
        return {
            "rank": self.rank, "flag_id": self.id, "query_id": self.query_id, "text": self.text,
            "label": json.loads(self.label.to_json()),
            "suggested": json.loads(self.suggested.to_json()) if self.suggested is not None else None,
            "suggested_class": self.suggested_class, "score": round(self.score, 4), "signals": self.signals,
            "evidence": self.evidence, "status": self.status,
        }


@dataclass
class NewFlag:
    query_id: int
    score: float
    label: Label
    label_id: int | None
    suggested: Label | None
    suggested_class: str | None
    signals: list[str]
    evidence: dict = field(default_factory=dict)


def save_run(db: Database, flags: list[NewFlag], *, catalog_hash: str, params: dict, signals: dict,
             n_audited: int, report: dict, started_at: str) -> int:
    """Store one audit run and its flags (ranked in the given order) in one transaction; returns the run id."""
    with db.atomic():
        cur = db.execute(
            "INSERT INTO audit_runs (created_at, finished_at, catalog_hash, params, signals, n_audited, n_flags,"
            " report) VALUES (?,?,?,?,?,?,?,?)",
            [started_at, now_iso(), catalog_hash, json.dumps(params), json.dumps(signals), n_audited, len(flags),
             json.dumps(report)],
        )
        run_id = cur.lastrowid
        now = now_iso()
        db.conn.executemany(
            "INSERT INTO audit_flags (run_id, query_id, rank, score, label_id, calls, label_hash, suggested_calls,"
            " suggested_hash, suggested_class, signals, evidence, status, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'open',?)",
            [
                (run_id, f.query_id, rank, f.score, f.label_id, f.label.canonical_json(), f.label.hash,
                 f.suggested.canonical_json() if f.suggested is not None else None,
                 f.suggested.hash if f.suggested is not None else None, f.suggested_class,
                 json.dumps(f.signals), json.dumps(f.evidence, ensure_ascii=False), now)
                for rank, f in enumerate(flags, 1)
            ],
        )
    return run_id


def latest_run_id(db: Database) -> int | None:
    """The id of the most recent audit run, or None."""
    row = db.execute("SELECT max(id) FROM audit_runs").fetchone()
    return row[0] if row else None


def get_run(db: Database, run_id: int | None = None) -> dict:
    """The audit run row (the latest by default) with its JSON columns decoded.

    Raises: ToolDistillError when there is no such run.
    """
    rid = run_id if run_id is not None else latest_run_id(db)
    row = db.execute("SELECT * FROM audit_runs WHERE id = ?", [rid]).fetchone() if rid is not None else None
    if row is None:
        if run_id is None:
            raise ToolDistillError("no audit run yet; run 'tooldistill curate audit' first")
        raise ToolDistillError(f"no audit run {run_id} (latest: {latest_run_id(db) or 'none'})")
    run = dict(zip([d[0] for d in db.execute("SELECT * FROM audit_runs LIMIT 0").description], row))
    for key in ("params", "signals", "report"):
        run[key] = json.loads(run[key]) if run.get(key) else {}
    return run


def _flag(row) -> Flag:
    (fid, run_id, qid, rank, score, label_id, calls, sugg, sugg_cls, signals, evidence, status, text) = row
    return Flag(fid, run_id, qid, rank, score, text, parse_label(json.loads(calls)), label_id,
                parse_label(json.loads(sugg)) if sugg else None, sugg_cls, json.loads(signals),
                json.loads(evidence), status)


def get_flags(db: Database, run_id: int | None = None, *, statuses: Iterable[str] | None = None,
              limit: int | None = None, min_score: float | None = None,
              query_ids: Iterable[int] | None = None) -> list[Flag]:
    """The flags of an audit run (the latest by default), best rank first.

    Args:
        statuses: keep only flags in these states. limit: at most this many. min_score: score at least this.
        query_ids: only these queries.

    Raises: ToolDistillError when there is no audit run.
    """
    run = get_run(db, run_id)
    where, params = ["f.run_id = ?"], [run["id"]]
    if statuses is not None:
        statuses = list(statuses)
        where.append(f"f.status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if min_score is not None:
        where.append("f.score >= ?")
        params.append(min_score)
    sql = ("SELECT f.id, f.run_id, f.query_id, f.rank, f.score, f.label_id, f.calls, f.suggested_calls,"
           " f.suggested_class, f.signals, f.evidence, f.status, q.text FROM audit_flags f"
           " JOIN queries q ON q.id = f.query_id WHERE " + " AND ".join(where) + " ORDER BY f.rank")
    if limit is not None and query_ids is None:
        sql += f" LIMIT {int(limit)}"
    flags = [_flag(r) for r in db.execute(sql, params).fetchall()]
    if query_ids is not None:
        wanted = {int(q) for q in query_ids}
        flags = [f for f in flags if f.query_id in wanted][:limit]
    return flags


def set_flag_status(db: Database, flag_ids: Iterable[int], status: str) -> int:
    """Move flags to ``status`` (one of FLAG_STATUSES); returns how many rows changed. No transaction of its own."""
    if status not in FLAG_STATUSES:
        raise ValueError(f"unknown flag status {status!r}")
    ids, changed, now = [int(i) for i in flag_ids], 0, now_iso()
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
        chunk = ids[start:start + 500]
        cur = db.execute(f"UPDATE audit_flags SET status = ?, updated_at = ? WHERE id IN ({','.join('?' * len(chunk))})",
                         [status, now, *chunk])
        changed += cur.rowcount
    return changed
