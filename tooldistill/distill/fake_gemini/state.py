"""What the fake server's handler threads share: config, clock, oracle, quota counters and the request log.

Quotas are counted per (project, model) bucket: a sliding window of ``minute_seconds`` for RPM and the clock's
day for RPD; only answered requests (status 200) use quota.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Callable

from ..clock import Clock, make_clock
from ..outcomes import Outcome
from . import bodies
from .batches import BatchStore
from .config import FakeGeminiConfig
from .oracle import Answer, Oracle, add_noise
from .protocol import GenerateRequest
from .synthesis import SynthesisPool

log = logging.getLogger(__name__)

StructuredHook = Callable[[GenerateRequest, Callable[[str], Answer]], Any]
"""Answers a structured-output request: ``hook(request, answer_for) -> JSON value``; ``answer_for(text)`` is the
oracle's answer for a query text, noise applied for the request's model."""

SERVER_FAULTS = {"bare_429": (429, bodies.BARE_429, Outcome.BARE_429),
                  "unavailable_503": (503, bodies.UNAVAILABLE_503, Outcome.TRANSIENT),
                  "internal_500": (500, bodies.INTERNAL_500, Outcome.TRANSIENT),
                  "bad_gateway_502": (502, bodies.BAD_GATEWAY_HTML, Outcome.TRANSIENT)}
ANSWER_FAULTS = ("garbage_200", "malformed", "max_tokens", "blocked", "text_answer", "unknown_tool", "bad_args")
LINE_FAULTS = ANSWER_FAULTS[1:]
"""The answer faults a batch line can carry (a line is JSON inside the batch's JSON: never a garbage body)."""
JSON_TYPE = "application/json; charset=UTF-8"


class Reply:
    """One HTTP answer plus what the log should say about it."""

    def __init__(self, status: int, body: Any, *, outcome: Outcome | str, fault: str | None = None,
                 content_type: str = JSON_TYPE):
        self.status, self.body, self.outcome, self.fault, self.content_type = status, body, outcome, fault, content_type

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        text = self.body if isinstance(self.body, str) else json.dumps(self.body, ensure_ascii=False)
        return text.encode("utf-8")


def packed_declarations(schema: Any) -> dict[str, dict] | None:
    """Function name -> parameter schema of a packed-answer schema (``answers[].calls[]`` branches, see
    :mod:`tooldistill.distill.packing`), or ``None`` when ``schema`` is not one."""
    try:
        branches = schema["properties"]["answers"]["items"]["properties"]["calls"]["items"]["anyOf"]
    except (KeyError, TypeError):
        return None
    out = {}
    for branch in branches if isinstance(branches, list) else []:
        props = branch.get("properties") if isinstance(branch, dict) else None
        names = ((props or {}).get("name") or {}).get("enum") or []
        if names:
            out[names[0]] = props.get("args") or {"type": "object", "properties": {}}
    return out or None


def packed_messages(request: GenerateRequest) -> list[tuple[Any, str]] | None:
    """The ``(id, text)`` messages of a packed request's user turn, or ``None`` when it is not one."""
    try:
        messages = json.loads(request.last_user_text).get("messages")
        return [(m["id"], str(m["text"])) for m in messages]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def default_structured_answer(request: GenerateRequest, answer_for: Callable[[str], Answer]) -> Any:
    """Answer a structured-output request from the oracle.

    A packed request (several numbered messages, a schema with ``answers``) gets one answer per message, each
    with the same seeded noise as the query asked alone; otherwise the label of the last user turn:
    ``[{"tool", "args"}]`` for an array schema, else ``{"calls": [...], "reason": ...}``.
    """
    messages = packed_messages(request)
    if messages is not None and packed_declarations(request.response_schema):
        return {"answers": [{"id": mid, "calls": [{"name": n, "args": a} for n, a in answer_for(text).parts()]}
                            for mid, text in messages]}
    answer = answer_for(request.last_user_text)
    calls = [{"tool": name, "args": args} for name, args in answer.calls]
    schema = request.response_schema or {}
    if str(schema.get("type", "")).lower() == "array":
        return calls
    return {"calls": calls, "reason": answer.reason}


class State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, config: FakeGeminiConfig, clock: Clock | None, oracle: Oracle | None,
                 structured: StructuredHook | None):
        self.lock = threading.RLock()
        self.config = config
        self.clock = clock or make_clock(config.day_seconds, config.epoch)
        self.oracle = oracle if oracle is not None else load_oracle(config)
        self.structured = structured or default_structured_answer
        self.counter = 0
        self.log: list[dict] = []
        self.minute: dict[tuple[str, str], deque] = defaultdict(deque)
        self.day_counts: dict[tuple[str, str], tuple[str, int]] = {}
        self.forced: set[tuple[str, str, str]] = set()
        self.batches = BatchStore()
        self.synthesis = SynthesisPool(config.synthesis, config.seed)
        self._log_file = None
        self._open_log()

    def _open_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.config.log_path is not None:
            Path(self.config.log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.config.log_path, "a", encoding="utf-8")

    def close(self) -> None:
        with self.lock:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def next_number(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)
            if self._log_file is not None:
                self._log_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                self._log_file.flush()

    # ------------------------------------------------------------ quotas

    def day_count(self, bucket: tuple[str, str], day: str) -> int:
        seen_day, count = self.day_counts.get(bucket, (day, 0))
        return count if seen_day == day else 0

    def quota_reply(self, project: str, model: str, now: float) -> Reply | None:
        """The 429 to answer if the bucket is out of quota now (caller holds the lock)."""
        cfg = self.config
        rpm, rpd = cfg.limits(project, model)
        bucket, day = (project, model), self.clock.day(now)
        if rpd == 0:
            body = bodies.not_on_tier_429(model=model, retry_delay_s=cfg.daily_retry_delay_s, tier=cfg.tier)
            return Reply(429, body, outcome=Outcome.DAILY_QUOTA, fault="not_on_tier")
        if (project, model, day) in self.forced or (rpd is not None and self.day_count(bucket, day) >= rpd):
            limit = rpd if rpd is not None else self.day_count(bucket, day)
            body = bodies.quota_429(model=model, window="Day", limit=limit, retry_delay_s=cfg.daily_retry_delay_s,
                                    tier=cfg.tier)
            return Reply(429, body, outcome=Outcome.DAILY_QUOTA, fault="daily_quota")
        window = self.minute[bucket]
        while window and window[0] <= now - cfg.minute_seconds:
            window.popleft()
        if rpm is not None and len(window) >= rpm:
            # rpm 0 (no per-minute quota at all on this project): the window never frees, wait a whole minute
            oldest = window[0] if window else now
            delay = cfg.retry_delay_s if cfg.retry_delay_s is not None else oldest + cfg.minute_seconds - now
            body = bodies.quota_429(model=model, window="Minute", limit=rpm, retry_delay_s=max(delay, 0.0),
                                    tier=cfg.tier)
            return Reply(429, body, outcome=Outcome.MINUTE_QUOTA, fault="minute_quota")
        return None

    def admit(self, project: str, model: str, now: float) -> None:
        """Count an answered request against the bucket's RPM window and day (caller holds the lock)."""
        bucket, day = (project, model), self.clock.day(now)
        self.minute[bucket].append(now)
        self.day_counts[bucket] = (day, self.day_count(bucket, day) + 1)

    def exhaust(self, project: str, model: str) -> None:
        with self.lock:
            self.forced.add((project, model, self.clock.day()))

    def reset_quotas(self) -> None:
        with self.lock:
            self.minute.clear()
            self.day_counts.clear()
            self.forced.clear()

    # ------------------------------------------------------------ answers

    def answer_for(self, model: str, request: GenerateRequest) -> Callable[[str], Answer]:
        cfg = self.config
        rate = cfg.models[model].noise_rate

        # a packed request declares its tools in the answer schema: the same names, so the same noise
        declarations = request.declarations or packed_declarations(request.response_schema) or {}

        def answer(text: str) -> Answer:
            gold = self.oracle.lookup(text)
            return add_noise(gold, query=text, declarations=declarations, seed=cfg.seed, model=model, rate=rate)

        return answer


def load_oracle(config: FakeGeminiConfig) -> Oracle:
    if config.oracle is not None:
        return Oracle.from_jsonl(config.oracle)
    if config.oracle_db is not None:
        return Oracle.from_db(config.oracle_db)
    return Oracle()
