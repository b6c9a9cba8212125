"""Scoring a predictions file against a gold file, so routers built anywhere are graded the same way.

Gold: JSONL in the ``data export`` format, one ``{"id", "text", "label", "label_source", ...}`` per line; ``label``
is any label shape (or, with a class catalogue, a class name such as ``"oos"``); optional ``acceptable`` /
``meta.acceptable`` declare other correct answers (see :func:`tooldistill.eval.grade.acceptable_from_meta`).
Predictions: JSONL of ``{"id" or "text", "raw"}`` (``output``, ``prediction``, ``calls`` or ``label`` also work),
``raw`` a string (model text) or a JSON value in any shape :mod:`tooldistill.eval.parse` reads. Lines are
matched on ``id`` when both files have ids, else on the normalised text.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..catalog import Catalog, Label, parse_label
from ..errors import InputError
from ..textnorm import normalize_text
from .grade import Acceptable, acceptable_from_meta, grade
from .metrics import compute_metrics
from .parse import Parsed, parse_output

RAW_KEYS = ("raw", "output", "prediction", "calls", "label")
VERIFIED_SOURCES = ("gold", "review")


@dataclass(frozen=True)
class GoldRow:
    key: object
    text: str
    label: Label
    label_source: str
    acceptable: Acceptable | None


def _jsonl(path: Path):
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"not JSON ({exc.msg}); each line must be one JSON object", path=str(path),
                                 line=lineno) from None
            if not isinstance(row, dict):
                raise InputError(f"expected a JSON object, got {type(row).__name__}", path=str(path), line=lineno)
            yield lineno, row


def read_gold(path: str | Path, catalog: Catalog) -> list[GoldRow]:
    """Read a gold file (see the module docstring), validating every label against ``catalog``.

    Raises: InputError naming the file, line and field of the first bad row.
    """
    path = Path(path)
    rows: list[GoldRow] = []
    for lineno, row in _jsonl(path):
        if "label" not in row:
            raise InputError("missing 'label' (the gold calls, [] for no tool)", path=str(path), line=lineno,
                             field="label")
        if "id" not in row and not isinstance(row.get("text"), str):
            raise InputError("a gold row needs an 'id' or a 'text'", path=str(path), line=lineno)
        value = row["label"]
        if isinstance(value, str) and catalog.none_label is not None and not value.lstrip().startswith(("[", "{")):
            try:
                value = catalog.class_label(value)
            except InputError as exc:
                raise InputError(exc.reason, path=str(path), line=lineno, field="label") from None
        label = catalog.validate_label(value, source=str(path), line=lineno)
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        try:
            acc = acceptable_from_meta({**meta, **{k: row[k] for k in ("acceptable", "acceptable_args",
                                                                        "acceptable_labels") if k in row}})
        except ValueError as exc:
            raise InputError(str(exc), path=str(path), line=lineno, field="acceptable") from None
        rows.append(GoldRow(row.get("id"), str(row.get("text") or ""), label,
                            str(row.get("label_source") or "teacher"), acc))
    if not rows:
        raise InputError("the gold file has no rows", path=str(path))
    return rows


def read_predictions(path: str | Path) -> list[tuple[object, str | None, object]]:
    """Read a predictions file: ``(id, text, raw)`` per line.

    Raises: InputError naming the line that has neither id nor text, or no output.
    """
    path = Path(path)
    out = []
    for lineno, row in _jsonl(path):
        key = next((k for k in RAW_KEYS if k in row), None)
        if key is None:
            raise InputError(f"no output: expected one of {', '.join(RAW_KEYS)}", path=str(path), line=lineno)
        if "id" not in row and not isinstance(row.get("text"), str):
            raise InputError("a prediction needs an 'id' or a 'text' to match the gold file", path=str(path),
                             line=lineno)
        out.append((row.get("id"), row.get("text"), row[key]))
    return out


def score_files(predictions: str | Path, gold: str | Path, catalog: Catalog, *, resamples: int = 1000,
                seed: int = 0) -> dict:
    """Grade a predictions file against a gold file.

    Args:
        predictions, gold: the two JSONL files (see the module docstring).
        catalog: the catalogue both are validated against.
        resamples, seed: the bootstrap of every interval.

    Returns: a report dict: ``n``, ``missing`` (gold rows without a prediction, graded as unreadable),
    ``unmatched`` (predictions matching no gold row), ``extracted`` (outputs read only by extraction),
    ``views`` (``split``: all rows, ``clean``: rows whose ``label_source`` is gold or review),
    ``metrics`` (all rows) and ``failures``.
    """
    gold_rows = read_gold(gold, catalog)
    preds = read_predictions(predictions)
    by_id = all(r.key is not None for r in gold_rows) and all(p[0] is not None for p in preds)
    index: dict[object, object] = {}
    for pid, text, raw in preds:
        index[str(pid) if by_id else normalize_text(str(text or ""))] = raw
    matched: dict[int, Parsed] = {}
    missing = 0
    for i, row in enumerate(gold_rows):
        key = str(row.key) if by_id else normalize_text(row.text)
        if key in index:
            matched[i] = parse_output(index.pop(key))
        else:
            missing += 1
            matched[i] = Parsed(None, valid_json=False, error="no prediction for this row")
    grades = [grade(matched[i], row.label, catalog, acceptable=row.acceptable) for i, row in enumerate(gold_rows)]
    clean = [g for g, row in zip(grades, gold_rows) if row.label_source in VERIFIED_SOURCES]
    views = {"split": compute_metrics(grades, catalog=catalog, resamples=resamples, seed=seed),
             "clean": compute_metrics(clean, catalog=catalog, resamples=resamples, seed=seed)}
    failures = [{"query_id": row.key, "text": row.text, "gold": g.gold.canonical(),
                 "pred": g.pred.canonical() if g.pred is not None else None, "errors": list(g.errors),
                 "details": list(g.details)} for g, row in zip(grades, gold_rows) if not g.fully_correct][:50]
    return {
        "target": str(predictions), "run_id": Path(predictions).name, "dataset_version": Path(gold).name,
        "split": "file", "catalog": catalog.name, "catalog_hash": catalog.hash, "n": len(gold_rows),
        "matched_on": "id" if by_id else "text", "missing": missing, "unmatched": len(index),
        "label_sources": dict(Counter(r.label_source for r in gold_rows)),
        "metrics": views["split"], "views": views, "failures": failures,
    }
