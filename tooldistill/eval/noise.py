"""The noise-aware view: the same predictions scored against several versions of the truth, side by side.

The test labels come from the teacher that made the training labels, so some are wrong, and a student can be
right where its test label is wrong. Views (each a ``{query_id: Label}`` over the split's queries):

- ``split``: the labels the dataset version froze (what a naive eval scores against);
- ``teacher``: the teacher's latest valid label per query (``tooldistill.db.teacher_labels``);
- ``corrected``: the current label after audit, review and relabel (``tooldistill.db.current_labels``: review >
  gold > adjudicated > teacher; items a reviewer rejected are left out);
- ``clean``: the verified subset, whose current label comes from gold or a human review.

Besides the views: the items where the model disagrees with the teacher and the audit sides with the model
(a correction, or an open audit flag, equal to the model's answer), and an estimate of the test-label error rate.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

from sqlite_utils import Database

from ..catalog import Catalog, Label, parse_label
from ..db import SplitExample, current_labels, teacher_labels
from .grade import grade

log = logging.getLogger(__name__)

VIEWS = ("split", "teacher", "corrected", "clean")
VERIFIED_SOURCES = ("gold", "review")
# flag statuses whose outcome already shows in the current labels (a review or adjudication), or that were dropped
_SETTLED = {"reviewed", "adjudicated", "rejected", "dismissed", "kept", "closed"}


@dataclass(frozen=True)
class LabelViews:
    """The label of each split query in each view, and where each current label came from."""

    views: dict[str, dict[int, Label]]
    sources: dict[int, str]
    """Current-label source per query (``review``, ``gold``, ``adjudicated``, ``teacher``)."""


def label_views(db: Database, examples: Sequence[SplitExample]) -> LabelViews:
    """Build the four label views of a split's queries from the database's label history.

    Args:
        db: the workspace database.
        examples: the split (query ids and frozen labels).

    Returns: :class:`LabelViews`; a view leaves out queries it has no label for.
    """
    qids = [e.query_id for e in examples]
    teacher = teacher_labels(db)
    current = current_labels(db)
    views = {
        "split": {e.query_id: e.label for e in examples},
        "teacher": {q: teacher[q] for q in qids if q in teacher and teacher[q] is not None},
        "corrected": {q: current[q].label for q in qids if q in current},
        "clean": {q: current[q].label for q in qids if q in current and current[q].source in VERIFIED_SOURCES},
    }
    return LabelViews(views, {q: current[q].source for q in qids if q in current})


def wilson_interval(k: float, n: float, *, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion ``k / n`` (``(None, None)`` when ``n`` is 0)."""
    if n <= 0:
        return None, None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _proportion(k: int, n: int, confidence: float) -> dict:
    lo, hi = wilson_interval(k, n, confidence=confidence)
    return {"value": (k / n) if n else None, "lo": lo, "hi": hi, "num": k, "den": n}


def label_error_estimate(lv: LabelViews, *, confidence: float = 0.95) -> dict:
    """Estimate how often the split's frozen test labels are wrong, with Wilson intervals.

    Returns: a dict with
        ``gold``: disagreement of frozen labels with gold on the gold items (an unbiased sample when gold comes
        from templates or a random verified sample);
        ``verified``: the same on every verified item (gold or reviewed); reviews usually follow audit flags, so
        this over-represents errors: read it as the audit's precision, not the error rate;
        ``corrected_lower_bound``: share of all split items whose current label differs from the frozen one (a
        lower bound: corrections not yet made are not counted);
        ``estimate``: the one to quote (``gold`` when the split has gold items, else the lower bound), ``method``
        naming it.
    """
    split, corrected = lv.views["split"], lv.views["corrected"]

    def disagreement(qids: list[int]) -> dict:
        return _proportion(sum(split[q] != corrected[q] for q in qids), len(qids), confidence)

    verified = [q for q in split if q in corrected and lv.sources.get(q) in VERIFIED_SOURCES]
    gold = [q for q in verified if lv.sources.get(q) == "gold"]
    out = {
        "verified": disagreement(verified),
        "gold": disagreement(gold),
        "corrected_lower_bound": disagreement([q for q in split if q in corrected]),
    }
    method = "gold" if gold else "corrected_lower_bound"
    out["method"] = method
    out["estimate"] = out[method]
    return out


def audit_suggestions(db: Database) -> dict[int, dict]:
    """Unsettled audit flags with a suggested label, per query: ``{query_id: {"label", "score", "flag_id"}}``.

    Reads curate's ``audit_flags`` table (m030) defensively: its columns are found at run time, so a schema
    change there degrades this list rather than breaking eval. Flags already reviewed or adjudicated are left
    out (their outcome is in the current labels); the latest flag of a query wins.
    """
    table = next((t for t in ("audit_flags", "flags") if t in db.table_names()), None)
    if table is None:
        return {}
    cols = set(db[table].columns_dict)
    label_col = next((c for c in ("suggested_calls", "suggested", "suggestion", "suggested_label") if c in cols), None)
    if "query_id" not in cols or label_col is None:
        log.info("audit table %s has no query_id/suggested label column; skipping audit flags", table)
        return {}
    score_col = "score" if "score" in cols else None
    status_col = next((c for c in ("status", "state") if c in cols), None)
    sql = f"SELECT rowid, query_id, [{label_col}]" + (f", [{score_col}]" if score_col else ", NULL") + \
        (f", [{status_col}]" if status_col else ", NULL") + f" FROM [{table}] ORDER BY rowid"
    out: dict[int, dict] = {}
    for flag_id, qid, suggested, score, status in db.execute(sql):
        if suggested is None or (status and str(status).lower() in _SETTLED):
            continue
        try:
            label = parse_label(json.loads(suggested) if isinstance(suggested, str) else suggested)
        except (ValueError, TypeError):
            continue
        out[qid] = {"label": label, "score": score, "flag_id": flag_id}
    return out


def disagreements_with_support(
    lv: LabelViews,
    predictions: dict[int, Label | None],
    texts: dict[int, str],
    catalog: Catalog,
    *,
    flags: dict[int, dict] | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Test items where the model disagrees with the teacher and the audit sides with the model.

    The audit sides with the model when the corrected label (review, gold or adjudicated votes) differs from
    the teacher's and equals the model's answer, or an open audit flag suggests exactly the model's answer.

    Returns: rows ``{query_id, text, teacher, model, corrected, source, evidence}`` (labels as JSON lists),
    corrections first, then flags by score.
    """
    teacher, corrected = lv.views["teacher"], lv.views["corrected"]

    def same(pred: Label, label: Label) -> bool:  # graded, so "tokyo" and "Tokyo" agree
        return grade(pred, label, catalog).fully_correct

    rows: list[tuple[int, float, dict]] = []
    for qid, pred in predictions.items():
        if pred is None or qid not in teacher or same(pred, teacher[qid]):
            continue
        source = lv.sources.get(qid)
        row = {"query_id": qid, "text": texts.get(qid, ""), "teacher": teacher[qid].canonical(),
               "model": pred.canonical(), "corrected": corrected[qid].canonical() if qid in corrected else None,
               "source": source}
        if qid in corrected and source != "teacher" and corrected[qid] != teacher[qid] \
                and same(pred, corrected[qid]):
            rows.append((0, 0.0, {**row, "evidence": f"{source} label equals the model's"}))
        elif flags and qid in flags and same(pred, flags[qid]["label"]):
            score = flags[qid].get("score")
            rows.append((1, -(score or 0.0), {**row, "evidence": f"audit flag {flags[qid]['flag_id']} suggests the "
                                              f"model's label" + (f" (score {score:.2f})" if score is not None else "")}))
    rows.sort(key=lambda r: (r[0], r[1], r[2]["query_id"]))
    out = [r[2] for r in rows]
    return out[:limit] if limit is not None else out
