"""Labels and the *current label* of a query.

Precedence (documented contract): human review > gold (template or verified import) > adjudicated relabel votes >
teacher (the latest valid teacher or imported label). What the teacher said stays stored whatever the precedence
picks, so audits and the noise-aware eval can compare. A review with decision ``reject`` removes the query from
datasets (its current label is ``None`` with ``rejected=True``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from ..catalog import Label, parse_label
from .connection import now_iso

PRECEDENCE = ("review", "gold", "adjudicated", "teacher")


@dataclass(frozen=True)
class CurrentLabel:
    query_id: int
    label: Label | None
    source: str
    """One of PRECEDENCE; ``teacher`` also covers imported, unverified labels."""
    rejected: bool = False

    @property
    def hash(self) -> str | None:
        return self.label.hash if self.label is not None else None


def add_label(
    db: Database,
    query_id: int,
    label: Label | None,
    *,
    source: str = "teacher",
    model: str | None = None,
    purpose: str = "label",
    job_id: int | None = None,
    prompt_version: str | None = None,
    catalog_hash: str | None = None,
    raw: str | dict | None = None,
    reject_reason: str | None = None,
) -> int:
    """Insert one labeling result; ``label=None`` or a ``reject_reason`` records a rejected answer. Returns its id.

    Does not open a transaction: callers that complete a job in the same commit wrap both in ``db.atomic()``.
    """
    valid = label is not None and reject_reason is None
    cur = db.execute(
        "INSERT INTO labels (query_id, source, model, purpose, job_id, prompt_version, catalog_hash, calls,"
        " label_hash, reason, raw, valid, reject_reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            query_id, source, model, purpose, job_id, prompt_version, catalog_hash,
            label.canonical_json() if label is not None else None,
            label.hash if label is not None else None,
            label.reason if label is not None else None,
            raw if (raw is None or isinstance(raw, str)) else json.dumps(raw, ensure_ascii=False),
            int(valid), reject_reason, now_iso(),
        ],
    )
    return cur.lastrowid


def _label(calls: str | None) -> Label | None:
    return parse_label(json.loads(calls)) if calls is not None else None


def teacher_labels(db: Database, *, purposes: tuple[str, ...] = ("label",)) -> dict[int, Label]:
    """The latest valid teacher/imported label per query (what the teacher said), for the given purposes."""
    marks = ",".join("?" * len(purposes))
    rows = db.execute(
        f"SELECT query_id, calls FROM labels WHERE valid = 1 AND purpose IN ({marks}) ORDER BY id", list(purposes)
    )
    return {qid: _label(calls) for qid, calls in rows}


def current_labels(db: Database, *, include_rejected: bool = False) -> dict[int, CurrentLabel]:
    """Return the current label of every query that has one, by the documented precedence.

    Args:
        include_rejected: also return queries a reviewer rejected (``label=None, rejected=True``).
    """
    out: dict[int, CurrentLabel] = {}
    for qid, label in teacher_labels(db).items():
        out[qid] = CurrentLabel(qid, label, "teacher")
    for qid, calls in db.execute("SELECT query_id, calls FROM adjudications ORDER BY id"):
        out[qid] = CurrentLabel(qid, _label(calls), "adjudicated")
    for qid, calls in db.execute("SELECT id, gold_calls FROM queries WHERE gold_calls IS NOT NULL"):
        out[qid] = CurrentLabel(qid, _label(calls), "gold")
    for qid, decision, calls in db.execute("SELECT query_id, decision, calls FROM reviews ORDER BY id"):
        if decision == "skip":
            continue
        if decision == "reject":
            out[qid] = CurrentLabel(qid, None, "review", rejected=True)
        elif decision == "keep":
            if qid in out and not out[qid].rejected:
                out[qid] = CurrentLabel(qid, out[qid].label, "review")
        else:  # accept / fix carry the chosen label
            out[qid] = CurrentLabel(qid, _label(calls), "review")
    if not include_rejected:
        out = {k: v for k, v in out.items() if not v.rejected}
    return out


def add_review(
    db: Database, query_id: int, decision: str, label: Label | None = None, *, flag_id: int | None = None,
    note: str | None = None, reviewer: str | None = None,
) -> int:
    """Record a human decision (accept, fix, keep, reject, skip); it wins over every other label source."""
    if decision not in {"accept", "fix", "keep", "reject", "skip"}:
        raise ValueError(f"unknown review decision {decision!r}")
    if decision in {"accept", "fix"} and label is None:
        raise ValueError(f"decision {decision!r} needs a label")
    cur = db.execute(
        "INSERT INTO reviews (query_id, flag_id, decision, calls, label_hash, note, reviewer, created_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        [query_id, flag_id, decision, label.canonical_json() if label else None, label.hash if label else None,
         note, reviewer, now_iso()],
    )
    return cur.lastrowid
