"""Eval runs end to end on a real database: stored predictions, noise-aware views, rescoring, comparison, the CLI."""

import json
from pathlib import Path

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, add_label, add_review, get_catalog, insert_queries, now_iso, open_db
from tooldistill.eval import compare_runs, get_run, run_eval, score_run

W = lambda loc: [{"tool": "weather", "args": {"location": loc}}]  # noqa: E731
TEST = [  # (text, gold); the keyword router gets every one of these right
    ("weather in Paris tomorrow", W("Paris")),
    ("convert 5 km to miles", [{"tool": "unit_converter", "args": {"value": 5, "from": "km", "to": "miles"}}]),
    ("hello there", []),
    ("who was Ada Lovelace", [{"tool": "wikipedia", "args": {"query": "Ada Lovelace"}}]),
    ("define serendipity", [{"tool": "dictionary", "args": {"word": "serendipity"}}]),
    ("calculate 17 * 23", [{"tool": "calculator", "args": {"expression": "17 * 23"}}]),
    ("thanks a lot", []),
    ("weather in Oslo and convert 3 kg to pounds",
     W("Oslo") + [{"tool": "unit_converter", "args": {"value": 3, "from": "kg", "to": "pounds"}}]),
]
TRAIN = [("forecast for Rome", W("Rome")), ("is it raining in Lima", W("Lima")), ("good night", []),
         ("who was Alan Turing", [{"tool": "wikipedia", "args": {"query": "Alan Turing"}}])]
NOISY = {0, 3}  # test items whose teacher label is wrong (web_search instead of the gold)


def make_version(db, members, *, version_id="v1" + "0" * 14, name="v1"):
    """Freeze a dataset version the way curate's split does (dataset_versions + split_members rows)."""
    db["dataset_versions"].insert({"id": version_id, "name": name, "created_at": now_iso(),
                                   "catalog_hash": get_catalog(db).hash})
    for qid, split, label, source in members:
        db["split_members"].insert({"version_id": version_id, "query_id": qid, "split": split,
                                    "calls": label.canonical_json(), "label_hash": label.hash,
                                    "label_source": source})
    return version_id


@pytest.fixture
def ws(tmp_path):
    """A database with gold, teacher labels (two of them wrong) and a version whose test labels are the teacher's."""
    db = open_db(tmp_path / "ws.db")
    cat = get_catalog(db)
    rows = [(t, cat.validate_label(g), "test") for t, g in TEST] + [(t, cat.validate_label(g), "train") for t, g in TRAIN]
    ids = insert_queries(db, [NewQuery(t, "test", gold=g) for t, g, _ in rows]).ids
    members = []
    for i, (qid, (text, gold, split)) in enumerate(zip(ids, rows)):
        teacher = cat.validate_label([{"tool": "web_search", "args": {"query": text}}]) if i in NOISY else gold
        add_label(db, qid, teacher)
        members.append((qid, split, teacher, "teacher"))
    version = make_version(db, members)
    return {"db": db, "ids": ids, "version": version, "runs": tmp_path / "runs", "path": tmp_path / "ws.db"}


def test_eval_run_stores_every_prediction_and_writes_the_report(ws):
    db = ws["db"]
    report = run_eval(db, "v1:test", "keyword", runs_dir=ws["runs"], batch_size=3, resamples=200)
    run = get_run(db, report["run_id"])
    assert (run["kind"], run["status"], run["dataset_version"]) == ("eval", "done", ws["version"])
    assert run["config"]["target"] == "baseline:keyword" and run["config"]["split"] == "test"
    rows = list(db.query("SELECT * FROM predictions WHERE run_id = ? ORDER BY query_id", [report["run_id"]]))
    assert [r["query_id"] for r in rows] == ws["ids"][:len(TEST)]
    assert all(r["raw"] and r["calls"] is not None and r["latency_ms"] > 0 and r["valid"] == 1 for r in rows)
    # correct is graded against the frozen split labels: the two noisy items are "wrong"
    assert [r["query_id"] for r in rows if not r["correct"]] == [ws["ids"][i] for i in sorted(NOISY)]
    folder = ws["runs"] / report["run_id"]
    assert sorted(p.name for p in folder.iterdir()) == ["confusion.png", "per_tool.png", "report.json",
                                                        "report.md", "views.png"]
    assert json.loads((folder / "report.json").read_text())["n"] == len(TEST)
    assert "## Noise-aware view" in (folder / "report.md").read_text()
    assert run["metrics"]["summary"]["views"]["split"]["rates"]["fully_correct"]["num"] == len(TEST) - len(NOISY)
    assert run["metrics"]["generation"]["n"] == len(TEST)


def test_noise_aware_view_credits_the_model_where_the_teacher_was_wrong(ws):
    report = run_eval(ws["db"], "v1:test", "keyword", runs_dir=ws["runs"], resamples=200, write_report=False)
    views = report["views"]
    n = len(TEST)
    assert {v: views[v]["n"] for v in views} == {"split": n, "teacher": n, "corrected": n, "clean": n}
    assert views["split"]["rates"]["fully_correct"]["num"] == n - 2
    assert views["teacher"]["rates"]["fully_correct"]["num"] == n - 2
    assert views["corrected"]["rates"]["fully_correct"]["num"] == n
    assert views["clean"]["rates"]["tool_accuracy"]["value"] == 1.0
    assert [d["query_id"] for d in report["disagreements"]] == [ws["ids"][i] for i in sorted(NOISY)]
    assert report["disagreements"][0]["evidence"] == "gold label equals the model's"
    est = report["label_error"]
    assert est["method"] == "gold" and (est["estimate"]["num"], est["estimate"]["den"]) == (2, n)
    assert est["estimate"]["lo"] < 2 / n < est["estimate"]["hi"]


def test_reviews_and_audit_flags_feed_the_views_and_the_disagreement_list(tmp_path):
    db = open_db(tmp_path / "x.db")
    cat = get_catalog(db)
    texts = ["weather in Lima", "define laconic", "who was Marie Curie", "hello"]
    ids = insert_queries(db, [NewQuery(t, "import") for t in texts]).ids  # no gold: teacher labels only
    wrong = cat.validate_label([{"tool": "web_search", "args": {"query": "x"}}])
    teacher = [wrong, wrong, cat.validate_label([{"tool": "wikipedia", "args": {"query": "Marie Curie"}}]),
               parse_label([])]
    for qid, label in zip(ids, teacher):
        add_label(db, qid, label)
    make_version(db, [(q, "test", l, "teacher") for q, l in zip(ids, teacher)])
    add_review(db, ids[0], "fix", cat.validate_label(W("Lima")))
    # the curate stage's flag table (read defensively by eval): a flag suggesting the model's answer
    db["audit_flags"].insert({"id": 1, "query_id": ids[1], "score": 0.93, "status": "open",
                              "suggested_calls": json.dumps([{"tool": "dictionary", "args": {"word": "laconic"}}])})
    report = run_eval(db, "v1:test", "keyword", runs_dir=tmp_path / "runs", resamples=100, write_report=False)
    assert report["views"]["clean"]["n"] == 1 and report["views"]["corrected"]["n"] == 4
    assert report["views"]["corrected"]["rates"]["fully_correct"]["num"] == 3
    evidence = {d["query_id"]: d["evidence"] for d in report["disagreements"]}
    assert evidence == {ids[0]: "review label equals the model's",
                        ids[1]: "audit flag 1 suggests the model's label (score 0.93)"}
    le = report["label_error"]
    assert le["verified"]["value"] == 1.0  # the one reviewed label was wrong: the audit's precision, not the rate
    assert le["method"] == "corrected_lower_bound" and (le["estimate"]["num"], le["estimate"]["den"]) == (1, 4)


def test_rescoring_after_a_review_changes_the_corrected_view_not_the_split_view(ws):
    db = ws["db"]
    first = run_eval(db, "v1:test", "keyword", runs_dir=ws["runs"], resamples=100, write_report=False)
    hello = ws["ids"][2]
    add_review(db, hello, "fix", get_catalog(db).validate_label(W("there")))  # a (wrong) human relabel
    again = score_run(db, first["run_id"], write_report=False)
    assert again["views"]["split"]["rates"] == first["views"]["split"]["rates"]
    assert again["views"]["corrected"]["rates"]["fully_correct"]["num"] == len(TEST) - 1
    assert get_run(db, first["run_id"])["metrics"]["summary"]["views"]["corrected"]["rates"]["fully_correct"][
        "num"] == len(TEST) - 1


def test_acceptable_answers_in_query_meta_count_as_right(ws):
    db = ws["db"]
    qid = ws["ids"][0]  # "weather in Paris tomorrow": teacher said web_search, the keyword router says weather
    ambiguous = [W("Paris"), [{"tool": "web_search", "args": {"query": "weather in paris tomorrow"}}]]
    db.execute("UPDATE queries SET meta = ? WHERE id = ?", [json.dumps({"acceptable": ambiguous}), qid])
    report = run_eval(db, "v1:test", "keyword", runs_dir=ws["runs"], resamples=0, write_report=False)
    assert report["views"]["teacher"]["rates"]["fully_correct"]["num"] == len(TEST) - 1  # was n - 2


def test_compare_pairs_two_runs_and_writes_its_report(ws):
    db = ws["db"]
    a = run_eval(db, "v1:test", "majority", runs_dir=ws["runs"], resamples=0, write_report=False)
    b = run_eval(db, "v1:test", "keyword", runs_dir=ws["runs"], resamples=0, write_report=False)
    result = compare_runs(db, a["run_id"], b["run_id"], view="corrected", resamples=200, seed=0)
    tool = result["metrics"]["tool_accuracy"]
    # majority = weather for everything: right on the 1 weather-only item; keyword right on all 8
    assert (tool["a"]["num"], tool["b"]["num"], tool["mcnemar"]["a_only"], tool["mcnemar"]["b_only"]) == (1, 8, 0, 7)
    assert tool["mcnemar"]["p_value"] == pytest.approx(2 / 2 ** 7)
    assert tool["diff"]["value"] == pytest.approx(7 / 8) and tool["diff"]["lo"] <= 7 / 8 <= tool["diff"]["hi"]
    assert [Path(f).name for f in result["files"]] == [f"compare-{a['run_id']}.{e}" for e in ("md", "json", "png")]
    assert all(Path(f).parent.name == b["run_id"] for f in result["files"])


def test_the_majority_baseline_learns_from_the_train_split_only(ws):
    report = run_eval(ws["db"], "v1:test", "majority", runs_dir=ws["runs"], resamples=0, write_report=False)
    preds = [r["calls"] for r in ws["db"].query("SELECT calls FROM predictions WHERE run_id = ?", [report["run_id"]])]
    assert all(json.loads(c)[0]["tool"] == "weather" for c in preds)  # train: 2 weather, 1 none, 1 wikipedia


# ---------------------------------------------------------------- the CLI


def test_cli_eval_run_show_list_compare(ws, cli):
    db = ["--db", ws["path"]]
    res = cli(*db, "eval", "run", "--split", "v1:test", "--baseline", "keyword", "--runs-dir", ws["runs"],
              "--resamples", "50")
    assert res.exit_code == 0, res.output
    assert "tool_accuracy" in res.stdout and "verified" in res.stdout and "[" in res.stdout
    listed = json.loads(cli(*db, "eval", "list", "--json").stdout)
    run_id = listed[0]["id"]
    assert listed[0]["config"]["target"] == "baseline:keyword"
    shown = json.loads(cli(*db, "eval", "show", run_id[:20], "--json").stdout)
    assert shown["id"] == run_id and shown["metrics"]["summary"]["n"] == len(TEST)
    table = cli(*db, "eval", "show", run_id, "--rescore")
    assert table.exit_code == 0 and "fully_correct" in table.stdout and "test-label error estimate" in table.stdout
    base = json.loads(cli(*db, "eval", "run", "--split", "v1:test", "--baseline", "majority", "--runs-dir",
                          ws["runs"], "--resamples", "0", "--json").stdout)
    cmp = cli(*db, "eval", "compare", base["run_id"], run_id, "--view", "clean", "--json")
    assert json.loads(cmp.stdout)["metrics"]["tool_accuracy"]["mcnemar"]["b_only"] == 7


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "choose exactly one target: --run RUN, --model PATH, --baseline NAME or --teacher"),
    (["--baseline", "keyword", "--run", "r1"], 2, "choose exactly one target"),
    (["--baseline", "oracle"], 2, "unknown baseline 'oracle' (known: majority, keyword, regex)"),
    (["--run", "nope"], 1, "run 'nope' does not exist"),
    (["--model", "missing-dir"], 2, "missing-dir: no model here (no config.json or adapter_config.json)"),
])
def test_cli_eval_run_bad_targets(ws, cli, args, code, message):
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", *args)
    assert res.exit_code == code
    assert message in res.stderr.replace("\n", " ")


def test_cli_eval_run_unknown_split(ws, cli):
    res = cli("--db", ws["path"], "eval", "run", "--split", "v9:test", "--baseline", "keyword")
    assert res.exit_code == 1 and "no dataset version 'v9'" in res.stderr
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:dev", "--baseline", "keyword")
    assert res.exit_code == 1 and "has no split 'dev' (has: " in res.stderr


def test_cli_show_of_a_train_run_or_unknown_run(ws, cli):
    ws["db"]["runs"].insert({"id": "train-1", "kind": "train", "status": "done", "created_at": now_iso()})
    res = cli("--db", ws["path"], "eval", "show", "train-1")
    assert res.exit_code == 1 and "run train-1 is a train run, not a eval run" in res.stderr


@pytest.fixture
def route_registered():
    """``route`` is a top-level command the CLI root registers; until it does, register it the same way."""
    from tooldistill.cli import app
    from tooldistill.commands.route import route

    if not any(c.name == "route" or getattr(c.callback, "__name__", "") == "route" for c in app.registered_commands):
        app.command("route")(route)


def test_cli_route_one_query_and_stdin(ws, cli, route_registered):
    res = cli("--db", ws["path"], "route", "define laconic", "--baseline", "keyword")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["calls"] == [{"tool": "dictionary", "args": {"word": "laconic"}}] and out["valid"] is True
    res = cli("--db", ws["path"], "route", "--baseline", "regex", input="weather in Oslo\n\nhello\n")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(x["query"], x["calls"]) for x in lines] == [
        ("weather in Oslo", [{"tool": "weather", "args": {"location": "Oslo"}}]), ("hello", [])]
    res = cli("--db", ws["path"], "route", "hello")
    assert res.exit_code == 2 and "choose one router: --run RUN or --baseline NAME" in res.stderr


def test_board_puts_routers_side_by_side_per_label_view(ws, cli):
    db = ws["db"]
    ids = [run_eval(db, "v1:test", spec, runs_dir=ws["runs"], resamples=0, write_report=False)["run_id"]
           for spec in ("majority", "keyword", "teacher")]
    res = cli("--db", ws["path"], "eval", "board", *ids, "--out", ws["runs"] / "board", "--json")
    assert res.exit_code == 0, res.output
    board = json.loads(res.stdout)
    full = {r["target"]: {v: r["views"][v]["rates"]["fully_correct"]["num"] for v in ("teacher", "corrected")}
            for r in board["runs"]}
    n = len(TEST)
    # the stored teacher is perfect against itself and loses the noisy items against the corrected labels
    assert full == {"baseline:majority": {"teacher": 0, "corrected": 0},
                    "baseline:keyword": {"teacher": n - 2, "corrected": n},
                    "teacher": {"teacher": n, "corrected": n - 2}}
    assert sorted(p.name for p in (ws["runs"] / "board").iterdir()) == ["board.json", "board.md", "board.png"]
    res = cli("--db", ws["path"], "eval", "board", "nope")
    assert res.exit_code == 1 and "run 'nope' does not exist" in res.stderr


def test_a_router_that_only_picks_tools_gets_argument_metrics_marked_not_applicable(ws):
    from tooldistill.catalog import Label, ToolCall
    from tooldistill.eval import KeywordRouter

    class ToolsOnly:  # what an encoder student answers: the tools, no arguments
        name = "tools-only"
        predicts_arguments = False

        def __init__(self, catalog):
            self.keyword = KeywordRouter.for_catalog(catalog)

        def route(self, texts):
            return [Label(calls=[ToolCall(tool=c.tool) for c in self.keyword.predict(t).calls]) for t in texts]

    report = run_eval(ws["db"], "v1:test", router=ToolsOnly(get_catalog(ws["db"])), runs_dir=ws["runs"],
                      resamples=0, write_report=False)
    rates = report["views"]["corrected"]["rates"]
    assert rates["tool_accuracy"]["value"] == 1.0
    assert all(rates[k]["value"] is None and rates[k]["not_applicable"] for k in ("arg_f1", "fully_correct"))
    assert report["target"] == "tools-only"
    assert [f["query_id"] for f in report["failures"]] == [ws["ids"][i] for i in sorted(NOISY)]


def test_cli_eval_baselines_runs_each_baseline(ws, cli):
    res = cli("--db", ws["path"], "eval", "baselines", "--split", "v1:test", "--runs-dir", ws["runs"],
              "--resamples", "0", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert sorted(out) == ["baseline:keyword", "baseline:majority"]
    assert out["baseline:keyword"]["views"]["corrected"]["tool_accuracy"]["value"] == 1.0
    assert {r["config"]["target"] for r in json.loads(cli("--db", ws["path"], "eval", "list", "--json").stdout)} == set(out)
