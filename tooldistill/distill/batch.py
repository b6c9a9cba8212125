"""Gemini Batch Mode for label jobs: submit, poll, ingest, requeue; resumable after a kill at any moment.

``distill run --batch`` claims pending label/relabel jobs and submits them as Batch Mode jobs of inline requests
(``client.batches.create``), each batch split to stay under the inline size limit. The claim, the batch row and
its members commit in one transaction *before* the create request: the jobs are leased to the batch (``leased_by
= batch:<id>``, a lease of days), so no other run, online or batch, can take them, and a job is never in two
live batches. The batch's id is its display name at the API (``tdb-<workspace>-<seq>``), so a batch created
just before a kill is found again on resume by listing the batches (``batches.list``) and adopted instead of
submitted twice; only a batch the API has never seen is created again.

Polling (``batches.get``) follows each batch to its end. A succeeded batch is ingested in one transaction:
each line's response goes through the same parsing and validation as an online answer
(:func:`~tooldistill.distill.teacher.parse_response`) into the same ``labels`` table (fenced by the batch's lease
token, so nothing is labeled twice), with its attempt row and cache entry; a failed line is classified like an
HTTP error (:func:`~tooldistill.distill.outcomes.classify_error`) and its job goes back to the queue (transient:
attempt counted; quota: not; bad request: failed). The members of an expired or cancelled batch go back to
pending; those of a failed batch too, with an attempt counted. Requeued jobs go out in a later batch of the
same run, or an online ``distill run``. Cost is counted at the batch price (50% of the standard rate).

Batch Mode is a paid-tier feature: a key whose project has no billing is refused (a ``limit: 0`` quota error
at create), and the run stops saying so, with the jobs back in the queue.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from ..catalog import Catalog
from ..db import get_setting, now_iso, set_setting
from ..db import queue
from ..errors import Interrupted, NeedsKeyError, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .cache import cache_key, get_cached, put_cached
from .keys import ApiKey
from .outcomes import Outcome, TeacherResult, classify_error, classify_exception
from .pricing import BATCH_DISCOUNT, PRICES_USD_PER_M, cost_usd  # noqa: F401 - re-exported for callers of batch
from .settings import DistillSettings

log = logging.getLogger(__name__)

PURPOSES = ("label", "relabel")
LIVE = ("preparing", "pending", "running")
FINAL = ("succeeded", "failed", "expired", "cancelled", "refused")
WORKSPACE_ID_SETTING = "batch_workspace_id"


class BatchModeUnavailable(ToolDistillError):
    """The API refused Batch Mode for the key's project (a paid-tier feature)."""




class BatchSettings(BaseModel):
    """How ``distill run --batch`` packs, submits and polls."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="The teacher model (default: the first of the distill "
                              "models).")
    max_requests: int = Field(default=1000, ge=1, le=100_000, description="Requests per batch at most.")
    inline_limit_bytes: int = Field(default=19_000_000, ge=1_000, description="Size a batch's inline requests "
                                    "stay under (the API's limit is about 20 MB).")
    poll_s: float = Field(default=30.0, ge=0, description="Seconds between polls of live batches.")
    lease_s: float = Field(default=3 * 86400.0, gt=0, description="How long jobs stay leased to a batch "
                           "(batches expire after 48 h).")
    max_waves: int = Field(default=8, ge=1, description="Submission waves in one run (requeued jobs go out in "
                           "the next wave).")
    key: str | None = Field(default=None, description="Fingerprint or project of the key to submit with "
                            "(default: the first key).")


@dataclass
class BatchRunSummary:
    """What one batch run did (counts for this run; ``pending`` and ``live`` are the state after)."""

    enqueued: int = 0
    submitted: int = 0
    adopted: int = 0
    recreated: int = 0
    polls: int = 0
    ingested: int = 0
    labels: int = 0
    rejected: int = 0
    requeued: int = 0
    failed: int = 0
    lost: int = 0
    cache_hits: int = 0
    line_errors: int = 0
    batches_by_state: dict[str, int] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    standard_cost_usd: float = 0.0
    pending: int = 0
    live: int = 0
    waves: int = 0
    elapsed_s: float = 0.0
    stopped: str = "done"
    """``done``, ``submitted`` (not waiting for the results), ``waves`` (jobs still pending after max_waves) or
    ``interrupted``."""

    def to_dict(self) -> dict:
        return asdict(self)


def _remote_state(state: Any) -> str:
    name = str(getattr(state, "name", None) or getattr(state, "value", None) or state or "")
    return name.removeprefix("JOB_STATE_").removeprefix("BATCH_STATE_").lower() or "pending"


class BatchRunner:
    """Submit pending label jobs as Batch Mode jobs, poll them, ingest what they answer (see the module doc).

    Args:
        db: the workspace database.
        catalog: the current catalogue (validates every answer, like an online run).
        keys: the API keys; batches are created with one of them (``batch.key``) and polled with a key of the
            project that created them.
        settings: the distill settings (base URL, API version, timeout, temperature, max attempts, models).
        batch: packing, polling and lease settings.
        progress: receives ``ProgressEvent(task="batch")`` with ``info["kind"]`` in submitted, adopted, poll,
            ingested, requeued, waiting.
        submit: submit pending jobs (False: only poll and ingest the live batches).
        wait: poll until every batch has ended (False: one pass, then return).
    """

    def __init__(self, db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
                 batch: BatchSettings | None = None, progress: ProgressCallback = noop, submit: bool = True,
                 wait: bool = True, prompt=None):
        if not keys:
            raise NeedsKeyError("no Gemini API key: set GEMINI_API_KEYS=KEY[@PROJECT],... in the environment or .env")
        from .prompt import build_prompt

        self.db, self.catalog, self.keys, self.settings = db, catalog, keys, settings
        self.batch = batch or BatchSettings()
        self.model = self.batch.model or settings.models[0]
        self.progress, self.submit, self.wait = progress, submit, wait
        self.prompt = prompt or build_prompt(catalog)
        self.summary = BatchRunSummary()
        self.key = self._pick_key(self.batch.key)
        self.clients: dict[str, Any] = {}
        self._stop = threading.Event()
        self._http: dict[str, int] = {}

    # ------------------------------------------------------------ public

    def run(self, *, handle_signals: bool = False) -> BatchRunSummary:
        """Submit, poll and ingest until nothing is pending or live (or one pass when not waiting).

        Raises: BatchModeUnavailable when the API refuses Batch Mode to the key's project; Interrupted (130)
        after Ctrl-C (the batches go on at the API; a re-run resumes polling them). Both carry ``.summary``.
        """
        started = time.monotonic()
        previous = self._install_signals() if handle_signals else {}
        try:
            self._loop()
        except (BatchModeUnavailable, NeedsKeyError) as exc:
            exc.summary = self._finish(started)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for client in self.clients.values():
                client.close()
        summary = self._finish(started)
        if summary.stopped == "interrupted":
            exc = Interrupted(f"stopped polling: {summary.live} batch(es) still run at the API and "
                              f"{summary.pending} job(s) are pending; resume with: tooldistill distill run --batch")
            exc.summary = summary
            raise exc
        return summary

    def stop(self) -> None:
        """Stop after the current step (thread-safe); live batches keep running at the API."""
        self._stop.set()

    # ------------------------------------------------------------ the loop

    def _loop(self) -> None:
        db, s = self.db, self.summary
        if self.submit:
            queue.supersede_stale(db, prompt_version=self.prompt.version, catalog_hash=self.catalog.hash)
            s.enqueued = queue.enqueue_missing_labels(db, prompt_version=self.prompt.version,
                                                      catalog_hash=self.catalog.hash)
            queue.reclaim_expired(db, max_attempts=self.settings.max_attempts)
        self._reconcile()
        while not self._stop.is_set():
            if self.submit and s.waves < self.batch.max_waves and self._pending() and self._submit_wave():
                s.waves += 1
            if self._stop.is_set():
                break
            live = self._live()
            if any(row["state"] == "preparing" for row in live):
                self._reconcile()
                live = self._live()
            if not live:
                s.stopped = "waves" if self.submit and self._pending() else "done"
                return
            self._poll(live)
            if not self.wait:
                s.stopped = "submitted" if self._live() else "done"
                return
            if self._live() and not (self.submit and self._pending() and s.waves < self.batch.max_waves):
                self._emit("waiting", f"waiting {self.batch.poll_s:g}s for {len(self._live())} live batch(es)")
                self._stop.wait(self.batch.poll_s)
        s.stopped = "interrupted"

    def _finish(self, started: float) -> BatchRunSummary:
        s = self.summary
        s.http = dict(self._http)
        s.pending = sum(c["pending"] for p, c in queue.queue_counts(self.db).items() if p in PURPOSES)
        s.live = len(self._live())
        s.batches_by_state = dict(self.db.execute("SELECT state, count(*) FROM batches GROUP BY 1").fetchall())
        s.cost_usd, s.standard_cost_usd = round(s.cost_usd, 6), round(s.standard_cost_usd, 6)
        s.elapsed_s = round(time.monotonic() - started, 3)
        self._emit("done", f"batch: {s.labels} labels, {s.requeued} requeued, {s.live} batch(es) live")
        return s

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _pending(self) -> int:
        work = queue.pending_work(self.db, prompt_version=self.prompt.version, catalog_hash=self.catalog.hash,
                                  purposes=PURPOSES)
        return work.unpinned + work.pinned.get(self.model, 0)

    def _live(self) -> list[dict]:
        marks = ",".join("?" * len(LIVE))
        return list(self.db.query(f"SELECT * FROM batches WHERE state IN ({marks}) ORDER BY seq", list(LIVE)))

    # ------------------------------------------------------------ keys and clients

    def _pick_key(self, wanted: str | None) -> ApiKey:
        if wanted is None:
            return self.keys[0]
        for key in self.keys:
            if wanted in (key.fingerprint, key.project):
                return key
        raise NeedsKeyError(f"no key with fingerprint or project {wanted!r} in GEMINI_API_KEYS "
                            f"({', '.join(f'{k.fingerprint}@{k.project}' for k in self.keys)})")

    def _client_for(self, row: dict | None = None):
        """The client of the batch's own key, else one of its project (a batch belongs to a project)."""
        key = self.key
        if row is not None:
            same = [k for k in self.keys if k.fingerprint == row["key_fingerprint"]] or \
                [k for k in self.keys if k.project == row["project"]]
            if not same:
                raise NeedsKeyError(f"batch {row['id']} was created with key {row['key_fingerprint']} (project "
                                    f"{row['project']}), which is not in GEMINI_API_KEYS; add it back to poll it")
            key = same[0]
        if key.fingerprint not in self.clients:
            from .teacher import make_client

            self.clients[key.fingerprint] = make_client(key.reveal(), base_url=self.settings.base_url,
                                                        api_version=self.settings.api_version,
                                                        timeout_s=self.settings.timeout_s)
        return self.clients[key.fingerprint]

    def _count(self, call: str) -> None:
        self._http[call] = self._http.get(call, 0) + 1

    def _emit(self, kind: str, message: str, **info) -> None:
        s = self.summary
        done = s.labels + s.rejected + s.failed
        self.progress(ProgressEvent(task="batch", done=done, total=max(done, done + self._pending_cached()),
                                    message=message, info={"kind": kind, **info}))

    def _pending_cached(self) -> int:
        return self.db.execute("SELECT count(*) FROM jobs WHERE state IN ('pending', 'leased') AND purpose IN"
                               " ('label', 'relabel')").fetchone()[0]

    # ------------------------------------------------------------ submitting

    def _submit_wave(self) -> bool:
        """Submit batches until no pending job is left for the model; returns whether any was submitted."""
        any_ = False
        while not self._stop.is_set() and self._pending():
            row, jobs = self._prepare_batch()
            if row is None:
                break
            if jobs:
                any_ = True
                if not self._create(row, jobs):
                    break  # the API is not taking creates now; the next loop finds or retries this one
        return any_

    def _next_id(self) -> tuple[str, int]:
        wsid = get_setting(self.db, WORKSPACE_ID_SETTING)
        if wsid is None:
            wsid = secrets.token_hex(3)
            set_setting(self.db, WORKSPACE_ID_SETTING, wsid)
        seq = (self.db.execute("SELECT max(seq) FROM batches").fetchone()[0] or 0) + 1
        return f"tdb-{wsid}-{seq:05d}", seq

    def _prepare_batch(self) -> tuple[dict | None, list[queue.Job]]:
        """Claim jobs for one batch and record it with its members, in one transaction, before any request."""
        db, b = self.db, self.batch
        with queue.immediate(db):
            bid, seq = self._next_id()
            jobs = queue.claim(db, worker=f"batch:{bid}", lease_s=b.lease_s, model=self.model,
                               prompt_version=self.prompt.version, catalog_hash=self.catalog.hash,
                               purposes=PURPOSES, limit=b.max_requests)
            if not jobs:
                return None, []
            jobs = self._answer_from_cache(jobs)
            keep, size = [], 0
            for job in jobs:
                need = self._request_bytes(job)
                if keep and size + need > b.inline_limit_bytes:
                    queue.release(db, job)  # it goes in the next batch of this wave
                    continue
                keep.append(job)
                size += need
            if not keep:
                return {}, []
            now = now_iso()
            row = {"id": bid, "seq": seq, "name": None, "model": self.model, "key_fingerprint": self.key.fingerprint,
                   "project": self.key.project, "state": "preparing", "remote_state": None,
                   "purposes": ",".join(sorted({j.purpose for j in keep})), "prompt_version": self.prompt.version,
                   "catalog_hash": self.catalog.hash, "lease_token": keep[0].lease_token, "request_count": len(keep),
                   "request_bytes": size, "answered": 0, "line_errors": 0, "labels": 0, "rejected": 0,
                   "requeued": 0, "lost": 0, "prompt_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
                   "standard_cost_usd": 0.0, "polls": 0, "created_at": now, "updated_at": now}
            db["batches"].insert(row)
            db["batch_members"].insert_all(
                [{"batch_id": bid, "job_id": j.id, "query_id": j.query_id, "key": _member_key(j.id),
                  "state": "submitted"} for j in keep])
        return row, keep

    def _answer_from_cache(self, jobs: list[queue.Job]) -> list[queue.Job]:
        """Complete the jobs the response cache can answer (never pay twice); return the others."""
        if not self.db.execute("SELECT 1 FROM response_cache LIMIT 1").fetchone():
            return jobs
        rest = []
        for job in jobs:
            hit = get_cached(self.db, self._cache_key(job))
            if hit is None:
                rest.append(job)
                continue
            queue.complete(self.db, job, label=hit.label, model=hit.model, reject_reason=hit.reject_reason,
                           raw=hit.raw, prompt_version=self.prompt.version, catalog_hash=self.catalog.hash,
                           cache_hit=True)
            self.summary.cache_hits += 1
        return rest

    def _cache_key(self, job: queue.Job) -> str:
        return cache_key(model=self.model, prompt_version=self.prompt.version, catalog_hash=self.catalog.hash,
                         query=job.text, purpose=job.purpose, params=job.params)

    def _config(self, job: queue.Job):
        from .teacher import generate_config

        temperature = float(job.params.get("temperature", self.settings.temperature))
        return generate_config(self.prompt, temperature, None)

    def _request_bytes(self, job: queue.Job) -> int:
        """An upper estimate of the job's line in the create body (its config is the same for every line)."""
        temperature = float(job.params.get("temperature", self.settings.temperature))
        if getattr(self, "_overhead", (None,))[0] != temperature:
            cfg = self._config(job).model_dump(mode="json", exclude_none=True)
            self._overhead = (temperature, len(json.dumps(cfg, ensure_ascii=False)) + 400)
        return self._overhead[1] + len(json.dumps(job.text, ensure_ascii=False).encode("utf-8"))

    def _create(self, row: dict, jobs: list[queue.Job]) -> bool:
        """Send the create request of a recorded batch; a definite refusal gives its jobs back to the queue.

        Returns: True when the API answered with the batch, False when it is still to be found or retried.
        """
        from google.genai import types

        src = [types.InlinedRequest(contents=job.text, config=self._config(job),
                                    metadata={"key": _member_key(job.id)}) for job in jobs]
        self._count("create")
        try:
            made = self._client_for(row).batches.create(model=self.model, src=src,
                                                        config={"display_name": row["id"]})
        except Exception as exc:  # every failure is classified; only definite refusals end the batch
            self._create_failed(row, classify_exception(exc, model=self.model))
            return False
        self._adopt(row, made)
        self.summary.submitted += 1
        self._emit("submitted", f"batch {row['id']}: {len(jobs)} requests submitted as {made.name}",
                   batch=row["id"], requests=len(jobs))
        return True

    def _create_failed(self, row: dict, result: TeacherResult) -> None:
        out, msg = result.outcome, result.message or "refused"
        paid_tier = out == Outcome.DAILY_QUOTA and result.quota_value == 0
        if out in (Outcome.TRANSIENT, Outcome.MINUTE_QUOTA, Outcome.BARE_429) or \
                (out == Outcome.DAILY_QUOTA and not paid_tier):
            # the create may have reached the API (a timeout after it was made): stay 'preparing', and the next
            # reconcile finds it by display name or creates it again
            log.warning("batch %s: create failed (%s: %s); will look for it and retry", row["id"], out.value, msg)
            self.db.execute("UPDATE batches SET error = ?, updated_at = ? WHERE id = ?",
                            [f"{out.value}: {msg}"[:500], now_iso(), row["id"]])
            self._stop.wait(min(self.batch.poll_s, 30.0))
            return
        self._give_back(row, f"batch refused: {result.status_code} {msg}"[:500], state="refused")
        if paid_tier:
            raise BatchModeUnavailable(
                f"Batch Mode is a paid-tier feature: the API refused it for project {row['project']} (key "
                f"{row['key_fingerprint']}: {result.status_code} limit 0). Enable billing on that project, or "
                f"label online with: tooldistill distill run")
        if out == Outcome.BAD_KEY:
            raise NeedsKeyError(f"key {row['key_fingerprint']} (project {row['project']}) was rejected creating "
                                f"batch {row['id']}: {msg}; fix GEMINI_API_KEYS")
        raise ToolDistillError(f"the API refused batch {row['id']} ({row['request_count']} requests, "
                               f"{row['request_bytes']:,} bytes): {result.status_code} {msg}; its jobs are back in "
                               "the queue (try a smaller --batch-size, or run online)")

    def _give_back(self, row: dict, error: str, *, state: str) -> None:
        with queue.immediate(self.db):
            for job in self._member_jobs(row):
                queue.release(self.db, job, error=error)
            self.db.execute("UPDATE batch_members SET state = 'requeued', error = ? WHERE batch_id = ?",
                            [error, row["id"]])
            self.db.execute("UPDATE batches SET state = ?, error = ?, requeued = request_count, updated_at = ?,"
                            " finished_at = ? WHERE id = ?", [state, error, now_iso(), now_iso(), row["id"]])

    def _adopt(self, row: dict, made: Any) -> None:
        state = _remote_state(made.state)
        self.db.execute("UPDATE batches SET name = ?, remote_state = ?, state = ?, submitted_at = coalesce("
                        "submitted_at, ?), updated_at = ? WHERE id = ? AND state = 'preparing'",
                        [made.name, state, "running" if state == "running" else "pending", now_iso(), now_iso(),
                         row["id"]])

    def _member_jobs(self, row: dict) -> list[queue.Job]:
        """The batch's jobs as fenced handles (the batch's lease token), with their query text."""
        rows = self.db.execute(
            "SELECT j.id, j.query_id, j.purpose, j.state, j.attempts, j.model, j.prompt_version, j.catalog_hash,"
            " j.params, q.text FROM batch_members m JOIN jobs j ON j.id = m.job_id JOIN queries q ON q.id = j.query_id"
            " WHERE m.batch_id = ? ORDER BY j.id", [row["id"]]).fetchall()
        return [queue.Job(jid, qid, purpose, st, attempts or 0, model, pv, ch, json.loads(params) if params else {},
                          lease_token=row["lease_token"], text=text)
                for jid, qid, purpose, st, attempts, model, pv, ch, params, text in rows]

    def _reconcile(self) -> None:
        """Find 'preparing' batches at the API by display name (adopt them) or create them (never seen)."""
        preparing = [r for r in self._live() if r["state"] == "preparing"]
        if not preparing:
            return
        wanted = {r["id"]: r for r in preparing}
        by_project: dict[str, list[dict]] = {}
        for r in preparing:
            by_project.setdefault(r["project"], []).append(r)
        found: dict[str, Any] = {}
        for rows in by_project.values():
            found.update(self._find_by_display_name(rows[0], set(wanted)))
        for bid, row in wanted.items():
            if bid in found:
                self._adopt(row, found[bid])
                self.summary.adopted += 1
                self._emit("adopted", f"batch {bid} was created before the stop: found as {found[bid].name}",
                           batch=bid)
            elif not self._stop.is_set():
                jobs = self._member_jobs(row)
                self.summary.recreated += 1
                self._create(row, jobs)

    def _find_by_display_name(self, row: dict, names: set[str]) -> dict[str, Any]:
        """The project's batches whose display name is in ``names``, paging through ``batches.list``."""
        found: dict[str, Any] = {}
        self._count("list")
        pager = self._client_for(row).batches.list(config={"page_size": 100})
        while True:
            for job in pager.page:
                if job.display_name in names:
                    found.setdefault(job.display_name, job)
            if len(found) == len(names) or not pager.config.get("page_token"):
                return found
            self._count("list")
            pager.next_page()

    # ------------------------------------------------------------ polling and ingesting

    def _poll(self, live: list[dict]) -> None:
        for row in live:
            if self._stop.is_set():
                return
            if row["state"] == "preparing":
                continue
            self._count("get")
            self.summary.polls += 1
            try:
                job = self._client_for(row).batches.get(name=row["name"])
            except Exception as exc:  # a failed poll is retried at the next one
                result = classify_exception(exc, model=self.model)
                log.warning("batch %s: poll failed (%s: %s)", row["id"], result.outcome.value, result.message)
                self.db.execute("UPDATE batches SET error = ?, polls = polls + 1, updated_at = ? WHERE id = ?",
                                [f"poll: {result.outcome.value}: {result.message}"[:500], now_iso(), row["id"]])
                continue
            state = _remote_state(job.state)
            if state == "succeeded":
                self._ingest(row, job)
            elif state in ("failed", "expired", "cancelled"):
                self._requeue_all(row, state)
            else:
                self.db.execute("UPDATE batches SET state = ?, remote_state = ?, polls = polls + 1, updated_at = ?"
                                " WHERE id = ?", [state if state in LIVE else "running", state, now_iso(),
                                                  row["id"]])
            self._emit("poll", f"batch {row['id']}: {state}", batch=row["id"], state=state)

    def _ingest(self, row: dict, job: Any) -> None:
        """Write every line of a succeeded batch (labels, requeues) and close the batch, in one transaction."""
        from .teacher import parse_response

        lines = {}
        for item in (job.dest.inlined_responses or []) if job.dest is not None else []:
            key = (item.metadata or {}).get("key")
            if key is not None:
                lines[key] = item
        counts = {"answered": 0, "line_errors": 0, "labels": 0, "rejected": 0, "requeued": 0, "lost": 0,
                  "prompt_tokens": 0, "output_tokens": 0}
        db, now = self.db, now_iso()
        with queue.immediate(db):
            for member in self._member_jobs(row):
                item = lines.get(_member_key(member.id))
                if item is None:
                    state, error = self._requeue(member, "missing from the batch output", transient=False), None
                elif item.error is not None:
                    counts["line_errors"] += 1
                    state, error = self._line_error(row, member, item.error)
                else:
                    counts["answered"] += 1
                    result = parse_response(item.response, catalog=self.catalog, model=self.model)
                    state, error = self._answered(row, member, result), result.reject_reason
                    counts["prompt_tokens"] += result.usage.prompt_tokens
                    counts["output_tokens"] += result.usage.output_tokens
                counts[{"labeled": "labels", "rejected": "rejected", "lost": "lost"}.get(state, "requeued")] += 1
                db.execute("UPDATE batch_members SET state = ?, error = ? WHERE batch_id = ? AND job_id = ?",
                           [state, error, row["id"], member.id])
            prices = self.settings.prices
            cost = cost_usd(self.model, counts["prompt_tokens"], counts["output_tokens"], batch=True,
                            prices=prices) or 0.0
            standard = cost_usd(self.model, counts["prompt_tokens"], counts["output_tokens"], batch=False,
                                prices=prices) or 0.0
            db.execute(
                "UPDATE batches SET state = 'succeeded', remote_state = 'succeeded', answered = ?, line_errors = ?,"
                " labels = ?, rejected = ?, requeued = ?, lost = ?, prompt_tokens = ?, output_tokens = ?,"
                " cost_usd = ?, standard_cost_usd = ?, polls = polls + 1, updated_at = ?, finished_at = ?,"
                " ingested_at = ? WHERE id = ?",
                [counts["answered"], counts["line_errors"], counts["labels"], counts["rejected"], counts["requeued"],
                 counts["lost"], counts["prompt_tokens"], counts["output_tokens"], cost, standard, now, now, now,
                 row["id"]])
        s = self.summary
        s.ingested += 1
        for k in ("labels", "rejected", "requeued", "lost", "line_errors", "prompt_tokens", "output_tokens"):
            setattr(s, k, getattr(s, k) + counts[k])
        s.cost_usd += cost
        s.standard_cost_usd += standard
        self._emit("ingested", f"batch {row['id']}: {counts['labels']} labels, {counts['rejected']} rejected, "
                   f"{counts['requeued']} back to the queue", batch=row["id"])

    def _answered(self, row: dict, job: queue.Job, result: TeacherResult) -> str:
        put_cached(self.db, self._cache_key(job), result, model=self.model, prompt_version=self.prompt.version,
                   query=job.text)
        lid = queue.complete(self.db, job, label=result.label, model=self.model, reject_reason=result.reject_reason,
                             raw=result.raw, prompt_version=self.prompt.version, catalog_hash=self.catalog.hash)
        self._attempt(row, job, result)
        if lid is None:
            return "lost"  # the lease ran out and another run took the job: it is answered there
        return "labeled" if result.outcome == Outcome.OK else "rejected"

    def _line_error(self, row: dict, job: queue.Job, error: Any) -> tuple[str, str]:
        err = error.model_dump(mode="json", exclude_none=True) if hasattr(error, "model_dump") else dict(error)
        result = classify_error(err.get("code"), {"error": err}, model=self.model)
        self._attempt(row, job, result)
        text = f"batch line: {result.outcome.value}: {result.status_code} {result.message or ''}".strip()[:500]
        if result.outcome == Outcome.TRANSIENT:
            return self._requeue(job, text, transient=True), text
        if result.outcome == Outcome.BAD_REQUEST:
            state = queue.fail(self.db, job, error=text, max_attempts=self.settings.max_attempts, retry=False)
            self.summary.failed += state == "failed"
            return ("failed" if state else "lost"), text
        return self._requeue(job, text, transient=False), text

    def _requeue(self, job: queue.Job, error: str, *, transient: bool) -> str:
        """Back to pending (an attempt counted when ``transient``); returns the member's state."""
        if transient:
            state = queue.fail(self.db, job, error=error, max_attempts=self.settings.max_attempts)
            return {"pending": "requeued", "dead": "dead", None: "lost"}.get(state, "requeued")
        return "requeued" if queue.release(self.db, job, error=error) else "lost"

    def _requeue_all(self, row: dict, state: str) -> None:
        """Members of a failed, expired or cancelled batch back to the queue (failed: attempt counted)."""
        error = f"batch {row['id']} {state}"
        requeued = 0
        with queue.immediate(self.db):
            for job in self._member_jobs(row):
                member = self._requeue(job, error, transient=state == "failed")
                requeued += member == "requeued"
                self.db.execute("UPDATE batch_members SET state = ?, error = ? WHERE batch_id = ? AND job_id = ?",
                                [member, error, row["id"], job.id])
            self.db.execute("UPDATE batches SET state = ?, remote_state = ?, requeued = ?, polls = polls + 1,"
                            " updated_at = ?, finished_at = ? WHERE id = ?",
                            [state, state, requeued, now_iso(), now_iso(), row["id"]])
        self.summary.requeued += requeued
        self._emit("requeued", f"batch {row['id']} {state}: {requeued} job(s) back to the queue", batch=row["id"])

    def _attempt(self, row: dict, job: queue.Job, result: TeacherResult) -> None:
        # a batch line is a paid answer (or an error) like an online request: one attempts row, no sent_at, so
        # it never counts in a bucket's per-minute window
        u = result.usage
        self.db.execute(
            "INSERT INTO attempts (job_id, slot_id, project, model, started_at, outcome, status_code, error_kind,"
            " message, prompt_tokens, output_tokens, total_tokens, purpose, query_id, worker)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [job.id, f"batch:{row['id']}", row["project"], self.model, now_iso(), result.outcome.value,
             result.status_code, "batch", result.message or result.reject_reason, u.prompt_tokens, u.output_tokens,
             u.total_tokens, job.purpose, job.query_id, f"batch:{row['id']}"])


def _member_key(job_id: int) -> str:
    return f"job-{job_id}"


# ---------------------------------------------------------------- entry points and reports


def run_batches(db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
                batch: BatchSettings | None = None, progress: ProgressCallback = noop, submit: bool = True,
                wait: bool = True, handle_signals: bool = False, prompt=None) -> BatchRunSummary:
    """Label pending jobs through Batch Mode; see :class:`BatchRunner` and the module doc.

    Returns: the run's summary. Side effects: batches, batch_members, jobs, labels, attempts and cache rows;
    create/get/list requests to the API. Raises: BatchModeUnavailable, NeedsKeyError, Interrupted (130).
    """
    return BatchRunner(db, catalog=catalog, keys=keys, settings=settings, batch=batch, progress=progress,
                       submit=submit, wait=wait, prompt=prompt).run(handle_signals=handle_signals)


def run_batches_workspace(workspace, db: Database, *, batch: BatchSettings | None = None,
                          progress: ProgressCallback = noop, submit: bool = True, wait: bool = True,
                          retry_failed: bool = False, handle_signals: bool = False,
                          batch_overrides: dict | None = None, **overrides) -> BatchRunSummary:
    """:func:`run_batches` for a workspace: its ``[distill]`` settings (``[distill.batch]`` for ``batch`` unless
    given, with ``batch_overrides`` from flags on top), keys, catalogue and prompt (flags in ``overrides``)."""
    from ..db import get_catalog
    from .keys import keys_from_env
    from .prompt import load_prompt
    from .settings import load_settings

    settings = load_settings(workspace, **overrides)
    batch = batch or settings.batch_settings(**(batch_overrides or {}))
    keys = keys_from_env(workspace.env)
    catalog = get_catalog(db)
    prompt, _ = load_prompt(catalog, workspace=workspace, db=db)
    if retry_failed:
        queue.retry_jobs(db)
    return run_batches(db, catalog=catalog, keys=keys, settings=settings, batch=batch, progress=progress,
                       submit=submit, wait=wait, handle_signals=handle_signals, prompt=prompt)


def batch_report(db: Database) -> dict:
    """Every batch with its state, counts and cost, and the totals (reads the database only).

    Returns: ``{"batches": [...], "totals": {...}, "members": {state: n}}``; each batch has its id (the display
    name), remote ``name``, model, project, state, requests, answered, line errors, labels, rejected, requeued,
    lost, tokens, ``cost_usd`` (batch price) and ``standard_cost_usd`` (the same tokens online), polls, times
    and the last error.
    """
    rows = list(db.query("SELECT * FROM batches ORDER BY seq"))
    keep = ("id", "name", "model", "project", "state", "request_count", "answered", "line_errors", "labels",
            "rejected", "requeued", "lost", "prompt_tokens", "output_tokens", "cost_usd", "standard_cost_usd",
            "polls", "created_at", "submitted_at", "finished_at", "error")
    batches = [{k: r.get(k) for k in keep} for r in rows]
    totals = {k: sum(r.get(k) or 0 for r in rows) for k in ("request_count", "answered", "line_errors", "labels",
                                                             "rejected", "requeued", "lost", "prompt_tokens",
                                                             "output_tokens", "cost_usd", "standard_cost_usd")}
    totals["cost_usd"], totals["standard_cost_usd"] = round(totals["cost_usd"], 6), round(totals["standard_cost_usd"], 6)
    totals["batches"] = len(rows)
    totals["by_state"] = dict(db.execute("SELECT state, count(*) FROM batches GROUP BY 1 ORDER BY 1").fetchall())
    members = dict(db.execute("SELECT state, count(*) FROM batch_members GROUP BY 1 ORDER BY 1").fetchall())
    return {"batches": batches, "totals": totals, "members": members}
