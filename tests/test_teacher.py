"""The teacher request and its parsing, end to end: ask_teacher -> google-genai -> HTTP -> the fake server."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tooldistill.catalog import Label, ToolCall
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, Oracle
from tooldistill.distill.outcomes import Outcome
from tooldistill.distill.prompt import DEFAULT_INSTRUCTIONS, build_prompt
from tooldistill.distill.teacher import ask_teacher, check_key, check_key_sync, make_client
from tooldistill.errors import NeedsKeyError

KEY = "AIzaSyFAKE-teacher-key-0001"
MODEL = "gemini-2.5-flash"


@pytest.fixture
def oracle():
    o = Oracle()
    o.add("What's the weather in Paris?", [{"tool": "weather", "args": {"location": "Paris"}}])
    o.add("weather in Rome and what is 15% of 80", [{"tool": "weather", "args": {"location": "Rome"}},
                                                    {"tool": "calculator", "args": {"expression": "0.15*80"}}])
    o.add("hi there!", [], reason="a greeting")
    o.script("weather in Oslo, or nothing", [("weather", {"location": "Oslo"}), ("no_tool", {"reason": "x"})])
    o.script("define serendipity", [("dictionary", {})])
    return o


@pytest.fixture
def server(oracle):
    with FakeGemini(FakeGeminiConfig(keys={KEY: "proj-a"}, log_bodies=True), oracle=oracle) as s:
        yield s


def ask(server, catalog, query, *, key=KEY, model=MODEL, timeout_s=10.0, **kw):
    async def run():
        client = make_client(key, base_url=server.base_url, timeout_s=timeout_s)
        try:
            return await ask_teacher(client, model=model, prompt=build_prompt(catalog), catalog=catalog, query=query,
                                     **kw)
        finally:
            await client.aio.aclose()

    return asyncio.run(run())


def test_a_single_call_is_an_ok_label_with_usage_latency_and_raw(server, catalog):
    result = ask(server, catalog, "what's the weather in paris")
    assert result.outcome is Outcome.OK
    assert result.label == Label(calls=[ToolCall(tool="weather", args={"location": "Paris"})])
    assert result.usage.prompt_tokens > 0 and result.usage.output_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.output_tokens
    assert result.latency_ms > 0
    part = result.raw["candidates"][0]["content"]["parts"][0]
    assert part["function_call"]["name"] == "weather" and part["thought_signature"]
    assert (result.status_code, result.model) == (200, MODEL)


def test_several_calls_make_a_multi_tool_label(server, catalog):
    result = ask(server, catalog, "Weather in Rome and what is 15% of 80?")
    assert result.outcome is Outcome.OK
    assert result.label.tools == ["weather", "calculator"]
    assert result.label.is_multi


def test_a_lone_no_tool_call_is_the_empty_label_with_its_reason(server, catalog):
    result = ask(server, catalog, "Hi there")
    assert result.outcome is Outcome.OK
    assert result.label.calls == [] and result.label.reason == "a greeting"


def test_an_unknown_query_gets_no_tool_unknown_from_the_fake(server, catalog):
    result = ask(server, catalog, "tell me a secret")
    assert (result.outcome, result.label.reason) == (Outcome.OK, "unknown")
    assert server.log[-1]["known"] is False


@pytest.mark.parametrize("query, reason", [
    ("weather in Oslo, or nothing", "no_tool mixed with tool calls: weather"),
    ("define serendipity", "dictionary: args.word: missing required argument"),
])
def test_answers_that_are_no_valid_label_are_rejected_with_the_reason(server, catalog, query, reason):
    result = ask(server, catalog, query)
    assert result.outcome is Outcome.REJECTED
    assert result.reject_reason == reason
    assert result.label is None
    assert result.raw["candidates"]  # the paid answer is kept for the record


@pytest.mark.parametrize("fault, reason", [
    ("malformed", "finish reason MALFORMED_FUNCTION_CALL"),
    ("max_tokens", "finish reason MAX_TOKENS"),
    ("blocked", "blocked prompt (PROHIBITED_CONTENT)"),
    ("text_answer", "no function call (answered text: "),
    ("unknown_tool", "unknown tool 'weather_v2'"),
    ("bad_args", "weather: args.location: missing required argument; weather: args.unexpected_argument: unexpected"),
])
def test_bad_outputs_are_rejected_with_what_was_wrong(server, catalog, fault, reason):
    server.set(faults={fault: 1.0})
    result = ask(server, catalog, "what's the weather in paris")
    assert result.outcome is Outcome.REJECTED
    assert result.reject_reason.startswith(reason)
    assert server.log[-1]["outcome"] == "rejected"


def test_the_request_on_the_wire_is_mode_any_temperature_zero_and_no_thinking(server, catalog):
    prompt = build_prompt(catalog)
    ask(server, catalog, "what's the weather in paris", temperature=0.0)
    entry = server.log[-1]
    assert entry["path"] == f"/v1beta/models/{MODEL}:generateContent"
    body = entry["body"]
    assert body["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": prompt.allowed_names}
    assert body["generationConfig"]["temperature"] == 0.0
    assert body["generationConfig"]["thinkingConfig"]["thinking_budget"] == 0
    assert body["systemInstruction"]["parts"][0]["text"] == prompt.system_instruction
    names = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert names == catalog.names + ["no_tool"]
    assert body["contents"] == [{"parts": [{"text": "what's the weather in paris"}], "role": "user"}]


def test_the_vertex_switch_in_the_environment_does_not_redirect_the_client(server, catalog, monkeypatch):
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    assert ask(server, catalog, "hi there").outcome is Outcome.OK
    assert server.log[-1]["path"].startswith("/v1beta/models/")


def test_a_slow_answer_past_the_timeout_is_transient(server, catalog):
    server.set(faults={"slow": 1.0}, slow_s=1.5)
    result = ask(server, catalog, "hi there", timeout_s=0.3)
    assert result.outcome is Outcome.TRANSIENT
    assert result.message.startswith("ReadTimeout")


def test_prompt_version_names_system_text_and_declarations(catalog):
    base = build_prompt(catalog)
    assert base.version == build_prompt(catalog).version and len(base.version) == 16
    assert build_prompt(catalog, instructions=DEFAULT_INSTRUCTIONS + " Be brief.").version != base.version
    shots = build_prompt(catalog, examples=[("hello", []), ("2+2", [{"tool": "calculator",
                                                                     "args": {"expression": "2+2"}}])])
    assert "'2+2' -> calculator(expression=\"2+2\")" in shots.system_instruction
    assert "no_tool(reason=" in shots.system_instruction and shots.version != base.version
    assert base.allowed_names[-1] == "no_tool"


def test_make_client_needs_a_key():
    with pytest.raises(NeedsKeyError, match="GEMINI_API_KEYS"):
        make_client("  ")


def test_check_key_spends_no_generate_quota(catalog, oracle):
    cfg = FakeGeminiConfig(keys={KEY: "p"}, leaked_keys=["AIzaLEAKED"], models={MODEL: {"rpd": 1}})
    with FakeGemini(cfg, oracle=oracle) as server:
        async def run(key, model):
            client = make_client(key, base_url=server.base_url)
            try:
                return await check_key(client, model)
            finally:
                await client.aio.aclose()

        assert asyncio.run(run(KEY, MODEL)).outcome is Outcome.OK
        assert asyncio.run(run("AIzaWRONG", MODEL)).outcome is Outcome.BAD_KEY
        assert asyncio.run(run("AIzaLEAKED", MODEL)).outcome is Outcome.BAD_KEY
        assert asyncio.run(run(KEY, "gemini-9-ultra")).outcome is Outcome.BAD_REQUEST
        assert check_key_sync(KEY, MODEL, base_url=server.base_url).raw["name"] == f"models/{MODEL}"
        assert ask(server, catalog, "hi there").outcome is Outcome.OK  # the one request of the day is still there


def test_the_key_never_reaches_results_logs_or_stats(catalog, oracle, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    leaked = "AIzaSyLEAKED-0002"
    cfg = FakeGeminiConfig(keys={KEY: "p"}, leaked_keys=[leaked], log_path=tmp_path / "fake.jsonl", log_bodies=True,
                           models={MODEL: {"rpm": 3, "rpd": 4}})
    results = []
    with FakeGemini(cfg, oracle=oracle) as server:
        for fault in ("unavailable_503", "bad_gateway_502", "garbage_200", "malformed", None, None, None):
            server.set(faults={"unavailable_503": 0, "bad_gateway_502": 0, "garbage_200": 0, "malformed": 0,
                               **({fault: 1.0} if fault else {})})
            results.append(ask(server, catalog, "hi there"))
        results.append(ask(server, catalog, "hi there", key=leaked))
        results.append(ask(server, catalog, "hi there", key="AIzaSyUNKNOWN-0003"))
        stats, log = server.stats(), server.log
    outcomes = {r.outcome for r in results}
    assert {Outcome.TRANSIENT, Outcome.REJECTED, Outcome.OK, Outcome.MINUTE_QUOTA, Outcome.BAD_KEY} <= outcomes
    everything = repr(results) + json.dumps(stats) + json.dumps(log) + (tmp_path / "fake.jsonl").read_text() + \
        caplog.text
    for secret in (KEY, leaked, "AIzaSyUNKNOWN-0003"):
        assert secret not in everything
