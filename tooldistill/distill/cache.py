"""The response cache: a paid answer is stored once and never paid for again.

Keyed by the hash of (model, prompt version, catalogue hash, query text) and, for purposes other than ``label``,
the purpose and the job's params, so that relabel votes always get fresh answers while a resumed vote does not pay
twice. Only answered requests (accepted or rejected labels) are cached; errors are not. The runner writes the
cache entry in the same transaction as the label, so a crash never leaves one without the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from ..catalog import Label, content_hash, parse_label
from ..db import now_iso
from ..textnorm import text_hash
from .outcomes import Outcome, TeacherResult


@dataclass(frozen=True)
class CachedAnswer:
    outcome: Outcome
    label: Label | None
    reject_reason: str | None
    raw: dict | None
    model: str


def cache_key(*, model: str, prompt_version: str, catalog_hash: str, query: str, purpose: str = "label",
              params: dict | None = None) -> str:
    """The cache key of one question (see the module docstring for what it covers)."""
    parts: dict = {"model": model, "prompt_version": prompt_version, "catalog_hash": catalog_hash, "query": query}
    if purpose != "label" or params:
        parts.update(purpose=purpose, params=params or {})
    return content_hash(parts, length=32)


def get_cached(db: Database, key: str) -> CachedAnswer | None:
    """The stored answer for ``key``, or ``None``."""
    row = db.execute("SELECT response, model FROM response_cache WHERE key = ?", [key]).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    label = parse_label({"calls": data["calls"], "reason": data.get("reason")}) if data.get("calls") is not None \
        else None
    return CachedAnswer(Outcome(data["outcome"]), label, data.get("reject_reason"), data.get("raw"), row[1])


def put_cached(db: Database, key: str, result: TeacherResult, *, model: str, prompt_version: str,
               query: str) -> None:
    """Store an answered request (``OK`` or ``REJECTED``); other outcomes are ignored."""
    if result.outcome not in (Outcome.OK, Outcome.REJECTED):
        return
    body = {
        "outcome": result.outcome.value,
        "calls": [c.model_dump(mode="json") for c in result.label.calls] if result.label is not None else None,
        "reason": result.label.reason if result.label is not None else None,
        "reject_reason": result.reject_reason,
        "raw": result.raw,
    }
    db.execute(
        "INSERT OR REPLACE INTO response_cache (key, model, prompt_version, query_hash, response, created_at)"
        " VALUES (?,?,?,?,?,?)",
        [key, model, prompt_version, text_hash(query), json.dumps(body, ensure_ascii=False), now_iso()],
    )


def cache_size(db: Database) -> int:
    return db.execute("SELECT count(*) FROM response_cache").fetchone()[0]
