"""The audit's student signal read straight from an eval run's stored predictions (``curate audit --student-run``).

Eval runs are made by the real eval code on a real workspace database: the keyword baseline (a router with no
confidence) and a scripted student that reports one (``route_scored``, as the encoder student does).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tooldistill.catalog import Label, ToolCall, parse_label
from tooldistill.config import load_workspace
from tooldistill.curate.audit import AuditConfig, StudentPrediction, run_audit, student_predictions_from_run
from tooldistill.db import NewQuery, add_label, get_catalog, insert_queries, now_iso, open_db
from tooldistill.errors import ToolDistillError
from tooldistill.eval import run_eval
from tooldistill.train.encoder_router import set_probability

W = lambda loc: [{"tool": "weather", "args": {"location": loc}}]  # noqa: E731
WIKI = [{"tool": "wikipedia", "args": {"query": "Ada Lovelace"}}]
TEST = [  # (text, right answer); the keyword baseline gets each of these right
    ("weather in Paris tomorrow", W("Paris")),
    ("who was Ada Lovelace", WIKI),
    ("calculate 17 * 23", [{"tool": "calculator", "args": {"expression": "17 * 23"}}]),
    ("define serendipity", [{"tool": "dictionary", "args": {"word": "serendipity"}}]),
    ("thanks a lot", []),
]
TRAIN = [("forecast for Rome", W("Rome")), ("good night", [])]
WRONG = {0, 1}  # test queries whose teacher label is wrong (web_search instead of the right answer)


class ScriptedStudent:
    """A student that knows how sure it is: scripted answers, each with a confidence (a fake of the encoder)."""

    name = "scripted"

    def __init__(self, answers: dict[str, tuple[object, float | None]]):
        self.answers = answers

    def route(self, texts):
        return [raw for raw, _ in self.route_scored(texts)]

    def route_scored(self, texts):
        return [self.answers[t] for t in texts]


@pytest.fixture
def ws(workspace):
    """A workspace: teacher labels (two wrong) on a frozen version with a test and a train split."""
    path = load_workspace(workspace).db_path
    db = open_db(path)
    cat = get_catalog(db)
    rows = [(t, cat.validate_label(a), "test") for t, a in TEST] + [(t, cat.validate_label(a), "train")
                                                                    for t, a in TRAIN]
    ids = insert_queries(db, [NewQuery(t, "test") for t, _, _ in rows]).ids
    version = "v1" + "0" * 14
    db["dataset_versions"].insert({"id": version, "name": "v1", "created_at": now_iso(), "catalog_hash": cat.hash})
    for i, (qid, (text, right, split)) in enumerate(zip(ids, rows)):
        teacher = cat.validate_label([{"tool": "web_search", "args": {"query": text}}]) if i in WRONG else right
        add_label(db, qid, teacher, model="teacher")
        db["split_members"].insert({"version_id": version, "query_id": qid, "split": split,
                                    "calls": teacher.canonical_json(), "label_hash": teacher.hash,
                                    "label_source": "teacher"})
    yield {"db": db, "path": path, "ids": ids, "catalog": cat, "runs": workspace / "runs",
           "right": {qid: r for qid, (_, r, _) in zip(ids, rows)}}
    db.close()


def _eval(ws, spec=None, *, router=None) -> str:
    report = run_eval(ws["db"], "v1:test", spec, router=router, runs_dir=ws["runs"], resamples=0,
                      write_report=False)
    return report["run_id"]


def _scripted(ws) -> ScriptedStudent:
    """Sure and right where the teacher is wrong on query 0, right but unsure on query 1, agreeing elsewhere,
    and an output that does not parse on the last test query."""
    answers = {t: (json.dumps(a), 0.99) for t, a in TEST}
    answers[TEST[0][0]] = (json.dumps(TEST[0][1]), 0.97)
    answers[TEST[1][0]] = (json.dumps(TEST[1][1]), 0.6)
    answers[TEST[-1][0]] = ("", None)
    return ScriptedStudent(answers)


def test_eval_stores_the_confidence_a_router_reports_and_null_where_it_has_none(ws):
    scored, keyword = _eval(ws, router=_scripted(ws)), _eval(ws, "keyword")
    conf = lambda run: [c for (c,) in ws["db"].execute(  # noqa: E731
        "SELECT confidence FROM predictions WHERE run_id = ? ORDER BY query_id", [run])]
    assert conf(scored) == [0.97, 0.6, 0.99, 0.99, None]
    assert conf(keyword) == [None] * len(TEST)


def test_the_students_map_is_the_runs_parsed_predictions_on_its_split(ws):
    run = _eval(ws, router=_scripted(ws))
    ids, right = ws["ids"], ws["right"]
    got = student_predictions_from_run(ws["db"], run[:-2], ws["catalog"])  # a unique prefix
    confs = [0.97, 0.6, 0.99, 0.99]  # the last test query's output did not parse: no prediction
    assert got == {q: StudentPrediction(right[q], c) for q, c in zip(ids, confs)}
    assert student_predictions_from_run(ws["db"], "latest", ws["catalog"]) == got


def test_a_confident_disagreement_flags_the_row_and_an_unsure_one_does_not(ws):
    student = student_predictions_from_run(ws["db"], _eval(ws, router=_scripted(ws)), ws["catalog"])
    report = run_audit(ws["db"], config=AuditConfig(signals=("student",)), student=student)
    q0 = ws["ids"][0]
    assert [(f.query_id, f.suggested, f.score) for f in report.flags] == [(q0, ws["right"][q0], pytest.approx(0.97))]
    info = report.signals["student"]["info"]
    # the run scored the test split: its predictions cover those queries, not the train split's
    assert (info["predictions"], info["covered"], info["audited"], info["unscored"]) == (4, 4, 7, 0)
    assert report.signals["student"]["checked"] == 4


def test_unknown_confidence_is_left_out_unless_the_threshold_is_zero(ws):
    student = student_predictions_from_run(ws["db"], _eval(ws, "keyword"), ws["catalog"])
    assert all(p.confidence is None for p in student.values()) and len(student) == len(TEST)
    strict = run_audit(ws["db"], config=AuditConfig(signals=("student",)), student=student)
    assert strict.flags == [] and strict.signals["student"]["checked"] == 0
    assert "5 predictions on audited queries have no confidence" in strict.signals["student"]["skipped"]
    assert strict.signals["student"]["info"]["unscored"] == len(TEST)

    any_conf = run_audit(ws["db"], config=AuditConfig(signals=("student",), student_min_confidence=0),
                         student=student)
    wrong = sorted(ws["ids"][i] for i in WRONG)
    assert sorted(f.query_id for f in any_conf.flags) == wrong
    assert {f.score for f in any_conf.flags} == {0.5}  # flags alone, ranked below rows with more evidence
    assert all(f.evidence["student"]["confidence"] is None for f in any_conf.flags)


def test_the_encoder_reports_its_probability_of_the_chosen_tool_set():
    classes = ["<none>", "calculator", "calculator+weather"]
    row = np.array([0.1, 0.3, 0.6])
    assert set_probability(row, classes, ("calculator", "weather"), head="softmax") == pytest.approx(0.6)
    assert set_probability(row, classes, (), head="softmax") == pytest.approx(0.1)
    assert set_probability(row, classes, ("weather",), head="softmax") == 0.0  # not a class it knows
    tools = ["calculator", "weather", "web_search"]
    sig = np.array([0.9, 0.2, 0.5])
    # independent per-tool outputs: exactly these tools fit and no other
    assert set_probability(sig, tools, ("calculator",), head="sigmoid") == pytest.approx(0.9 * 0.8 * 0.5)
    assert set_probability(sig, tools, (), head="sigmoid") == pytest.approx(0.1 * 0.8 * 0.5)


def test_cli_audits_with_a_student_run_and_says_how_many_queries_it_covered(cli, ws, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    run = _eval(ws, router=_scripted(ws))
    result = cli("--db", ws["path"], "curate", "audit", "--signals", "student", "--student-run", run[:-2])
    assert result.exit_code == 0, result.output
    assert "1 flags of 7 audited queries" in result.stdout and "weather in Paris tomorrow" in result.stdout
    assert ("student: 4 student predictions cover 4 of the 7 audited queries (an eval run covers its split only); "
            "min confidence 0.9") in result.stdout
    params = json.loads(ws["db"].execute("SELECT params FROM audit_runs ORDER BY id DESC LIMIT 1").fetchone()[0])
    assert params["student_source"] == run  # the audit records which eval run was its student

    _eval(ws, "keyword")
    loose = cli("--db", ws["path"], "curate", "audit", "--signals", "student", "--student-run", "latest",
                "--student-min-confidence", "0", "--json")
    report = json.loads(loose.stdout)
    assert sorted(f["query_id"] for f in report["flags"]) == sorted(ws["ids"][i] for i in WRONG)
    assert report["signals"]["student"]["info"]["covered"] == len(TEST)


def _insert_run(db, run_id: str, kind: str) -> None:
    db["runs"].insert({"id": run_id, "kind": kind, "status": "done", "created_at": now_iso()})


@pytest.mark.parametrize("setup, ref, message", [
    (None, "latest", "no eval run yet; evaluate a student first"),
    (None, "eval-nope", "run 'eval-nope' does not exist"),
    ("train", "train-1", "run train-1 is a train run, not an eval run; evaluate it first"),
    ("eval", "eval-empty", "eval run eval-empty stored no predictions"),
])
def test_a_run_that_cannot_be_a_student_is_a_one_line_error(cli, ws, setup, ref, message):
    if setup:
        _insert_run(ws["db"], ref, setup)
    with pytest.raises(ToolDistillError, match=message):
        student_predictions_from_run(ws["db"], ref, ws["catalog"])
    result = cli("--db", ws["path"], "curate", "audit", "--signals", "student", "--student-run", ref)
    assert result.exit_code == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ws["db"].execute("SELECT count(*) FROM audit_runs").fetchone()[0] == 0


def test_student_file_and_student_run_together_are_an_input_error(cli, ws, tmp_path):
    path = tmp_path / "student.jsonl"
    path.write_text(json.dumps({"query_id": ws["ids"][0], "label": W("Paris"), "confidence": 0.9}) + "\n")
    result = cli("--db", ws["path"], "curate", "audit", "--student", path, "--student-run", "latest")
    assert result.exit_code == 2
    assert "--student and --student-run both name a student; pass one" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_null_confidence_in_a_student_file_means_unknown(ws, tmp_path):
    from tooldistill.curate.audit import load_student_predictions

    path = tmp_path / "student.jsonl"
    path.write_text(json.dumps({"query_id": ws["ids"][0], "label": W("Paris"), "confidence": None}) + "\n")
    assert load_student_predictions(path, ws["catalog"]) == {
        ws["ids"][0]: StudentPrediction(Label(calls=[ToolCall(tool="weather", args={"location": "Paris"})]), None)}
    assert parse_label(W("Paris")) == ws["right"][ws["ids"][0]]
