"""The fake Gemini server, through the real google-genai client (sync and async) and raw HTTP.

Every fault must reach the client as the Outcome the runner acts on, and the server's log must say the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from google.genai import types

from tooldistill.catalog import Label
from tooldistill.db import NewQuery, insert_queries
from tooldistill.distill.clock import ManualClock
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, Oracle, key_fingerprint, load_fake_config
from tooldistill.distill.outcomes import Outcome, classify_error, classify_exception
from tooldistill.distill.prompt import build_prompt
from tooldistill.distill.teacher import ask_teacher, make_client, parse_response
from tooldistill.errors import ConfigError, InputError

K1, K2, K3 = "AIzaFAKE-key-one", "AIzaFAKE-key-two", "AIzaFAKE-key-three"
LEAKED = "AIzaFAKE-leaked"
FLASH, LITE = "gemini-2.5-flash", "gemini-2.5-flash-lite"
JSON_CT = "application/json; charset=UTF-8"


@pytest.fixture
def oracle():
    o = Oracle()
    o.add("What's the weather in Paris?", [{"tool": "weather", "args": {"location": "Paris"}}])
    o.add("hi there", [], reason="a greeting")
    return o


def make_server(oracle=None, clock=None, **cfg) -> FakeGemini:
    cfg.setdefault("keys", {K1: "proj-a", K2: "proj-a", K3: "proj-b"})
    cfg.setdefault("leaked_keys", [LEAKED])
    return FakeGemini(FakeGeminiConfig(**cfg), oracle=oracle, clock=clock)


class Clients:
    """One event loop and one client per (key, base URL, timeout) for a whole test: building a google-genai
    client costs ~0.1 s, a request ~15 ms."""

    def __init__(self):
        self.runner = asyncio.Runner()
        self.aio, self.sync = {}, {}

    def client(self, kind, key, base_url, timeout_s):
        cache = self.aio if kind == "async" else self.sync
        if (key, base_url, timeout_s) not in cache:
            cache[key, base_url, timeout_s] = make_client(key, base_url=base_url, timeout_s=timeout_s)
        return cache[key, base_url, timeout_s]

    def close(self):
        for client in self.aio.values():
            self.runner.run(client.aio.aclose())
        for client in self.sync.values():
            client.close()
        self.runner.close()


CLIENTS: Clients | None = None


@pytest.fixture(autouse=True)
def clients():
    global CLIENTS
    CLIENTS = Clients()
    yield CLIENTS
    CLIENTS.close()
    CLIENTS = None


def ask_async(server, catalog, query="what's the weather in paris", *, key=K1, model=FLASH, timeout_s=10.0):
    client = CLIENTS.client("async", key, server.base_url, timeout_s)
    return CLIENTS.runner.run(ask_teacher(client, model=model, prompt=build_prompt(catalog), catalog=catalog,
                                          query=query))


def ask_sync(server, catalog, query="what's the weather in paris", *, key=K1, model=FLASH, timeout_s=10.0):
    """The synchronous client, with the same request settings; returns the classified result."""
    prompt = build_prompt(catalog)
    config = types.GenerateContentConfig(
        system_instruction=prompt.system_instruction,
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**d) for d in prompt.declarations])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
        automatic_continuation=False)
    client = CLIENTS.client("sync", key, server.base_url, timeout_s)
    try:
        response = client.models.generate_content(model=model, contents=query, config=config)
    except Exception as exc:
        return classify_exception(exc)
    return parse_response(response, catalog=catalog)


# -------------------------------------------------------------- every fault, both clients

FAULTS = [("bare_429", Outcome.BARE_429), ("unavailable_503", Outcome.TRANSIENT),
          ("internal_500", Outcome.TRANSIENT), ("bad_gateway_502", Outcome.TRANSIENT),
          ("garbage_200", Outcome.TRANSIENT), ("malformed", Outcome.REJECTED), ("max_tokens", Outcome.REJECTED),
          ("blocked", Outcome.REJECTED), ("text_answer", Outcome.REJECTED), ("unknown_tool", Outcome.REJECTED),
          ("bad_args", Outcome.REJECTED)]


@pytest.mark.parametrize("client", ["sync", "async"])
def test_every_injected_fault_reaches_the_client_as_its_outcome(catalog, oracle, client):
    ask = ask_sync if client == "sync" else ask_async
    with make_server(oracle) as server:
        for fault, expected in FAULTS:
            server.set(faults={f: (1.0 if f == fault else 0.0) for f, _ in FAULTS})
            result = ask(server, catalog)
            assert (fault, result.outcome) == (fault, expected)
            assert (server.log[-1]["fault"], server.log[-1]["outcome"]) == (fault, expected.value)
        assert server.stats()["by_fault"] == {f: 1 for f, _ in FAULTS}


@pytest.mark.parametrize("client", ["sync", "async"])
def test_keys_models_and_quotas_reach_the_client_as_their_outcomes(catalog, oracle, client):
    ask = ask_sync if client == "sync" else ask_async
    cases = [
        (dict(key="AIzaNOT-a-key"), Outcome.BAD_KEY, "invalid_key"),
        (dict(key=LEAKED), Outcome.BAD_KEY, "leaked_key"),
        (dict(model="gemini-9-ultra"), Outcome.BAD_REQUEST, "unknown_model"),
        (dict(model=LITE), Outcome.DAILY_QUOTA, "not_on_tier"),
        (dict(), Outcome.OK, None),
        (dict(), Outcome.MINUTE_QUOTA, "minute_quota"),
        (dict(key=K3), Outcome.OK, None),
        (dict(key=K3), Outcome.DAILY_QUOTA, "daily_quota"),
    ]
    models = {FLASH: {"rpm": 1}, LITE: {"rpd": 0}}
    with make_server(oracle, models=models, clock=ManualClock(1000)) as server:
        server.set(models={FLASH: {"rpm": 1, "rpd": None}})
        for kwargs, expected, fault in cases:
            if kwargs.get("key") == K3:
                server.set(models={FLASH: {"rpm": None, "rpd": 1}})
            result = ask(server, catalog, **kwargs)
            assert (kwargs, result.outcome) == (kwargs, expected)
            assert server.log[-1]["fault"] == fault


def test_a_slow_answer_times_out_in_the_sync_client_too(catalog, oracle):
    with make_server(oracle, faults={"slow": 1.0}, slow_s=1.0) as server:
        result = ask_sync(server, catalog, timeout_s=0.25)
    assert (result.outcome, result.message.split(":")[0]) == (Outcome.TRANSIENT, "ReadTimeout")


def test_a_closed_port_is_a_transient_connect_error(catalog):
    server = make_server()
    server.start()
    url = server.base_url
    server.stop()

    class Gone:
        base_url = url

    result = ask_async(Gone, catalog)
    assert (result.outcome, result.message.split(":")[0]) == (Outcome.TRANSIENT, "ConnectError")


def test_latency_range_delays_answers(catalog, oracle):
    with make_server(oracle, latency_s=(0.2, 0.3)) as server:
        result = ask_async(server, catalog)
    assert result.outcome is Outcome.OK and result.latency_ms >= 200


# -------------------------------------------------------------- quotas


def test_rpm_then_rpd_per_project_and_model_with_a_reset_after_the_day(catalog, oracle):
    clock = ManualClock(day_seconds=1000)
    with make_server(oracle, clock=clock, models={FLASH: {"rpm": 2, "rpd": 5}, LITE: {}}) as server:
        got = [ask_async(server, catalog).outcome for _ in range(3)]
        assert got == [Outcome.OK, Outcome.OK, Outcome.MINUTE_QUOTA]
        minute = ask_async(server, catalog, key=K2)  # same project: same bucket
        assert minute.outcome is Outcome.MINUTE_QUOTA
        assert (minute.retry_after_s, minute.quota_value) == (60.0, 2)
        assert ask_async(server, catalog, key=K3).outcome is Outcome.OK  # another project
        assert ask_async(server, catalog, model=LITE).outcome is Outcome.OK  # another model
        clock.advance(60)
        assert [ask_async(server, catalog).outcome for _ in range(3)] == [Outcome.OK, Outcome.OK,
                                                                          Outcome.MINUTE_QUOTA]
        clock.advance(60)
        assert ask_async(server, catalog, key=K2).outcome is Outcome.OK  # the 5th of the day
        daily = ask_async(server, catalog)
        assert (daily.outcome, daily.quota_value, daily.retry_after_s) == (Outcome.DAILY_QUOTA, 5, None)
        assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in daily.quota_ids
        assert daily.raw["error"]["details"][2] == {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                    "retryDelay": "22s"}
        clock.advance(120)
        assert ask_async(server, catalog, key=K2).outcome is Outcome.DAILY_QUOTA  # still the same day
        assert ask_async(server, catalog, key=K3).outcome is Outcome.OK
        clock.set(1000)  # the next day
        assert ask_async(server, catalog).outcome is Outcome.OK
        days = [(e["quota_day"], e["outcome"]) for e in server.log]
        stats = server.stats()
    assert days[-1] == ("fastday-1", "ok") and days[0] == ("fastday-0", "ok")
    assert stats["by_bucket"]["proj-a/gemini-2.5-flash"] == {"ok": 6, "minute_quota": 3, "daily_quota": 2}
    assert stats["day_usage"]["proj-a/gemini-2.5-flash"] == 1


def test_only_answered_requests_use_quota(catalog, oracle):
    with make_server(oracle, clock=ManualClock(1000), models={FLASH: {"rpd": 2}},
                     faults={"unavailable_503": 1.0}) as server:
        assert [ask_async(server, catalog).outcome for _ in range(3)] == [Outcome.TRANSIENT] * 3
        server.set(faults={"unavailable_503": 0.0})
        assert [ask_async(server, catalog).outcome for _ in range(3)] == [Outcome.OK, Outcome.OK,
                                                                          Outcome.DAILY_QUOTA]


def test_one_project_can_have_its_own_limits(catalog, oracle):
    limits = {"proj-b": {FLASH: {"rpd": 1}}, "proj-a": {FLASH: {"rpm": None}}}
    with make_server(oracle, clock=ManualClock(1000), models={FLASH: {"rpm": 2, "rpd": 5}},
                     project_limits=limits) as server:
        assert [ask_async(server, catalog, key=K3).outcome for _ in range(2)] == [Outcome.OK, Outcome.DAILY_QUOTA]
        assert [ask_async(server, catalog).outcome for _ in range(6)] == [Outcome.OK] * 5 + [Outcome.DAILY_QUOTA]
        server.set(models={FLASH: {"rpd": 10}})  # a runtime change keeps the project overrides
        assert server.config.limits("proj-a", FLASH) == (None, 10)
        assert server.config.limits("proj-b", FLASH) == (2, 1)


def test_a_configured_retry_delay_and_paid_tier_ids(catalog, oracle):
    with make_server(oracle, clock=ManualClock(1000), retry_delay_s=1.5, tier="paid",
                     models={FLASH: {"rpm": 1}}) as server:
        ask_async(server, catalog)
        result = ask_async(server, catalog)
    assert (result.outcome, result.retry_after_s) == (Outcome.MINUTE_QUOTA, 1.5)
    assert result.quota_ids == ["GenerateRequestsPerMinutePerProjectPerModel"]


def test_control_route_exhausts_a_bucket_and_changes_faults(catalog, oracle):
    clock = ManualClock(1000)
    with make_server(oracle, clock=clock) as server, httpx2.Client(base_url=server.base_url) as http:
        reply = http.post("/_control", json={"exhaust": {"project": "proj-a", "model": FLASH}})
        assert reply.status_code == 200
        assert K1 not in reply.text and key_fingerprint(K1) in reply.text
        assert ask_async(server, catalog).outcome is Outcome.DAILY_QUOTA
        assert ask_async(server, catalog, key=K3).outcome is Outcome.OK
        http.post("/_control", json={"faults": {"internal_500": 1.0}})
        assert ask_async(server, catalog, key=K3).outcome is Outcome.TRANSIENT
        bad = http.post("/_control", json={"faults": {"malformed": 2}})
        assert bad.status_code == 400 and "less than or equal to 1" in bad.json()["error"]["message"]
        assert server.config.faults.internal_500 == 1.0 and server.config.faults.malformed == 0.0
        http.post("/_control", json={"faults": {"internal_500": 0}, "reset_quotas": True})
        assert ask_async(server, catalog).outcome is Outcome.OK
        clock.advance(1000)
        server.exhaust("proj-b", FLASH)
        assert ask_async(server, catalog, key=K3).outcome is Outcome.DAILY_QUOTA


# -------------------------------------------------------------- the protocol, raw


def snake_body(text: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}],
            "system_instruction": {"parts": [{"text": "route"}]},
            "tools": [{"function_declarations": [
                {"name": "weather", "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}},
                                                   "required": ["location"]}},
                {"name": "no_tool", "parameters_json_schema": {"type": "object"}}]}],
            "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["weather",
                                                                                                  "no_tool"]}},
            "generation_config": {"temperature": 0, "thinking_config": {"thinking_budget": 0}}}


def camel_body(text: str) -> dict:
    body = snake_body(text)
    return {"contents": body["contents"], "systemInstruction": body["system_instruction"],
            "tools": [{"functionDeclarations": body["tools"][0]["function_declarations"]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather", "no_tool"]}},
            "generationConfig": {"temperature": 0}}


@pytest.mark.parametrize("shape", [snake_body, camel_body])
def test_success_is_exactly_200_json_with_function_calls_usage_and_ids(oracle, shape):
    with make_server(oracle) as server, httpx2.Client(base_url=server.base_url) as http:
        reply = http.post(f"/v1beta/models/{FLASH}:generateContent", json=shape("What's the weather in Paris?"),
                          headers={"x-goog-api-key": K1})
    assert (reply.status_code, reply.headers["content-type"]) == (200, JSON_CT)
    body = reply.json()
    cand = body["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["index"] == 0 and cand["content"]["role"] == "model"
    part = cand["content"]["parts"][0]
    assert part["functionCall"] == {"name": "weather", "args": {"location": "Paris"}} and part["thoughtSignature"]
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] > 0
    assert body["modelVersion"] == FLASH and len(body["responseId"]) == 16


def test_key_in_the_query_string_v1_and_a_path_prefix_are_accepted(oracle):
    with make_server(oracle) as server, httpx2.Client(base_url=server.base_url) as http:
        reply = http.post(f"/gateway/v1/models/{FLASH}:generateContent?key={K1}", json=camel_body("hi there"))
    assert reply.status_code == 200
    assert reply.json()["candidates"][0]["content"]["parts"][0]["functionCall"] == {
        "name": "no_tool", "args": {"reason": "a greeting"}}


def test_protocol_errors_have_the_real_bodies(oracle):
    with make_server(oracle) as server, httpx2.Client(base_url=server.base_url) as http:
        url = f"/v1beta/models/{FLASH}:generateContent"
        no_key = http.post(url, json=camel_body("hi"))
        empty = http.post(url, json={"contents": []}, headers={"x-goog-api-key": K1})
        bad_role = http.post(url, json={"contents": [{"role": "system", "parts": [{"text": "x"}]}]},
                             headers={"x-goog-api-key": K1})
        not_json = http.post(url, content=b"{nope", headers={"x-goog-api-key": K1})
        nowhere = http.get("/v1beta/files", headers={"x-goog-api-key": K1})
        missing = http.post("/v1beta/models/gemini-9:generateContent", json=camel_body("hi"),
                            headers={"x-goog-api-key": K1})
    assert no_key.status_code == 403 and no_key.json()["error"]["message"].startswith("Method doesn't allow")
    assert classify_error(403, no_key.json()).outcome is Outcome.BAD_KEY
    for reply in (empty, bad_role, not_json):
        assert reply.json() == {"error": {"code": 400, "message": "Request contains an invalid argument.",
                                          "status": "INVALID_ARGUMENT"}}
        assert classify_error(400, reply.json()).outcome is Outcome.BAD_REQUEST
    assert nowhere.status_code == 404 and nowhere.headers["content-type"] == JSON_CT
    assert missing.json()["error"]["message"].startswith("models/gemini-9 is not found for API version v1beta")


def test_mode_none_answers_text(oracle):
    body = camel_body("hi there")
    body["toolConfig"]["functionCallingConfig"] = {"mode": "NONE"}
    with make_server(oracle) as server, httpx2.Client(base_url=server.base_url) as http:
        reply = http.post(f"/v1beta/models/{FLASH}:generateContent", json=body, headers={"x-goog-api-key": K1})
    part = reply.json()["candidates"][0]["content"]["parts"][0]
    assert "functionCall" not in part and "no_tool" in part["text"]


def test_structured_output_answers_json_text_through_a_pluggable_hook(oracle):
    schema = {"type": "object", "properties": {"calls": {"type": "array"}}}
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    with make_server(oracle) as server, make_client(K1, base_url=server.base_url) as client:
        default = client.models.generate_content(model=FLASH, contents="What's the weather in Paris?", config=config)
        seen = []

        def packed(request, answer_for):
            queries = request.last_user_text.split("\n")
            seen.append(queries)
            return [{"query": q, "tools": [n for n, _ in answer_for(q).parts()]} for q in queries]

        server.set_structured_answer(packed)
        custom = client.models.generate_content(model=FLASH, contents="hi there\nWhat's the weather in Paris?",
                                                config=config)
    assert json.loads(default.text) == {"calls": [{"tool": "weather", "args": {"location": "Paris"}}], "reason": None}
    assert json.loads(custom.text) == [{"query": "hi there", "tools": ["no_tool"]},
                                       {"query": "What's the weather in Paris?", "tools": ["weather"]}]
    assert seen == [["hi there", "What's the weather in Paris?"]]


def test_stats_route_counts_by_key_fingerprint_bucket_and_outcome(catalog, oracle, tmp_path):
    log_path = tmp_path / "log" / "fake.jsonl"
    with make_server(oracle, log_path=log_path, faults={"unavailable_503": 0.0}) as server:
        ask_async(server, catalog)
        ask_async(server, catalog, key=K3, query="hello?")
        ask_async(server, catalog, key="AIzaNOPE")
        stats = httpx2.get(server.base_url + "/_stats").json()
        log = server.log
    assert stats["requests"] == 3 and stats["paid"] == 2 and stats["unknown_queries"] == 1
    assert stats["by_key"] == {key_fingerprint(K1): {"ok": 1}, key_fingerprint(K3): {"ok": 1},
                               key_fingerprint("AIzaNOPE"): {"bad_key": 1}}
    assert stats["by_bucket"] == {"proj-a/gemini-2.5-flash": {"ok": 1}, "proj-b/gemini-2.5-flash": {"ok": 1}}
    assert stats["by_outcome"] == {"ok": 2, "bad_key": 1}
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert lines == log
    assert [e["query"] for e in log[:2]] == ["what's the weather in paris", "hello"]
    assert all(k not in log_path.read_text() + json.dumps(stats) for k in (K1, K3, "AIzaNOPE"))


def test_faults_are_seeded_by_seed_and_request_number(catalog, oracle):
    def run(seed):
        with make_server(oracle, seed=seed, faults={"unavailable_503": 0.3, "malformed": 0.2}) as server, \
                httpx2.Client(base_url=server.base_url, headers={"x-goog-api-key": K1}) as http:
            for _ in range(30):
                http.post(f"/v1beta/models/{FLASH}:generateContent", json=camel_body("hi there"))
            return [e["fault"] for e in server.log]

    first, again, other = run(7), run(7), run(8)
    assert first == again and first != other
    assert {"unavailable_503", "malformed", None} == set(first)


# -------------------------------------------------------------- oracle and noise

CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Delhi", "Quito", "Perth", "Dakar", "Hanoi"]


def noisy_oracle() -> tuple[Oracle, dict[str, Label]]:
    gold = {}
    for city in CITIES:
        gold[f"weather in {city}"] = Label.model_validate({"calls": [{"tool": "weather", "args": {"location": city}}]})
        gold[f"search flights to {city}"] = Label.model_validate(
            {"calls": [{"tool": "web_search", "args": {"query": f"flights to {city}"}}]})
        gold[f"what is 12 * {len(city)} in {city}"] = Label.model_validate(
            {"calls": [{"tool": "calculator", "args": {"expression": f"12 * {len(city)}"}}]})
        gold[f"good night {city}"] = Label(calls=[])
    oracle = Oracle()
    for q, label in gold.items():
        oracle.add(q, label.canonical())
    return oracle, gold


def test_noise_is_fixed_per_query_differs_per_model_and_is_logged(catalog):
    oracle, gold = noisy_oracle()
    cfg = {"models": {FLASH: {"noise_rate": 0.3}, LITE: {"noise_rate": 0.0}}, "open_keys": True, "seed": 3}
    with make_server(oracle, **cfg) as server:
        async def label_all(model):
            client = make_client(K1, base_url=server.base_url)
            prompt = build_prompt(catalog)
            try:
                return {q: await ask_teacher(client, model=model, prompt=prompt, catalog=catalog, query=q)
                        for q in gold}
            finally:
                await client.aio.aclose()

        first, retry, lite = (CLIENTS.runner.run(label_all(m)) for m in (FLASH, FLASH, LITE))
        log = server.log
    assert all(r.outcome is Outcome.OK for r in [*first.values(), *retry.values(), *lite.values()])
    assert {q: r.label for q, r in first.items()} == {q: r.label for q, r in retry.items()}
    wrong = {q for q, r in first.items() if r.label != gold[q]}
    noised = {e["query"] for e in log if e["noised"]}
    assert noised == {q.lower() for q in wrong}
    assert 4 <= len(wrong) <= 22  # 40 queries at 0.3
    assert all(r.label == gold[q] for q, r in lite.items())  # a zero-noise model relabels them right
    assert any(first[q].label.is_no_tool != gold[q].is_no_tool for q in wrong)  # flips to and from no tool


def test_noise_with_another_seed_picks_other_queries(catalog):
    from tooldistill.distill.fake_gemini.oracle import noise_draw

    queries = [f"q{i}" for i in range(200)]
    picked = {s: {q for q in queries if noise_draw(s, FLASH, q) < 0.2} for s in (1, 2)}
    assert picked[1] != picked[2] and 20 <= len(picked[1]) <= 60


def test_oracle_from_a_workspace_database_gold_labels(db, tmp_path, catalog):
    weather = Label.model_validate({"calls": [{"tool": "weather", "args": {"location": "Kyoto"}}]})
    insert_queries(db, [NewQuery(text="Weather in Kyoto?", source="t", gold=weather),
                        NewQuery(text="thanks a lot", source="t", gold=Label(calls=[])),
                        NewQuery(text="no gold here", source="t")])
    with make_server(oracle_db=tmp_path / "test.db") as server:
        assert len(server.oracle) == 2
        assert ask_async(server, catalog, "weather in kyoto").label == weather
        thanks = ask_async(server, catalog, "Thanks a lot!")
        assert thanks.label.is_no_tool and thanks.label.reason != "unknown"
        assert ask_async(server, catalog, "no gold here").label.reason == "unknown"
        insert_queries(db, [NewQuery(text="and thanks again", source="t", gold=Label(calls=[]))])
        httpx2.post(server.base_url + "/_control", json={"reload_oracle": True})
        assert len(server.oracle) == 3


def test_oracle_jsonl_and_its_errors(tmp_path, catalog):
    good = tmp_path / "oracle.jsonl"
    good.write_text(json.dumps({"query": "Weather in Kyoto", "calls": [{"name": "weather",
                                                                      "args": {"location": "Kyoto"}}]}) + "\n\n" +
                    json.dumps({"query": "hey", "label": []}) + "\n")
    assert len(Oracle.from_jsonl(good)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "x", "calls": []}) + "\n" + json.dumps({"calls": []}) + "\n")
    with pytest.raises(InputError) as info:
        Oracle.from_jsonl(bad)
    assert str(info.value) == (f"{bad}:2: not an oracle line (missing field 'query'); "
                               'expected {"query": ..., "calls": [...]}')


# -------------------------------------------------------------- config and CLI


def test_config_loads_from_yaml_and_rejects_unknown_fields(tmp_path):
    path = tmp_path / "fake.yaml"
    path.write_text("keys: {k1: p1, k2: null}\nmodels:\n  gemini-2.5-flash: {rpm: 5, rpd: 20, noise_rate: 0.1}\n"
                    "faults: {unavailable_503: 0.1}\nlatency_s: [0, 0.01]\n")
    cfg = load_fake_config(path, seed=4)
    assert (cfg.seed, cfg.models[FLASH].rpd, cfg.faults.unavailable_503) == (4, 20, 0.1)
    assert cfg.project_of("k2") == f"key-{key_fingerprint('k2').replace('-', '')}" and cfg.project_of("k3") is None
    path.write_text("fautls: {unavailable_503: 0.1}\n")
    with pytest.raises(ConfigError, match=r"fake.yaml: field 'fautls': Extra inputs are not permitted"):
        load_fake_config(path)


def test_cli_rejects_a_bad_config_in_one_line(cli, tmp_path):
    path = tmp_path / "fake.yaml"
    path.write_text("faults: {malformed: 1.5}\n")
    result = cli("distill", "fake-server", "--config", path)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {path}: field 'faults.malformed': Input should be less than or equal "
                                     "to 1")
    both = cli("distill", "fake-server", "--oracle", "a.jsonl", "--oracle-db", "b.db")
    assert both.exit_code == 1 and "give either oracle or oracle_db, not both" in both.stderr


def test_cli_rejects_a_bad_oracle_line_as_bad_input(cli, tmp_path):
    (tmp_path / "o.jsonl").write_text('{"query": "hi", "calls": []}\n{"query": "x", "calls": 5}\n')
    result = cli("distill", "fake-server", "--oracle", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: {tmp_path / 'o.jsonl'}:2: not an oracle line (expected a list of calls, "
                                     'got int); expected {"query": ..., "calls": [...]}')


def test_cli_serves_in_another_process_until_interrupted(tmp_path, catalog):
    (tmp_path / "oracle.jsonl").write_text(json.dumps({"query": "weather in Kyoto",
                                                       "calls": [{"tool": "weather", "args": {"location": "Kyoto"}}]}))
    (tmp_path / "fake.yaml").write_text(f"models: {{{FLASH}: {{rpd: 1}}}}\n")
    port_file, log = tmp_path / "port", tmp_path / "requests.jsonl"
    env = {**os.environ, "GEMINI_API_KEYS": f"{K1}@proj-x,{K2}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tooldistill", "distill", "fake-server", "--config", "fake.yaml", "--oracle",
         "oracle.jsonl", "--port-file", str(port_file), "--day-seconds", "3600", "--log", str(log),
         "--keys-from-env"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        port = int(port_file.read_text())

        class Remote:
            base_url = f"http://127.0.0.1:{port}"

        assert ask_async(Remote, catalog, "Weather in Kyoto").label.tools == ["weather"]
        assert ask_async(Remote, catalog, "Weather in Kyoto", key=K2).outcome is Outcome.OK  # own project
        assert ask_async(Remote, catalog, "Weather in Kyoto").outcome is Outcome.DAILY_QUOTA
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert f"fake Gemini listening on http://127.0.0.1:{port}" in stderr
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["project"], e["outcome"]) for e in entries] == [
        ("proj-x", "ok"), (f"key-{key_fingerprint(K2).replace('-', '')}", "ok"), ("proj-x", "daily_quota")]
    assert entries[0]["quota_day"].startswith("fastday-")
    assert K1 not in log.read_text() + stderr


def test_a_model_with_rpm_0_answers_429_limit_0_which_the_client_reads_as_not_on_this_tier(oracle):
    from tooldistill.distill.fake_gemini import ModelSpec

    with make_server(oracle, models={FLASH: ModelSpec(rpm=0)}) as server, \
            httpx2.Client(base_url=server.base_url) as http:
        reply = http.post(f"/v1beta/models/{FLASH}:generateContent", json=camel_body("hi there"),
                          headers={"x-goog-api-key": K1})
    assert reply.status_code == 429 and "limit: 0" in reply.json()["error"]["message"]
    assert classify_error(429, reply.json()).outcome is Outcome.DAILY_QUOTA  # quotaValue 0: not on this tier


def test_a_client_gone_mid_request_leaves_no_traceback(oracle, capfd):
    import socket
    import struct

    with make_server(oracle, latency_s=(0.3, 0.3)) as server:
        body = json.dumps(camel_body("hi there")).encode()
        for missing in (100, 0):  # reset while the server reads the body; reset before it writes the answer
            conn = socket.create_connection(("127.0.0.1", server.port))
            conn.sendall(f"POST /v1beta/models/{FLASH}:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: "
                         f"{K1}\r\nContent-Type: application/json\r\nContent-Length: {len(body) + missing}\r\n\r\n"
                         .encode() + body)
            time.sleep(0.05)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
            conn.close()
        time.sleep(0.6)  # the slow answer meets the closed connection
        with httpx2.Client(base_url=server.base_url) as http:  # and the server still serves
            assert http.post(f"/v1beta/models/{FLASH}:generateContent", json=camel_body("hi there"),
                             headers={"x-goog-api-key": K1}).status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_packed_requests_are_answered_per_message_with_the_same_noise(catalog):
    from tooldistill.distill.fake_gemini import ModelSpec
    from tooldistill.distill.packing import ask_packed

    oracle = Oracle()
    texts = [f"weather in town {i}" for i in range(12)]
    for t in texts:
        oracle.add(t, [{"tool": "weather", "args": {"location": t[11:]}}])
    prompt = build_prompt(catalog)
    with make_server(oracle, models={FLASH: ModelSpec(noise_rate=0.4)}, seed=3) as server:
        singles = [ask_async(server, catalog, t) for t in texts]

        client = CLIENTS.client("async", K1, server.base_url, 10.0)
        result = CLIENTS.runner.run(ask_packed(client, model=FLASH, prompt=prompt, catalog=catalog, queries=texts))
        noised = server.stats()["noised"]
    assert result.request.outcome is Outcome.OK and len(result.items) == 12
    assert [r.label for r in result.items] == [s.label for s in singles]
    assert noised >= 2 * 2  # some answers were noised, the same ones packed and alone
