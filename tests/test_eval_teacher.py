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


# ---------------------------------------------------------------- the prompt a live teacher is asked with

PROMPT_FILE = ("instructions: Route each message to the tool it needs.\nexamples:\n"
               "  - query: what's 2+2\n    calls: [{tool: calculator, args: {expression: '2+2'}}]\n"
               "examples_from_gold: 2\n")


@pytest.fixture
def logging_teacher(monkeypatch):
    """The fake server, keeping each request's body, answering every test query right."""
    oracle = Oracle()
    for text, gold in TEST:
        oracle.add(text, gold)
    with FakeGemini(FakeGeminiConfig(keys={KEY: "proj-a"}, models={MODEL: {}}, log_bodies=True),
                    oracle=oracle) as server:
        monkeypatch.setenv("GEMINI_API_KEYS", KEY)
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        yield server


def sent_prompts(server) -> set[tuple[str, tuple[str, ...]]]:
    """Every distinct (system text, declared function names) the server received."""
    out = set()
    for entry in server.log:
        body = entry.get("body") or {}
        names = tuple(d["name"] for t in body.get("tools", []) for d in t.get("functionDeclarations", []))
        out.add((body["systemInstruction"]["parts"][0]["text"], names))
    return out


def test_live_teacher_asks_with_the_workspace_prompt_that_distill_uses(ws, cli, logging_teacher,  # noqa: F811
                                                                        tmp_path):
    (tmp_path / "prompt.yaml").write_text(PROMPT_FILE)  # the workspace folder is tmp_path (the tests' cwd)
    shown = json.loads(cli("--db", ws["path"], "distill", "prompt", "show", "--json").stdout)
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--teacher-model", MODEL, "--limit", "3",
              "--runs-dir", ws["runs"], "--resamples", "0", "--json")
    assert res.exit_code == 0, res.output
    names = tuple(d["name"] for d in shown["function_declarations"])
    assert sent_prompts(logging_teacher) == {(shown["system_instruction"], names)}
    assert shown["system_instruction"].startswith("Route each message") and "gold example(s)" in shown["source"]
    meta = get_run(ws["db"], json.loads(res.stdout)["run_id"])["config"]["router_metadata"]
    assert meta == {"teacher_model": MODEL, "prompt_version": shown["version"], "prompt_source": shown["source"]}


def test_live_teacher_asks_with_a_recorded_prompt_version_or_a_prompt_file(ws, cli, logging_teacher,  # noqa: F811
                                                                           tmp_path):
    default = json.loads(cli("--db", ws["path"], "distill", "prompt", "show", "--json").stdout)
    (tmp_path / "prompt.yaml").write_text(PROMPT_FILE)  # the active prompt is now another version
    (tmp_path / "other.yaml").write_text("instructions: Pick tools carefully.\n")
    runs = {}
    for choice in (default["version"], "other.yaml"):
        res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--teacher-model", MODEL, "--limit", "2",
                  "--teacher-prompt", choice, "--runs-dir", ws["runs"], "--resamples", "0", "--json")
        assert res.exit_code == 0, res.output
        runs[choice] = get_run(ws["db"], json.loads(res.stdout)["run_id"])["config"]["router_metadata"]
    texts = {text for text, _ in sent_prompts(logging_teacher)}
    assert texts == {default["system_instruction"], "Pick tools carefully."}
    assert runs[default["version"]]["prompt_version"] == default["version"]
    assert runs[default["version"]]["prompt_source"] == f"recorded version {default['version']}"
    other = json.loads(cli("--db", ws["path"], "distill", "prompt", "show", "--prompt", "other.yaml", "--json").stdout)
    assert runs["other.yaml"] == {"teacher_model": MODEL, "prompt_version": other["version"],
                                  "prompt_source": "other.yaml"}


def test_stored_teacher_records_the_prompt_versions_behind_its_answers(ws):  # noqa: F811
    db = ws["db"]
    newest = db.execute("SELECT max(id) FROM labels").fetchone()[0]
    db.execute("UPDATE labels SET prompt_version = 'v-test' WHERE id = ?", [newest])
    db.conn.commit()
    report = run_eval(db, "v1:test", "teacher", runs_dir=ws["runs"], resamples=0, write_report=False)
    meta = get_run(db, report["run_id"])["config"]["router_metadata"]
    n = db.execute("SELECT count(DISTINCT query_id) FROM labels WHERE valid = 1").fetchone()[0]
    assert meta == {"prompt_versions": {"none": n - 1, "v-test": 1}}


@pytest.mark.parametrize("args, code, message", [
    (["--teacher-model", MODEL, "--teacher-prompt", "0123abcd"], 2,
     "field 'version': no recorded prompt version '0123abcd'; see: tooldistill distill prompt versions"),
    (["--teacher", "--teacher-prompt", "prompt.yaml"], 2, "field 'teacher_prompt': --teacher-prompt goes with "
                                                          "--teacher-model"),
])
def test_cli_teacher_prompt_bad_choices(ws, cli, logging_teacher, args, code, message):  # noqa: F811
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", *args, "--runs-dir", ws["runs"])
    assert res.exit_code == code
    assert message in res.stderr.replace("\n", " ")
    assert logging_teacher.stats()["requests"] == 0


def test_a_recorded_prompt_of_another_catalogue_is_refused(ws, cli, logging_teacher):  # noqa: F811
    from tooldistill.catalog import Catalog
    from tooldistill.distill import build_prompt
    from tooldistill.distill.prompt import record_prompt

    other = Catalog.from_class_names(["pay_bill", "oos"], none_label="oos", name="intents")
    old = build_prompt(other)
    record_prompt(ws["db"], old, source="default", catalog_hash=other.hash)
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--teacher-model", MODEL, "--teacher-prompt",
              old.version, "--runs-dir", ws["runs"])
    assert res.exit_code == 2
    assert (f"field 'teacher_prompt': prompt version {old.version} declares other tools than catalogue"
            in res.stderr.replace("\n", " "))
    assert logging_teacher.stats()["requests"] == 0
