"""Queries: insert (deduplicated on normalised text), look up and iterate."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from sqlite_utils import Database

from ..catalog import Label
from ..textnorm import text_hash
from .connection import now_iso


@dataclass
class NewQuery:
    """A query to insert. ``gold`` is a verified label (template-generated or imported with ``--gold``)."""

    text: str
    source: str
    template_id: str | None = None
    category: str | None = None
    meta: dict = field(default_factory=dict)
    hint: dict | None = None
    gold: Label | None = None
    gold_source: str | None = None
    catalog_hash: str | None = None


@dataclass
class InsertResult:
    added: int = 0
    duplicates: int = 0
    ids: list[int] = field(default_factory=list)
    """Ids of every input row, in input order (existing ids for duplicates)."""


def insert_queries(db: Database, queries: Iterable[NewQuery], *, batch_size: int = 2000) -> InsertResult:
    """Insert queries; a query whose normalised text already exists is counted as a duplicate, not inserted.

    Returns: counts and the id of every input row. Commits in batches (each batch one transaction).
    """
    result = InsertResult()
    batch: list[NewQuery] = []

    def flush() -> None:
        with db.atomic():
            for q in batch:
                h = text_hash(q.text)
                row = db.execute("SELECT id FROM queries WHERE norm_hash = ?", [h]).fetchone()
                if row:
                    result.duplicates += 1
                    result.ids.append(row[0])
                    continue
                cur = db.execute(
                    "INSERT INTO queries (text, norm_hash, source, template_id, category, meta, hint, gold_calls,"
                    " gold_hash, gold_source, gold_catalog_hash, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        q.text, h, q.source, q.template_id, q.category, json.dumps(q.meta) if q.meta else None,
                        json.dumps(q.hint) if q.hint else None,
                        q.gold.canonical_json() if q.gold is not None else None,
                        q.gold.hash if q.gold is not None else None,
                        q.gold_source if q.gold is not None else None,
                        q.catalog_hash if q.gold is not None else None,
                        now_iso(),
                    ],
                )
                result.added += 1
                result.ids.append(cur.lastrowid)
        batch.clear()

    for q in queries:
        batch.append(q)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return result


def iter_queries(db: Database, *, where: str = "1", params: list | None = None) -> Iterator[dict]:
    """Yield query rows (dicts) in id order."""
    yield from db.query(f"SELECT * FROM queries WHERE {where} ORDER BY id", params or [])


def count_queries(db: Database) -> int:
    return db.execute("SELECT count(*) FROM queries").fetchone()[0]
