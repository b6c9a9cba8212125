"""Packing (--pack K): K queries per request through a structured-output schema, each answer checked on its own,
a missing or invalid answer sent back to be asked alone; the fake server answers packed requests from its oracle
with the same seeded noise as single ones. Real google-genai client, real HTTP on 127.0.0.1."""

import json

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, get_catalog, insert_queries, open_db
from tooldistill.distill import DistillSettings, build_prompt, parse_keys, run_distill
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec, default_structured_answer
from tooldistill.distill.packing import pack_schema

KEYS = {"pack-test-key-1": "p1", "pack-test-key-2": "p2"}
FLASH = "gemini-2.5-flash"


def gold_queries(n):
    """Weather, calculator and no-tool queries with their gold labels."""
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(NewQuery(f"weather in village {i}", "t", gold=parse_label(
                [{"tool": "weather", "args": {"location": f"village {i}"}}])))
        elif i % 3 == 1:
            out.append(NewQuery(f"what is {i} times 7", "t", gold=parse_label(
                [{"tool": "calculator", "args": {"expression": f"{i}*7"}}])))
        else:
            out.append(NewQuery(f"good morning friend number {i}", "t", gold=parse_label([])))
    return out


def make_db(path, n):
    db = open_db(path)
    get_catalog(db)
    insert_queries(db, gold_queries(n))
    return db


def labels_by_text(db):
    return {t: (c, v) for t, c, v in db.execute(
        "SELECT q.text, l.calls, l.valid FROM labels l JOIN queries q ON q.id = l.query_id")}


def run(db, server, *, pack, **kw):
    settings = DistillSettings(models=[FLASH], base_url=server.base_url, rpm=0, rpd=0, pack=pack,
                               backoff_base_s=0.01, concurrency=4, **kw)
    return run_distill(db, catalog=get_catalog(db), keys=parse_keys("pack-test-key-1@p1,pack-test-key-2@p2"),
                       settings=settings)


def test_packed_runs_store_the_labels_single_requests_store_with_k_times_fewer_requests(tmp_path):
    oracle = make_db(tmp_path / "oracle.db", 24)
    oracle.close()
    config = FakeGeminiConfig(keys=KEYS, oracle_db=tmp_path / "oracle.db", seed=5,
                              models={FLASH: ModelSpec(noise_rate=0.3)}, log_bodies=True)
    with FakeGemini(config) as server:
        single_db, packed_db = make_db(tmp_path / "single.db", 24), make_db(tmp_path / "packed.db", 24)
        single = run(single_db, server, pack=1)
        before = server.stats()["paid"]
        packed = run(packed_db, server, pack=8)
        packed_paid = server.stats()["paid"] - before
        bodies = [e["body"] for e in server.log if e.get("body") and "responseJsonSchema" in json.dumps(e["body"])]
        noised = server.stats()["noised"]
    assert (single.labels + single.rejected, single.paid) == (24, 24)
    assert (packed.labels + packed.rejected, packed.paid, packed_paid) == (24, 3, 3)
    assert packed.packed_requests == 3 and packed.unpacked == 0 and packed.labels_per_request == 8.0
    assert labels_by_text(packed_db) == labels_by_text(single_db)  # label for label, noise included
    assert noised >= 2 * 4  # the seeded noise flipped some answers, the same ones in both runs
    body = bodies[0]
    assert len(json.loads(body["contents"][0]["parts"][0]["text"])["messages"]) == 8
    assert body["generationConfig"]["responseMimeType"] == "application/json" and "tools" not in body
    # every label of the packed run says which pack and position it came from
    raw = json.loads(packed_db.execute("SELECT raw FROM labels LIMIT 1").fetchone()[0])
    assert raw["packed"]["size"] == 8 and 1 <= raw["packed"]["index"] <= 8
    sizes = packed_db.execute("SELECT pack_size, count(*) FROM attempts GROUP BY 1").fetchall()
    assert sizes == [(8, 3)]


def test_a_missing_or_invalid_answer_goes_back_and_is_asked_alone(tmp_path):
    db = make_db(tmp_path / "ws.db", 8)
    texts = [r[0] for r in db.execute("SELECT text FROM queries ORDER BY id")]

    def spoil(request, answer_for):
        value = default_structured_answer(request, answer_for)
        answers = value["answers"]
        answers[0] = {**answers[0], "calls": [{"name": "teleport", "args": {}}]}  # unknown tool
        answers[1] = {**answers[1], "calls": [{"name": "weather", "args": {"town": "x"}}]}  # fails the schema
        return {"answers": answers[:-1]}  # and the last one is missing

    with FakeGemini(FakeGeminiConfig(keys=KEYS, oracle_db=tmp_path / "ws.db", log_bodies=True),
                    structured_answer=spoil) as server:
        summary = run(db, server, pack=8)
        asked = [e["query"] for e in server.log if e.get("body") and "tools" in e["body"]]
    assert (summary.packed_requests, summary.unpacked, summary.paid) == (1, 3, 4)
    assert summary.labels == 8 and summary.rejected == 0
    assert sorted(asked) == sorted(t.lower() for t in (texts[0], texts[1], texts[7]))  # asked alone, once each
    gold = {t: json.loads(c) for t, c in db.execute("SELECT text, gold_calls FROM queries")}
    assert {t: json.loads(c) for t, (c, v) in labels_by_text(db).items()} == gold
    assert db.execute("SELECT count(*) FROM jobs WHERE unpack = 1").fetchone()[0] == 3


def test_a_failed_packed_request_counts_an_attempt_on_every_query_it_carried(tmp_path):
    db = make_db(tmp_path / "ws.db", 6)
    config = FakeGeminiConfig(keys=KEYS, oracle_db=tmp_path / "ws.db", faults={"unavailable_503": 1.0})
    with FakeGemini(config) as server:
        summary = run(db, server, pack=6, max_attempts=2)
    assert summary.requests == {"transient": 2} and summary.dead == 6 and summary.labels == 0
    assert db.execute("SELECT state, attempts, count(*) FROM jobs GROUP BY 1, 2").fetchall() == [("dead", 2, 6)]


def test_the_pack_schema_offers_each_tool_with_its_own_parameters(catalog):
    prompt = build_prompt(catalog)
    branches = pack_schema(prompt)["properties"]["answers"]["items"]["properties"]["calls"]["items"]["anyOf"]
    by_name = {b["properties"]["name"]["enum"][0]: b["properties"]["args"] for b in branches}
    assert set(by_name) == {d["name"] for d in prompt.declarations}
    assert by_name["weather"] == next(d["parameters_json_schema"] for d in prompt.declarations
                                      if d["name"] == "weather")
