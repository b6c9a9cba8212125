"""``distill retry``: put chosen failed, dead or rejected jobs back in the queue, by state, error text and model.

Failed and dead jobs return to pending with a fresh attempt count. A rejected label is a paid answer: retrying it
reopens its done job and drops the cached answer (so the next run really asks again); the rejected label itself
stays stored, and the new answer is a new label row.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from sqlite_utils import Database

from ..db import queue
from ..errors import InputError
from .cache import cache_key

PURPOSES = ("label", "relabel")


@dataclass
class RetryReport:
    """What a retry put back: jobs per state, and cache entries dropped for rejected answers."""

    failed: int = 0
    dead: int = 0
    rejected: int = 0
    cache_dropped: int = 0
    matched: dict[str, int] = field(default_factory=dict)
    """Jobs that matched the filters per state (some may not be revived: a live twin already exists)."""

    @property
    def total(self) -> int:
        return self.failed + self.dead + self.rejected

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def retry(db: Database, *, failed: bool = False, dead: bool = False, rejected: bool = False,
          reason: str | None = None, model: str | None = None) -> RetryReport:
    """Put matching jobs back to pending.

    Args:
        failed, dead, rejected: which jobs; with none of them, failed and dead jobs.
        reason: only jobs whose last error (failed, dead) or reject reason (rejected) contains this text
            (case-insensitive).
        model: only jobs whose last answer or attempt came from this model (or that are pinned to it).

    Returns: a :class:`RetryReport`. Side effects: job states; cache entries of retried rejected answers deleted.
    Raises: InputError for an empty ``reason`` or ``model``.
    """
    if reason is not None and not reason.strip():
        raise InputError("--reason must not be empty; give the text to look for in the error", field="reason")
    if model is not None and not model.strip():
        raise InputError("--model must not be empty", field="model")
    if not (failed or dead or rejected):
        failed = dead = True
    report = RetryReport()
    for state, wanted in (("failed", failed), ("dead", dead)):
        if not wanted:
            continue
        ids = _failed_ids(db, state, reason=reason, model=model)
        report.matched[state] = len(ids)
        setattr(report, state, queue.retry_jobs(db, states=(state,), ids=ids) if ids else 0)
    if rejected:
        rows = _rejected(db, reason=reason, model=model)
        report.matched["rejected"] = len(rows)
        with queue.immediate(db):
            for _, key in rows:
                report.cache_dropped += db.conn.execute("DELETE FROM response_cache WHERE key = ?", [key]).rowcount
            report.rejected = queue.reopen_done(db, [jid for jid, _ in rows]) if rows else 0
    return report


def _failed_ids(db: Database, state: str, *, reason: str | None, model: str | None) -> list[int]:
    sql = ("SELECT j.id FROM jobs j WHERE j.state = ? AND j.purpose IN ('label', 'relabel')")
    params: list = [state]
    if reason:
        sql += " AND lower(coalesce(j.last_error, '')) LIKE ?"
        params.append(f"%{reason.lower()}%")
    if model:
        sql += (" AND (j.model = ? OR (SELECT a.model FROM attempts a WHERE a.job_id = j.id ORDER BY a.id DESC"
                " LIMIT 1) = ?)")
        params += [model, model]
    return [r[0] for r in db.execute(sql + " ORDER BY j.id", params)]


def _rejected(db: Database, *, reason: str | None, model: str | None) -> list[tuple[int, str]]:
    """(job id, cache key) of done jobs whose latest label is a rejection (and no valid label came later)."""
    sql = ("SELECT j.id, l.model, l.prompt_version, l.catalog_hash, q.text, j.purpose, j.params FROM jobs j"
           " JOIN labels l ON l.id = (SELECT max(id) FROM labels WHERE job_id = j.id)"
           " JOIN queries q ON q.id = j.query_id"
           " WHERE j.state = 'done' AND j.purpose IN ('label', 'relabel') AND l.valid = 0")
    params: list = []
    if reason:
        sql += " AND lower(coalesce(l.reject_reason, '')) LIKE ?"
        params.append(f"%{reason.lower()}%")
    if model:
        sql += " AND l.model = ?"
        params.append(model)
    out = []
    for jid, lmodel, pv, ch, text, purpose, params_json in db.execute(sql + " ORDER BY j.id", params):
        key = cache_key(model=lmodel or "", prompt_version=pv or "", catalog_hash=ch or "", query=text,
                        purpose=purpose, params=json.loads(params_json) if params_json else None)
        out.append((jid, key))
    return out
