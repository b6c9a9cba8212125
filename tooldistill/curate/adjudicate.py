"""Adjudicate: settle each relabeled query from its votes, and record the votes with the decision (lineage).

Votes: every distinct relabel answer of the query (one per model and vote index, the latest valid one) and, unless
``include_teacher=False``, the original teacher label as one more vote; rejected relabel answers do not vote but
are listed in the lineage. The tool set with the most votes wins (arguments vary in wording, so tools are decided
first); inside it, the most common exact label, ties to the stronger model's. A tie between tool sets goes to the
stronger model (``models``, strongest first; a relabel vote from an unlisted model ranks above the original
teacher's label, which was the one in doubt), or to review (``tie="review"``, or when the tied votes rank the
same): the flag moves to ``needs_review`` and ``curate review`` shows it again. A query still waiting for some of
its relabel jobs is left for later. Running it again changes nothing unless new votes arrived.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from sqlite_utils import Database

from ..catalog import Label, parse_label
from ..db import now_iso
from ..errors import InputError
from .audit.store import set_flag_status

TIES = ("stronger", "review")


@dataclass
class Adjudication:
    """The decision for one query: the winning label, how it won, and every vote."""

    query_id: int
    label: Label | None
    method: str
    votes: list[dict]

    def to_dict(self) -> dict:
        return {"query_id": self.query_id, "label": json.loads(self.label.to_json()) if self.label else None,
                "method": self.method, "votes": self.votes}


@dataclass
class AdjudicationReport:
    settled: list[Adjudication] = field(default_factory=list)
    to_review: list[Adjudication] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    """Queries with relabel jobs still pending or leased."""
    unchanged: int = 0
    """Queries already adjudicated with exactly these votes."""

    def to_dict(self) -> dict:
        return {"settled": len(self.settled), "to_review": len(self.to_review), "waiting": len(self.waiting),
                "unchanged": self.unchanged, "adjudications": [a.to_dict() for a in self.settled + self.to_review]}


def _votes(db: Database) -> dict[int, list[dict]]:
    rows = db.execute(
        "SELECT l.id, l.query_id, l.model, l.valid, l.calls, l.reject_reason, j.params FROM labels l"
        " LEFT JOIN jobs j ON j.id = l.job_id WHERE l.purpose = 'relabel' ORDER BY l.id").fetchall()
    latest: dict[tuple, dict] = {}
    for label_id, qid, model, valid, calls, reject, params in rows:
        vote = (json.loads(params) if params else {}).get("vote")
        key = (qid, model, vote)
        previous = latest.get(key)
        if previous is not None and previous["valid"] and not valid:
            continue  # a later rejected answer does not take back a valid vote
        latest[key] = {"label_id": label_id, "source": "relabel", "model": model, "vote": vote, "valid": bool(valid),
                       "calls": json.loads(calls) if calls else None, "reject_reason": reject}
    out: dict[int, list[dict]] = {}
    for (qid, *_), vote in sorted(latest.items(), key=lambda kv: kv[1]["label_id"]):
        out.setdefault(qid, []).append(vote)
    return out


def _rank(vote: dict, models: list[str]) -> int:
    """Strength rank of a vote's model: listed models first (in order), then unlisted relabel models, then the
    original teacher label."""
    if vote["model"] in models:
        return models.index(vote["model"])
    return len(models) + (1 if vote["source"] == "teacher" else 0)


def decide(votes: list[dict], *, models: list[str], tie: str) -> tuple[Label | None, str]:
    """The winning label of valid ``votes`` and how it won (``None`` and the reason when a human must decide)."""
    valid = [v for v in votes if v["valid"]]
    labels = {v["label_id"]: parse_label(v["calls"]) for v in valid}
    by_class = Counter(labels[v["label_id"]].tool_set_key for v in valid)
    ranked = by_class.most_common()
    top_count = ranked[0][1]
    tied = sorted(c for c, n in ranked if n == top_count)
    method = f"majority {top_count}/{len(valid)}"
    if len(tied) > 1:
        if tie == "review":
            return None, f"tie {top_count}/{len(valid)} between {', '.join(tied)}: to review"
        best = {c: min(_rank(v, models) for v in valid if labels[v["label_id"]].tool_set_key == c) for c in tied}
        order = sorted(tied, key=lambda c: best[c])
        if best[order[0]] == best[order[1]]:
            return None, f"tie {top_count}/{len(valid)} between {', '.join(tied)}, votes of equal rank: to review"
        winner_class = order[0]
        strongest = min((v for v in valid if labels[v["label_id"]].tool_set_key == winner_class),
                        key=lambda v: _rank(v, models))
        method = f"tie {top_count}/{len(valid)} to the stronger model {strongest['model']}"
    else:
        winner_class = tied[0]
    inside = [v for v in valid if labels[v["label_id"]].tool_set_key == winner_class]
    counts = Counter(labels[v["label_id"]].hash for v in inside)
    most = max(counts.values())
    best_vote = min((v for v in inside if counts[labels[v["label_id"]].hash] == most), key=lambda v: _rank(v, models))
    return labels[best_vote["label_id"]], method


def adjudicate(db: Database, *, models: list[str] | None = None, include_teacher: bool = True,
               tie: str = "stronger", query_ids: list[int] | None = None) -> AdjudicationReport:
    """Settle every query with relabel votes (or only ``query_ids``) by majority; record each decision.

    Args:
        models: teacher models, strongest first, for breaking ties.
        include_teacher: count the original teacher label as one vote.
        tie: ``stronger`` (ties to the stronger model) or ``review`` (ties go to a human).

    Returns: the settled queries, those sent to review, those still waiting for votes.

    Side effects: one ``adjudications`` row per settled query (label, method, votes as JSON); their flags move to
    ``adjudicated``, tied ones to ``needs_review``.
    """
    if tie not in TIES:
        raise InputError(f"--tie must be one of {', '.join(TIES)}, got {tie!r}")
    models = list(models or [])
    relabels = _votes(db)
    if query_ids is not None:
        wanted = set(query_ids)
        relabels = {q: v for q, v in relabels.items() if q in wanted}
    busy = {q for (q,) in db.execute("SELECT DISTINCT query_id FROM jobs WHERE purpose = 'relabel'"
                                     " AND state IN ('pending', 'leased')")}
    teacher = {qid: (lid, model, calls) for lid, qid, model, calls in db.execute(
        "SELECT id, query_id, model, calls FROM labels WHERE valid = 1 AND purpose = 'label' ORDER BY id")}
    previous = {qid: votes for qid, votes in db.execute("SELECT query_id, votes FROM adjudications ORDER BY id")}
    report = AdjudicationReport(waiting=sorted(q for q in busy if query_ids is None or q in set(query_ids)))
    with db.atomic():
        for qid, votes in sorted(relabels.items()):
            if qid in busy:
                continue
            if not any(v["valid"] for v in votes):
                continue
            if include_teacher and qid in teacher:
                lid, model, calls = teacher[qid]
                votes = [{"label_id": lid, "source": "teacher", "model": model, "vote": None, "valid": True,
                          "calls": json.loads(calls), "reject_reason": None}, *votes]
            ids = sorted(v["label_id"] for v in votes)
            if qid in previous and sorted(v["label_id"] for v in json.loads(previous[qid])) == ids:
                report.unchanged += 1
                continue
            label, method = decide(votes, models=models, tie=tie)
            result = Adjudication(qid, label, method, votes)
            flag_ids = [f for (f,) in db.execute(
                "SELECT id FROM audit_flags WHERE query_id = ? AND status IN ('open', 'relabel', 'needs_review')",
                [qid])]
            if label is None:
                report.to_review.append(result)
                set_flag_status(db, flag_ids, "needs_review")
                continue
            db.execute("INSERT INTO adjudications (query_id, calls, label_hash, method, votes, created_at)"
                       " VALUES (?,?,?,?,?,?)",
                       [qid, label.canonical_json(), label.hash, method, json.dumps(votes, ensure_ascii=False),
                        now_iso()])
            set_flag_status(db, flag_ids, "adjudicated")
            report.settled.append(result)
    return report
