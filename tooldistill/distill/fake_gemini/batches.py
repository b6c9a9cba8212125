"""Batch Mode in the fake server: stored inline requests, a controllable lifecycle and the real Operation JSON.

The wire shapes follow notes/gemini-api.md section 1.7: a create answers an Operation whose ``metadata`` is a
``GenerateContentBatch`` in ``BATCH_STATE_PENDING``; polls move it to RUNNING and then to a final state
(:class:`~.config.BatchBehaviour` says after how many polls or seconds, and which batches end FAILED, EXPIRED
or CANCELLED instead of SUCCEEDED). A succeeded batch carries ``metadata.output.inlinedResponses
.inlinedResponses`` in request order, each with its request's ``metadata``, a share of them an ``error`` instead
of a ``response``; the output is duplicated under a top-level ``response`` with ``done: true``, and the counts
in ``batchStats`` are strings. Batches belong to the project of the key that made them.
"""

from __future__ import annotations

import base64
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from . import bodies
from .config import BatchBehaviour
from .protocol import GenerateRequest

PENDING, RUNNING = "BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"
FINAL = {"succeeded": "BATCH_STATE_SUCCEEDED", "failed": "BATCH_STATE_FAILED", "expired": "BATCH_STATE_EXPIRED",
         "cancelled": "BATCH_STATE_CANCELLED"}
_META_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
_FAILED_ERROR = {"code": 13, "message": "Batch failed: an internal error has occurred while processing the batch."}

LineAnswer = Callable[[random.Random, str, GenerateRequest], dict]
"""Answers one line: ``(rng, model, request) -> GenerateContentResponse JSON``."""


def rfc3339(t: float) -> str:
    """Epoch seconds as the API writes timestamps (RFC 3339, UTC, ``Z``)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class FakeBatch:
    """One batch job as the fake server keeps it."""

    name: str
    number: int
    display_name: str
    model: str
    project: str
    requests: list[tuple[GenerateRequest, dict | None]]
    created: float
    state: str = PENDING
    updated: float = 0.0
    ended: float | None = None
    running_since: float | None = None
    seen: int = 0
    fate: str = "succeeded"
    output: list[dict] | None = None
    deleted: bool = False
    line_errors: int = 0
    body_bytes: int = 0
    polls: int = 0

    @property
    def done(self) -> bool:
        return self.state in FINAL.values()


@dataclass
class BatchStore:
    """Every batch of the server, in creation order; the caller holds the state lock."""

    batches: dict[str, FakeBatch] = field(default_factory=dict)
    created: int = 0

    def create(self, *, model: str, project: str, display_name: str, requests: list, now: float,
               behaviour: BatchBehaviour, seed: int, body_bytes: int) -> FakeBatch:
        self.created += 1
        rng = random.Random(f"{seed}|batch|{self.created}")
        bid = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(24))
        fate = behaviour.fates.get(display_name) or behaviour.fates.get(f"#{self.created}") or "succeeded"
        batch = FakeBatch(name=f"batches/{bid}", number=self.created, display_name=display_name, model=model,
                          project=project, requests=requests, created=now, updated=now, fate=fate,
                          body_bytes=body_bytes)
        self.batches[batch.name] = batch
        return batch

    def find(self, name: str, project: str) -> FakeBatch | None:
        batch = self.batches.get(name)
        return batch if batch is not None and batch.project == project and not batch.deleted else None

    def listing(self, project: str) -> list[FakeBatch]:
        """The project's batches, newest first."""
        return [b for b in reversed(list(self.batches.values())) if b.project == project and not b.deleted]


def advance(batch: FakeBatch, now: float, behaviour: BatchBehaviour, answer_line: LineAnswer, seed: int) -> None:
    """One poll of ``batch``: move it along its lifecycle (PENDING -> RUNNING -> final) as the behaviour says."""
    batch.polls += 1
    if batch.state == PENDING:
        if batch.seen >= behaviour.pending_polls and now - batch.created >= behaviour.pending_s:
            batch.state, batch.seen, batch.running_since, batch.updated = RUNNING, 0, now, now
        else:
            batch.seen += 1
            return
    if batch.state == RUNNING:
        if batch.seen >= behaviour.running_polls and now - (batch.running_since or now) >= behaviour.running_s:
            finish(batch, batch.fate, now, behaviour, answer_line, seed)
        else:
            batch.seen += 1


def finish(batch: FakeBatch, fate: str, now: float, behaviour: BatchBehaviour, answer_line: LineAnswer,
           seed: int) -> None:
    """End ``batch`` in ``fate``; a succeeded batch answers every line (a share of them with an error)."""
    batch.state, batch.updated, batch.ended = FINAL[fate], now, now
    if fate != "succeeded":
        return
    out = []
    for i, (request, metadata) in enumerate(batch.requests):
        rng = random.Random(f"{seed}|{batch.name}|{i}")
        item: dict = {}
        if rng.random() < behaviour.line_error_rate:
            code = rng.choice(behaviour.line_error_codes)
            item["error"] = dict(bodies.LINE_ERRORS[code])
            batch.line_errors += 1
        else:
            item["response"] = answer_line(rng, batch.model, request)
        if metadata is not None:
            item["metadata"] = metadata
        out.append(item)
    batch.output = out


def operation(batch: FakeBatch, *, with_output: bool = True) -> dict:
    """The Operation JSON of ``batch`` (what create, get and list answer)."""
    n = len(batch.requests)
    stats = {"requestCount": str(n)}
    if batch.state == "BATCH_STATE_SUCCEEDED":
        stats["successfulRequestCount"] = str(n - batch.line_errors)
        if batch.line_errors:
            stats["failedRequestCount"] = str(batch.line_errors)
    elif not batch.done:
        stats["pendingRequestCount"] = str(n)
    meta = {"@type": _META_TYPE, "model": f"models/{batch.model}", "displayName": batch.display_name,
            "createTime": rfc3339(batch.created), "updateTime": rfc3339(batch.updated), "batchStats": stats,
            "state": batch.state, "name": batch.name}
    op: dict = {"name": batch.name, "metadata": meta}
    if batch.ended is not None:
        meta["endTime"] = rfc3339(batch.ended)
        op["done"] = True
    if batch.state == "BATCH_STATE_SUCCEEDED" and with_output and batch.output is not None:
        inlined = {"inlinedResponses": {"inlinedResponses": batch.output}}
        meta["output"] = inlined
        op["response"] = {"@type": _OUTPUT_TYPE, **inlined}
    elif batch.state == "BATCH_STATE_FAILED":
        op["error"] = dict(_FAILED_ERROR)
    return op


def page_token(offset: int) -> str:
    """An opaque page token for the listing position ``offset``."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def read_page_token(token: str | None) -> int:
    """The offset a page token stands for; ValueError for a token this server did not write."""
    if not token:
        return 0
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    if not raw.startswith("offset:"):
        raise ValueError("bad page token")
    return int(raw.removeprefix("offset:"))
