"""Outcome classification on the real Gemini error bodies quoted in notes/gemini-api.md section 2.

Each fixture is a real public body (its URL beside it), turned into a real ``google.genai.errors.APIError`` the
way the SDK does: an ``httpx2.Response`` passed to ``APIError.raise_for_response``.
"""

from __future__ import annotations

import json
import pickle

import httpx2
import pytest
from google.genai import errors

from tooldistill.distill.outcomes import (
    Outcome, TeacherResult, classify_error, classify_exception, parse_duration, redact, redact_result,
)

HELP = {"@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas",
                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}
QUOTA_MSG = ("You exceeded your current quota, please check your plan and billing details. For more information on "
             "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")
REQ_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
TOK_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count"


def retry(delay: str) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota_failure(*violations: dict) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": list(violations)}


def violation(qid: str, metric: str = REQ_METRIC, value: str | None = None, model: str = "gemini-2.5-flash") -> dict:
    v = {"quotaMetric": metric, "quotaId": qid, "quotaDimensions": {"location": "global", "model": model}}
    if value is not None:
        v["quotaValue"] = value
    return v


def err(code: int, status: str, message: str, details: list | None = None) -> dict:
    body = {"code": code, "message": message, "status": status}
    if details is not None:
        body["details"] = details
    return {"error": body}


def api_error(status: int, body, *, content_type: str = "application/json") -> errors.APIError:
    """An APIError built exactly as google-genai builds it from an HTTP response."""
    content = body if isinstance(body, str) else json.dumps(body)
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1beta/models/gemini-2.5-flash:generateContent")
    response = httpx2.Response(status, content=content.encode("utf-8"), headers={"content-type": content_type},
                               request=request)
    with pytest.raises(errors.APIError) as info:
        errors.APIError.raise_for_response(response)
    return info.value


# -------------------------------------------------------------- 429 bodies

# https://oppl.ai/llms/gemini_complex_1/JE00B3XR4V72.json (older order: QuotaFailure, Help, RetryInfo)
DAILY_250 = err(429, "RESOURCE_EXHAUSTED", QUOTA_MSG, [
    quota_failure(violation("GenerateRequestsPerDayPerProjectPerModel-FreeTier", value="250")), HELP, retry("22s")])

# newer format, "limit: 20 req/day/model" (https://github.com/google-gemini/gemini-cli/issues/21180); details
# ordered Help, QuotaFailure, RetryInfo as in https://github.com/continuedev/continue/issues/11799
DAILY_20_NEW = err(429, "RESOURCE_EXHAUSTED",
                   QUOTA_MSG + " To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded "
                   f"for metric: {REQ_METRIC}, limit: 20, model: gemini-2.5-flash\nPlease retry in 25.3s.",
                   [HELP, quota_failure(violation("GenerateRequestsPerDayPerProjectPerModel-FreeTier", value="20")),
                    retry("25s")])

# limit 0 (model not on the tier): PerDay + PerMinute + input tokens, no quotaValue
# (https://github.com/googleapis/python-genai/issues/2044); message of
# https://github.com/continuedev/continue/issues/11799
NOT_ON_TIER = err(429, "RESOURCE_EXHAUSTED",
                  QUOTA_MSG + " To monitor your current usage, head to: https://ai.dev/rate-limit. \n* Quota exceeded "
                  f"for metric: {REQ_METRIC}, limit: 0, model: gemini-2.0-flash\nPlease retry in 55.837881432s.",
                  [HELP, quota_failure(violation("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
                                       violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
                                       violation("GenerateContentInputTokensPerModelPerMinute-FreeTier", TOK_METRIC)),
                   retry("47s")])

# per-minute input tokens (https://github.com/RooCodeInc/Roo-Code/issues/3883)
MINUTE_TOKENS = err(429, "RESOURCE_EXHAUSTED", QUOTA_MSG, [
    quota_failure(violation("GenerateContentInputTokensPerModelPerMinute-FreeTier", TOK_METRIC, "250000")), HELP,
    retry("26s")])

# per-minute requests: the id named in the same notes section, with a fractional RetryInfo (as in continue#11799)
MINUTE_REQUESTS = err(429, "RESOURCE_EXHAUSTED", QUOTA_MSG, [
    HELP, quota_failure(violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", value="5")),
    retry("55.837881432s")])

# paid tier id (https://github.com/mscraftsman/generative-ai/issues/131)
MINUTE_PAID = err(429, "RESOURCE_EXHAUSTED", QUOTA_MSG, [
    quota_failure(violation("GenerateContentPaidTierInputTokensPerModelPerMinute",
                            "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
                            "1000000")), retry("12s")])

# Help only, tier 3 (https://github.com/googleapis/python-genai/issues/1427)
HELP_ONLY_429 = err(429, "RESOURCE_EXHAUSTED", QUOTA_MSG, [HELP])

# no details, paid tier 1 (https://github.com/googleapis/python-genai/issues/2065)
BARE_429 = err(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")


def test_a_per_day_quota_id_is_daily_whatever_retry_delay_says():
    result = classify_exception(api_error(429, DAILY_250))
    assert result.outcome is Outcome.DAILY_QUOTA
    assert result.quota_value == 250
    assert result.quota_ids == ["GenerateRequestsPerDayPerProjectPerModel-FreeTier"]
    assert result.retry_after_s is None  # the 22 s RetryInfo of a daily 429 must never be slept on
    assert result.status_code == 429
    assert result.message.startswith("You exceeded your current quota")
    assert result.raw == DAILY_250


def test_newer_message_format_with_details_in_the_other_order_is_daily_with_its_limit():
    result = classify_exception(api_error(429, DAILY_20_NEW))
    assert (result.outcome, result.quota_value) == (Outcome.DAILY_QUOTA, 20)


def test_limit_zero_is_daily_even_with_per_minute_violations_beside_it():
    result = classify_exception(api_error(429, NOT_ON_TIER))
    assert result.outcome is Outcome.DAILY_QUOTA
    assert result.quota_value == 0
    assert len(result.quota_ids) == 3


def test_limit_zero_in_the_message_alone_is_daily():
    body = err(429, "RESOURCE_EXHAUSTED", NOT_ON_TIER["error"]["message"],
               [HELP, quota_failure(violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier")), retry("5s")])
    assert classify_exception(api_error(429, body)).outcome is Outcome.DAILY_QUOTA


def test_quota_value_zero_is_daily():
    body = err(429, "RESOURCE_EXHAUSTED", QUOTA_MSG,
               [quota_failure(violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", value="0"))])
    assert classify_exception(api_error(429, body)).outcome is Outcome.DAILY_QUOTA


def test_per_minute_token_quota_is_minute_with_retry_delay_and_no_request_limit():
    result = classify_exception(api_error(429, MINUTE_TOKENS))
    assert result.outcome is Outcome.MINUTE_QUOTA
    assert result.retry_after_s == 26.0
    assert result.quota_value is None  # 250000 tokens is not a requests-per-minute limit


def test_per_minute_request_quota_keeps_fractional_retry_delay_and_its_limit():
    result = classify_exception(api_error(429, MINUTE_REQUESTS))
    assert result.outcome is Outcome.MINUTE_QUOTA
    assert result.retry_after_s == pytest.approx(55.837881432)
    assert result.quota_value == 5


def test_paid_tier_per_minute_id_is_minute():
    result = classify_exception(api_error(429, MINUTE_PAID))
    assert (result.outcome, result.retry_after_s) == (Outcome.MINUTE_QUOTA, 12.0)


@pytest.mark.parametrize("body", [HELP_ONLY_429, BARE_429], ids=["help-only", "no-details"])
def test_a_429_without_quota_failure_is_bare(body):
    result = classify_exception(api_error(429, body))
    assert result.outcome is Outcome.BARE_429
    assert result.quota_ids == []


def test_a_bare_429_that_says_per_day_in_words_falls_back_to_daily():
    body = err(429, "RESOURCE_EXHAUSTED", "Quota exceeded: requests per day for this model.")
    assert classify_exception(api_error(429, body)).outcome is Outcome.DAILY_QUOTA


def test_a_list_wrapped_body_is_unwrapped_by_sdk_and_classifier():
    result = classify_exception(api_error(429, [DAILY_250]))
    assert result.outcome is Outcome.DAILY_QUOTA
    assert classify_error(429, [DAILY_250]).outcome is Outcome.DAILY_QUOTA


def test_a_pickled_error_loses_its_class_but_not_its_outcome():
    original = api_error(429, MINUTE_REQUESTS)
    assert isinstance(original, errors.ClientError)
    revived = pickle.loads(pickle.dumps(original))
    assert type(revived) is errors.APIError
    assert classify_exception(revived).outcome is Outcome.MINUTE_QUOTA


# -------------------------------------------------------------- other statuses

# 503 (https://github.com/google-gemini/gemini-cli/issues/12831) and its 2026 wording
# (https://github.com/continuedev/continue/issues/11489)
OVERLOADED = err(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
HIGH_DEMAND = err(503, "UNAVAILABLE", "This model is currently experiencing high demand. Spikes in demand are usually "
                  "temporary. Please try again later.")
# 500 (https://github.com/PublicAffairs/openai-gemini/issues/15) and the other wording seen
INTERNAL = err(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
               "https://developers.generativeai.google/guide/troubleshooting")
INTERNAL_2 = err(500, "INTERNAL", "Internal error encountered.")
KEY_MSG = "API key not valid. Please pass a valid API key."
# 400 invalid key (https://github.com/continuedev/continue/issues/8516)
KEY_INVALID = err(400, "INVALID_ARGUMENT", KEY_MSG, [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
     "metadata": {"service": "generativelanguage.googleapis.com"}},
    {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": KEY_MSG}])
# the Python SDK's rendering with an extra DebugInfo (https://github.com/google/timesketch/pull/3703)
KEY_INVALID_DEBUG = err(400, "INVALID_ARGUMENT", KEY_MSG, KEY_INVALID["error"]["details"] + [
    {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "Invalid API key"}])
# variant wording (https://github.com/google-gemini/gemini-cli/issues/25198)
KEY_NOT_FOUND = err(400, "INVALID_ARGUMENT", "API Key not found. Please pass a valid API key.")
KEY_EXPIRED = err(400, "INVALID_ARGUMENT", "API key expired. Please renew the API key.", [
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_EXPIRED", "domain": "googleapis.com"}])
# 403 leaked (https://github.com/continuedev/continue/issues/10513), unregistered caller
# (https://github.com/PublicAffairs/openai-gemini/issues/92)
LEAKED = err(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key.")
NO_KEY = err(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without established "
             "identity). Please use API Key or other form of API consumer identity to call this API.")
# 400 location (https://github.com/Xeift/Telegram-Discord-Bot/issues/4)
LOCATION = err(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
# 404 (https://github.com/google/adk-python/issues/200)
NOT_FOUND = err(404, "NOT_FOUND", "models/X is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported methods.")
INVALID = err(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")


@pytest.mark.parametrize("status, body, outcome", [
    (503, OVERLOADED, Outcome.TRANSIENT), (503, HIGH_DEMAND, Outcome.TRANSIENT), (500, INTERNAL, Outcome.TRANSIENT),
    (500, INTERNAL_2, Outcome.TRANSIENT), (504, err(504, "DEADLINE_EXCEEDED", "Deadline expired."), Outcome.TRANSIENT),
    (408, err(408, "", "Request Timeout"), Outcome.TRANSIENT),
    (400, KEY_INVALID, Outcome.BAD_KEY), (400, KEY_INVALID_DEBUG, Outcome.BAD_KEY),
    (400, KEY_NOT_FOUND, Outcome.BAD_KEY), (400, KEY_EXPIRED, Outcome.BAD_KEY),
    (403, LEAKED, Outcome.BAD_KEY), (403, NO_KEY, Outcome.BAD_KEY),
    (401, err(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), Outcome.BAD_KEY),
    (400, LOCATION, Outcome.BAD_REQUEST), (400, INVALID, Outcome.BAD_REQUEST), (404, NOT_FOUND, Outcome.BAD_REQUEST),
], ids=["503", "503-2026", "500", "500-short", "504", "408", "400-key", "400-key-debuginfo", "400-key-not-found",
        "400-key-expired", "403-leaked", "403-no-key", "401", "400-location", "400-invalid", "404"])
def test_status_and_error_info_decide(status, body, outcome):
    result = classify_exception(api_error(status, body), model="gemini-2.5-flash")
    assert result.outcome is outcome
    assert (result.status_code, result.model) == (status, "gemini-2.5-flash")
    assert result.message == body["error"]["message"]


def test_a_502_html_page_is_transient_with_a_short_message():
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    exc = api_error(502, html, content_type="text/html")
    assert exc.status == "Bad Gateway"
    result = classify_exception(exc)
    assert result.outcome is Outcome.TRANSIENT
    assert result.message == "HTTP 502 Bad Gateway (non-JSON body)"


def test_an_odd_non_200_success_status_is_transient():
    exc = api_error(201, {})
    assert type(exc) is errors.APIError
    assert classify_exception(exc).outcome is Outcome.TRANSIENT


def test_a_503_retry_after_header_is_kept_for_the_backoff():
    request = httpx2.Request("POST", "http://127.0.0.1:1/x")
    response = httpx2.Response(503, content=json.dumps(OVERLOADED).encode(), request=request,
                               headers={"content-type": "application/json", "retry-after": "7"})
    with pytest.raises(errors.APIError) as info:
        errors.APIError.raise_for_response(response)
    assert classify_exception(info.value).retry_after_s == 7.0


# -------------------------------------------------------------- transport and parsing failures


@pytest.mark.parametrize("exc", [
    httpx2.ReadTimeout("timed out"), httpx2.ConnectError("[Errno 111] Connection refused"),
    httpx2.RemoteProtocolError("Server disconnected without sending a response."), TimeoutError(),
    ConnectionResetError(104, "Connection reset by peer"),
], ids=["read-timeout", "connect", "protocol", "timeout", "reset"])
def test_transport_failures_are_transient_and_named(exc):
    result = classify_exception(exc)
    assert result.outcome is Outcome.TRANSIENT
    assert result.message.startswith(type(exc).__name__)
    assert result.status_code is None


def test_a_non_json_200_is_transient():
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads("<html>oops</html>")
    result = classify_exception(info.value)
    assert (result.outcome, result.status_code) == (Outcome.TRANSIENT, 200)
    assert result.message.startswith("non-JSON response body")


def test_an_unexpected_exception_is_transient_and_says_so():
    result = classify_exception(ValueError("boom"))
    assert result.outcome is Outcome.TRANSIENT
    assert result.message == "unexpected ValueError: boom"


def test_durations_parse_as_protobuf_json_writes_them():
    assert [parse_duration(v) for v in ("22s", "55.837881432s", "0s", 3, "soon", None)] == \
        [22.0, 55.837881432, 0.0, 3.0, None, None]


def test_outcome_properties_drive_the_runner():
    assert [o for o in Outcome if o.paid] == [Outcome.OK, Outcome.REJECTED]
    assert not Outcome.DAILY_QUOTA.counts_attempt and Outcome.TRANSIENT.counts_attempt


def test_redaction_removes_a_key_everywhere():
    key = "AIzaSyD-secret-key-123"
    result = TeacherResult(outcome=Outcome.BAD_KEY, message=f"bad {key}", reject_reason=key,
                           raw={"error": {"message": f"key={key}", "details": [{key: [key]}]}})
    redact_result(result, [key])
    assert key not in repr(result)
    assert redact("plain", [""]) == "plain"
