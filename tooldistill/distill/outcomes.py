"""Teacher outcomes: the closed set every teacher response or exception is classified into.

ARCHITECTURE section 5's fault taxonomy, one member per row. The runner decides what to do from the outcome
alone; nothing else in the code matches on status codes or error strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable

from ..catalog import Label


class Outcome(StrEnum):
    OK = "ok"
    """A valid label (including no tool)."""
    REJECTED = "rejected"
    """Bad output: no function call, unknown tool, args failing the schema, unparseable, blocked. Paid; not retried."""
    DAILY_QUOTA = "daily_quota"
    """429 whose QuotaFailure names a per-day quota (or limit 0): bucket exhausted until the daily reset."""
    MINUTE_QUOTA = "minute_quota"
    """429 whose QuotaFailure names only per-minute quotas: bucket cooling for RetryInfo's delay."""
    BARE_429 = "bare_429"
    """429 without a QuotaFailure: bucket cooling with exponential backoff."""
    TRANSIENT = "transient"
    """503/500/502/504/408, timeouts, connection errors, a non-JSON 200: backoff, retry, attempt counted."""
    BAD_KEY = "bad_key"
    """400 API_KEY_INVALID (or expired), 401, 403: the key is invalid for the run."""
    BAD_REQUEST = "bad_request"
    """Any other 400, or 404: the job fails with the message; never retried blindly."""

    @property
    def paid(self) -> bool:
        """Whether the request was answered (and so billed)."""
        return self in (Outcome.OK, Outcome.REJECTED)

    @property
    def counts_attempt(self) -> bool:
        """Whether the job's attempt counter goes up (quota and key problems are not the job's fault)."""
        return self in (Outcome.TRANSIENT, Outcome.BAD_REQUEST, Outcome.OK, Outcome.REJECTED)


@dataclass
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


@dataclass
class TeacherResult:
    """One teacher request's result, classified."""

    outcome: Outcome
    label: Label | None = None
    reject_reason: str | None = None
    raw: dict | None = None
    """The response JSON (for OK/REJECTED) or the error body, as stored in ``labels.raw`` / attempt rows."""
    status_code: int | None = None
    message: str | None = None
    retry_after_s: float | None = None
    quota_value: int | None = None
    """The limit a 429 reported (``quotaValue``), to correct the bucket's configured RPM/RPD."""
    quota_ids: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    model: str | None = None


# ---------------------------------------------------------------- classification
#
# notes/gemini-api.md section 4: decide on the HTTP code and the QuotaFailure quota ids of the error body,
# never on RetryInfo (a daily 429 carries a 22 s retryDelay too) and never on the exception class (an APIError
# that crossed a pickle boundary is rebuilt as the base class).

_TRANSIENT_CODES = {408, 500, 502, 503, 504}
_BAD_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED",
                    "API_KEY_IP_ADDRESS_BLOCKED", "API_KEY_ANDROID_APP_BLOCKED", "API_KEY_IOS_APP_BLOCKED"}
_BAD_KEY_TEXT = re.compile(r"api key (not valid|not found|expired)", re.I)
_LIMIT_TEXT = re.compile(r"limit:\s*(\d+)")
_MAX_MESSAGE = 500


@dataclass
class QuotaInfo:
    """What a 429 body says about the quota: violated ids, their limits, RetryInfo's delay."""

    ids: list[str] = field(default_factory=list)
    values: dict[str, int] = field(default_factory=dict)
    """quotaId -> quotaValue, for the violations that carry one."""
    metrics: list[str] = field(default_factory=list)
    retry_delay_s: float | None = None
    error_info_reasons: list[str] = field(default_factory=list)

    @property
    def has_quota_failure(self) -> bool:
        return bool(self.ids)


def error_details(body: Any) -> tuple[dict, list[dict]]:
    """Return ``(error, details)`` of an error body, unwrapping a one-element list and a missing ``error`` key."""
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return {}, []
    err = body.get("error", body)
    err = err if isinstance(err, dict) else {}
    dets = err.get("details") or []
    return err, [d for d in dets if isinstance(d, dict)] if isinstance(dets, list) else []


def parse_duration(value: Any) -> float | None:
    """Parse a protobuf Duration as JSON writes it (``"22s"``, ``"55.837881432s"``); None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        return float(value.strip().rstrip("s"))
    except ValueError:
        return None


def quota_info(body: Any) -> QuotaInfo:
    """Collect the QuotaFailure violations, RetryInfo delay and ErrorInfo reasons of an error body."""
    info = QuotaInfo()
    for det in error_details(body)[1]:
        kind = str(det.get("@type", ""))
        if kind.endswith("google.rpc.QuotaFailure"):
            for v in det.get("violations") or []:
                if not isinstance(v, dict):
                    continue
                qid = str(v.get("quotaId", ""))
                info.ids.append(qid)
                if v.get("quotaMetric"):
                    info.metrics.append(str(v["quotaMetric"]))
                value = _int_or_none(v.get("quotaValue"))
                if value is not None:
                    info.values[qid] = value
        elif kind.endswith("google.rpc.RetryInfo"):
            info.retry_delay_s = parse_duration(det.get("retryDelay"))
        elif kind.endswith("google.rpc.ErrorInfo") and det.get("reason"):
            info.error_info_reasons.append(str(det["reason"]))
    return info


def classify_error(code: int | None, body: Any, *, message: str | None = None, retry_after: str | None = None,
                   model: str | None = None) -> TeacherResult:
    """Classify an HTTP error (status code and parsed body) into a :class:`TeacherResult`.

    Args:
        code: the HTTP status (``APIError.code``).
        body: the parsed error body (``APIError.details``): ``{"error": {...}}``, a one-element list of it, or
            ``{"message", "status"}`` for a non-JSON body.
        message: the error message when already extracted (else read from the body).
        retry_after: a ``Retry-After`` header, used only for transient errors.
        model: the model asked, copied into the result.

    Returns: the result with outcome, status_code, message, quota_ids, quota_value and retry_after_s filled.
    """
    err, _ = error_details(body)
    msg = message if message is not None else (err.get("message") if isinstance(err.get("message"), str) else None)
    msg = _short_message(msg, code, err.get("status"))
    info = quota_info(body)
    raw = body if isinstance(body, dict) else ({"error": err} if err else None)
    result = TeacherResult(outcome=Outcome.TRANSIENT, raw=raw, status_code=code, message=msg, model=model,
                           quota_ids=list(info.ids))
    if code == 429:
        _classify_429(result, info, msg or "")
    elif code in (401, 403):
        result.outcome = Outcome.BAD_KEY
    elif code == 400:
        bad_key = set(info.error_info_reasons) & _BAD_KEY_REASONS or _BAD_KEY_TEXT.search(msg or "")
        result.outcome = Outcome.BAD_KEY if bad_key else Outcome.BAD_REQUEST
    elif code is not None and 400 <= code < 500 and code not in _TRANSIENT_CODES:
        result.outcome = Outcome.BAD_REQUEST
    else:
        result.retry_after_s = info.retry_delay_s if info.retry_delay_s is not None else parse_duration(retry_after)
    return result


def _classify_429(result: TeacherResult, info: QuotaInfo, message: str) -> None:
    day = [q for q in info.ids if "PerDay" in q]
    minute = [q for q in info.ids if "PerMinute" in q]
    limit_zero = any(v == 0 for v in info.values.values()) or bool(re.search(r"limit:\s*0\b", message))
    if day or limit_zero:
        result.outcome = Outcome.DAILY_QUOTA
        result.quota_value = 0 if limit_zero else _request_limit(day, info, message)
    elif minute:
        result.outcome = Outcome.MINUTE_QUOTA
        result.retry_after_s = info.retry_delay_s
        result.quota_value = _request_limit(minute, info, message)
    elif not info.has_quota_failure and re.search(r"PerDay|per day", message):
        result.outcome = Outcome.DAILY_QUOTA  # the text fallback of notes section 4, step 5
    else:
        result.outcome = Outcome.BARE_429
        result.retry_after_s = info.retry_delay_s


def _request_limit(ids: list[str], info: QuotaInfo, message: str) -> int | None:
    """The request-count limit among ``ids`` (token limits are not RPM/RPD), else a lone ``limit: N`` in the text."""
    for qid in ids:
        if "Request" in qid and qid in info.values:
            return info.values[qid]
    limits = set(_LIMIT_TEXT.findall(message))
    if len(limits) == 1 and all("Request" in q for q in ids):
        return int(limits.pop())
    return None


def classify_exception(exc: BaseException, *, model: str | None = None) -> TeacherResult:
    """Classify anything ``generate_content`` can raise into a :class:`TeacherResult`.

    ``google.genai.errors.APIError`` (any subclass, or the base class a pickled error becomes) goes through
    :func:`classify_error` on ``e.code`` and ``e.details``; httpx2/httpx timeouts and transport errors, OS-level
    connection errors and a ``json.JSONDecodeError`` (a 200 whose body is not JSON) are TRANSIENT, and so is any
    other exception (the attempt is counted, so a persistent bug ends in a dead job with its message).

    Args:
        exc: the exception.
        model: the model asked, copied into the result.

    Returns: the classified result; ``message`` names the exception type for non-HTTP failures.
    """
    code = getattr(exc, "code", None)
    if hasattr(exc, "details") and isinstance(code, int) and not isinstance(code, bool):
        headers = getattr(getattr(exc, "response", None), "headers", None)
        retry_after = headers.get("retry-after") if headers is not None and hasattr(headers, "get") else None
        return classify_error(code, exc.details, message=getattr(exc, "message", None), retry_after=retry_after,
                              model=model)
    if isinstance(exc, json.JSONDecodeError):
        msg = f"non-JSON response body ({exc.msg} at char {exc.pos})"
        return TeacherResult(outcome=Outcome.TRANSIENT, status_code=200, message=msg, model=model)
    kind = type(exc).__name__
    text = str(exc).strip()
    msg = f"{kind}: {text}" if text else kind
    if not _is_transport_error(exc):
        msg = f"unexpected {msg}"
    return TeacherResult(outcome=Outcome.TRANSIENT, message=msg[:_MAX_MESSAGE], model=model)


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):  # TimeoutError and ConnectionError included
        return True
    for mod in ("httpx2", "httpx", "aiohttp", "httpcore2", "httpcore"):
        if type(exc).__module__.split(".")[0] == mod:
            return True
    return False


def _short_message(msg: str | None, code: int | None, status: Any) -> str | None:
    if msg is None:
        return f"HTTP {code} {status}" if status else (f"HTTP {code}" if code else None)
    text = msg.strip()
    if text.lstrip().startswith("<"):  # an HTML gateway page: keep the status, not the markup
        return f"HTTP {code} {status or ''} (non-JSON body)".replace("  ", " ")
    return text[:_MAX_MESSAGE]


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """Return ``value`` (a str, or JSON-like dicts/lists) with every occurrence of each secret replaced."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return value
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, "[redacted]")
        return value
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value


def redact_result(result: TeacherResult, secrets: Iterable[str]) -> TeacherResult:
    """Remove secrets (API keys) from a result's message, reasons and raw body, in place; returns it."""
    secrets = [s for s in secrets if s]
    result.message = redact(result.message, secrets)
    result.reject_reason = redact(result.reject_reason, secrets)
    result.raw = redact(result.raw, secrets)
    return result
