"""Export queries with their current labels as JSONL: the gold-file format ``eval score --gold`` reads.

One object per line, keys in this order (a documented contract; other stages depend on it)::

    {"id": int, "text": str, "label": [{"tool": str, "args": {...}}, ...], "label_source": str,
     "category": str | null, "template_id": str | null, "meta": {...}}

``label`` is the query's current label by the precedence of :mod:`tooldistill.db.labels` (review > gold >
adjudicated > teacher, imported labels counting as teacher), ``[]`` for no tool; ``label_source`` names which of
those it came from. ``meta`` carries the query's declared acceptable answers (the keys of :data:`META_KEYS`, in
the shape the generator stores them: ``{"acceptable": [label, ...]}`` for an ambiguous template query, gold
first), ``{}`` when it declares none; ``eval score`` grades against them and ``data import`` reads them back.
Queries without a label, and queries a reviewer rejected, are left out.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..db import current_labels
from ..errors import InputError
from ..progress import ProgressCallback, ProgressEvent, noop

EXPORT_KEYS = ("id", "text", "label", "label_source", "category", "template_id", "meta")
META_KEYS = ("acceptable", "acceptable_labels", "acceptable_args")
"""The keys of ``queries.meta`` an export carries: the acceptable answers grading needs (nothing else of meta)."""


@dataclass
class ExportReport:
    """Where the file went, how many lines it has, and how many queries had no current label."""

    path: str
    written: int = 0
    unlabeled: int = 0
    by_label_source: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_jsonl(db: Database, out: str | os.PathLike, *, progress: ProgressCallback | None = None) -> ExportReport:
    """Write every labelled query with its current label to ``out`` (JSONL, the gold-file format above).

    Args:
        db: the workspace database.
        out: the file to write; written to a temporary file beside it and renamed, so a reader never sees half.
        progress: called with ``export`` events.

    Returns: an :class:`ExportReport`.

    Raises: InputError when ``out`` is a folder or its folder cannot be created.
    """
    progress = progress or noop
    out = Path(out)
    if out.is_dir():
        raise InputError("is a folder; pass a file name, e.g. --out gold.jsonl", path=str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder: {exc.strerror}", path=str(out.parent)) from None
    labels = current_labels(db)
    total = db.execute("SELECT count(*) FROM queries").fetchone()[0]
    report = ExportReport(path=str(out))
    sources: Counter[str] = Counter()
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        rows = db.execute("SELECT id, text, category, template_id, meta FROM queries ORDER BY id")
        for n, (qid, text, category, template_id, meta) in enumerate(rows, 1):
            current = labels.get(qid)
            if current is None or current.label is None:
                report.unlabeled += 1
            else:
                record = {"id": qid, "text": text, "label": [{"tool": c.tool, "args": c.args}
                                                             for c in current.label.calls],
                          "label_source": current.source, "category": category, "template_id": template_id,
                          "meta": export_meta(meta)}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                report.written += 1
                sources[current.source] += 1
            if n % 5000 == 0:
                progress(ProgressEvent("export", n, total, "exporting"))
    os.replace(tmp, out)
    progress(ProgressEvent("export", total, total, "exporting"))
    report.by_label_source = dict(sources.most_common())
    return report


def export_meta(meta: str | dict | None) -> dict[str, Any]:
    """The part of a query's ``meta`` (a dict or its stored JSON text) an export carries: :data:`META_KEYS` only."""
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta.strip() else None
        except json.JSONDecodeError:
            return {}
    if not isinstance(meta, dict):
        return {}
    return {k: meta[k] for k in META_KEYS if meta.get(k)}
