"""Paired comparison of two routers on the same queries: differences with intervals, and McNemar's test.

Both runs are graded against the same label view, item by item. For each metric, the difference B - A gets a
paired bootstrap interval (items resampled together, so the pairing is kept), and McNemar's test asks whether
the items only A gets right and the items only B gets right are as likely as each other (exact two-sided
binomial test on the discordant pairs, computed in log space so it stays exact for any count).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np
from sqlite_utils import Database

from ..db import get_catalog_by_hash, load_split
from ..errors import ToolDistillError
from .grade import Grade
from .metrics import ratio_intervals
from .noise import VIEWS, label_views
from .routers import get_run

# name -> (item counts in the rate, item is right)
PAIRED_METRICS: dict[str, tuple[Callable[[Grade], bool], Callable[[Grade], bool]]] = {
    "tool_accuracy": (lambda g: True, lambda g: g.tool_correct),
    "fully_correct": (lambda g: True, lambda g: g.fully_correct),
    "schema_valid": (lambda g: True, lambda g: g.schema_valid),
    "no_tool_recall": (lambda g: g.gold.is_no_tool, lambda g: g.pred is not None and g.pred.is_no_tool),
    "multi_tool_exact": (lambda g: g.gold.is_multi, lambda g: g.fully_correct),
}


def mcnemar(a_only: int, b_only: int) -> dict:
    """McNemar's exact test: two-sided binomial p-value of ``a_only`` vs ``b_only`` discordant pairs.

    Returns: ``{"a_only", "b_only", "statistic", "p_value", "method"}``; ``statistic`` is the continuity-corrected
    chi-square, for reference; with no discordant pairs the p-value is 1.
    """
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "statistic": 0.0, "p_value": 1.0, "method": "exact binomial"}
    k = min(a_only, b_only)
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
                 for i in range(k + 1)]
    top = max(log_terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    chi2 = (abs(a_only - b_only) - 1) ** 2 / n
    return {"a_only": a_only, "b_only": b_only, "statistic": chi2, "p_value": min(1.0, 2 * tail),
            "method": "exact binomial"}


def compare_grades(grades_a: dict[int, Grade], grades_b: dict[int, Grade], *, resamples: int = 1000,
                   seed: int = 0, confidence: float = 0.95) -> dict:
    """Compare two graded prediction sets on the queries they share.

    Returns: ``{"n", "metrics": {name: {"a", "b", "diff", "mcnemar"}}}`` where ``a``/``b`` are rates and
    ``diff`` is B - A, each with a paired bootstrap interval.
    """
    qids = [q for q in grades_a if q in grades_b]
    if not qids:
        raise ToolDistillError("the two runs share no graded queries; compare runs of the same dataset version")
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    tests = {}
    for name, (counts, right) in PAIRED_METRICS.items():
        den = np.array([float(counts(grades_a[q])) for q in qids])
        ra = np.array([float(right(grades_a[q])) for q in qids]) * den
        rb = np.array([float(right(grades_b[q])) for q in qids]) * den
        pairs[f"{name}:a"], pairs[f"{name}:b"], pairs[f"{name}:diff"] = (ra, den), (rb, den), (rb - ra, den)
        tests[name] = mcnemar(int(((ra == 1) & (rb == 0)).sum()), int(((ra == 0) & (rb == 1)).sum()))
    rates = ratio_intervals(pairs, resamples=resamples, seed=seed, confidence=confidence)
    metrics = {name: {"a": rates[f"{name}:a"], "b": rates[f"{name}:b"], "diff": rates[f"{name}:diff"],
                      "mcnemar": tests[name]} for name in PAIRED_METRICS if rates[f"{name}:a"]["den"] > 0}
    return {"n": len(qids), "metrics": metrics}


def compare_runs(db: Database, a_ref: str, b_ref: str, *, view: str = "split", resamples: int = 1000,
                 seed: int = 0, write_report: bool = True, runs_dir: str | Path | None = None) -> dict:
    """Compare eval runs A and B (e.g. base and tuned) on their shared queries against one label view.

    Args:
        db: the workspace database.
        a_ref, b_ref: eval run ids (or unique prefixes); B is the one reported on (e.g. the tuned student).
        view: ``split``, ``teacher``, ``corrected`` or ``clean`` (see :mod:`tooldistill.eval.noise`).
        resamples, seed: the paired bootstrap.
        write_report: write ``compare-<A>.md/.json/.png`` into B's run folder.
        runs_dir: where the runs' folders are (default: B's stored artifact path).

    Returns: ``{"a", "b", "view", "split", "n", "metrics", "files"}``.

    Raises: ToolDistillError for unknown runs or views, or runs that share no queries.
    """
    from .runner import grade_view, load_predictions

    if view not in VIEWS:
        raise ToolDistillError(f"unknown label view {view!r} (known: {', '.join(VIEWS)})")
    runs = [get_run(db, ref, kind="eval") for ref in (a_ref, b_ref)]
    if runs[0]["dataset_version"] != runs[1]["dataset_version"]:
        raise ToolDistillError(f"runs {runs[0]['id']} and {runs[1]['id']} evaluated different dataset versions; "
                               "pair runs of the same version")
    graded = []
    for run in runs:
        preds = load_predictions(db, run["id"])
        examples = [e for e in load_split(db, run["dataset_version"], run["config"]["split"]) if e.query_id in preds]
        catalog = get_catalog_by_hash(db, run["config"]["catalog_hash"])
        labels = label_views(db, examples).views[view]
        graded.append(grade_view({q: p["parsed"] for q, p in preds.items()}, labels, catalog))
    result = compare_grades(graded[0], graded[1], resamples=resamples, seed=seed)
    out = {"a": {"run_id": runs[0]["id"], "target": runs[0]["config"].get("target")},
           "b": {"run_id": runs[1]["id"], "target": runs[1]["config"].get("target")},
           "view": view, "split": f"{runs[1]['dataset_version'][:12]}:{runs[1]['config']['split']}", **result}
    if write_report:
        from .report import write_compare_report

        folder = Path(runs_dir) / runs[1]["id"] if runs_dir else Path(runs[1].get("artifact_path") or runs[1]["id"])
        out["files"] = [str(p) for p in write_compare_report(out, folder)]
    return out
