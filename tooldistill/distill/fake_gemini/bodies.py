"""The bodies the fake server answers with: the real API's error bodies (notes/gemini-api.md section 2) and
GenerateContentResponse JSON (section 1.5)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    f"error, head to: {RATE_LIMITS_URL}. To monitor your current usage, head to: https://ai.dev/rate-limit. "
)
_HELP = {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_URL}]}


def error_body(code: int, status: str, message: str, details: list | None = None) -> dict:
    """A google.rpc.Status error body as the API sends it."""
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


def _quota_ids(tier: str, window: str) -> tuple[str, str]:
    """(quotaId, quotaMetric) of the request quotas; paid ids drop the -FreeTier suffix (notes section 2)."""
    suffix, metric = ("-FreeTier", "generate_content_free_tier_requests") if tier == "free" else \
        ("", "generate_content_paid_tier_requests")
    return (f"GenerateRequestsPer{window}PerProjectPerModel{suffix}",
            f"generativelanguage.googleapis.com/{metric}")


def _violation(qid: str, metric: str, model: str, value: int | None) -> dict:
    v: dict[str, Any] = {"quotaMetric": metric, "quotaId": qid,
                         "quotaDimensions": {"location": "global", "model": model}}
    if value is not None:
        v["quotaValue"] = str(value)
    return v


def _retry(delay_s: float) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{max(delay_s, 0):.0f}s"
            if float(delay_s).is_integer() else f"{delay_s:.3f}s"}


def quota_429(*, model: str, window: str, limit: int, retry_delay_s: float, tier: str = "free") -> dict:
    """The 429 RESOURCE_EXHAUSTED of a per-day (``window="Day"``) or per-minute request quota, newer format:
    Help, QuotaFailure, RetryInfo, and a message listing the metric, its limit and the retry time."""
    qid, metric = _quota_ids(tier, window)
    message = (f"{_QUOTA_MESSAGE}\n* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\n"
               f"Please retry in {retry_delay_s:.6g}s.")
    details = [_HELP, {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                       "violations": [_violation(qid, metric, model, limit)]}, _retry(retry_delay_s)]
    return error_body(429, "RESOURCE_EXHAUSTED", message, details)


def not_on_tier_429(*, model: str, retry_delay_s: float, tier: str = "free") -> dict:
    """The 429 of a model with no quota on the project (``limit: 0``): PerDay, PerMinute and input-token
    violations without quotaValue (python-genai issue 2044's shape)."""
    day, metric = _quota_ids(tier, "Day")
    minute, _ = _quota_ids(tier, "Minute")
    token_metric = metric.replace("_requests", "_input_token_count")
    token_id = "GenerateContentInputTokensPerModelPerMinute" + ("-FreeTier" if tier == "free" else "")
    message = "".join(f"\n* Quota exceeded for metric: {m}, limit: 0, model: {model}" for m in (metric, metric,
                                                                                                token_metric))
    details = [_HELP, {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
        _violation(day, metric, model, None), _violation(minute, metric, model, None),
        _violation(token_id, token_metric, model, None)]}, _retry(retry_delay_s)]
    return error_body(429, "RESOURCE_EXHAUSTED", f"{_QUOTA_MESSAGE}{message}\nPlease retry in "
                      f"{retry_delay_s:.6g}s.", details)


BARE_429 = error_body(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
UNAVAILABLE_503 = error_body(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
INTERNAL_500 = error_body(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting")
INVALID_ARGUMENT_400 = error_body(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
_KEY_MSG = "API key not valid. Please pass a valid API key."
API_KEY_INVALID_400 = error_body(400, "INVALID_ARGUMENT", _KEY_MSG, [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
     "metadata": {"service": "generativelanguage.googleapis.com"}},
    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": _KEY_MSG}])
LEAKED_403 = error_body(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key.")
NO_KEY_403 = error_body(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                        "established identity). Please use API Key or other form of API consumer identity to call "
                        "this API.")
BAD_GATEWAY_HTML = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
                    "</center></body></html>")


def model_not_found_404(model: str, version: str) -> dict:
    return error_body(404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or is not "
                      "supported for generateContent. Call ListModels to see the list of available models and "
                      "their supported methods.")


def route_not_found_404(path: str) -> dict:
    return error_body(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")


# ---------------------------------------------------------------- success bodies


def estimate_tokens(value: Any) -> int:
    """A rough token count (4 characters a token), enough for usage metadata that moves with the input."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


def thought_signature(seed: str) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode("utf-8")).digest()[:24]).decode("ascii")


def usage(prompt_tokens: int, output_tokens: int) -> dict:
    return {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}


def response(*, model: str, response_id: str, parts: list[dict] | None, finish: str | None = "STOP",
             prompt_tokens: int = 1, output_tokens: int | None = None, prompt_feedback: dict | None = None) -> dict:
    """A GenerateContentResponse: one candidate with ``parts`` (``None``: the candidate has empty content;
    ``finish=None``: no candidate at all, as for a blocked prompt)."""
    body: dict[str, Any] = {}
    if finish is not None:
        content: dict[str, Any] = {"role": "model", "parts": parts} if parts else {}
        if finish == "MAX_TOKENS":
            content = {"role": "model"}
        body["candidates"] = [{"content": content, "finishReason": finish, "index": 0}]
    if prompt_feedback is not None:
        body["promptFeedback"] = prompt_feedback
    out = output_tokens if output_tokens is not None else (estimate_tokens(parts) if parts else 0)
    body["usageMetadata"] = usage(prompt_tokens, out)
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def call_part(name: str, args: dict, signature: str) -> dict:
    return {"functionCall": {"name": name, "args": args}, "thoughtSignature": signature}


def model_info(model: str) -> dict:
    """``GET models/{model}``: the model's description (the fields the SDK maps)."""
    return {"name": f"models/{model}", "version": "001", "displayName": model, "description": f"Fake {model}",
            "inputTokenLimit": 1048576, "outputTokenLimit": 65536, "supportedGenerationMethods":
            ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
            "temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2, "thinking": True}


# ---------------------------------------------------------------- batch mode


def batch_not_on_tier_429(*, model: str, retry_delay_s: float) -> dict:
    """Batch Mode refused to a project without billing: a ``limit: 0`` 429 on a per-day batch quota.

    The real API's answer to a free-tier batch create is not documented (notes/gemini-api.md section 1.7 found
    no authoritative free-tier batch quota); this follows the shape of its other ``limit: 0`` refusals, so a
    client that reads QuotaFailure and the ``limit: 0`` text recognises it.
    """
    metric = "generativelanguage.googleapis.com/batch_requests_free_tier"
    violation = _violation("BatchRequestsPerDayPerProjectPerModel-FreeTier", metric, model, None)
    message = (f"{_QUOTA_MESSAGE}\n* Quota exceeded for metric: {metric}, limit: 0, model: {model}\n"
               f"Please retry in {retry_delay_s:.6g}s.")
    details = [_HELP, {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
               _retry(retry_delay_s)]
    return error_body(429, "RESOURCE_EXHAUSTED", message, details)


def payload_too_large_400(size: int, limit: int) -> dict:
    return error_body(400, "INVALID_ARGUMENT", f"Request payload size exceeds the limit: {limit} bytes. "
                      f"(got {size} bytes; use a JSONL file for larger batches)")


def batch_not_found_404(name: str) -> dict:
    return error_body(404, "NOT_FOUND", f"Requested entity was not found. ({name})")


LINE_ERRORS = {
    400: INVALID_ARGUMENT_400["error"],
    429: BARE_429["error"],
    500: INTERNAL_500["error"],
    503: UNAVAILABLE_503["error"],
}
"""The ``error`` object of a failed batch line, by HTTP code (google.rpc.Status as JSON)."""
