"""Review: a human settles audit flags. Decisions are stored as reviews, which win over every other label source.

Decisions: ``accept`` (the flag's suggested label), ``fix`` (another label, validated against the catalogue),
``keep`` (leave the current label as it is: the teacher's, or gold's where the query has gold; settled by a human
from now on), ``reject`` (a bad query: it leaves every dataset), ``skip`` (decide later; recorded, but the flag
stays pending). To side with the teacher against gold, ``fix`` with the teacher's label. A decided flag moves to status ``reviewed``, together with every other
undecided flag of the same query, so a review session can stop at any moment and resume where it left off.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from ..catalog import Catalog, Label
from ..db import add_review, current_labels, get_catalog
from ..errors import InputError, ToolDistillError
from .audit.store import Flag, get_flags, get_run, set_flag_status

DECISIONS = ("accept", "fix", "keep", "reject")
PENDING_STATUSES = ("open", "needs_review")
_FILE_KEYS = {"query_id", "decision", "label", "note", "flag_id", "text", "teacher", "current", "suggested_class",
              "score", "signals"}


@dataclass
class Decision:
    """One reviewer decision about one query (``label`` for accept and fix)."""

    query_id: int
    decision: str
    label: Label | None = None
    note: str | None = None
    flag: Flag | None = None
    line: int | None = None


@dataclass
class ApplyReport:
    """What applying a decisions file did."""

    decisions: dict[str, int] = field(default_factory=dict)
    changed: int = 0
    """Queries whose current label changed (or that left the datasets, for reject)."""
    flags_closed: int = 0

    def to_dict(self) -> dict:
        return {"decisions": self.decisions, "applied": sum(self.decisions.values()), "changed": self.changed,
                "flags_closed": self.flags_closed}


def pending_flags(db: Database, run_id: int | None = None, *, limit: int | None = None) -> list[Flag]:
    """Flags of an audit run (the latest by default) still to decide, best rank first.

    A flag is pending while its status is ``open`` or ``needs_review`` and its query has no decision (other than
    skip) recorded since the run: decisions made elsewhere (a file, the library) count too.
    """
    run = get_run(db, run_id)
    decided = {q for (q,) in db.execute(
        "SELECT DISTINCT query_id FROM reviews WHERE decision != 'skip' AND created_at >= ?", [run["created_at"]])}
    flags = [f for f in get_flags(db, run["id"], statuses=PENDING_STATUSES) if f.query_id not in decided]
    return flags[:limit] if limit is not None else flags


def _flag_for(db: Database, query_id: int, run_id: int | None) -> Flag | None:
    try:
        found = get_flags(db, run_id, query_ids=[query_id])
    except ToolDistillError:
        return None
    return found[0] if found else None


def record_decision(db: Database, decision: Decision, *, catalog: Catalog | None = None,
                    reviewer: str | None = None) -> int:
    """Store one decision as a review and close the query's pending flags; returns the review id.

    ``accept`` without a label takes the flag's suggestion; ``fix`` needs a label. Labels are validated against
    ``catalog`` (the workspace's current one by default).

    Raises: InputError when the decision is unknown, a label is missing or does not fit the catalogue.
    """
    kind = decision.decision
    if kind not in (*DECISIONS, "skip"):
        raise InputError(f"unknown decision {kind!r}; use one of {', '.join(DECISIONS)} or skip", field="decision")
    label = decision.label
    if kind == "accept" and label is None:
        if decision.flag is None or decision.flag.suggested is None:
            raise InputError(f"query {decision.query_id} has no suggested label to accept; use fix with a label",
                             field="decision")
        label = decision.flag.suggested
    if kind == "fix" and label is None:
        raise InputError(f"decision fix for query {decision.query_id} needs a label", field="label")
    if kind in ("accept", "fix"):
        label = (catalog or get_catalog(db)).validate_label(label)
    else:
        label = None
    with db.atomic():
        review_id = add_review(db, decision.query_id, kind, label,
                               flag_id=decision.flag.id if decision.flag else None, note=decision.note,
                               reviewer=reviewer)
        if kind != "skip":
            ids = [fid for (fid,) in db.execute(
                "SELECT id FROM audit_flags WHERE query_id = ? AND status IN ('open', 'needs_review', 'relabel')",
                [decision.query_id])]
            set_flag_status(db, ids, "reviewed")
    return review_id


def parse_decisions(db: Database, path: str | Path, *, run_id: int | None = None,
                    catalog: Catalog | None = None) -> list[Decision]:
    """Read and validate a decisions file: one ``{"query_id", "decision", "label"}`` object per line.

    ``decision`` is accept, fix, keep or reject; ``label`` (a list of calls) is required for fix and optional
    for accept (default: the flag's suggestion); ``note`` is kept with the review. The fields a template written
    by :func:`write_template` adds (text, current, score, ...) are ignored.

    Raises: InputError naming the file, line and field of the first problem.
    """
    catalog = catalog or get_catalog(db)
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read decisions: {exc.strerror}", path=str(path)) from None
    known = {q for (q,) in db.execute("SELECT id FROM queries")}
    out: list[Decision] = []
    seen: dict[int, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = {"path": str(path), "line": n}
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg} at char {exc.pos})", **where) from None
        if not isinstance(row, dict):
            raise InputError('expected an object {"query_id", "decision", "label"}', **where)
        unknown = sorted(set(row) - _FILE_KEYS)
        if unknown:
            raise InputError("unknown field (expected query_id, decision, label, note)", field=unknown[0], **where)
        qid, kind = row.get("query_id"), row.get("decision")
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise InputError(f"expected an integer query id, got {qid!r}", field="query_id", **where)
        if qid not in known:
            raise InputError(f"no query {qid} in the database", field="query_id", **where)
        if qid in seen:
            raise InputError(f"query {qid} already decided on line {seen[qid]}", field="query_id", **where)
        if kind not in DECISIONS:
            raise InputError(f"expected one of {', '.join(DECISIONS)}, got {kind!r}", field="decision", **where)
        flag = _flag_for(db, qid, run_id)
        label = None
        if kind in ("accept", "fix") and row.get("label") is not None:
            label = catalog.validate_label(row["label"], source=str(path), line=n)
        elif kind == "fix":
            raise InputError("decision fix needs a label (a list of calls, [] for no tool)", field="label", **where)
        elif kind == "accept" and (flag is None or flag.suggested is None):
            raise InputError(f"query {qid} has no suggested label to accept; give a label or use fix",
                             field="label", **where)
        note = row.get("note")
        out.append(Decision(qid, kind, label, note if isinstance(note, str) else None, flag, n))
        seen[qid] = n
    return out


def apply_decisions(db: Database, path: str | Path, *, run_id: int | None = None,
                    reviewer: str | None = None) -> ApplyReport:
    """Validate a whole decisions file, then record every decision in one transaction (all or nothing).

    Returns: counts per decision, how many current labels changed, how many flags were closed.

    Raises: InputError naming the file, line and field; nothing is recorded then.
    """
    catalog = get_catalog(db)
    decisions = parse_decisions(db, path, run_id=run_id, catalog=catalog)
    before = current_labels(db, include_rejected=True)
    open_before = db.execute("SELECT count(*) FROM audit_flags WHERE status IN ('open','needs_review','relabel')"
                             ).fetchone()[0]
    with db.atomic():
        for d in decisions:
            record_decision(db, d, catalog=catalog, reviewer=reviewer)
    after = current_labels(db, include_rejected=True)
    report = ApplyReport(decisions=dict(Counter(d.decision for d in decisions)))
    for d in decisions:
        old, new = before.get(d.query_id), after.get(d.query_id)
        if (old.hash if old else None, bool(old and old.rejected)) != (new.hash if new else None,
                                                                         bool(new and new.rejected)):
            report.changed += 1
    report.flags_closed = open_before - db.execute(
        "SELECT count(*) FROM audit_flags WHERE status IN ('open','needs_review','relabel')").fetchone()[0]
    return report


def write_template(db: Database, path: str | Path, *, run_id: int | None = None, limit: int | None = None) -> int:
    """Write the pending flags as a decisions file to edit and apply: ``accept`` where there is a suggestion,
    ``keep`` otherwise, with the query text, the teacher's label (and the current one where precedence picks
    another, e.g. gold), the score and the signals beside it.

    Returns: how many lines were written.
    """
    flags = pending_flags(db, run_id, limit=limit)
    current = current_labels(db)
    with Path(path).open("w", encoding="utf-8") as fh:
        for f in flags:
            row = {"query_id": f.query_id, "decision": "accept" if f.suggested is not None else "keep",
                   "label": json.loads(f.suggested.to_json()) if f.suggested is not None else None,
                   "text": f.text, "teacher": json.loads(f.label.to_json())}
            now = current.get(f.query_id)
            if now is not None and now.label is not None and now.label != f.label:
                row["current"] = {"source": now.source, "label": json.loads(now.label.to_json())}
            row.update(score=round(f.score, 3), signals=f.signals)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(flags)
