"""Revalidating stored labels against the current catalogue, and changing that catalogue.

After a catalogue change some labels may no longer fit (a tool removed, an argument renamed, a new required
argument). :func:`validate_labels` checks every label the precedence can pick (valid teacher and imported labels,
gold labels, reviews that carry a label, adjudications) and lists the ones that do not fit. It changes nothing:
the labels stay stored, and relabeling them is the user's next step (``distill run`` or a review).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlite_utils import Database

from ..catalog import Catalog, load_catalog, parse_label
from ..db import get_catalog, store_catalog

_KINDS = {
    "label": "SELECT id, query_id, calls, source FROM labels WHERE valid = 1 AND calls IS NOT NULL ORDER BY id",
    "gold": "SELECT id, id, gold_calls, gold_source FROM queries WHERE gold_calls IS NOT NULL ORDER BY id",
    "review": "SELECT id, query_id, calls, decision FROM reviews WHERE calls IS NOT NULL ORDER BY id",
    "adjudication": "SELECT id, query_id, calls, method FROM adjudications WHERE calls IS NOT NULL ORDER BY id",
}
"""Where labels live: kind -> (row id, query id, calls, origin), in row order."""


@dataclass
class Misfit:
    """A stored label that does not fit the catalogue: which table row, which query, and why."""

    kind: str
    row_id: int
    query_id: int
    origin: str | None
    text: str
    label: list[dict]
    errors: list[str]


@dataclass
class ValidationReport:
    """Labels checked per kind, and the misfits (in kind, then row order)."""

    catalog_hash: str
    catalog_name: str
    checked: dict[str, int] = field(default_factory=dict)
    misfits: list[Misfit] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.misfits)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "count": self.count}


def validate_labels(db: Database, *, catalog: Catalog | None = None) -> ValidationReport:
    """Check every stored label against ``catalog`` (default: the workspace's current one); read-only.

    Returns: a :class:`ValidationReport` whose ``misfits`` are the labels that no longer fit.
    """
    catalog = catalog or get_catalog(db)
    report = ValidationReport(catalog.hash, catalog.name)
    verdicts: dict[str, list[str]] = {}
    for kind, sql in _KINDS.items():
        report.checked[kind] = 0
        for row_id, query_id, calls, origin in db.execute(sql):
            report.checked[kind] += 1
            if calls not in verdicts:
                verdicts[calls] = _errors(catalog, calls)
            if verdicts[calls]:
                report.misfits.append(Misfit(kind, row_id, query_id, origin, "", json.loads(calls), verdicts[calls]))
    _fill_texts(db, report.misfits)
    return report


def _errors(catalog: Catalog, calls: str) -> list[str]:
    try:
        return catalog.label_errors(parse_label(json.loads(calls)))
    except ValueError as exc:
        return [f"unreadable label: {exc}"]


def _fill_texts(db: Database, misfits: list[Misfit]) -> None:
    ids = sorted({m.query_id for m in misfits})
    texts: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        texts.update(db.execute(f"SELECT id, text FROM queries WHERE id IN ({marks})", chunk).fetchall())
    for m in misfits:
        m.text = texts.get(m.query_id, "")


def set_catalog(db: Database, catalog: Catalog | str | os.PathLike) -> tuple[Catalog, str, ValidationReport]:
    """Make ``catalog`` (or the catalogue in that file) the workspace's current one, then revalidate every label.

    Returns: the catalogue, the previous catalogue's hash, and the :class:`ValidationReport` against the new one.

    Raises: CatalogError (exit 2) naming the file and field when the catalogue is invalid (nothing is changed).
    """
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    previous = get_catalog(db).hash
    store_catalog(db, catalog)
    return catalog, previous, validate_labels(db, catalog=catalog)
