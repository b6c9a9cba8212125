"""Teacher outcomes: the closed set every teacher response or exception is classified into.

ARCHITECTURE section 5's fault taxonomy, one member per row. The runner decides what to do from the outcome
alone; nothing else in the code matches on status codes or error strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

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
