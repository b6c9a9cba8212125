"""The teacher as a baseline: its stored answers, and a model asked live through the fake Gemini server."""

import json

import pytest

from test_eval_run import NOISY, TEST, ws  # noqa: F401  (the shared database fixture)
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, Oracle
from tooldistill.eval import get_run, run_eval

KEY = "AIzaSyFAKE-eval-teacher-0001"
MODEL = "gemini-2.5-flash"


def test_stored_teacher_scores_perfect_on_its_own_labels_and_honestly_on_gold(ws):  # noqa: F811
    report = run_eval(ws["db"], "v1:test", "teacher", runs_dir=ws["runs"], resamples=0, write_report=False)
    views = report["views"]
    assert report["target"] == "teacher"
    assert views["split"]["rates"]["fully_correct"]["value"] == 1.0
    assert views["clean"]["rates"]["fully_correct"]["num"] == len(TEST) - len(NOISY)


@pytest.fixture
def fake_teacher(monkeypatch):
    """The fake server answering every test query right except 'define serendipity' (a wrong tool)."""
    oracle = Oracle()
    for text, gold in TEST:
        oracle.add(text, gold)
    oracle.add("define serendipity", [{"tool": "wikipedia", "args": {"query": "serendipity"}}])
    with FakeGemini(FakeGeminiConfig(keys={KEY: "proj-a"}, models={MODEL: {}}),
                    oracle=oracle) as server:
        monkeypatch.setenv("GEMINI_API_KEYS", KEY)
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        yield server


def test_live_teacher_is_asked_once_per_query(ws, fake_teacher):  # noqa: F811
    report = run_eval(ws["db"], "v1:test", f"teacher:{MODEL}", runs_dir=ws["runs"], batch_size=4, resamples=0,
                      write_report=False)
    assert report["target"] == f"teacher:{MODEL}"
    assert report["views"]["clean"]["rates"]["fully_correct"]["num"] == len(TEST) - 1
    calls = {text: json.loads(c) for text, c in ws["db"].execute(
        "SELECT q.text, p.calls FROM predictions p JOIN queries q ON q.id = p.query_id WHERE p.run_id = ?",
        [report["run_id"]])}
    assert calls["define serendipity"] == [{"tool": "wikipedia", "args": {"query": "serendipity"}}]
    assert fake_teacher.stats()["requests"] == len(TEST)


def test_cli_live_teacher_and_a_spent_quota(ws, cli, monkeypatch):  # noqa: F811
    oracle = Oracle()
    for text, gold in TEST:
        oracle.add(text, gold)
    config = FakeGeminiConfig(keys={KEY: "proj-a"}, models={MODEL: {"rpd": 3}})
    with FakeGemini(config, oracle=oracle) as server:
        monkeypatch.setenv("GEMINI_API_KEYS", KEY)
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--teacher-model", MODEL, "--limit", "2",
                  "--runs-dir", ws["runs"], "--resamples", "0", "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["views"]["clean"]["rates"]["fully_correct"]["value"] == 1.0
        res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--teacher", "--teacher-model", MODEL,
                  "--runs-dir", ws["runs"])
    assert res.exit_code == 75
    assert "every Gemini key is exhausted or invalid for gemini-2.5-flash" in res.stderr.replace("\n", " ")
    failed = [r for r in ws["db"].query("SELECT id, status FROM runs WHERE kind = 'eval'") if r["status"] != "done"]
    assert len(failed) == 1 and get_run(ws["db"], failed[0]["id"])["status"] == "failed"


def test_cli_live_teacher_without_a_key(ws, cli):  # noqa: F811
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--teacher-model", MODEL)
    assert res.exit_code == 1 and "no Gemini API key: set GEMINI_API_KEYS" in res.stderr
