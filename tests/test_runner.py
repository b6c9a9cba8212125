"""The runner: each outcome's effect, stop and abandon, cache, relabel jobs, exhaustion; in-process and over HTTP."""

import asyncio
import threading
import time

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, insert_queries
from tooldistill.db import queue
from tooldistill.distill import DistillSettings, FastClock, Runner, build_prompt, parse_keys, run_distill
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec
from tooldistill.distill.outcomes import Outcome, TeacherResult
from tooldistill.errors import Interrupted, NeedsKeyError, QuotaExhausted

KEYS = "test-key-one@p1,test-key-two@p2"


class ScriptedTeacher:
    """A teacher that answers from a script ``answer(env_var, model, query, n) -> TeacherResult``."""

    prompt_version = "pv-test"

    def __init__(self, answer=None, *, delay=0.0):
        self.answer = answer or (lambda env_var, model, query, n: ok(query))
        self.delay = delay
        self.history: list[tuple[str, str, str]] = []

    async def ask(self, key, *, model, query, temperature):
        self.history.append((key.env_var, model, query))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer(key.env_var, model, query, len(self.history))

    async def aclose(self):
        pass


def ok(query):
    return TeacherResult(Outcome.OK, label=parse_label([{"tool": "weather", "args": {"location": query}}]),
                         raw={"candidates": []}, status_code=200)


def settings(**kw):
    return DistillSettings(**{"models": ["m"], "rpm": 0, "rpd": 0, "concurrency": 2, "backoff_base_s": 0.001,
                              "backoff_max_s": 0.01, "grace_s": 5, **kw})


def add_queries(db, texts):
    return insert_queries(db, [NewQuery(t, "test") for t in texts]).ids


def job_states(db):
    return {text: (st, err) for text, st, err in db.execute(
        "SELECT q.text, j.state, j.last_error FROM jobs j JOIN queries q ON q.id = j.query_id")}


def test_each_outcome_does_what_the_fault_table_says(db, catalog):
    add_queries(db, ["fine", "garbled", "flaky", "broken", "hopeless"])
    seen = {}

    def answer(env_var, model, query, n):
        seen[query] = seen.get(query, 0) + 1
        if query == "garbled":
            return TeacherResult(Outcome.REJECTED, reject_reason="finish reason MALFORMED_FUNCTION_CALL",
                                 status_code=200, raw={"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]})
        if query == "flaky" and seen[query] == 1:
            return TeacherResult(Outcome.TRANSIENT, status_code=503, message="The model is overloaded.")
        if query == "broken":
            return TeacherResult(Outcome.BAD_REQUEST, status_code=400, message="Request contains an invalid argument.")
        if query == "hopeless":
            return TeacherResult(Outcome.TRANSIENT, status_code=500, message="An internal error has occurred.")
        return ok(query)

    teacher = ScriptedTeacher(answer)
    summary = run_distill(db, catalog=catalog, keys=parse_keys(KEYS), settings=settings(max_attempts=3),
                          teacher=teacher)
    assert (summary.labels, summary.rejected, summary.failed, summary.dead) == (2, 1, 1, 1)
    assert seen == {"fine": 1, "garbled": 1, "flaky": 2, "broken": 1, "hopeless": 3}
    states = job_states(db)
    assert states["broken"] == ("failed", "bad_request: 400 Request contains an invalid argument.")
    assert states["hopeless"] == ("dead", "transient: 500 An internal error has occurred.")
    rejected = db.execute("SELECT valid, reject_reason, calls FROM labels l JOIN queries q ON q.id = l.query_id"
                          " WHERE q.text = 'garbled'").fetchall()
    assert rejected == [(0, "finish reason MALFORMED_FUNCTION_CALL", None)]
    outcomes = dict(db.execute("SELECT outcome, count(*) FROM attempts GROUP BY 1").fetchall())
    assert outcomes == {"ok": 2, "rejected": 1, "transient": 4, "bad_request": 1} == summary.requests
    assert db.execute("SELECT count(*) FROM attempts WHERE slot_id IS NULL OR project IS NULL OR model IS NULL"
                      " OR latency_ms IS NULL OR sent_at IS NULL").fetchone()[0] == 0


def test_quota_and_key_outcomes_release_the_job_without_counting_an_attempt(db, catalog):
    add_queries(db, ["only one"])
    script = iter([TeacherResult(Outcome.MINUTE_QUOTA, status_code=429, retry_after_s=0.01, quota_value=5),
                   TeacherResult(Outcome.BARE_429, status_code=429), ok("only one")])
    teacher = ScriptedTeacher(lambda *a: next(script))
    run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher,
                settings=settings(minute_floor_s=0.0, backoff_base_s=0.01))
    assert db.execute("SELECT state, attempts FROM jobs").fetchall() == [("done", 1)]
    assert [o for (o,) in db.execute("SELECT outcome FROM attempts ORDER BY id")] == [
        "minute_quota", "bare_429", "ok"]


def test_daily_quota_stops_with_the_reset_time_then_wait_resumes_after_it(db, catalog):
    add_queries(db, [f"q{i}" for i in range(4)])
    clock = FastClock(day_seconds=1.5)
    first_day = clock.day()

    def answer(env_var, model, query, n):
        if clock.day() == first_day:
            return TeacherResult(Outcome.DAILY_QUOTA, status_code=429, quota_value=20)
        return ok(query)

    teacher = ScriptedTeacher(answer)
    with pytest.raises(QuotaExhausted) as info:
        run_distill(db, catalog=catalog, keys=parse_keys("only-key@p1"), teacher=teacher, clock=clock,
                    settings=settings(concurrency=1))
    assert info.value.exit_code == 75 and "resume" in str(info.value).lower() and "--wait" in str(info.value)
    assert info.value.resets_at == clock.next_reset() or clock.day() != first_day
    assert len(teacher.history) == 1  # one request learned the bucket is gone; none after it
    assert db.execute("SELECT state, attempts FROM jobs").fetchall() == [("pending", 0)] * 4
    events = []
    summary = run_distill(db, catalog=catalog, keys=parse_keys("only-key@p1"), teacher=teacher, clock=clock,
                          settings=settings(concurrency=1), wait=True, progress=events.append)
    assert summary.labels == 4 and summary.stopped == "done"
    assert clock.day() != first_day
    assert len(teacher.history) - 1 <= 5  # at most one more day-one 429 (the other run's bucket was known)


def test_a_bad_key_is_said_once_and_the_good_key_carries_on(db, catalog):
    add_queries(db, [f"q{i}" for i in range(6)])

    def answer(env_var, model, query, n):
        if env_var == "GEMINI_API_KEYS[0]":
            return TeacherResult(Outcome.BAD_KEY, status_code=400, message="API key not valid.")
        return ok(query)

    events, teacher = [], ScriptedTeacher(answer)
    summary = run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher, progress=events.append,
                          settings=settings(models=["m", "n"], concurrency=1))
    loud = [e.message for e in events if e.info["kind"] == "key_invalid"]
    assert len(loud) == 1 and "GEMINI_API_KEYS[0]" in loud[0] and "test-key-one" not in loud[0]
    assert summary.labels == 6
    assert sum(1 for env_var, _, _ in teacher.history if env_var == "GEMINI_API_KEYS[0]") == 1
    with pytest.raises(NeedsKeyError, match="every API key was rejected"):
        queue.enqueue(db, [1], purpose="relabel", params={"vote": 0})
        run_distill(db, catalog=catalog, keys=parse_keys("test-key-one@p1"), teacher=teacher, settings=settings())


def test_relabel_jobs_use_their_pinned_model_and_get_fresh_answers(db, catalog):
    ids = add_queries(db, ["a", "b"])
    teacher = ScriptedTeacher()
    run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher, settings=settings())
    for vote in range(2):
        queue.enqueue(db, ids, purpose="relabel", model="pro", params={"vote": vote})
    summary = run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher, settings=settings())
    assert summary.labels == 4 and summary.cache_hits == 0
    assert sorted(m for _, m, _ in teacher.history) == ["m", "m", "pro", "pro", "pro", "pro"]
    rows = db.execute("SELECT purpose, model, count(*) FROM labels GROUP BY 1, 2").fetchall()
    assert rows == [("label", "m", 2), ("relabel", "pro", 4)]


def test_the_cache_answers_a_repeated_question_without_a_request(db, catalog):
    add_queries(db, [f"q{i}" for i in range(5)])
    teacher = ScriptedTeacher()
    run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher, settings=settings())
    assert len(teacher.history) == 5
    again = run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher, settings=settings())
    assert (again.enqueued, again.requests, len(teacher.history)) == (0, {}, 5)
    db.execute("DELETE FROM labels")
    db.execute("DELETE FROM jobs")
    events = []
    rerun = run_distill(db, catalog=catalog, keys=parse_keys(KEYS), teacher=teacher, settings=settings(),
                        progress=events.append)
    assert (rerun.cache_hits, rerun.labels, len(teacher.history)) == (5, 5, 5)
    assert db.execute("SELECT count(*) FROM jobs WHERE cache_hit = 1").fetchone()[0] == 5


def test_stop_lets_in_flight_requests_finish_and_gives_back_leases(db, catalog):
    add_queries(db, [f"q{i}" for i in range(20)])
    teacher = ScriptedTeacher(delay=0.3)
    runner = Runner(db, catalog=catalog, keys=parse_keys(KEYS), settings=settings(concurrency=3), teacher=teacher)
    threading.Timer(0.4, runner.stop).start()
    with pytest.raises(Interrupted) as info:
        runner.run()
    assert info.value.exit_code == 130 and "resume with: tooldistill distill run" in str(info.value)
    done = db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0]
    assert done == len(teacher.history) == info.value.summary.labels  # every request sent was finished
    assert db.execute("SELECT count(*) FROM jobs WHERE state = 'leased'").fetchone()[0] == 0
    assert 0 < done < 20


def test_a_second_stop_abandons_in_flight_requests_at_once(db, catalog):
    add_queries(db, [f"q{i}" for i in range(4)])
    runner = Runner(db, catalog=catalog, keys=parse_keys(KEYS), settings=settings(concurrency=2),
                    teacher=ScriptedTeacher(delay=30))
    threading.Timer(0.3, runner.stop).start()
    threading.Timer(0.5, runner.stop).start()
    start = time.monotonic()
    with pytest.raises(Interrupted):
        runner.run()
    assert time.monotonic() - start < 5
    assert db.execute("SELECT state, attempts FROM jobs").fetchall() == [("pending", 0)] * 4
    assert db.execute("SELECT outcome, count(*) FROM attempts GROUP BY 1").fetchall() == [("abandoned", 2)]


# ---------------------------------------------------------------- over real HTTP


@pytest.fixture
def gold_db(db):
    texts = {f"weather in town {i}": [{"tool": "weather", "args": {"location": f"town {i}"}}] for i in range(8)}
    texts["hello there"] = []
    insert_queries(db, [NewQuery(t, "test", gold=parse_label(calls)) for t, calls in texts.items()])
    return db


def test_labels_over_http_match_the_oracle_and_record_prompt_version(gold_db, catalog, tmp_path):
    cfg = FakeGeminiConfig(keys={"test-key-one": "p1", "test-key-two": "p2"}, oracle_db=tmp_path / "test.db")
    with FakeGemini(cfg) as server:
        summary = run_distill(gold_db, catalog=catalog, keys=parse_keys(KEYS),
                              settings=settings(models=["gemini-2.5-flash"], base_url=server.base_url))
        assert server.stats()["paid"] == 9
    assert summary.labels == 9
    version = build_prompt(catalog).version
    rows = gold_db.execute("SELECT q.gold_calls, l.calls, l.prompt_version, l.catalog_hash, l.model, l.raw"
                           " FROM labels l JOIN queries q ON q.id = l.query_id").fetchall()
    assert all(gold == calls for gold, calls, *_ in rows)
    assert {(pv, ch, m) for _, _, pv, ch, m, _ in rows} == {(version, catalog.hash, "gemini-2.5-flash")}
    assert all('"candidates"' in raw for *_, raw in rows)
    assert gold_db.execute("SELECT min(total_tokens) FROM attempts").fetchone()[0] > 0


def test_over_http_a_daily_429_stops_the_bucket_for_the_rest_of_its_day(gold_db, catalog, tmp_path):
    day = 3.0
    cfg = FakeGeminiConfig(keys={"test-key-one": "p1"}, oracle_db=tmp_path / "test.db", day_seconds=day,
                           models={"gemini-2.5-flash": ModelSpec(rpd=4)})
    with FakeGemini(cfg) as server:
        opts = settings(models=["gemini-2.5-flash"], base_url=server.base_url, day_seconds=day, concurrency=1)
        clock = FastClock(day)
        while clock.next_reset() - clock.now() < 2.0:  # start early in a fake day: the first run must see a 429
            time.sleep(0.05)
        with pytest.raises(QuotaExhausted):
            run_distill(gold_db, catalog=catalog, keys=parse_keys("test-key-one@p1"), settings=opts)
        summary = run_distill(gold_db, catalog=catalog, keys=parse_keys("test-key-one@p1"), settings=opts, wait=True)
        log = server.log
    assert gold_db.execute("SELECT count(*) FROM labels WHERE valid = 1").fetchone()[0] == 9
    assert summary.stopped == "done"
    first_429 = {}
    for e in log:
        if e["outcome"] == "daily_quota":
            first_429.setdefault(e["quota_day"], e["t"])
    assert first_429
    late = [e for e in log if e["quota_day"] in first_429 and e["t"] > first_429[e["quota_day"]]]
    assert late == []
