"""Run an audit: load the teacher labels, run the signals, combine their hits into ranked flags, store them.

Combining: a row's score is the noisy-OR of the strengths of every hit on it, ``1 - prod(1 - strength)``:
independent pieces of evidence add up, and one certain piece (gold) is enough. A row is flagged when its score
reaches ``FLAG_THRESHOLD`` (0.5: more likely wrong than right). A signal *fires* on a row when its own hit reaches
0.5; weaker hits (a small duplicate-cluster conflict, a classifier doubt past cleanlab's count) are supporting
evidence that only flags a row together with another signal. A row a signal *cleared* (its label matches gold)
is not flagged whatever the others say; the report counts the hits that clearing overruled. The suggestion is gold's when gold fired; otherwise the tool set with the most strength behind
it, filled from the signal that carries a full label for it, else from the audited label's arguments.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Mapping

from sqlite_utils import Database

from ...catalog import Label, parse_label
from ...db import get_catalog, now_iso
from ...errors import ToolDistillError
from ...progress import ProgressCallback, ProgressEvent, noop
from .arguments import ArgumentsSignal
from .base import SIGNAL_NAMES, AuditConfig, AuditContext, AuditItem, Hit, Signal, SignalOutput, suggest_label
from .confident import ConfidentSignal
from .duplicates import DuplicatesSignal
from .gold import GoldSignal
from .store import Flag, NewFlag, get_flags, save_run
from .student import StudentPrediction, StudentSignal
from .votes import VotesSignal

FLAG_THRESHOLD = 0.5


@dataclass
class AuditReport:
    """What an audit run found: its id, the ranked flags, and per signal what it checked and produced."""

    run_id: int
    n_audited: int
    flags: list[Flag]
    signals: dict[str, dict]
    seconds: float
    settled_skipped: int = 0
    info: dict = field(default_factory=dict)

    def to_dict(self, *, limit: int | None = None) -> dict:
        return {
            "run_id": self.run_id, "audited": self.n_audited, "flags_total": len(self.flags),
            "settled_skipped": self.settled_skipped, "seconds": round(self.seconds, 3), **self.info,
            "signals": self.signals,
            "flags": [f.to_dict() for f in self.flags[:limit]],
        }


def load_items(db: Database) -> list[AuditItem]:
    """Every query with a valid teacher label, in query-id order, with its gold and settled label if any.

    The audited label is the latest valid ``purpose = 'label'`` label (the rule of ``db.teacher_labels``), kept
    with its row id and model for the flag's lineage. Queries a reviewer rejected are left out.
    """
    parsed: dict[str, Label] = {}

    def label_of(calls: str) -> Label:
        if calls not in parsed:  # class datasets repeat the same few labels thousands of times
            parsed[calls] = parse_label(json.loads(calls))
        return parsed[calls]

    latest: dict[int, tuple[int, str | None, str]] = {}
    for label_id, qid, model, calls in db.execute(
            "SELECT id, query_id, model, calls FROM labels WHERE valid = 1 AND purpose = 'label'"
            " AND calls IS NOT NULL ORDER BY id"):
        latest[qid] = (label_id, model, calls)
    settled: dict[int, tuple[str, Label | None]] = {}
    for qid, calls in db.execute("SELECT query_id, calls FROM adjudications ORDER BY id"):
        settled[qid] = ("adjudicated", label_of(calls))
    rejected: set[int] = set()
    for qid, decision, calls in db.execute("SELECT query_id, decision, calls FROM reviews ORDER BY id"):
        if decision == "reject":
            rejected.add(qid)
        elif decision in ("accept", "fix"):
            rejected.discard(qid)
            settled[qid] = ("review", label_of(calls))
        elif decision == "keep":
            rejected.discard(qid)
            settled[qid] = ("review", settled.get(qid, (None, None))[1])
    items = []
    for qid, text, gold in db.execute("SELECT id, text, gold_calls FROM queries ORDER BY id"):
        if qid not in latest or qid in rejected:
            continue
        label_id, model, calls = latest[qid]
        label = label_of(calls)
        how, settled_label = settled.get(qid, (None, None))
        items.append(AuditItem(qid, text, label, label_id, model, label_of(gold) if gold else None,
                               settled_label or label, how))
    return items


def build_signals(config: AuditConfig, student: Mapping[int, StudentPrediction] | None = None) -> list[Signal]:
    """The signals ``config.signals`` names, in the documented order."""
    unknown = [s for s in config.signals if s not in SIGNAL_NAMES]
    if unknown:
        raise ToolDistillError(f"unknown audit signal {unknown[0]!r} (known: {', '.join(SIGNAL_NAMES)})")
    made = {"confident": ConfidentSignal, "gold": GoldSignal, "votes": VotesSignal,
            "duplicates": DuplicatesSignal, "arguments": ArgumentsSignal}
    return [StudentSignal(student) if name == "student" else made[name]()
            for name in SIGNAL_NAMES if name in config.signals]


def _suggestion(ctx: AuditContext, item: AuditItem, hits: dict[str, Hit]) -> tuple[Label | None, str | None]:
    if "gold" in hits:
        return hits["gold"].suggested, hits["gold"].suggested_class
    weight: dict[str, float] = {}
    for hit in hits.values():
        if hit.suggested_class is not None and hit.suggested_class != item.cls:
            weight[hit.suggested_class] = weight.get(hit.suggested_class, 0.0) + hit.strength
    if not weight:
        return None, None
    best = max(sorted(weight), key=weight.get)
    full = [h for h in sorted(hits.values(), key=lambda h: -h.strength)
            if h.suggested_class == best and h.suggested is not None]
    if full:
        return full[0].suggested, best
    return suggest_label(ctx.catalog, best, item.label), best


def combine(ctx: AuditContext, outputs: list[SignalOutput]) -> list[NewFlag]:
    """One flag per row some signal fired on, best first (score, then query id)."""
    by_query: dict[int, dict[str, Hit]] = {}
    cleared = set().union(*(out.cleared for out in outputs)) if outputs else set()
    for out in outputs:
        for qid, hit in out.hits.items():
            if qid not in cleared:
                by_query.setdefault(qid, {})[out.name] = hit
    items = {it.query_id: it for it in ctx.items}
    flags = []
    for qid, hits in by_query.items():
        item = items[qid]
        keep = 1.0
        for hit in hits.values():
            keep *= 1.0 - min(max(hit.strength, 0.0), 0.999)
        if 1.0 - keep < FLAG_THRESHOLD:
            continue
        suggested, suggested_class = _suggestion(ctx, item, hits)
        names = sorted(hits, key=lambda n: (-hits[n].strength, n))
        evidence = {n: {"strength": round(hits[n].strength, 4), **hits[n].evidence} for n in names}
        flags.append(NewFlag(qid, 1.0 - keep, item.label, item.label_id, suggested, suggested_class, names, evidence))
    flags.sort(key=lambda f: (-f.score, f.query_id))
    return flags


def run_audit(db: Database, *, config: AuditConfig | None = None,
              student: Mapping[int, StudentPrediction] | None = None, student_source: str | None = None,
              progress: ProgressCallback = noop) -> AuditReport:
    """Audit the teacher labels: run the configured signals, store a ranked flag per suspected mislabel.

    Args:
        db: the workspace database (its current catalogue is the one labels are checked against).
        config: which signals run and how (defaults: every signal; ``ngram`` confident-learning model).
        student: per-query predictions of a trained student, for the ``student`` signal.
        student_source: where they came from (an eval run id or a file path), recorded with the audit run.
        progress: receives one event per signal.

    Returns: the report, flags best first. Side effects: one ``audit_runs`` row and its ``audit_flags`` rows.

    Raises: ToolDistillError when no query has a valid teacher label, or a signal or model name is unknown.
    """
    config = config or AuditConfig()
    start, started_at = time.perf_counter(), now_iso()
    signals = build_signals(config, student)
    catalog = get_catalog(db)
    items = load_items(db)
    if not items:
        raise ToolDistillError("no teacher labels to audit; run 'tooldistill distill run' or import labels first")
    ctx = AuditContext(db, catalog, items, config, progress)
    outputs, timings = [], {}
    for i, signal in enumerate(signals):
        progress(ProgressEvent("audit", i, len(signals), f"audit: {signal.name}"))
        t0 = time.perf_counter()
        outputs.append(signal.run(ctx))
        timings[signal.name] = round(time.perf_counter() - t0, 3)
    progress(ProgressEvent("audit", len(signals), len(signals), "audit: combining"))
    flags = combine(ctx, outputs)
    summary = {}
    for out, signal in zip(outputs, signals):
        only = sum(1 for f in flags if f.signals == [out.name])
        fired = sum(1 for h in out.hits.values() if h.strength >= FLAG_THRESHOLD)
        in_flags = sum(1 for f in flags if out.name in f.signals)
        summary[out.name] = {"description": signal.description, "fired": fired, "supporting": len(out.hits) - fired,
                             "in_flags": in_flags, "only": only,
                             "checked": out.checked, "skipped": out.skipped, "seconds": timings[out.name],
                             "info": out.info}
    settled = sum(1 for it in items if it.settled is not None) if not config.include_reviewed else 0
    cleared = set().union(*(o.cleared for o in outputs)) if outputs else set()
    would_be: dict[int, float] = {}
    for o in outputs:
        for q, h in o.hits.items():
            if q in cleared:
                would_be[q] = would_be.get(q, 1.0) * (1.0 - min(max(h.strength, 0.0), 0.999))
    overruled = {q for q, keep in would_be.items() if 1.0 - keep >= FLAG_THRESHOLD}
    for out in outputs:
        summary[out.name]["overruled_by_gold"] = sum(1 for q in out.hits if q in cleared)
    params = {**config.model_dump(mode="json"), "student_predictions": len(student or {}),
              "student_source": student_source}
    run_id = save_run(db, flags, catalog_hash=catalog.hash, params=params, signals=summary,
                      n_audited=len(ctx.targets), report={"seconds": timings, "settled_skipped": settled, "cleared": len(cleared),
                              "cleared_with_hits": len(overruled)},
                      started_at=started_at)
    return AuditReport(run_id, len(ctx.targets), get_flags(db, run_id), summary, time.perf_counter() - start,
                       settled, {"cleared": len(cleared), "cleared_with_hits": len(overruled)})
