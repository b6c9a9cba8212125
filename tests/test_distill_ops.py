"""distill retry, --votes, plan, prompt files and versions, status rates and cost, queue and settings follow-ups:
through the real CLI against the fake Gemini server on 127.0.0.1, state checked through the database."""

import json

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, insert_queries, open_db
from tooldistill.db import queue
from tooldistill.distill.clock import ManualClock
from tooldistill.distill.settings import load_settings
from tooldistill.config import load_workspace
from tooldistill.errors import ConfigError

from labeling_workspace import FLASH, KEY_A, KEY_B, LITE, labeling_workspace, serve

BAD = "AIzaOPS-unknown-5e6f"


@pytest.fixture
def ws(workspace, monkeypatch):
    """A workspace with 12 gold-labeled queries (weather and greetings) and fast limits, as the current folder."""
    return labeling_workspace(workspace, monkeypatch, [NewQuery(f"weather in village {i}", "t", gold=parse_label(
        [{"tool": "weather", "args": {"location": f"village {i}"}}])) for i in range(9)]
        + [NewQuery(f"hello friend {i}", "t", gold=parse_label([])) for i in range(3)], concurrency=4)


def query(ws, sql, params=()):
    db = open_db(ws / "tooldistill.db")
    try:
        return db.execute(sql, list(params)).fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------- retry


def test_retry_puts_back_only_what_the_filters_name(ws, cli, monkeypatch):
    with serve(ws, faults={"malformed": 0.5}, seed=4) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        first = json.loads(cli("distill", "run", "--json").stdout)
        rejected = first["rejected"]
        assert rejected >= 2 and first["labels"] + rejected == 12
        none = json.loads(cli("distill", "retry", "--rejected", "--reason", "SAFETY", "--json").stdout)
        assert none["total"] == 0 and none["matched"] == {"rejected": 0}
        other = json.loads(cli("distill", "retry", "--rejected", "--model", "gemini-9", "--json").stdout)
        assert other["total"] == 0
        back = json.loads(cli("distill", "retry", "--rejected", "--reason", "malformed", "--json").stdout)
        assert back["rejected"] == back["cache_dropped"] == rejected
        server.set(faults={"malformed": 0.0})
        again = json.loads(cli("distill", "run", "--json").stdout)
    assert again["labels"] == rejected and again["paid"] == rejected and again["cache_hits"] == 0
    rows = query(ws, "SELECT valid, count(*) FROM labels GROUP BY 1")
    assert dict(rows) == {0: rejected, 1: 12}  # the rejections stay stored beside the new labels


def test_retry_failed_and_dead_by_reason(ws, cli):
    db = open_db(ws / "tooldistill.db")
    db.execute("INSERT INTO jobs (query_id, purpose, state, attempts, last_error, cache_hit, created_at, updated_at)"
               " VALUES (1, 'label', 'failed', 1, 'bad_request: 400 Request contains an invalid argument.', 0, 'x',"
               " 'x'), (2, 'label', 'dead', 5, 'transient: 503 The model is overloaded.', 0, 'x', 'x'),"
               " (3, 'label', 'dead', 5, 'transient: ConnectError', 0, 'x', 'x')")
    db.conn.commit()
    db.close()
    only = json.loads(cli("distill", "retry", "--dead", "--reason", "overloaded", "--json").stdout)
    assert (only["dead"], only["failed"], only["matched"]) == (1, 0, {"dead": 1})
    rest = cli("distill", "retry")
    assert rest.exit_code == 0 and "back in the queue: 2 job(s) (1 failed, 1 dead, 0 rejected" in rest.stdout
    assert query(ws, "SELECT state, attempts FROM jobs ORDER BY id") == [("pending", 0)] * 3
    empty = cli("distill", "retry", "--reason", " ")
    assert empty.exit_code == 2 and empty.stderr.strip().splitlines() == [
        "Error: field 'reason': --reason must not be empty; give the text to look for in the error"]


# ---------------------------------------------------------------- votes


def test_votes_collect_labels_from_distinct_models_for_adjudication(ws, cli, monkeypatch):
    with serve(ws) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        result = cli("distill", "run", "--votes", "3", "--json")
        again = cli("distill", "run", "--votes", "3", "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["votes_enqueued"] == 24 and summary["labels"] == 36
    assert json.loads(again.stdout)["votes_enqueued"] == 0  # idempotent
    per_query = query(ws, "SELECT query_id, count(*), count(DISTINCT model) FROM labels WHERE purpose = 'relabel'"
                          " GROUP BY 1")
    assert len(per_query) == 12 and {(n, m) for _, n, m in per_query} == {(2, 2)}
    params = {p for (p,) in query(ws, "SELECT params FROM jobs WHERE purpose = 'relabel'")}
    assert params == {'{"temperature":1.0,"vote":1}', '{"temperature":1.0,"vote":2}'}
    adjudicated = cli("curate", "adjudicate", "--json")
    assert adjudicated.exit_code == 0, adjudicated.stderr


# ---------------------------------------------------------------- plan


def test_plan_checks_keys_without_generate_quota_and_estimates_the_job(ws, cli, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEYS", f"{KEY_A}@p1,{KEY_B}@p2,{BAD}@p3")
    with serve(ws) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        result = cli("distill", "plan", "--pack", "4", "--rpm", "10", "--rpd", "2", "--json")
        paid = server.stats()["paid"]
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert paid == 0  # model GETs only
    assert {(k["project"], k["ok"]) for k in plan["keys"]} == {("p1", True), ("p2", True), ("p3", False)}
    assert any("cannot use" in w and BAD not in w for w in plan["warnings"])
    assert plan["jobs"] == {"pending": 0, "to_enqueue": 12, "total": 12} and plan["requests"] == 3
    assert len(plan["buckets"]) == 4 and plan["requests_per_day"] == 8 and plan["days"] == 1
    assert plan["tokens"]["prompt"] > 0 and plan["cost_usd"] > 0
    table = cli("distill", "plan", "--no-check", "--pack", "4")
    assert table.exit_code == 0 and "queries per request" in table.stdout


def test_plan_counts_quota_days_from_todays_rest(db, catalog):
    from tooldistill.distill import DistillSettings, build_prompt, parse_keys
    from tooldistill.distill.plan import plan_job

    insert_queries(db, [NewQuery(f"q {i}", "t") for i in range(100)])
    clock = ManualClock(day_seconds=1000, start=10_250)  # a quarter into a fake day
    settings = DistillSettings(models=[FLASH], rpm=6, rpd=5)
    plan = plan_job(db, catalog=catalog, keys=parse_keys(f"{KEY_A}@p1,{KEY_B}@p2"), settings=settings,
                    prompt=build_prompt(catalog), clock=clock, check=False, pack=2)
    # 50 requests, 2 buckets x 5 a day: 10 today, then 4 more days; the last day's 10 take 10 / 12 RPM = 50 s
    assert (plan["requests"], plan["requests_per_day"], plan["left_today"], plan["days"]) == (50, 10, 10, 5)
    assert plan["finish_in_s"] == pytest.approx(750 + 3 * 1000 + 50)


# ---------------------------------------------------------------- prompt


def test_a_prompt_file_is_a_new_version_and_the_next_run_relabels_under_it(ws, cli, monkeypatch):
    default = json.loads(cli("distill", "prompt", "show", "--json").stdout)
    with serve(ws, log_bodies=True) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        assert cli("distill", "run").exit_code == 0
        (ws / "prompt.yaml").write_text(
            "instructions: Route each message to the tool it needs.\nexamples:\n"
            "  - query: what's 2+2\n    calls: [{tool: calculator, args: {expression: '2+2'}}]\n"
            "examples_from_gold: 2\n")
        shown = json.loads(cli("distill", "prompt", "show", "--json").stdout)
        second = json.loads(cli("distill", "run", "--json").stdout)
        sent = [e["body"]["systemInstruction"]["parts"][0]["text"] for e in server.log if e.get("body")]
    assert shown["version"] != default["version"] and "gold example(s)" in shown["source"]
    assert shown["system_instruction"].startswith("Route each message to the tool it needs.")
    assert shown["system_instruction"].count("\n- ") == 3  # one file example and two from gold
    assert sent[-1] == shown["system_instruction"]  # what show prints is what the teacher saw
    assert second["enqueued"] == 12 and second["labels"] == 12  # every query again, under the new version
    versions = json.loads(cli("distill", "prompt", "versions", "--json").stdout)
    assert {v["version"]: v["labels"] for v in versions} == {shown["version"]: 12, default["version"]: 12}
    old = json.loads(cli("distill", "prompt", "show", "--version", default["version"], "--json").stdout)
    assert old["system_instruction"] == default["system_instruction"]


def test_a_bad_prompt_file_is_one_line_naming_the_file(ws, cli):
    (ws / "prompt.yaml").write_text("instructions: x\nexampels: []\n")
    result = cli("distill", "prompt", "show")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {ws / 'prompt.yaml'}: field 'exampels': Extra inputs are not permitted"]


# ---------------------------------------------------------------- status


def test_status_reports_rate_eta_tokens_and_cost(ws, cli, monkeypatch):
    with serve(ws) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        cli("distill", "run", "--limit", "6")
    report = json.loads(cli("distill", "status", "--json").stdout)
    assert report["progress"]["pending"] == 6 and report["progress"]["labels_per_min"] > 0
    assert report["progress"]["eta_s"] > 0
    tokens = report["requests"]["prompt_tokens"]
    assert tokens > 0 and report["cost"]["usd"] > 0 and set(report["cost"]["by_model"]) <= {FLASH, LITE}
    assert report["batches"] is None
    table = cli("distill", "status")
    assert "labels/min (last 10 min)" in table.stdout and "est. cost $" in table.stdout


# ---------------------------------------------------------------- follow-ups: queue and settings


def test_jobs_without_a_query_and_completion_without_a_label_row(db):
    assert queue.enqueue(db, [None, None], purpose="synthesize", params={"cell": "c"}) == 2
    job = queue.claim(db, worker="w:1:x", lease_s=60, model="m", purposes=("synthesize",))[0]
    assert job.query_id is None and job.text == ""
    assert queue.complete(db, job, label=None, model="m", label_row=False, error="2 invalid") == job.id
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    assert db.execute("SELECT state, last_error FROM jobs WHERE id = ?", [job.id]).fetchone() == ("done", "2 invalid")
    assert queue.complete(db, job, label=None, model="m", label_row=False) is None  # fenced: lease gone


def test_batch_and_synthesize_sub_tables_reach_their_settings(tmp_path):
    (tmp_path / "tooldistill.toml").write_text("[distill]\npack = 4\n[distill.batch]\nmax_requests = 50\n"
                                               "[distill.synthesize]\nper_request = 7\n")
    s = load_settings(load_workspace(tmp_path, environ={}))
    assert s.pack == 4 and s.batch_settings().max_requests == 50 and s.synthesis_settings().per_request == 7
    assert s.batch_settings(max_requests=9).max_requests == 9
    (tmp_path / "tooldistill.toml").write_text("[distill.batch]\nmax_request = 50\n")
    with pytest.raises(ConfigError, match=r"\[distill.batch\] key 'max_request': Extra inputs are not permitted"):
        load_settings(load_workspace(tmp_path, environ={}))


def test_every_distill_command_has_help_with_an_example(cli):
    for command in (["run"], ["status"], ["retry"], ["plan"], ["prompt", "show"], ["prompt", "versions"],
                    ["synthesize"], ["coverage"], ["batches"], ["fake-server"]):
        result = cli("distill", *command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout, command
