"""`tooldistill distill run` and `distill status` through the real CLI against the fake Gemini server."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, open_db
from tooldistill.distill.clock import FastClock
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec

from labeling_workspace import KEY_A, KEY_B, labeling_workspace, serve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ws(workspace, monkeypatch):
    """A workspace with 12 gold-labeled queries and fast limits, as the current folder."""
    return labeling_workspace(workspace, monkeypatch, [NewQuery(f"weather in village {i}", "t", gold=parse_label(
        [{"tool": "weather", "args": {"location": f"village {i}"}}])) for i in range(12)], concurrency=3)


def test_run_labels_every_query_and_status_reports_it(ws, cli, monkeypatch):
    with serve(ws) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        result = cli("distill", "run", "--json")
        paid = server.stats()["paid"]
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["labels"], summary["paid"], summary["pending"], summary["stopped"]) == (12, 12, 0, "done")
    assert paid == 12
    status = json.loads(cli("distill", "status", "--json").stdout)
    assert status["queue"]["label"]["done"] == 12 and status["labels"]["label"]["accepted"] == 12
    assert status["requests"]["by_outcome"] == {"ok": 12} and len(status["buckets"]) == 4
    table = cli("distill", "status")
    assert table.exit_code == 0 and "p1:gemini-2.5-flash" in table.stdout and "12 (12 paid)" in table.stdout


def test_a_rerun_of_a_finished_job_sends_no_request(ws, cli):
    with serve(ws) as server:
        first = cli("distill", "run", "--base-url", server.base_url)
        before = server.stats()["requests"]
        again = cli("distill", "run", "--base-url", server.base_url, "--json")
        after = server.stats()["requests"]
    assert first.exit_code == again.exit_code == 0
    assert before == 12 and after == before
    assert json.loads(again.stdout)["requests"] == {}


def test_all_quota_gone_exits_75_with_the_reset_time_and_wait_carries_on(ws, cli):
    day = 3.0
    clock = FastClock(day)
    with serve(ws, day_seconds=day, models={"gemini-2.5-flash": ModelSpec(rpd=4)}) as server:
        while clock.next_reset() - clock.now() < 2.2:  # start early in a fake day
            time.sleep(0.05)
        args = ("distill", "run", "--base-url", server.base_url, "--models", "gemini-2.5-flash",
                "--day-seconds", str(day))
        stopped = cli(*args)
        assert stopped.exit_code == 75, stopped.stderr
        assert "exhausted until" in stopped.stderr and "Resume after the reset with: tooldistill distill run" in \
            stopped.stderr
        assert "labels accepted" in stopped.stdout  # the summary is still printed
        resumed = cli(*args, "--wait")
    assert resumed.exit_code == 0, resumed.stderr
    db = open_db(ws / "tooldistill.db")
    assert db.execute("SELECT count(*) FROM labels WHERE valid = 1").fetchone()[0] == 12


def test_without_keys_the_error_says_where_to_put_them(ws, cli, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEYS")
    result = cli("distill", "run")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: no Gemini API key: set GEMINI_API_KEYS=KEY[@PROJECT],... in the environment or in .env "
        "(get a key at https://aistudio.google.com/apikey)"]


def test_a_malformed_key_list_names_the_item_and_not_the_key(ws, cli, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEYS", f"{KEY_A}@p1,{KEY_B}@")
    result = cli("distill", "run")
    assert result.exit_code == 1
    assert "GEMINI_API_KEYS item 2: the project after '@' is empty" in result.stderr
    assert KEY_B not in result.stderr + result.stdout


@pytest.mark.parametrize("args", [("--concurrency", "0"), ("--rpm", "-1"), ("--limit", "x")])
def test_bad_flags_are_usage_errors(ws, cli, args):
    result = cli("distill", "run", *args)
    assert result.exit_code == 2 and "Invalid value" in result.stderr


def test_bad_distill_settings_name_the_file_and_key(ws, cli):
    (ws / "tooldistill.toml").write_text("[distill]\nlease_s = 10\n")
    result = cli("distill", "run")
    assert result.exit_code == 1
    assert "tooldistill.toml [distill]: key 'distill': Value error, lease_s (10) must be longer than timeout_s" \
        in result.stderr


def test_status_needs_an_existing_database(tmp_path, cli):
    result = cli("--db", tmp_path / "nope.db", "distill", "status")
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_keys_never_reach_the_database_logs_or_output(ws, cli):
    """Keys in .env (one valid, one unknown to the server, one leaked), a debug-level run, status, a failure.

    The runs are real processes (their debug logs go where a user's would); status, which reads the database
    only, runs in this process (two interpreter start-ups saved, the same output)."""
    good, unknown, leaked = "AIzaSyGOOD-4f1c2e9a7b", "AIzaSyUNKNOWN-93ab1c0d", "AIzaSyLEAKED-5d6e7f80"
    (ws / ".env").write_text(f"GEMINI_API_KEYS={good}@p1,{unknown}@p2,{leaked}@p3\n")
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEYS"}
    env["PYTHONPATH"] = str(ROOT)
    outputs = []
    with FakeGemini(FakeGeminiConfig(keys={good: "p1", leaked: "p3"}, leaked_keys=[leaked],
                                     oracle_db=ws / "tooldistill.db", log_path=ws / "server.jsonl")) as server:
        env["GEMINI_BASE_URL"] = server.base_url
        for args in (["-vv", "distill", "run", "--base-url", "http://127.0.0.1:9", "--max-attempts", "1"],
                     ["-vv", "distill", "run", "--retry-failed"]):
            proc = subprocess.run([sys.executable, "-m", "tooldistill", *args], cwd=ws, env=env,
                                  capture_output=True, text=True, timeout=120)
            outputs.append(proc.stdout + proc.stderr)
        assert server.stats()["paid"] == 12
    for args in (["distill", "status", "--json"], ["distill", "status"]):
        result = cli(*args)
        assert result.exit_code == 0
        outputs.append(result.stdout + result.stderr)
    assert "12 job(s) dead: transient: ConnectError" in outputs[0]  # a failure path ran too
    assert "was rejected" in outputs[1] and "GEMINI_API_KEYS[1]" in outputs[1]  # said loudly, by position
    files = [p for p in ws.iterdir() if p.is_file() and p.name != ".env"]
    assert any(p.name.startswith("tooldistill.db") for p in files)
    haystacks = outputs + [p.read_bytes().decode("latin-1") for p in files]
    for key in (good, unknown, leaked):
        for part in (key, key[6:]):  # the whole key, and its distinctive tail
            assert not any(part in h for h in haystacks), f"a key fragment leaked: {part[:3]}..."


def test_limit_takes_only_that_many_jobs_and_leaves_the_rest_pending(ws, cli):
    with serve(ws) as server:
        result = cli("distill", "run", "--base-url", server.base_url, "--limit", "5", "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 0
    assert (summary["labels"], summary["pending"], summary["stopped"]) == (5, 7, "limit")
