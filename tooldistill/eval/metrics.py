"""Every metric of a graded prediction set, each rate with a seeded bootstrap confidence interval.

Every rate is a ratio of two sums over predictions (``num / den``), so one bootstrap serves them all: the
predictions are resampled with replacement ``resamples`` times (one multinomial weight vector per resample,
seeded), each rate is recomputed on each resample, and the interval is the percentile interval. A rate whose
denominator is empty is ``None`` ("not applicable"), e.g. argument metrics on a catalogue of parameterless tools.

Definitions (``n`` = predictions; "gold" = the label graded against):

- ``valid_json``: the whole output was JSON in a label shape; ``parsed``: readable at all (tolerant extraction
  included); ``extracted``: readable only after extraction. All over ``n``.
- ``schema_valid``: readable and every call fits the catalogue. Over ``n``.
- ``tool_accuracy``: the same multiset of tools as gold (``[]`` = ``[]`` counts). Over ``n``.
- ``args_exact``: all arguments right, over predictions with the right tools where gold or prediction has
  arguments ("exact args on valid calls").
- ``arg_precision`` / ``arg_recall`` / ``arg_f1``: micro-averaged over (tool, argument, value) matches.
- ``fully_correct``: right tools and right arguments. Over ``n``.
- ``false_tool_call``: gold is no tool and the prediction calls one. Over gold-no-tool items.
- ``no_tool_recall``: prediction ``[]`` over gold-no-tool items; ``no_tool_precision``: gold ``[]`` over
  predicted ``[]``.
- ``multi_tool_exact`` / ``multi_tool_tools``: fully correct / right tools, over gold multi-tool items.
- per tool (and ``<none>`` for no tool): precision, recall and F1 over call counts (a call of tool t counts as
  a true positive up to the number of t calls in gold).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from ..catalog import Catalog
from .grade import ERROR_TYPES, Grade

NONE_KEY = "<none>"
RATE_NAMES = (
    "valid_json", "parsed", "extracted", "schema_valid", "tool_accuracy", "args_exact", "arg_precision",
    "arg_recall", "arg_f1", "fully_correct", "false_tool_call", "no_tool_recall", "no_tool_precision",
    "multi_tool_exact", "multi_tool_tools",
)
HEADLINE = ("tool_accuracy", "fully_correct", "args_exact", "arg_f1", "false_tool_call", "no_tool_recall",
            "multi_tool_exact", "valid_json", "schema_valid")


def _rate_columns(grades: Sequence[Grade]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For every rate, its per-prediction numerator and denominator vectors."""
    def vec(values) -> np.ndarray:
        return np.fromiter(values, dtype=np.float64, count=len(grades))

    ones = np.ones(len(grades))
    parsed = vec(g.pred is not None for g in grades)
    gold_none = vec(g.gold.is_no_tool for g in grades)
    pred_none = vec(g.pred is not None and g.pred.is_no_tool for g in grades)
    pred_calls = vec(g.pred is not None and not g.pred.is_no_tool for g in grades)
    multi = vec(g.gold.is_multi for g in grades)
    tool_ok = vec(g.tool_correct for g in grades)
    full = vec(g.fully_correct for g in grades)
    has_args = vec(g.arg_tp + g.arg_fp + g.arg_fn > 0 for g in grades)
    tp, fp, fn = (vec(getattr(g, f"arg_{k}") for g in grades) for k in ("tp", "fp", "fn"))
    return {
        "valid_json": (vec(g.valid_json for g in grades), ones),
        "parsed": (parsed, ones),
        "extracted": (vec(g.extracted and g.pred is not None for g in grades), ones),
        "schema_valid": (vec(g.schema_valid for g in grades), ones),
        "tool_accuracy": (tool_ok, ones),
        "args_exact": (full * has_args, tool_ok * has_args),
        "arg_precision": (tp, tp + fp),
        "arg_recall": (tp, tp + fn),
        "arg_f1": (2 * tp, 2 * tp + fp + fn),
        "fully_correct": (full, ones),
        "false_tool_call": (gold_none * pred_calls, gold_none),
        "no_tool_recall": (gold_none * pred_none, gold_none),
        "no_tool_precision": (gold_none * pred_none, pred_none),
        "multi_tool_exact": (multi * full, multi),
        "multi_tool_tools": (multi * tool_ok, multi),
    }


def _tool_counts(grades: Sequence[Grade], tools: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per prediction x tool: true positives, false positives, false negatives (``<none>`` last)."""
    index = {t: i for i, t in enumerate(tools)}
    shape = (len(grades), len(tools))
    tp, fp, fn = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    none = index[NONE_KEY]
    for row, g in enumerate(grades):
        gold, pred = Counter(g.gold.tools), Counter(g.pred.tools if g.pred is not None else [])
        for tool in set(gold) | set(pred):
            col = index.get(tool)
            if col is None:
                continue
            hit = min(gold[tool], pred[tool])
            tp[row, col], fp[row, col], fn[row, col] = hit, pred[tool] - hit, gold[tool] - hit
        pred_none = g.pred is not None and g.pred.is_no_tool
        if g.gold.is_no_tool:
            tp[row, none], fn[row, none] = float(pred_none), float(not pred_none)
        elif pred_none:
            fp[row, none] = 1.0
    return tp, fp, fn


def bootstrap_sums(columns: np.ndarray, *, resamples: int, seed: int, chunk: int = 200) -> np.ndarray:
    """Column sums of ``columns`` (items x k) over ``resamples`` bootstrap resamples of the items (seeded).

    Each resample is a multinomial count vector (how often each item is drawn); resamples are drawn ``chunk``
    at a time so memory stays ``chunk x items`` whatever the count.
    """
    n = columns.shape[0]
    if n == 0 or resamples <= 0:
        return np.zeros((0, columns.shape[1]))
    rng = np.random.default_rng(seed)
    probs = np.full(n, 1.0 / n)
    parts = []
    for start in range(0, resamples, chunk):
        weights = rng.multinomial(n, probs, size=min(chunk, resamples - start)).astype(np.float64)
        parts.append(weights @ columns)
    return np.vstack(parts)


def _interval(num: float, den: float, boot_num: np.ndarray | None, boot_den: np.ndarray | None,
              confidence: float) -> dict:
    out = {"value": None, "lo": None, "hi": None, "num": float(num), "den": float(den)}
    if den <= 0:
        return out
    out["value"] = float(num) / float(den)
    if boot_num is not None and len(boot_num):
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = boot_num / boot_den
        boot = boot[np.isfinite(boot)]
        if len(boot):
            alpha = (1 - confidence) / 2
            lo, hi = np.quantile(boot, [alpha, 1 - alpha])
            out["lo"], out["hi"] = float(lo), float(hi)
    return out


def ratio_intervals(pairs: dict[str, tuple[np.ndarray, np.ndarray]], *, resamples: int = 1000, seed: int = 0,
                    confidence: float = 0.95) -> dict[str, dict]:
    """Rates ``sum(num) / sum(den)`` with bootstrap percentile intervals, all from the same resamples.

    Args:
        pairs: name -> (per-item numerator, per-item denominator).
        resamples, seed, confidence: the bootstrap (0 resamples: values without intervals).

    Returns: name -> ``{"value", "lo", "hi", "num", "den"}`` (``value`` None when the denominator sums to 0).
    """
    names = list(pairs)
    if not names:
        return {}
    columns = np.column_stack([c for name in names for c in pairs[name]]).astype(np.float64)
    boot = bootstrap_sums(columns, resamples=resamples, seed=seed)
    totals = columns.sum(axis=0)
    out = {}
    for i, name in enumerate(names):
        b_num, b_den = (boot[:, 2 * i], boot[:, 2 * i + 1]) if len(boot) else (None, None)
        out[name] = _interval(totals[2 * i], totals[2 * i + 1], b_num, b_den, confidence)
    return out


def compute_metrics(
    grades: Sequence[Grade],
    *,
    catalog: Catalog | None = None,
    latencies_ms: Sequence[float] | None = None,
    wall_s: float | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict:
    """Compute every metric of a set of graded predictions, with bootstrap intervals.

    Args:
        grades: one :class:`Grade` per prediction.
        catalog: lists every tool in the per-tool table (else only the tools that occur).
        latencies_ms: per-prediction latency (what each query waited); ``None`` leaves latency out.
        wall_s: total wall time of the predictions, for throughput.
        resamples, seed, confidence: the bootstrap (0 resamples: no intervals).

    Returns: a JSON-ready dict: ``n``, ``rates`` (name -> value/lo/hi/num/den), ``per_tool`` (tool -> support,
    predicted, precision, recall, f1), ``confusion``, ``errors`` (typed error -> predictions with it),
    ``latency`` and ``bootstrap``.
    """
    n = len(grades)
    seen = {t for g in grades for t in g.gold.tools} | {t for g in grades if g.pred for t in g.pred.tools}
    tools = list(catalog.names) if catalog is not None else sorted(seen)
    tools = [t for t in tools if t in seen] + [NONE_KEY]
    tp, fp, fn = _tool_counts(grades, tools)
    pairs = dict(_rate_columns(grades))
    for i, tool in enumerate(tools):
        pairs[f"tool:{tool}:precision"] = (tp[:, i], tp[:, i] + fp[:, i])
        pairs[f"tool:{tool}:recall"] = (tp[:, i], tp[:, i] + fn[:, i])
        pairs[f"tool:{tool}:f1"] = (2 * tp[:, i], 2 * tp[:, i] + fp[:, i] + fn[:, i])
    all_rates = ratio_intervals(pairs, resamples=resamples if n else 0, seed=seed, confidence=confidence)
    per_tool = {}
    for i, tool in enumerate(tools):
        support, predicted = int(tp[:, i].sum() + fn[:, i].sum()), int(tp[:, i].sum() + fp[:, i].sum())
        if support or predicted:
            per_tool[tool] = {"support": support, "predicted": predicted,
                              **{k: all_rates[f"tool:{tool}:{k}"] for k in ("precision", "recall", "f1")}}
    errors = Counter(e for g in grades for e in set(g.errors))
    return {
        "n": n,
        "rates": {name: all_rates[name] for name in RATE_NAMES},
        "per_tool": per_tool,
        "confusion": confusion_matrix(grades),
        "errors": {e: errors.get(e, 0) for e in ERROR_TYPES},
        "latency": latency_summary(latencies_ms, wall_s=wall_s, n=n),
        "bootstrap": {"resamples": resamples if n else 0, "seed": seed, "confidence": confidence},
    }


def confusion_matrix(grades: Sequence[Grade], *, top: int = 20) -> dict:
    """Gold tool set x predicted tool set counts, rows by gold frequency, plus the ``top`` off-diagonal cells."""
    cells = Counter((g.gold.tool_set_key, g.pred_key) for g in grades)
    gold_freq = Counter(g.gold.tool_set_key for g in grades)
    labels = [k for k, _ in gold_freq.most_common()]
    extra = sorted({p for _, p in cells} - set(labels))
    cols = labels + extra
    matrix = [[cells.get((r, c), 0) for c in cols] for r in labels]
    confused = sorted(((c, g, p) for (g, p), c in cells.items() if g != p), key=lambda x: (-x[0], x[1], x[2]))
    return {"rows": labels, "cols": cols, "matrix": matrix,
            "top_confusions": [{"gold": g, "pred": p, "count": c} for c, g, p in confused[:top]]}


def latency_summary(latencies_ms: Sequence[float] | None, *, wall_s: float | None = None, n: int | None = None) -> dict:
    """p50/p95/mean of per-prediction latency and throughput (predictions per second of wall time)."""
    if not latencies_ms:
        return {"p50_ms": None, "p95_ms": None, "mean_ms": None, "throughput_qps": None, "wall_s": wall_s}
    arr = np.asarray(latencies_ms, dtype=np.float64)
    count = n if n is not None else len(arr)
    return {
        "p50_ms": float(np.percentile(arr, 50)), "p95_ms": float(np.percentile(arr, 95)), "mean_ms": float(arr.mean()),
        "throughput_qps": (count / wall_s) if wall_s else None, "wall_s": wall_s,
    }


def format_rate(rate: dict | None, *, digits: int = 1) -> str:
    """``"93.1% [91.8, 94.3]"`` (or ``"n/a"``) for a rate dict."""
    if not rate or rate.get("value") is None:
        return "n/a"
    text = f"{100 * rate['value']:.{digits}f}%"
    if rate.get("lo") is not None:
        text += f" [{100 * rate['lo']:.{digits}f}, {100 * rate['hi']:.{digits}f}]"
    return text
