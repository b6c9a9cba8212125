"""The runner: works the job queue through the key pool, concurrently, and stops or resumes cleanly.

One asyncio loop dispatches requests: it picks the slot that may send now and has rested longest, leases a job
that slot can answer, counts the send on the bucket, and fires the request (google-genai's async client, one
client per key) while it looks for the next. Every answer is written the moment it arrives: the attempt row, the
label (or the job's retry, release or failure) and the cache entry commit in one transaction. What each outcome
does to the slot, the bucket and the job is ARCHITECTURE section 5's table (see :meth:`Runner._settle`).

It stops when the queue has nothing left it can serve (done), after ``limit`` jobs, when every bucket is
exhausted until the daily reset (:class:`~tooldistill.errors.QuotaExhausted`, exit 75, unless ``wait``), or on
SIGINT/SIGTERM (stop claiming, let in-flight requests finish within a grace period, abandon the rest, give back
the leases, :class:`~tooldistill.errors.Interrupted`, exit 130). ``kill -9`` loses nothing committed: a restart
reclaims the dead process's leases and pays again only for the requests that were in flight.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Protocol

from sqlite_utils import Database

from ..catalog import Catalog
from ..db import now_iso
from ..db import queue
from ..errors import Interrupted, NeedsKeyError, QuotaExhausted
from ..progress import ProgressCallback, ProgressEvent, noop
from .cache import cache_key, get_cached, put_cached
from .clock import Clock, make_clock
from .inflight import InFlight
from .keys import ApiKey
from .outcomes import Outcome, TeacherResult, classify_exception
from .packing import PackedResult
from .pool import Pool, Slot
from .prompt import TeacherPrompt
from .settings import DistillSettings

log = logging.getLogger(__name__)

PURPOSES = ("label", "relabel")
RECLAIM_EVERY_S = 15.0
WORK_TTL_S = 1.0
PROGRESS_EVERY_S = 0.25
RATE_WINDOW_S = 120.0


class Teacher(Protocol):
    """What the runner asks: one query, one key, one model, one classified result."""

    prompt_version: str

    async def ask(self, key: ApiKey, *, model: str, query: str, temperature: float) -> TeacherResult:
        """Ask ``model`` with ``key``; must not raise for API or network failures (they are outcomes)."""

    async def ask_packed(self, key: ApiKey, *, model: str, queries: list[str], temperature: float) -> PackedResult:
        """Ask for several labels in one request (only called with ``pack > 1``); must not raise either."""

    async def aclose(self) -> None:
        """Release clients."""


class GeminiTeacher:
    """The Gemini API through google-genai: one async client per key, built on first use.

    Args:
        catalog: the tools (the prompt's function declarations, and the validation of answers).
        base_url, api_version, timeout_s: passed to every client.
    """

    def __init__(self, catalog: Catalog, *, base_url: str | None = None, api_version: str = "v1beta",
                 timeout_s: float = 60.0, prompt: TeacherPrompt | None = None):
        from .prompt import build_prompt

        self.catalog, self.base_url, self.api_version, self.timeout_s = catalog, base_url, api_version, timeout_s
        self.prompt = prompt or build_prompt(catalog)
        self.prompt_version = self.prompt.version
        self._clients: dict[str, object] = {}

    def _client(self, key: ApiKey):
        from .teacher import make_client

        client = self._clients.get(key.fingerprint)
        if client is None:
            client = self._clients[key.fingerprint] = make_client(
                key.reveal(), base_url=self.base_url, api_version=self.api_version, timeout_s=self.timeout_s)
        return client

    def prepare(self, keys: list[ApiKey], *, temperature: float = 0.0, pack: int = 1) -> None:
        """Import the SDK and build every key's client and the request config before the first send: done
        lazily, the first requests would wait seconds (SDK import, TLS contexts) while their pacing slots pass."""
        from .packing import packed_config
        from .teacher import generate_config

        for key in keys:
            self._client(key)
        generate_config(self.prompt, temperature)
        if pack > 1:
            packed_config(self.prompt, temperature)

    async def ask(self, key: ApiKey, *, model: str, query: str, temperature: float = 0.0) -> TeacherResult:
        from .teacher import ask_teacher

        return await ask_teacher(self._client(key), model=model, prompt=self.prompt, catalog=self.catalog,
                                 query=query, temperature=temperature)

    async def ask_packed(self, key: ApiKey, *, model: str, queries: list[str], temperature: float = 0.0
                         ) -> PackedResult:
        from .packing import ask_packed

        return await ask_packed(self._client(key), model=model, prompt=self.prompt, catalog=self.catalog,
                                queries=queries, temperature=temperature)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aio.aclose()


@dataclass
class RunSummary:
    """What one run did (counts are for this run; ``pending`` is what the queue still holds)."""

    enqueued: int = 0
    labels: int = 0
    rejected: int = 0
    failed: int = 0
    dead: int = 0
    retried: int = 0
    released: int = 0
    cache_hits: int = 0
    packed_requests: int = 0
    """Requests that carried more than one query (``--pack``)."""
    unpacked: int = 0
    """Queries whose answer in a packed request was missing or invalid, sent back to be asked alone."""
    lost_leases: int = 0
    reclaimed: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    paid: int = 0
    labels_per_request: float = 0.0
    """Labels and rejections stored per paid request (above 1 only with packing)."""
    prompt_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    """This run's tokens at list prices (``None`` when a model has no known price)."""
    votes_enqueued: int = 0
    batches: dict | None = None
    """Batch Mode jobs of the workspace (``batches``, ``live``, ``labels``), when there are any."""
    pending: int = 0
    elapsed_s: float = 0.0
    stopped: str = "done"
    """``done``, ``limit``, ``exhausted`` or ``interrupted``."""
    resets_at: float | None = None
    buckets: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    """Failed and dead jobs in the queue, grouped by state and last error (most frequent first)."""

    def to_dict(self) -> dict:
        return asdict(self)


class Runner(InFlight):
    """One labeling run over the queue of ``db``.

    Args:
        db: the workspace database.
        catalog: the current catalogue (its hash goes on every label).
        keys: the API keys.
        settings: models, limits, concurrency, timeouts.
        teacher: who answers (default: :class:`GeminiTeacher` over ``settings``).
        clock: quota days (default: ``settings.day_seconds`` or real Pacific days).
        progress: receives :class:`~tooldistill.progress.ProgressEvent` s with ``task="distill"``; ``info["kind"]``
            is ``progress``, ``key_invalid``, ``waiting``, ``stopping`` or ``done``.
        wait: when every bucket is exhausted, sleep until the reset instead of raising QuotaExhausted.
        limit: take at most this many jobs from the queue in this run.
        resume_hint: the command the stop messages tell the user to run.
    """

    def __init__(self, db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
                 teacher: Teacher | None = None, clock: Clock | None = None, progress: ProgressCallback = noop,
                 wait: bool = False, limit: int | None = None, resume_hint: str = "tooldistill distill run"):
        if not keys:
            raise NeedsKeyError("no Gemini API key: set GEMINI_API_KEYS=KEY[@PROJECT],... in the environment or .env")
        self.db, self.catalog, self.keys, self.settings = db, catalog, keys, settings
        self.teacher = teacher or GeminiTeacher(catalog, base_url=settings.base_url,
                                                api_version=settings.api_version, timeout_s=settings.timeout_s)
        self.clock = clock or make_clock(settings.day_seconds)
        self.progress, self.wait, self.limit, self.resume_hint = progress, wait, limit, resume_hint
        self.worker = queue.worker_id()
        self.pack = settings.pack
        self.prompt_version, self.catalog_hash = self.teacher.prompt_version, catalog.hash
        self.summary = RunSummary()
        self.requests: Counter = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.taken = 0
        self.total = 0
        self.pool: Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._abandon = False
        self._work_cache: tuple[queue.Work, float] | None = None
        self._last_progress = 0.0
        self._samples: deque = deque()
        self._started = 0.0

    # ------------------------------------------------------------ public

    def run(self, *, handle_signals: bool = False) -> RunSummary:
        """Run to the end in a new event loop (see :meth:`arun`)."""
        return asyncio.run(self.arun(handle_signals=handle_signals))

    def stop(self) -> None:
        """Ask the run to stop as on Ctrl-C (thread-safe); a second call abandons in-flight requests."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_stop_signal)

    async def arun(self, *, handle_signals: bool = False) -> RunSummary:
        """Enqueue missing label jobs, then work the queue until done, the limit, exhaustion or a stop.

        Args:
            handle_signals: install SIGINT/SIGTERM handlers that stop the run cleanly (main thread only).

        Returns: the run's summary when the queue is done or the limit is reached.

        Raises: QuotaExhausted (exit 75) with the reset time; Interrupted (exit 130) after a clean stop;
        NeedsKeyError when every key was rejected. Each carries ``.summary``.
        """
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        started = self._started = time.monotonic()
        installed = self._install_signals() if handle_signals else []
        try:
            self._prepare()
            outcome = await self._dispatch()
            await self._drain(grace=self.settings.grace_s if outcome == "interrupted" else None)
            self.summary.stopped = outcome
        finally:
            for sig in installed:
                self._loop.remove_signal_handler(sig)
            self._finish(started)
            await self.teacher.aclose()
        if self.summary.stopped == "interrupted":
            raise self._with_summary(Interrupted(
                f"stopped after a clean shutdown: {self.summary.labels} label(s) and {self.summary.rejected} "
                f"rejection(s) saved this run, {self.summary.pending} job(s) pending; resume with: "
                f"{self.resume_hint}"))
        if self.summary.stopped == "exhausted":
            raise self._with_summary(QuotaExhausted(self._exhausted_message()))
        return self.summary

    # ------------------------------------------------------------ setup and teardown

    def _prepare(self) -> None:
        db, s = self.db, self.settings
        queue.supersede_stale(db, prompt_version=self.prompt_version, catalog_hash=self.catalog_hash)
        self.summary.enqueued = queue.enqueue_missing_labels(db, prompt_version=self.prompt_version,
                                                             catalog_hash=self.catalog_hash)
        self.summary.reclaimed = queue.reclaim_expired(db, max_attempts=s.max_attempts)
        self.pool = Pool(db, self.keys, models=s.models, settings=s, clock=self.clock,
                         pinned_models=queue.pinned_models(db, purposes=PURPOSES))
        self.total = sum(c["pending"] for p, c in queue.queue_counts(db).items() if p in PURPOSES)
        self._serve_cached()
        prepare = getattr(self.teacher, "prepare", None)
        if prepare is not None and self.total:
            prepare(self.keys, temperature=s.temperature, pack=self.pack)
        if self.limit is not None:
            self.total = min(self.total, self.limit)
        self._emit("progress", force=True)

    def _finish(self, started: float) -> None:
        if self.tasks:  # only after an unexpected error: never leave leases behind
            for task in self.tasks:
                task.cancel()
        queue.release_worker(self.db, self.worker)
        self.summary.requests = dict(self.requests)
        self.summary.paid = sum(n for k, n in self.requests.items() if k in (Outcome.OK, Outcome.REJECTED))
        answered = self.summary.labels + self.summary.rejected - self.summary.cache_hits
        self.summary.labels_per_request = round(answered / self.summary.paid, 3) if self.summary.paid else 0.0
        if self.summary.cost_usd is not None:
            self.summary.cost_usd = round(self.summary.cost_usd, 6)
        self.summary.pending = sum(c["pending"] + c["leased"] for p, c in queue.queue_counts(self.db).items()
                                   if p in PURPOSES)
        self.summary.problems = [{"state": st, "error": e, "jobs": n} for st, e, n in self.db.execute(
            "SELECT state, last_error, count(*) FROM jobs WHERE state IN ('failed', 'dead') GROUP BY 1, 2"
            " ORDER BY 3 DESC LIMIT 5")]
        self.summary.elapsed_s = round(time.monotonic() - started, 3)
        if self.db["batches"].exists():
            row = self.db.execute("SELECT count(*), sum(state IN ('preparing', 'pending', 'running')),"
                                  " coalesce(sum(labels), 0) FROM batches").fetchone()
            if row[0]:
                self.summary.batches = {"batches": row[0], "live": row[1] or 0, "labels": row[2]}
        if self.pool is not None:
            self.summary.buckets = self.pool.snapshot()
        self._emit("done", force=True)

    def _with_summary(self, exc: Exception) -> Exception:
        exc.summary = self.summary
        exc.resets_at = self.summary.resets_at
        return exc

    def _exhausted_message(self) -> str:
        reset = self.summary.resets_at or self.clock.next_reset()
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(reset))
        left = _human(reset - self.clock.now())
        return (f"every teacher bucket is exhausted until {when} (in {left}; daily quotas reset: "
                f"{self.clock.describe()}); {self.summary.pending} job(s) pending. Resume after the reset "
                f"with: {self.resume_hint} (add --wait to sleep until the reset and carry on)")

    # ------------------------------------------------------------ signals

    def _install_signals(self) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        sigs = [signal.SIGINT, signal.SIGTERM]
        for sig in sigs:
            self._loop.add_signal_handler(sig, self._on_stop_signal)
        return sigs

    def _on_stop_signal(self) -> None:
        if self._stopping:
            self._abandon = True
        self._stopping = True
        self._emit("stopping", force=True)
        self._wake.set()

    # ------------------------------------------------------------ the loop

    def _work(self) -> queue.Work:
        """What the queue holds for this run, counted at most every WORK_TTL_S (counting a big queue costs
        tens of ms); between counts it is kept current by this run's own claims, and recounted at once when a
        claim comes back empty or an answer puts a job back."""
        if self._work_cache is not None and time.monotonic() < self._work_cache[1]:
            return self._work_cache[0]
        work = queue.pending_work(self.db, prompt_version=self.prompt_version, catalog_hash=self.catalog_hash,
                                  purposes=PURPOSES, now=time.time())
        served = {s.model for s in self.pool.slots}
        work.pinned = {m: n for m, n in work.pinned.items() if m in served}
        self._work_cache = (work, time.monotonic() + WORK_TTL_S)
        return work

    def _claimed(self, job: queue.Job | None) -> None:
        if job is None or self._work_cache is None:
            self._work_cache = None
            return
        work = self._work_cache[0]
        if job.model is None:
            work.unpinned = max(0, work.unpinned - 1)
        elif job.model in work.pinned:
            work.pinned[job.model] -= 1
            if work.pinned[job.model] <= 0:
                del work.pinned[job.model]

    async def _dispatch(self) -> str:
        s, pool = self.settings, self.pool
        next_reclaim = time.monotonic() + RECLAIM_EVERY_S
        while True:
            self._reap()
            if self._stopping:
                return "interrupted"
            if self.limit is not None and self.taken >= self.limit:
                return "limit"
            if len(self.tasks) >= s.concurrency:
                await self._pause(None)
                continue
            now = self.clock.now()
            if time.monotonic() >= next_reclaim:
                self.summary.reclaimed += queue.reclaim_expired(self.db, max_attempts=s.max_attempts)
                self._work_cache = None
                pool.sync(now)
                next_reclaim = time.monotonic() + RECLAIM_EVERY_S
            pool.refresh(now)
            work = self._work()
            if not work.now and not self.tasks:
                self._work_cache = None  # never decide "done" on a count kept by hand
                work = self._work()
            if not work.now:
                if self.tasks or work.next_at is not None:
                    await self._pause(None if work.next_at is None else max(0.0, work.next_at - time.time()))
                    continue
                return "done"
            slot, ready_at = pool.pick(now, unpinned_work=work.unpinned > 0, pinned_work=set(work.pinned))
            if slot is None and ready_at is not None:
                await self._pause(max(0.0, ready_at - now))
                continue
            if slot is None:
                if self.tasks:
                    await self._pause(None)
                    continue
                self._work_cache = None
                if not self._work().now:  # the hand-kept count was stale: nothing is left after all
                    continue
                kind, reset = pool.blocked(unpinned_work=work.unpinned > 0, pinned_work=set(work.pinned))
                if kind == "invalid":
                    raise self._with_summary(NeedsKeyError(
                        f"every API key was rejected ({len(self.keys)} key(s)); {work.now} job(s) pending. Fix "
                        f"GEMINI_API_KEYS (see the errors above) and run again"))
                self.summary.resets_at = reset
                if not self.wait:
                    return "exhausted"
                self._emit("waiting", force=True, resets_at=reset)
                await self._pause(max(0.0, reset - self.clock.now()) + 0.05)
                continue
            self._launch(slot, now)

    def _launch(self, slot: Slot, now: float) -> None:
        # The claim, the cache probe and the bucket's send count share one write transaction: one commit per
        # request sent instead of three, which is what a busy run spends its CPU on besides the SDK.
        with queue.immediate(self.db):
            claim = dict(worker=self.worker, lease_s=self.settings.lease_s, model=slot.model,
                         serve_unpinned=slot.serves_unpinned, prompt_version=self.prompt_version,
                         catalog_hash=self.catalog_hash, purposes=PURPOSES)
            room = self.pack if self.limit is None else min(self.pack, self.limit - self.taken)
            jobs = queue.claim(self.db, **claim, limit=room, packable=True) if room > 1 else []
            if not jobs:  # nothing packable (pinned, votes, or sent back to be asked alone): one at a time
                jobs = queue.claim(self.db, **claim, limit=1)
            if not jobs:  # another process took it between the count and the claim
                self._claimed(None)
                return
            for job in jobs:
                self._claimed(job)
            self.taken += len(jobs)
            jobs = [job for job in jobs if not self._complete_from_cache(job)]
            if not jobs:
                return
            if not self.pool.reserve(slot, now):
                for job in jobs:
                    queue.release(self.db, job)
                self._work_cache = None
                self.taken -= len(jobs)
                return
        request = self._request(slot, jobs[0], now) if len(jobs) == 1 else self._request_packed(slot, jobs, now)
        task = asyncio.create_task(request)
        self.tasks.add(task)

    # ------------------------------------------------------------ one request

    async def _request(self, slot: Slot, job: queue.Job, sent_at: float) -> None:
        temperature = float(job.params.get("temperature", self.settings.temperature))
        try:
            result = await self.teacher.ask(slot.key, model=slot.model, query=job.text, temperature=temperature)
        except asyncio.CancelledError:
            self._abandoned(slot, [job], sent_at)
            raise
        except Exception as exc:  # a teacher that raises is still one classified outcome
            result = classify_exception(exc, model=slot.model)
        self._settle(slot, job, result, sent_at)
        self._wake.set()

    async def _request_packed(self, slot: Slot, jobs: list[queue.Job], sent_at: float) -> None:
        try:
            packed = await self.teacher.ask_packed(slot.key, model=slot.model, queries=[j.text for j in jobs],
                                                   temperature=self.settings.temperature)
        except asyncio.CancelledError:
            self._abandoned(slot, jobs, sent_at)
            raise
        except Exception as exc:
            packed = PackedResult(classify_exception(exc, model=slot.model))
        self._settle_packed(slot, jobs, packed, sent_at)
        self._wake.set()

    def _abandoned(self, slot: Slot, jobs: list[queue.Job], sent_at: float) -> None:
        self.pool.unreserve(slot)
        with queue.immediate(self.db):
            self._record_attempt(slot, jobs[0], None, sent_at, pack_size=len(jobs))
            for job in jobs:
                queue.release(self.db, job, error="abandoned at shutdown")
        self.requests["abandoned"] += 1
        self.summary.released += len(jobs)

    def _settle(self, slot: Slot, job: queue.Job, result: TeacherResult, sent_at: float) -> None:
        """Apply one outcome: the pool's state, the job's fate and the attempt row, in one transaction."""
        message = self.pool.record(slot, result, self.clock.now())
        out, db, s = result.outcome, self.db, self.settings
        if not out.paid:
            self._work_cache = None  # the job goes back to the queue (or out of it): count again
        self.requests[out.value] += 1
        self._count_usage(slot.model, result)
        with queue.immediate(db):
            self._record_attempt(slot, job, result, sent_at)
            if out in (Outcome.OK, Outcome.REJECTED):
                put_cached(db, self._cache_key(job, slot.model), result, model=slot.model,
                           prompt_version=self.prompt_version, query=job.text)
                self._complete(job, result.label, slot.model, result.reject_reason, result.raw, cache_hit=False)
            else:
                self._unanswered(job, result)
        if message:
            self._emit("key_invalid", force=True, message=message)
        self._emit("progress")

    def _unanswered(self, job: queue.Job, result: TeacherResult) -> None:
        """The job's fate when its request got no answer (ARCHITECTURE section 5's table)."""
        out, db, s = result.outcome, self.db, self.settings
        if out in (Outcome.DAILY_QUOTA, Outcome.MINUTE_QUOTA, Outcome.BARE_429, Outcome.BAD_KEY):
            queue.release(db, job, error=_error_text(result))
            self.summary.released += 1
        elif out == Outcome.TRANSIENT:
            state = queue.fail(db, job, error=_error_text(result), max_attempts=s.max_attempts)
            self.summary.dead += state == "dead"
            self.summary.retried += state == "pending"
        else:  # BAD_REQUEST: never retried blindly
            if queue.fail(db, job, error=_error_text(result), max_attempts=s.max_attempts, retry=False):
                self.summary.failed += 1

    def _settle_packed(self, slot: Slot, jobs: list[queue.Job], packed: PackedResult, sent_at: float) -> None:
        """Apply a packed request's outcome: each valid answer completes its job; a job whose answer is missing
        or invalid (or all of them, when the answer was not usable at all) goes back to be asked alone."""
        result = packed.request
        message = self.pool.record(slot, result, self.clock.now())
        out, db = result.outcome, self.db
        self.requests[out.value] += 1
        self._count_usage(slot.model, result)
        self._work_cache = None
        with queue.immediate(db):
            self._record_attempt(slot, jobs[0], result, sent_at, pack_size=len(jobs))
            if out in (Outcome.OK, Outcome.REJECTED):
                self.summary.packed_requests += 1
                items = packed.items or [None] * len(jobs)
                for job, item in zip(jobs, items):
                    if item is None:
                        queue.release(db, job, unpack=True,
                                      error="its answer in a packed request was missing or invalid: asked alone next")
                        self.summary.unpacked += 1
                        continue
                    put_cached(db, self._cache_key(job, slot.model), item, model=slot.model,
                               prompt_version=self.prompt_version, query=job.text)
                    self._complete(job, item.label, slot.model, None, item.raw, cache_hit=False)
            else:
                for job in jobs:
                    self._unanswered(job, result)
        if message:
            self._emit("key_invalid", force=True, message=message)
        self._emit("progress")

    def _count_usage(self, model: str, result: TeacherResult) -> None:
        from .pricing import cost_usd

        usage = result.usage
        if usage is None or result.outcome not in (Outcome.OK, Outcome.REJECTED):
            return
        self.summary.prompt_tokens += usage.prompt_tokens or 0
        self.summary.output_tokens += usage.output_tokens or 0
        cost = cost_usd(model, usage.prompt_tokens or 0, usage.output_tokens or 0, prices=self.settings.prices)
        if cost is not None:
            self.summary.cost_usd = (self.summary.cost_usd or 0.0) + cost

    def _complete(self, job: queue.Job, label, model: str, reject_reason, raw, *, cache_hit: bool) -> None:
        lid = queue.complete(self.db, job, label=label, model=model, reject_reason=reject_reason, raw=raw,
                             prompt_version=self.prompt_version, catalog_hash=self.catalog_hash, cache_hit=cache_hit)
        if lid is None:
            self.summary.lost_leases += 1
        elif label is not None and reject_reason is None:
            self.summary.labels += 1
        else:
            self.summary.rejected += 1

    def _record_attempt(self, slot: Slot, job: queue.Job, result: TeacherResult | None, sent_at: float, *,
                        pack_size: int | None = None) -> None:
        usage = result.usage if result is not None else None
        self.db.conn.execute(
            "INSERT INTO attempts (job_id, slot_id, project, model, started_at, latency_ms, outcome, status_code,"
            " error_kind, message, prompt_tokens, output_tokens, total_tokens, purpose, query_id, worker, sent_at,"
            " day, pack_size) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [job.id, slot.id, slot.bucket.project, slot.model, now_iso(),
             round(result.latency_ms, 3) if result is not None else None,
             result.outcome.value if result is not None else "abandoned",
             result.status_code if result is not None else None,
             ",".join(result.quota_ids) if result is not None and result.quota_ids else None,
             (result.message or result.reject_reason) if result is not None else "abandoned at shutdown",
             usage.prompt_tokens if usage else None, usage.output_tokens if usage else None,
             usage.total_tokens if usage else None, job.purpose, job.query_id, self.worker, sent_at,
             self.clock.day(sent_at), pack_size if pack_size and pack_size > 1 else None])

    # ------------------------------------------------------------ cache

    def _cache_key(self, job: queue.Job, model: str) -> str:
        return cache_key(model=model, prompt_version=self.prompt_version, catalog_hash=self.catalog_hash,
                         query=job.text, purpose=job.purpose, params=job.params)

    def _cached_answer(self, job: queue.Job):
        models = [job.model] if job.model else self.settings.models
        for model in models:
            hit = get_cached(self.db, self._cache_key(job, model))
            if hit is not None:
                return hit
        return None

    def _complete_from_cache(self, job: queue.Job) -> bool:
        hit = self._cached_answer(job)
        if hit is None:
            return False
        with queue.immediate(self.db):
            self._complete(job, hit.label, hit.model, hit.reject_reason, hit.raw, cache_hit=True)
        self.summary.cache_hits += 1
        self._emit("progress")
        return True

    def _serve_cached(self) -> None:
        """Answer every pending job the cache already knows, before any request is sent."""
        if not self.db.execute("SELECT 1 FROM response_cache LIMIT 1").fetchone():
            return
        marks = ",".join("?" * len(PURPOSES))
        rows = self.db.execute(
            f"SELECT j.id, j.purpose, j.model, j.params, q.text FROM jobs j JOIN queries q ON q.id = j.query_id"
            f" WHERE j.state = 'pending' AND j.purpose IN ({marks})", list(PURPOSES)).fetchall()
        hits = []
        for jid, purpose, model, params, text in rows:
            probe = queue.Job(jid, 0, purpose, "pending", 0, model, params=_loads(params), text=text)
            if self._cached_answer(probe) is not None:
                hits.append(jid)
        for start in range(0, len(hits), 500):
            for job in queue.claim(self.db, worker=self.worker, lease_s=self.settings.lease_s, model="",
                                   serve_unpinned=True, prompt_version=self.prompt_version,
                                   catalog_hash=self.catalog_hash, purposes=PURPOSES, limit=500,
                                   ids=hits[start:start + 500]) + self._claim_pinned(hits[start:start + 500]):
                if not self._complete_from_cache(job):
                    queue.release(self.db, job)

    def _claim_pinned(self, ids: list[int]) -> list[queue.Job]:
        out = []
        for model in queue.pinned_models(self.db, purposes=PURPOSES):
            out += queue.claim(self.db, worker=self.worker, lease_s=self.settings.lease_s, model=model,
                               serve_unpinned=False, prompt_version=self.prompt_version,
                               catalog_hash=self.catalog_hash, purposes=PURPOSES, limit=len(ids), ids=ids)
        return out

    # ------------------------------------------------------------ progress

    def _rate(self, now: float, done: int) -> float | None:
        """Jobs finished per minute over the last RATE_WINDOW_S (``None`` until there is a few seconds' worth)."""
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and samples[1][0] < now - RATE_WINDOW_S:
            samples.popleft()
        t0, d0 = samples[0]
        return (done - d0) / (now - t0) * 60 if now - t0 >= 3.0 else None

    def _emit(self, kind: str, *, force: bool = False, **extra) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        sm = self.summary
        done = sm.labels + sm.rejected + sm.failed + sm.dead
        pending = max(0, self.total - done)
        rate = self._rate(now, done)
        buckets = self.pool.snapshot() if self.pool is not None else []
        info = {
            "kind": kind, "labels": sm.labels, "rejected": sm.rejected, "failed": sm.failed, "dead": sm.dead,
            "pending": pending,
            "cache_hits": sm.cache_hits, "in_flight": len(self.tasks), "requests": dict(self.requests),
            "buckets": buckets, "elapsed_s": round(now - self._started, 1) if self._started else 0.0,
            "labels_per_min": round(rate, 1) if rate is not None else None,
            "eta_s": eta_seconds(pending, rate, buckets, pack=self.pack, clock=self.clock),
            "prompt_tokens": sm.prompt_tokens, "output_tokens": sm.output_tokens, "cost_usd": sm.cost_usd,
            "packed_requests": sm.packed_requests, "unpacked": sm.unpacked, "pack": self.pack, **extra,
        }
        message = extra.get("message")
        if message is None:
            message = f"distill: {sm.labels} labels, {sm.rejected} rejected"
        self.progress(ProgressEvent(task="distill", done=done, total=max(self.total, done), message=message,
                                    info=info))


def eta_seconds(pending: int, rate_per_min: float | None, buckets: list[dict], *, pack: int = 1,
                clock: Clock | None = None) -> float | None:
    """Seconds until ``pending`` jobs are done: at the current rate while today's quota lasts, and beyond it at
    the buckets' daily limits from the next reset on (``None`` when there is no rate to go by).

    Args:
        rate_per_min: jobs finished per minute lately.
        buckets: :meth:`Pool.snapshot` rows (``rpd``, ``requests_today``, ``state``).
        pack: queries per request.
    """
    if not pending:
        return 0.0
    if not rate_per_min:
        return None
    limited = [b for b in buckets if b.get("rpd")]
    if clock is None or not limited or len(limited) < len(buckets):
        return pending / rate_per_min * 60
    left_today = sum(max(0, b["rpd"] - b["requests_today"]) for b in limited if b["state"] != "exhausted") * pack
    if pending <= left_today:
        return pending / rate_per_min * 60
    per_day = sum(b["rpd"] for b in limited) * pack
    now = clock.now()
    day_s = getattr(clock, "day_seconds", 86_400.0)
    rest = pending - left_today
    days, last = divmod(rest, per_day)
    return (clock.next_reset(now) - now) + days * day_s + last / rate_per_min * 60


def _error_text(result: TeacherResult) -> str:
    code = f"{result.status_code} " if result.status_code else ""
    return f"{result.outcome.value}: {code}{result.message or ''}".strip()[:500]


def _loads(params: str | None) -> dict:
    import json

    return json.loads(params) if params else {}


def _human(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def run_distill(db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
                teacher: Teacher | None = None, clock: Clock | None = None, progress: ProgressCallback = noop,
                wait: bool = False, limit: int | None = None, handle_signals: bool = False,
                resume_hint: str = "tooldistill distill run") -> RunSummary:
    """Label every query that lacks a teacher label, through the key pool; see :class:`Runner`.

    Returns: the summary. Raises QuotaExhausted (75), Interrupted (130) or NeedsKeyError, each with ``.summary``.
    Side effects: jobs, attempts, labels, cache, slot and bucket rows in ``db``; requests to the teacher.
    """
    return Runner(db, catalog=catalog, keys=keys, settings=settings, teacher=teacher, clock=clock,
                  progress=progress, wait=wait, limit=limit, resume_hint=resume_hint).run(
        handle_signals=handle_signals)


def run_workspace(workspace, db: Database, *, progress: ProgressCallback = noop, wait: bool = False,
                  limit: int | None = None, retry_failed: bool = False, handle_signals: bool = False,
                  teacher: Teacher | None = None, resume_hint: str = "tooldistill distill run", votes: int = 1,
                  prompt_path: str | None = None, examples_from_gold: int | None = None,
                  **overrides) -> RunSummary:
    """Run the teacher over a workspace: its ``[distill]`` settings, its keys (environment or ``.env``), catalogue
    and prompt (``prompt.yaml``, see :func:`~tooldistill.distill.prompt.load_prompt`).

    Args:
        workspace: a :class:`tooldistill.config.Workspace`.
        db: its open database.
        retry_failed: first put failed and dead jobs back to pending.
        votes: teacher labels wanted per query (see :func:`enqueue_votes`); 1 is the label alone.
        prompt_path, examples_from_gold: override the workspace's prompt file and its gold examples.
        overrides: settings fields from CLI flags (``models``, ``rpm``, ``rpd``, ``concurrency``, ``base_url``,
            ``timeout_s``, ``max_attempts``, ``day_seconds``, ``pack``, ...); ``None`` values are ignored.
        Others as :func:`run_distill`.

    Raises: NeedsKeyError without keys, ConfigError for bad settings, InputError for a bad prompt file; as
    :func:`run_distill` otherwise.
    """
    from ..db import get_catalog
    from .keys import keys_from_env
    from .prompt import load_prompt
    from .settings import load_settings

    settings = load_settings(workspace, **overrides)
    keys = keys_from_env(workspace.env)
    catalog = get_catalog(db)
    prompt, _ = load_prompt(catalog, workspace=workspace, db=db, path=prompt_path,
                            examples_from_gold=examples_from_gold)
    teacher = teacher or GeminiTeacher(catalog, base_url=settings.base_url, api_version=settings.api_version,
                                       timeout_s=settings.timeout_s, prompt=prompt)
    if retry_failed:
        queue.retry_jobs(db)
    added = enqueue_votes(db, votes, models=settings.models, prompt_version=teacher.prompt_version,
                          catalog_hash=catalog.hash) if votes > 1 else 0
    try:
        summary = run_distill(db, catalog=catalog, keys=keys, settings=settings, teacher=teacher, progress=progress,
                              wait=wait, limit=limit, handle_signals=handle_signals, resume_hint=resume_hint)
    except (QuotaExhausted, Interrupted, NeedsKeyError) as exc:
        if getattr(exc, "summary", None) is not None:
            exc.summary.votes_enqueued = added
        raise
    summary.votes_enqueued = added
    return summary


def enqueue_votes(db: Database, votes: int, *, models: list[str], prompt_version: str, catalog_hash: str) -> int:
    """Ask for ``votes - 1`` more teacher labels per query, beside its label job: relabel jobs ``{"vote": i}``.

    Vote ``i`` goes to model ``models[i % len(models)]`` (distinct models while there are enough) at temperature
    1.0, so a vote is an independent sample even where it lands on the model that gave the label; ``curate
    adjudicate`` settles each query from the votes and the label. Idempotent (the queue's dedup contract).

    Returns: how many jobs were added.
    """
    if votes < 1:
        raise ValueError(f"votes must be at least 1, got {votes}")
    qids = [r[0] for r in db.execute("SELECT id FROM queries ORDER BY id")]
    added = 0
    for i in range(1, votes):
        added += queue.enqueue(db, qids, purpose="relabel", model=models[i % len(models)],
                               prompt_version=prompt_version, catalog_hash=catalog_hash,
                               params={"vote": i, "temperature": 1.0})
    return added
