"""Teacher-written queries: synthesis jobs on the durable queue, checked for duplicates the moment they arrive.

One ``synthesize`` job per cell of a coverage plan (:mod:`.coverage`) at a time: it asks the teacher for N new
user messages of that (tool, category, style) as structured JSON (``{"queries": [...]}``). Each message that
arrives is normalised and checked against every stored query, exact (the normalised key of
:func:`tooldistill.curate.neardup.dedup_key`) and near (MinHash LSH over curate's shingles, verified by exact
Jaccard at curate's threshold); a duplicate is counted on its cell and linked to the query it repeats, never
stored; the near duplicates caught this run are looked up too (see :class:`NearDupIndex`). New queries are
stored unlabeled (``source = synth:<plan>``, the cell's category, the cell id as ``template_id``) with the
cell's intended tool as a hint (``queries.hint``), which is kept apart from labels: ``distill run`` labels them
like any other query. The job's completion, its queries, the cell's counters and
the next round's job commit in one transaction, so a kill loses nothing committed and never stores a
duplicate. A cell stops when it reaches its target, or as ``saturated`` when the teacher keeps repeating itself
(``stale_limit`` rounds in a row with almost nothing new) or after ``round_factor`` times the rounds it needs.

Requests go through the same key pool as labeling (:class:`~tooldistill.distill.pool.Pool`): quota, cooling
and invalid keys behave exactly as in ``distill run``.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from ..catalog import NO_TOOL, Catalog, canonical_dumps
from ..db import NewQuery, insert_queries, now_iso
from ..db import queue
from ..errors import Interrupted, NeedsKeyError, QuotaExhausted
from ..progress import ProgressCallback, ProgressEvent, noop
from .clock import Clock, make_clock
from .inflight import InFlight
from .coverage import CATEGORY_TEXT, FULL, OPEN, SATURATED, STYLE_TEXT, Cell, get_cells
from .keys import ApiKey
from .outcomes import Outcome, TeacherResult, Usage, classify_exception, redact_result
from .pool import Pool, Slot
from .settings import DistillSettings

PURPOSE = "synthesize"
SOURCE_PREFIX = "synth:"
_ENUMERATOR = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*\u2022])\s+")
SYSTEM_TEXT = """\
You write realistic messages that people send to an AI assistant. The assistant routes each message to its
tools (listed below), so the messages you write are the training data of that router. Write varied, natural
messages in the requested category and style; each one stands alone. Never number them, never repeat a message
or one already written, and vary the wording, the length and the details. Answer only with JSON:
{"queries": ["...", "..."]}."""


class SynthesisSettings(BaseModel):
    """How ``distill synthesize`` asks for queries and decides that a cell is done."""

    model_config = ConfigDict(extra="forbid")

    per_request: int = Field(default=10, ge=1, le=50, description="Queries asked for in one request.")
    temperature: float = Field(default=1.0, ge=0, le=2, description="Sampling temperature (variety helps).")
    stale_limit: int = Field(default=3, ge=1, description="Rounds in a row with fewer than a fifth new queries "
                             "after which a cell is saturated.")
    round_factor: float = Field(default=3.0, ge=1, description="A cell gets at most this many times the rounds "
                                "its target needs.")
    avoid_examples: int = Field(default=8, ge=0, le=50, description="Recent queries of the cell shown to the "
                                "teacher as already written.")
    near_threshold: float | None = Field(default=None, gt=0, le=1, description="Shingle Jaccard at which a new "
                                         "query is a near duplicate (default: curate's NearDupParams threshold).")
    min_chars: int = Field(default=3, ge=1, description="Shorter queries are invalid.")
    max_chars: int = Field(default=500, ge=10, description="Longer queries are invalid.")


# ---------------------------------------------------------------- the duplicate index


class NearDupIndex:
    """Exact and near-duplicate lookups of new queries against every stored one, grown as queries arrive.

    Uses curate's normalisation (:func:`~tooldistill.curate.neardup.dedup_key`), shingles and MinHash with its
    recall-first banding; the stored queries' band keys are sorted arrays (about 0.5 KB per query), the ones
    added during a run live in dictionaries. A candidate is a duplicate only when the exact Jaccard of the
    shingle sets reaches the threshold.

    A near duplicate that was caught is indexed too, under the id of the stored query it repeats: similarity
    is not transitive, so a later repeat of the same original may be near the caught text and not the stored
    one (with several requests in flight, an original can arrive after one of its repeats and be the one
    caught). Repeats are thereby grouped as curate's dedup groups them (connected components of near pairs);
    a group still gets two stored queries if two of its texts that are not near each other both arrive before
    any text joining them.
    """

    MAX_BUCKET = 300
    """Candidates taken from one LSH band bucket at most (a huge bucket means a degenerate key, not 10k dups)."""

    def __init__(self, texts: list[str], ids: list[int], *, threshold: float | None = None):
        from dataclasses import replace

        from ..curate.neardup import NearDupParams, dedup_key, lsh_params, minhash, shingle

        self._dedup_key, self._shingle, self._minhash = dedup_key, shingle, minhash
        self.params = NearDupParams() if threshold is None else replace(NearDupParams(), threshold=threshold)
        self.bands, self.rows = lsh_params(self.params.threshold, self.params.num_perm)
        keys = [dedup_key(t) for t in texts]
        self.exact: dict[str, int] = {}
        for key, qid in zip(keys, ids):
            self.exact.setdefault(key, qid)
        self._base_ids = np.asarray(ids, dtype=np.int64)
        self._sorted, self._order = [], []
        self._base_sh = None
        if keys:  # curate's shingle() needs at least one text
            sh = shingle(keys, char_n=self.params.char_n, words=self.params.words)
            self._base_sh = sh
            bk = self._band_keys(minhash(sh, num_perm=self.params.num_perm, seed=self.params.seed))
            empty = sh.sizes == 0
            for b in range(self.bands):
                order = np.argsort(bk[:, b], kind="stable").astype(np.int32)
                order = order[~empty[order]]
                self._order.append(order)
                self._sorted.append(bk[order, b])
        self._added: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self._added_sets: dict[int, frozenset] = {}
        self._added_ids: list[int] = []

    def __len__(self) -> int:
        return len(self._base_ids) + len(self._added_sets)

    def _band_keys(self, sig: np.ndarray) -> np.ndarray:
        keys = np.zeros((len(sig), self.bands), dtype=np.uint64)
        mult = np.uint64(0x100000001B3)
        for b in range(self.bands):
            k = np.zeros(len(sig), dtype=np.uint64)
            for j in range(self.rows):
                k = (k ^ sig[:, b * self.rows + j].astype(np.uint64)) * mult + np.uint64(j)
            keys[:, b] = k
        return keys

    def key(self, text: str) -> str:
        return self._dedup_key(text)

    def check(self, texts: list[str]) -> list["Probe"]:
        """Look up each text (exact first, then near); pass the probes to :meth:`add` for those you store."""
        if not texts:
            return []
        keys = [self._dedup_key(t) for t in texts]
        sh = self._shingle(keys, char_n=self.params.char_n, words=self.params.words)
        bk = self._band_keys(self._minhash(sh, num_perm=self.params.num_perm, seed=self.params.seed))
        return [Probe(text, key, bk[i], frozenset(sh.doc(i).tolist())) for i, (text, key) in enumerate(zip(texts,
                                                                                                            keys))]

    def match(self, probe: "Probe") -> tuple[str, int | None, float]:
        """``("new", None, 0)``, ``("exact", id, 1.0)`` or ``("near", id, jaccard)`` for a probe."""
        if probe.key in self.exact:
            return "exact", self.exact[probe.key], 1.0
        if not probe.shingles:
            return "new", None, 0.0
        best, best_sim = None, 0.0
        for pos in self._candidates(probe):
            other = self._shingles_of(pos)
            union = len(probe.shingles | other)
            sim = len(probe.shingles & other) / union if union else 0.0
            if sim > best_sim:
                best, best_sim = pos, sim
        if best is not None and best_sim >= self.params.threshold:
            return "near", self._id_at(best), best_sim
        return "new", None, 0.0

    def add(self, probe: "Probe", query_id: int) -> None:
        """Index a probe's text under ``query_id``: a query just stored, or the stored query a near duplicate repeats.

        Side effects: later probes whose text is an exact or near duplicate of this one match ``query_id``.
        """
        self.exact.setdefault(probe.key, query_id)
        if not probe.shingles:
            return
        pos = len(self._base_ids) + len(self._added_sets)
        self._added_sets[pos] = probe.shingles
        self._added_ids.append(query_id)
        for b in range(self.bands):
            self._added[b].setdefault(int(probe.bands[b]), []).append(pos)

    def _id_at(self, pos: int) -> int:
        n = len(self._base_ids)
        return int(self._base_ids[pos]) if pos < n else self._added_ids[pos - n]

    def _shingles_of(self, pos: int) -> frozenset:
        if pos < len(self._base_ids):
            return frozenset(self._base_sh.doc(pos).tolist())
        return self._added_sets[pos]

    def _candidates(self, probe: "Probe") -> set[int]:
        found: set[int] = set()
        cap = self.MAX_BUCKET
        for b in range(self.bands):
            key = probe.bands[b]
            found.update(self._added[b].get(int(key), ())[:cap])
            if not self._sorted:
                continue
            lo = int(np.searchsorted(self._sorted[b], key, side="left"))
            hi = int(np.searchsorted(self._sorted[b], key, side="right"))
            found.update(self._order[b][lo:min(hi, lo + cap)].tolist())
        return found


@dataclass
class Probe:
    """A new query prepared for lookup: its text, normalised key, LSH band keys and shingle set."""

    text: str
    key: str
    bands: np.ndarray
    shingles: frozenset


def load_index(db: Database, *, threshold: float | None = None) -> NearDupIndex:
    """A :class:`NearDupIndex` over every query stored in ``db``."""
    rows = db.execute("SELECT id, text FROM queries ORDER BY id").fetchall()
    return NearDupIndex([r[1] for r in rows], [r[0] for r in rows], threshold=threshold)


# ---------------------------------------------------------------- the request


def synthesis_request(cell: Cell, catalog: Catalog, *, n: int, avoid: list[str]) -> str:
    """The user turn asking for ``n`` queries of ``cell`` (the fake server reads its Tool/Category/Style lines)."""
    tools = catalog.by_name
    if cell.tool == NO_TOOL:
        tool_line = "Tool: none - the message must not need any of the tools"
    else:
        tool_line = f"Tool: {cell.tool} - {tools[cell.tool].description}" if cell.tool in tools else \
            f"Tool: {cell.tool}"
    lines = [f"Write {n} different user messages.", tool_line,
             f"Category: {cell.category} - {CATEGORY_TEXT.get(cell.category, cell.category)}",
             f"Style: {cell.style} - {STYLE_TEXT.get(cell.style, cell.style)}",
             "The assistant's tools: " + "; ".join(f"{t.name} ({t.description})" for t in catalog.tools)]
    if avoid:
        lines.append("Already written for this cell (write different ones):")
        lines += [f"- {text}" for text in avoid]
    return "\n".join(lines)


def response_schema(n: int) -> dict:
    """The structured-output schema of a synthesis answer: exactly ``n`` strings under ``queries``."""
    return {"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "string"},
                                                         "minItems": n, "maxItems": n}},
            "required": ["queries"]}


def read_queries(text: str | None, *, min_chars: int = 3, max_chars: int = 500) -> tuple[list[str], int, str | None]:
    """(queries, invalid count, reject reason) from an answer's JSON text.

    The reason is set (and the list empty) when the answer is not ``{"queries": [strings]}``; enumerators
    (``1.``, ``-``) are stripped; empty, too short or too long items count as invalid.
    """
    try:
        value = json.loads(text or "")
    except json.JSONDecodeError as exc:
        return [], 0, f"answer is not JSON ({exc.msg} at char {exc.pos})"
    items = value.get("queries") if isinstance(value, dict) else value if isinstance(value, list) else None
    if not isinstance(items, list):
        return [], 0, "answer has no 'queries' list"
    out, invalid = [], 0
    for item in items:
        q = _ENUMERATOR.sub("", item).strip() if isinstance(item, str) else ""
        q = " ".join(q.split())
        if min_chars <= len(q) <= max_chars:
            out.append(q)
        else:
            invalid += 1
    return out, invalid, None


def _config(n: int, temperature: float):
    from google.genai import types

    return types.GenerateContentConfig(
        system_instruction=SYSTEM_TEXT, response_mime_type="application/json",
        response_json_schema=response_schema(n), temperature=temperature,
        thinking_config=types.ThinkingConfig(thinking_budget=0), automatic_continuation=False)


# ---------------------------------------------------------------- the run


@dataclass
class SynthesisSummary:
    """What one synthesis run did (counts for this run; ``cells`` and ``pending`` are the plan's state after)."""

    plan: str = "default"
    enqueued: int = 0
    requests: dict[str, int] = field(default_factory=dict)
    paid: int = 0
    received: int = 0
    accepted: int = 0
    exact_dups: int = 0
    near_dups: int = 0
    invalid: int = 0
    bad_answers: int = 0
    lost_leases: int = 0
    cells: dict[str, int] = field(default_factory=dict)
    pending: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    elapsed_s: float = 0.0
    stopped: str = "done"
    resets_at: float | None = None

    @property
    def dup_rate(self) -> float:
        return (self.exact_dups + self.near_dups) / self.received if self.received else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "dup_rate": round(self.dup_rate, 4)}


def enqueue_cells(db: Database, plan: str, *, per_request: int = 10) -> int:
    """Enqueue one pending synthesize job for each open cell of ``plan`` that has no live job. Returns the count.

    The jobs carry ``{"plan", "cell", "round"}`` params and no query (a synthesis job makes queries).
    """
    now, added = now_iso(), 0
    with queue.immediate(db):
        live = {json.loads(p)["cell"] for (p,) in db.conn.execute(
            "SELECT params FROM jobs WHERE purpose = ? AND state IN ('pending', 'leased')", [PURPOSE])}
        for cell in get_cells(db, plan):
            if cell.state == OPEN and cell.id not in live:
                _insert_job(db, cell, now)
                added += 1
    return added


def _insert_job(db: Database, cell: Cell, now: str) -> None:
    queue.enqueue(db, [None], purpose=PURPOSE, params={"plan": cell.plan, "cell": cell.id, "round": cell.rounds + 1})


class Synthesizer(InFlight):
    """One synthesis run over the ``synthesize`` jobs of a plan, through the key pool (see the module doc).

    Args:
        db, catalog, keys, settings: as for :class:`~tooldistill.distill.runner.Runner` (models, limits,
            concurrency, timeouts, base URL come from ``settings``).
        synth: how to ask and when a cell is done.
        plan: the coverage plan (made by :func:`~tooldistill.distill.coverage.make_plan`).
        clock, progress, wait, limit: as for the runner (``limit`` counts requests).
    """

    def __init__(self, db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
                 synth: SynthesisSettings, plan: str = "default", clock: Clock | None = None,
                 progress: ProgressCallback = noop, wait: bool = False, limit: int | None = None):
        if not keys:
            raise NeedsKeyError("no Gemini API key: set GEMINI_API_KEYS=KEY[@PROJECT],... in the environment or .env")
        self.db, self.catalog, self.keys, self.settings, self.synth = db, catalog, keys, settings, synth
        self.plan, self.progress, self.wait, self.limit = plan, progress, wait, limit
        self.clock = clock or make_clock(settings.day_seconds)
        self.worker = queue.worker_id()
        self.summary = SynthesisSummary(plan=plan)
        self.requests: Counter = Counter()
        self.tasks: set[asyncio.Task] = set()
        self.clients: dict[str, Any] = {}
        self.cells: dict[str, Cell] = {}
        self.index: NearDupIndex | None = None
        self.pool: Pool | None = None
        self.sent = 0
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._last_emit = 0.0

    def run(self, *, handle_signals: bool = False) -> SynthesisSummary:
        """Work the plan's jobs until every cell is full or saturated, the limit, exhaustion or a stop.

        Raises: QuotaExhausted (75), Interrupted (130) or NeedsKeyError, each with ``.summary``.
        """
        return asyncio.run(self._arun(handle_signals))

    async def _arun(self, handle_signals: bool) -> SynthesisSummary:
        loop, started = asyncio.get_running_loop(), time.monotonic()
        self._wake = asyncio.Event()
        installed = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop)
                installed.append(sig)
        try:
            queue.reclaim_expired(self.db, max_attempts=self.settings.max_attempts)
            self.summary.enqueued = enqueue_cells(self.db, self.plan)
            self.cells = {c.id: c for c in get_cells(self.db, self.plan)}
            self.index = load_index(self.db, threshold=self.synth.near_threshold)
            self.pool = Pool(self.db, self.keys, models=self.settings.models, settings=self.settings,
                             clock=self.clock)
            self.summary.stopped = await self._dispatch()
            await self._drain(grace=self.settings.grace_s)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            for task in self.tasks:
                task.cancel()
            queue.release_worker(self.db, self.worker)
            for client in self.clients.values():
                await client.aio.aclose()
            self._finish(started)
        return self._raise_or_return()

    def _stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def _raise_or_return(self) -> SynthesisSummary:
        sm = self.summary
        if sm.stopped == "interrupted":
            exc: Exception = Interrupted(
                f"stopped: {sm.accepted} new queries saved this run, {sm.pending} synthesis job(s) pending; resume "
                f"with: tooldistill distill synthesize --plan {self.plan}")
        elif sm.stopped == "exhausted":
            when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(sm.resets_at or self.clock.next_reset()))
            exc = QuotaExhausted(f"every teacher bucket is exhausted until {when}; {sm.pending} synthesis job(s) "
                                 f"pending. Resume after the reset with: tooldistill distill synthesize --plan "
                                 f"{self.plan}")
        elif sm.stopped == "invalid":
            exc = NeedsKeyError(f"every API key was rejected ({len(self.keys)} key(s)); {sm.pending} synthesis "
                                "job(s) pending. Fix GEMINI_API_KEYS and run again")
        else:
            return sm
        exc.summary = sm
        raise exc

    def _finish(self, started: float) -> None:
        sm = self.summary
        sm.requests = dict(self.requests)
        sm.paid = self.requests[Outcome.OK.value] + self.requests[Outcome.REJECTED.value]
        cells = get_cells(self.db, self.plan)
        sm.cells = {state: sum(c.state == state for c in cells) for state in (OPEN, FULL, SATURATED)}
        sm.pending = self.db.execute("SELECT count(*) FROM jobs WHERE purpose = ? AND state IN ('pending', 'leased')"
                                     " AND json_extract(params, '$.plan') = ?", [PURPOSE, self.plan]).fetchone()[0]
        sm.elapsed_s = round(time.monotonic() - started, 3)
        self._emit(force=True)

    # ------------------------------------------------------------ dispatching

    async def _dispatch(self) -> str:
        pool = self.pool
        while True:
            self._reap()
            if self._stopping:
                return "interrupted"
            if self.limit is not None and self.sent >= self.limit:
                return "limit"
            if len(self.tasks) >= self.settings.concurrency:
                await self._pause(None)
                continue
            now = self.clock.now()
            pool.refresh(now)
            ready, next_at = self._plan_work()
            if not ready:
                if self.tasks or next_at is not None:
                    await self._pause(None if next_at is None else max(0.0, next_at - time.time()))
                    continue
                return "done"
            slot, ready_at = pool.pick(now, unpinned_work=True, pinned_work=set())
            if slot is None and ready_at is not None:
                await self._pause(max(0.0, ready_at - now))
                continue
            if slot is None:
                if self.tasks:
                    await self._pause(None)
                    continue
                kind, reset = pool.blocked(unpinned_work=True, pinned_work=set())
                if kind == "invalid":
                    return "invalid"
                self.summary.resets_at = reset
                if not self.wait:
                    return "exhausted"
                await self._pause(max(0.0, (reset or now) - self.clock.now()) + 0.05)
                continue
            self._launch(slot, now, ready)

    def _plan_work(self) -> tuple[list[int], float | None]:
        """This plan's claimable synthesize jobs (oldest first), and when the next delayed one becomes so."""
        now = time.time()
        rows = self.db.execute(
            "SELECT id, available_at FROM jobs WHERE purpose = ? AND state = 'pending'"
            " AND json_extract(params, '$.plan') = ? ORDER BY id", [PURPOSE, self.plan]).fetchall()
        ready = [jid for jid, at in rows if at is None or at <= now]
        later = [at for _, at in rows if at is not None and at > now]
        return ready, (min(later) if later else None)

    def _launch(self, slot: Slot, now: float, ready: list[int]) -> None:
        jobs = queue.claim(self.db, worker=self.worker, lease_s=self.settings.lease_s, model=slot.model,
                           purposes=(PURPOSE,), limit=1, ids=ready[:50])
        if not jobs:
            return
        job = jobs[0]
        cell = self.cells[job.params["cell"]]
        if not self.pool.reserve(slot, now):
            queue.release(self.db, job)
            return
        self.sent += 1
        self.tasks.add(asyncio.create_task(self._request(slot, job, cell, now)))

    # ------------------------------------------------------------ one request

    def _client(self, key: ApiKey):
        from .teacher import make_client

        if key.fingerprint not in self.clients:
            self.clients[key.fingerprint] = make_client(key.reveal(), base_url=self.settings.base_url,
                                                        api_version=self.settings.api_version,
                                                        timeout_s=self.settings.timeout_s)
        return self.clients[key.fingerprint]

    def _avoid(self, cell: Cell) -> list[str]:
        if not self.synth.avoid_examples:
            return []
        rows = self.db.execute("SELECT text FROM queries WHERE source = ? AND template_id = ? ORDER BY id DESC"
                               " LIMIT ?", [SOURCE_PREFIX + self.plan, cell.id, self.synth.avoid_examples])
        return [r[0] for r in rows]

    async def _request(self, slot: Slot, job: queue.Job, cell: Cell, sent_at: float) -> None:
        n = max(1, min(self.synth.per_request, cell.target - cell.accepted))
        text = synthesis_request(cell, self.catalog, n=n, avoid=self._avoid(cell))
        client = self._client(slot.key)
        start = time.perf_counter()
        queries: list[str] = []
        invalid = 0
        try:
            response = await client.aio.models.generate_content(
                model=slot.model, contents=text, config=_config(n, self.synth.temperature))
        except asyncio.CancelledError:
            self.pool.unreserve(slot)
            queue.release(self.db, job, error="abandoned at shutdown")
            raise
        except Exception as exc:  # every failure is an outcome
            result = classify_exception(exc, model=slot.model)
        else:
            result = _result(response, slot.model)
            queries, invalid, reason = read_queries(response.text, min_chars=self.synth.min_chars,
                                                    max_chars=self.synth.max_chars)
            if reason is not None:
                result.outcome, result.reject_reason = Outcome.REJECTED, reason
        result.latency_ms = (time.perf_counter() - start) * 1000
        redact_result(result, [slot.key.reveal()])
        self._settle(slot, job, cell, result, queries, invalid, sent_at)
        self._wake.set()

    def _settle(self, slot: Slot, job: queue.Job, cell: Cell, result: TeacherResult, queries: list[str],
                invalid: int, sent_at: float) -> None:
        message = self.pool.record(slot, result, self.clock.now())
        out, db = result.outcome, self.db
        self.requests[out.value] += 1
        self.summary.prompt_tokens += result.usage.prompt_tokens
        self.summary.output_tokens += result.usage.output_tokens
        with queue.immediate(db):
            self._attempt(slot, job, result, sent_at)
            if out in (Outcome.OK, Outcome.REJECTED):
                self._complete(job, cell, result, queries, invalid)
            elif out in (Outcome.DAILY_QUOTA, Outcome.MINUTE_QUOTA, Outcome.BARE_429, Outcome.BAD_KEY):
                queue.release(db, job, error=_error_text(result))
            elif out == Outcome.TRANSIENT:
                queue.fail(db, job, error=_error_text(result), max_attempts=self.settings.max_attempts)
            else:
                queue.fail(db, job, error=_error_text(result), max_attempts=self.settings.max_attempts, retry=False)
        if message:
            self.progress(ProgressEvent(task="synthesize", message=message, info={"kind": "key_invalid"}))
        self._emit()

    def _complete(self, job: queue.Job, cell: Cell, result: TeacherResult, queries: list[str], invalid: int) -> None:
        """Finish the job, store the new queries, count the duplicates, enqueue the next round (one transaction)."""
        db, sm = self.db, self.summary
        done = queue.complete(db, job, label=None, model=result.model, label_row=False, error=result.reject_reason)
        if done is None:  # the lease was lost: someone else answers this job
            sm.lost_leases += 1
            return
        counts = Counter(invalid=invalid)
        for probe in self.index.check(queries):
            kind, match, _ = self.index.match(probe)
            if kind == "new":
                qid = self._store(probe.text, cell, job)
                if qid is None:  # another process stored it first
                    kind, match = "exact", self._existing_id(probe.text)
                else:
                    self.index.add(probe, qid)
                    counts["accepted"] += 1
                    continue
            counts[kind] += 1
            if kind == "near":
                # the repeat joins the index under the stored query's id: a later repeat of the same original
                # may be near this text and not the stored one (an original that arrived after a repeat of it)
                self.index.add(probe, match)
            if match is not None:
                db.conn.execute(
                    "INSERT INTO synth_repeats (cell_id, query_id, kind, count) VALUES (?,?,?,1)"
                    " ON CONFLICT(cell_id, query_id, kind) DO UPDATE SET count = count + 1", [cell.id, match, kind])
        self._update_cell(cell, len(queries) + invalid, counts)
        sm.received += len(queries) + invalid
        sm.accepted += counts["accepted"]
        sm.exact_dups += counts["exact"]
        sm.near_dups += counts["near"]
        sm.invalid += invalid
        sm.bad_answers += result.outcome == Outcome.REJECTED

    def _store(self, text: str, cell: Cell, job: queue.Job) -> int | None:
        hint = {"tools": [] if cell.tool == NO_TOOL else [cell.tool], "category": cell.category,
                "style": cell.style, "cell": cell.id}
        meta = {"plan": self.plan, "style": cell.style, "job_id": job.id}
        result = insert_queries(self.db, [NewQuery(text=text, source=SOURCE_PREFIX + self.plan, template_id=cell.id,
                                                   category=cell.category, meta=meta, hint=hint)])
        return result.ids[0] if result.added else None

    def _existing_id(self, text: str) -> int | None:
        from ..textnorm import text_hash

        row = self.db.execute("SELECT id FROM queries WHERE norm_hash = ?", [text_hash(text)]).fetchone()
        return row[0] if row else None

    def _update_cell(self, cell: Cell, received: int, counts: Counter) -> None:
        new = counts["accepted"]
        cell.requests += 1
        cell.received += received
        cell.accepted += new
        cell.exact_dups += counts["exact"]
        cell.near_dups += counts["near"]
        cell.invalid += counts["invalid"]
        cell.rounds += 1
        asked = max(1, min(self.synth.per_request, cell.target))
        cell.stale_rounds = cell.stale_rounds + 1 if new < max(1, math.ceil(asked / 5)) else 0
        max_rounds = math.ceil(self.synth.round_factor * math.ceil(cell.target / max(1, self.synth.per_request)))
        if cell.accepted >= cell.target:
            cell.state = FULL
        elif cell.stale_rounds >= self.synth.stale_limit or cell.rounds >= max_rounds:
            cell.state = SATURATED
        now = now_iso()
        self.db.conn.execute(
            "UPDATE synth_cells SET requests = ?, received = ?, accepted = ?, exact_dups = ?, near_dups = ?,"
            " invalid = ?, rounds = ?, stale_rounds = ?, state = ?, updated_at = ? WHERE id = ?",
            [cell.requests, cell.received, cell.accepted, cell.exact_dups, cell.near_dups, cell.invalid, cell.rounds,
             cell.stale_rounds, cell.state, now, cell.id])
        if cell.state == OPEN:
            _insert_job(self.db, cell, now)

    def _attempt(self, slot: Slot, job: queue.Job, result: TeacherResult, sent_at: float) -> None:
        # one row per request, like the runner's, so status, token sums and the pool's RPM windows see it
        u = result.usage
        self.db.conn.execute(
            "INSERT INTO attempts (job_id, slot_id, project, model, started_at, latency_ms, outcome, status_code,"
            " error_kind, message, prompt_tokens, output_tokens, total_tokens, purpose, query_id, worker, sent_at,"
            " day) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?,?)",
            [job.id, slot.id, slot.bucket.project, slot.model, now_iso(), round(result.latency_ms, 3),
             result.outcome.value, result.status_code, ",".join(result.quota_ids) or None,
             result.message or result.reject_reason, u.prompt_tokens, u.output_tokens, u.total_tokens, PURPOSE,
             self.worker, sent_at, self.clock.day(sent_at)])

    def _emit(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_emit < 0.25:
            return
        self._last_emit = now
        sm = self.summary
        target = sum(c.target for c in self.cells.values())
        have = sum(c.accepted for c in self.cells.values())
        self.progress(ProgressEvent(
            task="synthesize", done=min(have, target), total=target,
            message=f"synthesize: {sm.accepted} new, {sm.exact_dups + sm.near_dups} duplicates",
            info={"kind": "progress", "accepted": sm.accepted, "exact_dups": sm.exact_dups,
                  "near_dups": sm.near_dups, "invalid": sm.invalid, "requests": dict(self.requests),
                  "in_flight": len(self.tasks)}))


def _result(response: Any, model: str) -> TeacherResult:
    meta = response.usage_metadata
    usage = Usage()
    if meta is not None:
        p = meta.prompt_token_count or 0
        o = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
        usage = Usage(prompt_tokens=p, output_tokens=o, total_tokens=meta.total_token_count or p + o)
    return TeacherResult(outcome=Outcome.OK, status_code=200, model=model, usage=usage)


def _error_text(result: TeacherResult) -> str:
    code = f"{result.status_code} " if result.status_code else ""
    return f"{result.outcome.value}: {code}{result.message or ''}".strip()[:500]


def synthesize(db: Database, *, catalog: Catalog, keys: list[ApiKey], settings: DistillSettings,
               synth: SynthesisSettings | None = None, plan: str = "default", clock: Clock | None = None,
               progress: ProgressCallback = noop, wait: bool = False, limit: int | None = None,
               handle_signals: bool = False) -> SynthesisSummary:
    """Have the teacher write queries for the open cells of ``plan`` until each is full or saturated.

    Args:
        db: the workspace database; the plan must exist (:func:`~tooldistill.distill.coverage.make_plan`).
        catalog: the current catalogue (the tools the prompt describes).
        keys: API keys; settings: models, limits, concurrency, base URL.
        synth: how many queries per request, temperature, when a cell is saturated, the near-duplicate threshold.
        plan: the plan's name.
        clock, progress, wait, limit, handle_signals: as for :func:`~tooldistill.distill.runner.run_distill`
            (``limit`` counts requests).

    Returns: the run's :class:`SynthesisSummary`. Side effects: synthesize jobs, attempts, new queries (with
    hints), cell counters and repeat counts in ``db``; requests to the teacher.

    Raises: QuotaExhausted (exit 75), Interrupted (130) or NeedsKeyError, each with ``.summary``.
    """
    return Synthesizer(db, catalog=catalog, keys=keys, settings=settings, synth=synth or SynthesisSettings(),
                       plan=plan, clock=clock, progress=progress, wait=wait, limit=limit).run(
        handle_signals=handle_signals)


def synthesize_workspace(workspace, db: Database, *, total: int | None = None, per_cell: int | None = None,
                         plan: str = "default", categories: tuple[str, ...] | None = None,
                         styles: tuple[str, ...] | None = None, tools: list[str] | None = None,
                         synth: SynthesisSettings | None = None, progress: ProgressCallback = noop,
                         wait: bool = False, limit: int | None = None, handle_signals: bool = False,
                         synth_overrides: dict | None = None, **overrides) -> SynthesisSummary:
    """``distill synthesize`` for a workspace: make or grow the plan (when a size is given), then run it.

    Args:
        workspace: a :class:`tooldistill.config.Workspace` (its ``[distill]`` settings and keys).
        total, per_cell, categories, styles, tools: the plan (see :func:`~.coverage.make_plan`); without
            ``total`` or ``per_cell`` the existing plan is resumed.
        synth: the synthesis settings; default ``[distill.synthesize]`` with ``synth_overrides`` (flags) on top.
        overrides: distill settings from flags (``models``, ``concurrency``, ``base_url``, ...).
        Others as :func:`synthesize`.
    """
    from ..db import get_catalog
    from .coverage import CATEGORIES, STYLES, make_plan, plans
    from .keys import keys_from_env
    from .settings import load_settings

    settings = load_settings(workspace, **overrides)
    synth = synth or settings.synthesis_settings(**(synth_overrides or {}))
    keys = keys_from_env(workspace.env)
    catalog = get_catalog(db)
    if total is not None or per_cell is not None:
        make_plan(db, catalog, name=plan, total=total, per_cell=per_cell, categories=categories or CATEGORIES,
                  styles=styles or STYLES, tools=tools)
    elif plan not in plans(db):
        from ..errors import InputError

        raise InputError(f"no synthesis plan {plan!r} yet; say how many queries to write: "
                         f"tooldistill distill synthesize --n 2000", field="n")
    return synthesize(db, catalog=catalog, keys=keys, settings=settings, synth=synth, plan=plan,
                      progress=progress, wait=wait, limit=limit, handle_signals=handle_signals)
