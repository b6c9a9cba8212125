"""Packing: K queries in one request, answered through a structured-output schema, each answer checked on its own.

On free tiers the binding limit is requests per day, so asking for K labels per request multiplies labels per
day by up to K. The request carries the same system instruction and the same tools as a one-query request, but as
a JSON schema (``responseJsonSchema``) instead of function declarations: the answer is
``{"answers": [{"id": 1, "calls": [{"name": "weather", "args": {...}}]}, ...]}``, one item per numbered message,
each call one branch of an ``anyOf`` that has exactly the tool's parameter schema (``no_tool(reason)`` included).
The user turn is JSON too (``{"messages": [{"id": 1, "text": ...}, ...]}``), so a query can hold any text.

Each answer is mapped back to its query by ``id`` and validated like a function-call answer
(:func:`~tooldistill.distill.teacher.label_from_calls`); the runner sends a query whose answer is missing or
invalid back to the queue to be asked on its own (``jobs.unpack``), so packing never stores a worse label than
asking one by one would. Labels carry the same prompt version as unpacked ones: the teacher is told the same
thing, only the envelope differs.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from ..catalog import Catalog
from .outcomes import Outcome, TeacherResult, classify_exception, redact_result
from .prompt import TeacherPrompt

PACK_INSTRUCTIONS = """\

You receive several user messages at once, as JSON: {"messages": [{"id": 1, "text": "..."}, ...]}. Route each
message on its own, exactly as if it were the only one, and answer with one item per message, with its id:
{"answers": [{"id": 1, "calls": [{"name": "<function>", "args": {...}}]}, ...]}. The functions you may call are
the branches of the schema's calls; call no_tool with a reason when no function fits. Never merge or skip
messages."""
_CONFIG_CACHE: dict[tuple, Any] = {}


def pack_schema(prompt: TeacherPrompt) -> dict:
    """The ``responseJsonSchema`` of a packed answer, built from the prompt's function declarations."""
    branches = []
    for decl in prompt.declarations:
        params = decl.get("parameters_json_schema") or {"type": "object", "properties": {}}
        branches.append({"type": "object", "description": decl.get("description", ""),
                         "properties": {"name": {"type": "string", "enum": [decl["name"]]}, "args": params},
                         "required": ["name", "args"]})
    item = {"type": "object", "properties": {"id": {"type": "integer"},
                                             "calls": {"type": "array", "items": {"anyOf": branches}}},
            "required": ["id", "calls"]}
    return {"type": "object", "properties": {"answers": {"type": "array", "items": item}}, "required": ["answers"]}


def pack_system_instruction(prompt: TeacherPrompt) -> str:
    """The system text of a packed request: the prompt's own, plus how to answer several messages."""
    return prompt.system_instruction + "\n" + PACK_INSTRUCTIONS


def pack_contents(queries: list[str]) -> str:
    """The user turn of a packed request: the queries numbered from 1, as JSON."""
    return json.dumps({"messages": [{"id": i, "text": q} for i, q in enumerate(queries, 1)]}, ensure_ascii=False)


def packed_config(prompt: TeacherPrompt, temperature: float):
    """The ``GenerateContentConfig`` of a packed request (JSON output, thinking off), cached per version."""
    from google.genai import types

    key = (prompt.version, temperature)
    if key not in _CONFIG_CACHE:
        _CONFIG_CACHE[key] = types.GenerateContentConfig(
            system_instruction=pack_system_instruction(prompt), temperature=temperature,
            response_mime_type="application/json", response_json_schema=pack_schema(prompt),
            thinking_config=types.ThinkingConfig(thinking_budget=0), automatic_continuation=False)
    return _CONFIG_CACHE[key]


@dataclass
class PackedResult:
    """A packed request's outcome (``request``) and, when it was answered, one result per query (``None``: no
    usable answer for that query)."""

    request: TeacherResult
    items: list[TeacherResult | None] = field(default_factory=list)


async def ask_packed(client, *, model: str, prompt: TeacherPrompt, catalog: Catalog, queries: list[str],
                     temperature: float = 0.0) -> PackedResult:
    """Ask the teacher to label ``queries`` in one request; never raises for API or network failures.

    Returns: the request's classified outcome (OK when the answer was JSON with an ``answers`` list, REJECTED
    when it was not; errors as :func:`~tooldistill.distill.outcomes.classify_exception`), and for an OK request
    one item per query: an OK result with its label, or ``None`` when its answer is missing or invalid.
    """
    from .teacher import client_key

    start = time.perf_counter()
    try:
        response = await client.aio.models.generate_content(model=model, contents=pack_contents(queries),
                                                            config=packed_config(prompt, temperature))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is an outcome
        packed = PackedResult(classify_exception(exc, model=model))
    else:
        packed = parse_packed(response, catalog=catalog, n=len(queries), model=model)
    packed.request.latency_ms = (time.perf_counter() - start) * 1000
    secret = [client_key(client) or ""]
    packed.request = redact_result(packed.request, secret)
    packed.items = [redact_result(r, secret) if r is not None else None for r in packed.items]
    return packed


def parse_packed(response: Any, *, catalog: Catalog, n: int, model: str | None = None) -> PackedResult:
    """Read a packed answer: the request's outcome and each of the ``n`` queries' labels (see :func:`ask_packed`)."""
    from .teacher import _usage, envelope_problem

    raw = response.model_dump(mode="json", exclude_none=True,
                              exclude={"sdk_http_response", "automatic_function_calling_history"})
    request = TeacherResult(outcome=Outcome.REJECTED, raw=raw, status_code=200, model=model,
                            usage=_usage(response.usage_metadata))
    reason = envelope_problem(response)
    answers = None
    if reason is None:
        try:
            answers = json.loads(response.text or "").get("answers")
        except (ValueError, AttributeError):
            answers = None
        if not isinstance(answers, list):
            reason = "packed answer is not JSON with an answers list"
    if reason is not None:
        request.reject_reason = reason
        return PackedResult(request, [None] * n)
    request.outcome = Outcome.OK
    by_id: dict[int, dict] = {}
    for item in answers:
        if isinstance(item, dict) and isinstance(item.get("id"), int) and 1 <= item["id"] <= n:
            by_id.setdefault(item["id"], item)
    return PackedResult(request, [_item_result(by_id.get(i), catalog, model, i, n, request)
                                  for i in range(1, n + 1)])


def _item_result(item: dict | None, catalog: Catalog, model: str | None, index: int, size: int,
                 request: TeacherResult) -> TeacherResult | None:
    from .teacher import label_from_calls

    if item is None or not isinstance(item.get("calls"), list) or not item["calls"]:
        return None
    calls = []
    for c in item["calls"]:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("args", {}), dict):
            return None
        calls.append(SimpleNamespace(name=c["name"], args=c.get("args") or {}))
    label, reason = label_from_calls(calls, catalog)
    if reason is not None:
        return None
    raw = {"packed": {"size": size, "index": index, "response_id": (request.raw or {}).get("response_id")},
           "answer": item}
    return TeacherResult(outcome=Outcome.OK, label=label, raw=raw, status_code=200, model=model)
