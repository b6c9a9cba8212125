"""Ask the Gemini teacher for one label, through google-genai, and classify what comes back.

One client per API key (:func:`make_client`): ``vertexai=False`` so an environment variable cannot switch the
endpoint, an explicit ``api_version`` (the SDK default changed between releases), a timeout (the SDK default is
none at all) and no ``retry_options``: the runner retries, so one policy sees every failure (notes/gemini-api.md
section 7). :func:`ask_teacher` never raises for what the API or the network does: every response and every
exception becomes a :class:`~tooldistill.distill.outcomes.TeacherResult`, and the API key is scrubbed from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..catalog import NO_TOOL, Catalog, Label, ToolCall
from ..errors import NeedsKeyError
from .outcomes import Outcome, TeacherResult, Usage, classify_exception, redact_result
from .prompt import TeacherPrompt

if TYPE_CHECKING:  # pragma: no cover
    from google import genai

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "v1beta"
_CONFIG_CACHE: dict[tuple, Any] = {}


def make_client(api_key: str, *, base_url: str | None = None, api_version: str = DEFAULT_API_VERSION,
                timeout_s: float = 60) -> "genai.Client":
    """Build a google-genai client for one key (Gemini API mode, explicit version and timeout, no SDK retries).

    Args:
        api_key: the key; sent as the ``x-goog-api-key`` header.
        base_url: another endpoint (a proxy, a gateway, the fake server); None for Google's.
        api_version: ``v1beta`` (default) or ``v1``.
        timeout_s: per-request timeout in seconds (the SDK takes milliseconds).

    Raises: NeedsKeyError when ``api_key`` is empty.
    """
    from google import genai
    from google.genai import types

    if not api_key or not api_key.strip():
        raise NeedsKeyError("no Gemini API key given; set GEMINI_API_KEYS in the environment or .env")
    options = types.HttpOptions(base_url=base_url, api_version=api_version, timeout=int(timeout_s * 1000))
    return genai.Client(api_key=api_key, vertexai=False, http_options=options)


def client_key(client: Any) -> str | None:
    """The API key a client sends (to scrub it from anything the client's answers carry)."""
    return getattr(getattr(client, "_api_client", None), "api_key", None)


def generate_config(prompt: TeacherPrompt, temperature: float, max_output_tokens: int | None = None):
    """The ``GenerateContentConfig`` of a one-query label request (cached per prompt version and sampling).

    Function calling in mode ANY over the prompt's declarations, thinking off, no automatic function calling or
    continuation; shared by online requests and Batch Mode lines.
    """
    from google.genai import types

    key = (prompt.version, temperature, max_output_tokens)
    if key not in _CONFIG_CACHE:
        decls = [types.FunctionDeclaration(**d) for d in prompt.declarations]
        _CONFIG_CACHE[key] = types.GenerateContentConfig(
            system_instruction=prompt.system_instruction,
            tools=[types.Tool(function_declarations=decls)],
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=prompt.allowed_names)),
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            thinking_config=types.ThinkingConfig(thinking_budget=0),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
        )
    return _CONFIG_CACHE[key]


async def ask_teacher(client: "genai.Client", *, model: str, prompt: TeacherPrompt, catalog: Catalog, query: str,
                      temperature: float = 0.0, max_output_tokens: int | None = None) -> TeacherResult:
    """Ask the teacher to label one query, and classify the answer.

    Args:
        client: from :func:`make_client`.
        model: e.g. ``gemini-2.5-flash``.
        prompt: from :func:`~tooldistill.distill.prompt.build_prompt` for ``catalog``.
        catalog: validates the answer's calls.
        query: the user's message.
        temperature, max_output_tokens: sampling settings (thinking is always off: budget 0).

    Returns: OK with the label (``[]`` plus the reason for a lone ``no_tool`` call), REJECTED with the reason
    for an answer that is not a valid label (a paid answer), or the outcome of the error; never raises for API or
    network failures. Usage, latency and the raw response or error body are filled; the key never appears.
    """
    config = generate_config(prompt, temperature, max_output_tokens)
    start = time.perf_counter()
    try:
        response = await client.aio.models.generate_content(model=model, contents=query, config=config)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is an outcome; classify_exception knows which
        result = classify_exception(exc, model=model)
    else:
        result = parse_response(response, catalog=catalog, model=model)
    result.latency_ms = (time.perf_counter() - start) * 1000
    return redact_result(result, [client_key(client) or ""])


def parse_response(response: Any, *, catalog: Catalog, model: str | None = None) -> TeacherResult:
    """Turn a ``GenerateContentResponse`` into an OK or REJECTED :class:`TeacherResult`.

    Several function calls make a multi-tool label; a lone ``no_tool`` call (or several) is the empty label with
    its reason. Rejected: no candidates (a blocked prompt), a finish reason other than STOP
    (MALFORMED_FUNCTION_CALL, MAX_TOKENS, SAFETY, ...), no function call, ``no_tool`` mixed with real calls, an
    unknown tool, or arguments that fail the tool's schema.
    """
    raw = response.model_dump(mode="json", exclude_none=True,
                              exclude={"sdk_http_response", "automatic_function_calling_history"})
    result = TeacherResult(outcome=Outcome.REJECTED, raw=raw, status_code=200, model=model,
                           usage=_usage(response.usage_metadata))
    reason = _reject_reason(response)
    if reason is None:
        calls = _function_calls(response)
        label, reason = label_from_calls(calls, catalog)
        result.label = label
    if reason is not None:
        result.reject_reason = reason
        result.label = None
        return result
    result.outcome = Outcome.OK
    return result


def envelope_problem(response: Any) -> str | None:
    """Why an answer carries nothing usable (a blocked prompt, no candidates, a finish reason other than STOP),
    or ``None``."""
    if not response.candidates:
        feedback = response.prompt_feedback
        block = getattr(feedback, "block_reason", None) if feedback is not None else None
        return f"blocked prompt ({_enum_name(block)})" if block else "no candidates in the answer"
    cand = response.candidates[0]
    finish = _enum_name(cand.finish_reason) if cand.finish_reason is not None else None
    if finish not in (None, "STOP"):
        return f"finish reason {finish}"
    return None


def _reject_reason(response: Any) -> str | None:
    problem = envelope_problem(response)
    if problem is not None:
        return problem
    cand = response.candidates[0]
    if not _function_calls(response):
        text = "".join(p.text or "" for p in (cand.content.parts or []) if p.text) if cand.content else ""
        return "no function call" + (f" (answered text: {text[:120]!r})" if text else "")
    return None


def _function_calls(response: Any) -> list:
    cand = response.candidates[0] if response.candidates else None
    parts = (cand.content.parts or []) if cand is not None and cand.content is not None else []
    return [p.function_call for p in parts if p.function_call is not None]


def label_from_calls(calls: list, catalog: Catalog) -> tuple[Label | None, str | None]:
    """Validate function calls (objects with ``.name`` and ``.args``) as one label.

    Returns: ``(label, None)``, or ``(None, reason)`` when they are not a valid label (``no_tool`` mixed with
    calls, an unknown tool, arguments that fail the schema).
    """
    names = [c.name or "" for c in calls]
    real = [c for c in calls if c.name != NO_TOOL]
    if len(real) < len(calls):
        if real:
            return None, f"no_tool mixed with tool calls: {', '.join(n for n in names if n != NO_TOOL)}"
        reason = next((str((c.args or {}).get("reason")) for c in calls if (c.args or {}).get("reason")), None)
        return Label(calls=[], reason=reason), None
    normalised = [catalog.normalize_call(ToolCall(tool=c.name or "", args=dict(c.args or {}))) for c in real]
    errors = [e for call in normalised for e in catalog.call_errors(call)]
    if errors:
        return None, "; ".join(errors)
    return Label(calls=normalised), None


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    prompt = meta.prompt_token_count or 0
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(prompt_tokens=prompt, output_tokens=output, total_tokens=meta.total_token_count or prompt + output)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", None) or getattr(value, "value", None) or value)


async def check_key(client: "genai.Client", model: str) -> TeacherResult:
    """Check that a key works for ``model`` without spending generate quota (``GET models/{model}``).

    Returns: OK with ``raw`` the model's description, or the classified error (BAD_KEY, BAD_REQUEST for an
    unknown model, TRANSIENT, ...); the key never appears in it.
    """
    start = time.perf_counter()
    try:
        info = await client.aio.models.get(model=model)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        result = classify_exception(exc, model=model)
    else:
        raw = info.model_dump(mode="json", exclude_none=True, exclude={"sdk_http_response"})
        result = TeacherResult(outcome=Outcome.OK, raw=raw, status_code=200, model=model)
    result.latency_ms = (time.perf_counter() - start) * 1000
    return redact_result(result, [client_key(client) or ""])


def check_key_sync(api_key: str, model: str, *, base_url: str | None = None,
                   api_version: str = DEFAULT_API_VERSION, timeout_s: float = 20) -> TeacherResult:
    """:func:`check_key` for callers without an event loop (``distill plan``-style checks)."""

    async def run() -> TeacherResult:
        client = make_client(api_key, base_url=base_url, api_version=api_version, timeout_s=timeout_s)
        try:
            return await check_key(client, model)
        finally:
            await client.aio.aclose()

    return asyncio.run(run())
