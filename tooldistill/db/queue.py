"""The durable job queue: one row per (query, purpose) job, leased, fenced, retried, never lost.

States run ``pending -> leased -> done | failed | dead``. A claim is one ``UPDATE ... RETURNING`` inside
``BEGIN IMMEDIATE``, so two processes on one database never lease the same job. A lease carries an expiry and a
random token; every later write (:func:`complete`, :func:`release`, :func:`fail`) checks the token (fencing), so a
slow worker cannot finish a job someone else leased after its lease ran out. :func:`complete` writes the label row
and marks the job done in one transaction, right after each response. Expired leases (and leases of a process on
this host that no longer exists, e.g. after ``kill -9``) go back to pending with ``attempts + 1``; after
``max_attempts`` the job is ``dead`` with its last error kept.

Dedup contract (the ``jobs_dedup`` index): at most one live or done job per (query, purpose, prompt version,
catalogue hash, model, params). Failed and dead jobs stay out of it, so they can be revived (:func:`retry_jobs`)
or enqueued afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from sqlite_utils import Database

from ..catalog import Label, canonical_dumps
from .connection import now_iso
from .labels import add_label

STATES = ("pending", "leased", "done", "failed", "dead")
PURPOSES = ("label", "relabel", "synthesize")
_JOB_COLUMNS = ("id, query_id, purpose, state, attempts, model, prompt_version, catalog_hash, params, lease_token,"
                " leased_until, leased_by, last_error")


@dataclass
class Job:
    """A leased (or inspected) job, with the text of its query."""

    id: int
    query_id: int
    purpose: str
    state: str
    attempts: int
    model: str | None = None
    prompt_version: str | None = None
    catalog_hash: str | None = None
    params: dict = field(default_factory=dict)
    lease_token: str | None = None
    leased_until: float | None = None
    leased_by: str | None = None
    last_error: str | None = None
    text: str = ""

    @classmethod
    def _from_row(cls, row) -> "Job":
        (jid, qid, purpose, st, attempts, model, pv, ch, params, token, until, by, err) = row
        return cls(jid, qid, purpose, st, attempts or 0, model, pv, ch, json.loads(params) if params else {},
                   token, until, by, err)


@contextlib.contextmanager
def immediate(db: Database) -> Iterator[Database]:
    """A write transaction taken at once (``BEGIN IMMEDIATE``); nested use becomes a savepoint.

    Taking the write lock up front means a read-then-write cannot be overtaken by another process, and a busy
    database waits (busy timeout) instead of failing half-way.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")


def worker_id() -> str:
    """An id for this process's leases: ``host:pid:nonce`` (the pid lets a restart reclaim a killed worker's)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _params_json(params: dict | None) -> str | None:
    return canonical_dumps(params) if params else None


def enqueue(
    db: Database,
    query_ids: Iterable[int | None],
    *,
    purpose: str = "label",
    model: str | None = None,
    prompt_version: str | None = None,
    catalog_hash: str | None = None,
    params: dict | None = None,
) -> int:
    """Add a pending job per query; idempotent.

    Args:
        query_ids: the queries to enqueue; ``None`` makes a job without a query (a synthesize job makes queries
            rather than labeling one): each ``None`` adds one job, since there is no query to dedup on.
        purpose: ``label``, ``relabel`` or ``synthesize``.
        model: pin the teacher model (``None``: any configured model may answer).
        prompt_version, catalog_hash: what the job labels under (``None``: whatever is current when it runs).
        params: purpose-specific parameters, e.g. ``{"vote": 2}`` for the third relabel vote.

    Returns: how many jobs were added. A query that already has a live or done job with the same purpose,
    prompt version, catalogue, model and params is skipped. Side effect: one transaction.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown job purpose {purpose!r} (known: {', '.join(PURPOSES)})")
    now, pj = now_iso(), _params_json(params)
    added = 0
    with immediate(db):
        for qid in query_ids:
            cur = db.conn.execute(
                "INSERT OR IGNORE INTO jobs (query_id, purpose, state, attempts, model, prompt_version, catalog_hash,"
                " params, cache_hit, created_at, updated_at) VALUES (?,?,'pending',0,?,?,?,?,0,?,?)",
                [int(qid) if qid is not None else None, purpose, model, prompt_version, catalog_hash, pj, now, now],
            )
            added += cur.rowcount
    return added


def enqueue_missing_labels(db: Database, *, prompt_version: str, catalog_hash: str) -> int:
    """Enqueue a label job for every query with no valid teacher label under this prompt version and catalogue.

    A query that already has a label job for them in any state (a done job whose answer was rejected, a failed or
    dead job) is left alone: a paid or hopeless answer is not retried blindly (see :func:`retry_jobs`).

    Returns: how many jobs were added.
    """
    now = now_iso()
    with immediate(db):
        cur = db.conn.execute(
            "INSERT OR IGNORE INTO jobs (query_id, purpose, state, attempts, prompt_version, catalog_hash, cache_hit,"
            " created_at, updated_at) SELECT q.id, 'label', 'pending', 0, :pv, :ch, 0, :now, :now FROM queries q"
            " WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.query_id = q.id AND l.purpose = 'label'"
            "   AND l.valid = 1 AND l.prompt_version = :pv AND l.catalog_hash = :ch)"
            " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.query_id = q.id AND j.purpose = 'label'"
            "   AND j.prompt_version = :pv AND j.catalog_hash = :ch AND j.model IS NULL AND j.params IS NULL)"
            " ORDER BY q.id",
            {"pv": prompt_version, "ch": catalog_hash, "now": now},
        )
        return cur.rowcount


def supersede_stale(db: Database, *, prompt_version: str, catalog_hash: str) -> int:
    """Fail pending label jobs made for another prompt version or catalogue (they can no longer be answered).

    Returns: how many jobs were marked ``failed`` (their ``last_error`` says why).
    """
    with immediate(db):
        cur = db.conn.execute(
            "UPDATE jobs SET state = 'failed', updated_at = ?, last_error = 'superseded: the prompt or catalogue"
            " changed since it was enqueued' WHERE state = 'pending' AND purpose = 'label'"
            " AND ((prompt_version IS NOT NULL AND prompt_version != ?) OR (catalog_hash IS NOT NULL"
            " AND catalog_hash != ?))",
            [now_iso(), prompt_version, catalog_hash],
        )
        return cur.rowcount


def claim(
    db: Database,
    *,
    worker: str,
    lease_s: float,
    model: str,
    serve_unpinned: bool = True,
    prompt_version: str | None = None,
    catalog_hash: str | None = None,
    purposes: tuple[str, ...] = ("label", "relabel"),
    limit: int = 1,
    ids: list[int] | None = None,
    packable: bool = False,
    now: float | None = None,
) -> list[Job]:
    """Lease up to ``limit`` pending jobs that a slot of ``model`` can answer, oldest first.

    Args:
        worker: the lease holder (:func:`worker_id`).
        lease_s: lease length in seconds; the job returns to pending if not finished by then.
        model: the slot's model; jobs pinned to it are served, and unpinned ones when ``serve_unpinned``.
        prompt_version, catalog_hash: the current ones; jobs pinned to others are not claimed.
        purposes: which purposes this worker serves.
        ids: only these jobs (e.g. the ones the response cache can answer).
        packable: only jobs that may share a packed request: label jobs without params that were not sent back
            to be asked on their own (``unpack``).

    Returns: the leased jobs with their query text. Side effect: one ``BEGIN IMMEDIATE`` transaction.
    """
    now = time.time() if now is None else now
    marks = ",".join("?" * len(purposes))
    only = f" AND id IN ({','.join(str(int(i)) for i in ids)})" if ids is not None else ""
    if packable:
        only += " AND purpose = 'label' AND params IS NULL AND coalesce(unpack, 0) = 0"
    if ids is not None and not ids:
        return []
    token = secrets.token_hex(8)
    with immediate(db):
        rows = db.conn.execute(
            f"UPDATE jobs SET state = 'leased', lease_token = ?, leased_until = ?, leased_by = ?, updated_at = ?"
            f" WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND purpose IN ({marks}){only}"
            "   AND (available_at IS NULL OR available_at <= ?)"
            "   AND (model = ? OR (model IS NULL AND ?))"
            "   AND (prompt_version IS NULL OR ? IS NULL OR prompt_version = ?)"
            "   AND (catalog_hash IS NULL OR ? IS NULL OR catalog_hash = ?)"
            f"   ORDER BY id LIMIT ?) RETURNING {_JOB_COLUMNS}",
            [token, now + lease_s, worker, now_iso(), *purposes, now, model, int(serve_unpinned),
             prompt_version, prompt_version, catalog_hash, catalog_hash, limit],
        ).fetchall()
    jobs = sorted((Job._from_row(r) for r in rows), key=lambda j: j.id)
    if jobs:
        texts = dict(db.conn.execute(
            f"SELECT id, text FROM queries WHERE id IN ({','.join('?' * len(jobs))})", [j.query_id for j in jobs]
        ).fetchall())
        for job in jobs:
            job.text = texts.get(job.query_id, "")
    return jobs


def _fenced_update(db: Database, job: Job, sets: str, params: list) -> bool:
    cur = db.conn.execute(
        f"UPDATE jobs SET {sets}, lease_token = NULL, leased_until = NULL, leased_by = NULL, updated_at = ?"
        " WHERE id = ? AND state = 'leased' AND lease_token = ?",
        [*params, now_iso(), job.id, job.lease_token],
    )
    return cur.rowcount == 1


def complete(
    db: Database,
    job: Job,
    *,
    label: Label | None,
    model: str | None,
    reject_reason: str | None = None,
    raw: str | dict | None = None,
    prompt_version: str | None = None,
    catalog_hash: str | None = None,
    cache_hit: bool = False,
    label_row: bool = True,
    error: str | None = None,
) -> int | None:
    """Write the job's label row (accepted, or rejected with its reason) and mark the job done, in one transaction.

    Fenced: if the lease was lost (expired and taken by another worker), nothing is written.

    Args:
        label_row: False for a job whose result is not a label (a synthesize job): only the job is finished.
        error: kept in ``last_error`` (e.g. why an answer was unusable); cleared otherwise.

    Returns: the new label's id (the job's id without a label row), or ``None`` when the lease was lost.
    """
    with immediate(db):
        if not _fenced_update(db, job, "state = 'done', attempts = attempts + ?, finished_at = ?, cache_hit = ?,"
                              " last_error = ?", [0 if cache_hit else 1, now_iso(), int(cache_hit), error]):
            return None
        if not label_row:
            return job.id
        return add_label(
            db, job.query_id, label, source="teacher", model=model, purpose=job.purpose, job_id=job.id,
            prompt_version=prompt_version or job.prompt_version, catalog_hash=catalog_hash or job.catalog_hash,
            raw=raw, reject_reason=reject_reason,
        )


def release(db: Database, job: Job, *, error: str | None = None, delay_s: float = 0.0, unpack: bool = False) -> bool:
    """Give a leased job back to pending without counting an attempt (quota, key and shutdown cases).

    Args:
        unpack: its answer inside a packed request was missing or invalid: from now on it is asked on its own.

    Returns: False when the lease was already lost.
    """
    with immediate(db):
        return _fenced_update(db, job, "state = 'pending', last_error = coalesce(?, last_error), available_at = ?,"
                              " unpack = CASE WHEN ? THEN 1 ELSE unpack END",
                              [error, time.time() + delay_s if delay_s else None, int(unpack)])


def fail(db: Database, job: Job, *, error: str, max_attempts: int, retry: bool = True,
         delay_s: float = 0.0) -> str | None:
    """Count a failed attempt: back to pending, or ``dead`` after ``max_attempts``, or ``failed`` if not ``retry``.

    Args:
        error: kept in ``last_error``.
        retry: False for errors that a retry cannot fix (a bad request): the job is ``failed`` at once.
        delay_s: the job is not claimed again for this long.

    Returns: the job's new state, or ``None`` when the lease was already lost.
    """
    attempts = job.attempts + 1
    state = "failed" if not retry else ("dead" if attempts >= max_attempts else "pending")
    with immediate(db):
        ok = _fenced_update(
            db, job, "state = ?, attempts = attempts + 1, last_error = ?, available_at = ?,"
            " finished_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END",
            [state, error, time.time() + delay_s if delay_s else None, state, now_iso()],
        )
    return state if ok else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _orphaned(leased_by: str | None, host: str) -> bool:
    """True when the lease holder was a process on this host that no longer exists."""
    parts = (leased_by or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    return int(parts[1]) != os.getpid() and not _pid_alive(int(parts[1]))


def reclaim_expired(db: Database, *, max_attempts: int, now: float | None = None) -> int:
    """Return expired leases, and leases of dead processes on this host, to pending with ``attempts + 1``.

    A job that reaches ``max_attempts`` this way is ``dead``. Returns: how many leases were reclaimed.
    """
    now = time.time() if now is None else now
    host = socket.gethostname()
    with immediate(db):
        rows = db.conn.execute(
            "SELECT id, leased_until, leased_by FROM jobs WHERE state = 'leased'").fetchall()
        stale = [(jid, by) for jid, until, by in rows if (until or 0) < now or _orphaned(by, host)]
        for jid, by in stale:
            db.conn.execute(
                "UPDATE jobs SET state = CASE WHEN attempts + 1 >= ? THEN 'dead' ELSE 'pending' END,"
                " attempts = attempts + 1, last_error = ?, lease_token = NULL, leased_until = NULL,"
                " leased_by = NULL, updated_at = ? WHERE id = ? AND state = 'leased'",
                [max_attempts, f"lease of {by} expired before the job finished", now_iso(), jid],
            )
    return len(stale)


def release_worker(db: Database, worker: str) -> int:
    """Give back every lease ``worker`` holds (a clean shutdown), with no attempt counted. Returns the count."""
    with immediate(db):
        cur = db.conn.execute(
            "UPDATE jobs SET state = 'pending', lease_token = NULL, leased_until = NULL, leased_by = NULL,"
            " updated_at = ? WHERE state = 'leased' AND leased_by = ?", [now_iso(), worker])
        return cur.rowcount


def retry_jobs(db: Database, *, states: tuple[str, ...] = ("failed", "dead"), purpose: str | None = None,
               ids: list[int] | None = None) -> int:
    """Put failed/dead jobs back to pending with a fresh attempt count (skipping any that now has a live twin).

    Args:
        ids: only these jobs (already filtered by the caller, e.g. by error text or model).

    Returns: how many jobs were revived.
    """
    if ids is not None:
        revived = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks, in_ids = ",".join("?" * len(states)), ",".join("?" * len(chunk))
            with immediate(db):
                revived += db.conn.execute(
                    "UPDATE OR IGNORE jobs SET state = 'pending', attempts = 0, available_at = NULL,"
                    f" finished_at = NULL, updated_at = ? WHERE state IN ({marks}) AND id IN ({in_ids})",
                    [now_iso(), *states, *chunk]).rowcount
        return revived
    bad = set(states) - {"failed", "dead"}
    if bad:
        raise ValueError(f"only failed and dead jobs can be retried, not {sorted(bad)}")
    marks = ",".join("?" * len(states))
    sql = (f"UPDATE OR IGNORE jobs SET state = 'pending', attempts = 0, available_at = NULL, finished_at = NULL,"
           f" updated_at = ? WHERE state IN ({marks})")
    params: list = [now_iso(), *states]
    if purpose:
        sql += " AND purpose = ?"
        params.append(purpose)
    with immediate(db):
        return db.conn.execute(sql, params).rowcount


def reopen_done(db: Database, ids: list[int]) -> int:
    """Put done jobs back to pending to be asked again (``distill retry --rejected``); their labels stay stored.

    Returns: how many jobs were reopened.
    """
    reopened = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        with immediate(db):
            reopened += db.conn.execute(
                "UPDATE OR IGNORE jobs SET state = 'pending', attempts = 0, available_at = NULL, finished_at = NULL,"
                f" cache_hit = 0, updated_at = ? WHERE state = 'done' AND id IN ({','.join('?' * len(chunk))})",
                [now_iso(), *chunk]).rowcount
    return reopened


def queue_counts(db: Database) -> dict[str, dict[str, int]]:
    """Job counts as ``{purpose: {state: n}}`` (every state present, zeros included)."""
    out: dict[str, dict[str, int]] = {}
    for purpose, st, n in db.execute("SELECT purpose, state, count(*) FROM jobs GROUP BY 1, 2"):
        out.setdefault(purpose, dict.fromkeys(STATES, 0))[st] = n
    return out


def pinned_models(db: Database, *, purposes: tuple[str, ...] = ("label", "relabel")) -> list[str]:
    """The models that pending jobs are pinned to (a run needs slots for them)."""
    marks = ",".join("?" * len(purposes))
    return [r[0] for r in db.execute(
        f"SELECT DISTINCT model FROM jobs WHERE state = 'pending' AND model IS NOT NULL AND purpose IN ({marks})"
        " ORDER BY model", list(purposes))]


def get_job(db: Database, job_id: int) -> Job:
    """Return one job by id (KeyError if there is none)."""
    row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", [job_id]).fetchone()
    if row is None:
        raise KeyError(job_id)
    return Job._from_row(row)


@dataclass
class Work:
    """What the queue holds for a worker right now."""

    unpinned: int = 0
    """Pending jobs any model may answer, claimable now."""
    pinned: dict[str, int] = field(default_factory=dict)
    """Pending jobs pinned to a model, claimable now, per model."""
    next_at: float | None = None
    """When the first job that is waiting out a retry delay becomes claimable."""

    @property
    def now(self) -> int:
        return self.unpinned + sum(self.pinned.values())


def pending_work(db: Database, *, prompt_version: str | None, catalog_hash: str | None,
                 purposes: tuple[str, ...] = ("label", "relabel"), now: float | None = None) -> Work:
    """Count the pending jobs a worker for this prompt version and catalogue could claim (see :func:`claim`)."""
    now = time.time() if now is None else now
    marks = ",".join("?" * len(purposes))
    work = Work()
    rows = db.execute(
        "SELECT model, sum(CASE WHEN available_at IS NULL OR available_at <= ? THEN 1 ELSE 0 END),"
        " min(CASE WHEN available_at > ? THEN available_at END) FROM jobs"
        f" WHERE state = 'pending' AND purpose IN ({marks})"
        " AND (prompt_version IS NULL OR ? IS NULL OR prompt_version = ?)"
        " AND (catalog_hash IS NULL OR ? IS NULL OR catalog_hash = ?) GROUP BY model",
        [now, now, *purposes, prompt_version, prompt_version, catalog_hash, catalog_hash]).fetchall()
    for model, ready, later in rows:
        if model is None:
            work.unpinned = ready or 0
        elif ready:
            work.pinned[model] = ready
        if later is not None:
            work.next_at = later if work.next_at is None else min(work.next_at, later)
    return work
