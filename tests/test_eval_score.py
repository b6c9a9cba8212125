"""`eval score`: any predictions file graded against a gold file in the `data export` format."""

import json

import pytest

from tooldistill.catalog import Catalog, dump_catalog, load_catalog
from tooldistill.db import NewQuery, add_label, insert_queries, open_db, get_catalog
from tooldistill.eval import score_files


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def gold_file(tmp_path):
    """A gold file written by the data stage's own exporter: 2 gold (template) rows and 2 teacher rows."""
    from tooldistill.data.export import export_jsonl

    db = open_db(tmp_path / "g.db")
    cat = get_catalog(db)
    gold = [("weather in Oslo", [{"tool": "weather", "args": {"location": "Oslo"}}]), ("hi!", [])]
    ids = insert_queries(db, [NewQuery(t, "template", gold=cat.validate_label(g), gold_source="template")
                              for t, g in gold]).ids
    ids += insert_queries(db, [NewQuery("define laconic", "import"), NewQuery("convert 3 kg to lb", "import")]).ids
    add_label(db, ids[2], cat.validate_label([{"tool": "dictionary", "args": {"word": "laconic"}}]))
    add_label(db, ids[3], cat.validate_label([{"tool": "unit_converter",
                                               "args": {"value": 3, "from": "kg", "to": "lb"}}]))
    export_jsonl(db, tmp_path / "gold.jsonl")
    return tmp_path / "gold.jsonl", ids


def test_predictions_in_every_common_shape_are_graded(tmp_path, gold_file):
    gold, ids = gold_file
    preds = write_jsonl(tmp_path / "p.jsonl", [
        {"id": ids[0], "raw": '<tool_call>{"name": "weather", "arguments": {"location": "oslo"}}</tool_call>'},
        {"id": ids[1], "output": {"tool": "no_tool", "reason": "greeting"}},
        {"id": ids[2], "prediction": [{"functionCall": {"name": "dictionary", "args": {"word": "Laconic"}}}]},
        {"id": ids[3], "raw": 'Sure: [{"name": "unit_converter", "arguments": {"value": "3", "from": "kg", "to": "kg"}}]'},
    ])
    report = score_files(preds, gold, load_catalog(), resamples=100)
    rates = report["metrics"]["rates"]
    assert (report["n"], report["matched_on"], report["missing"], report["unmatched"]) == (4, "id", 0, 0)
    assert (rates["tool_accuracy"]["num"], rates["fully_correct"]["num"]) == (4, 3)
    assert (rates["valid_json"]["num"], rates["extracted"]["num"]) == (3, 1)
    assert report["metrics"]["errors"]["value_error"] == 1
    assert report["views"]["clean"]["n"] == 2  # the two rows whose label_source is gold
    assert report["label_sources"] == {"gold": 2, "teacher": 2}


def test_rows_match_on_text_when_predictions_have_no_ids(tmp_path, gold_file):
    gold, _ = gold_file
    preds = write_jsonl(tmp_path / "p.jsonl", [{"text": "Weather in OSLO", "raw": "[]"}, {"text": "unknown", "raw": "[]"}])
    report = score_files(preds, gold, load_catalog(), resamples=0)
    assert (report["matched_on"], report["missing"], report["unmatched"]) == ("text", 3, 1)
    assert report["metrics"]["errors"]["invalid_output"] == 3 and report["metrics"]["errors"]["missed_call"] == 1


def test_class_labels_with_a_derived_catalogue(tmp_path):
    cat = Catalog.from_class_names(["pay_bill", "transfer", "oos"], none_label="oos")
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": 1, "text": "pay my bill", "label": "pay_bill"},
                                                 {"id": 2, "text": "tell me a joke", "label": "oos"}])
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "raw": [{"name": "pay_bill"}]}, {"id": 2, "raw": "[]"}])
    report = score_files(preds, gold, cat, resamples=0)
    assert report["metrics"]["rates"]["fully_correct"]["value"] == 1.0
    assert report["metrics"]["rates"]["args_exact"]["value"] is None  # parameterless tools: not applicable


def test_cli_score_json_and_report_files(tmp_path, gold_file, cli):
    gold, ids = gold_file
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": i, "raw": "[]"} for i in ids])
    res = cli("eval", "score", "--predictions", preds, "--gold", gold, "--json", "--out", tmp_path / "rep",
              "--resamples", "50")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["metrics"]["rates"]["no_tool_recall"]["value"] == 1.0 and out["metrics"]["rates"]["tool_accuracy"][
        "num"] == 1
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["confusion.png", "per_tool.png", "report.json",
                                                                   "report.md", "views.png"]
    table = cli("eval", "score", "--predictions", preds, "--gold", gold)
    assert table.exit_code == 0 and "tool_accuracy" in table.stdout


def test_cli_score_with_a_catalogue_file(tmp_path, cli):
    cat = Catalog.from_class_names(["pay_bill", "oos"], none_label="oos", name="intents")
    (tmp_path / "intents.yaml").write_text(dump_catalog(cat))
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"id": 1, "text": "pay it", "label": "pay_bill"}])
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "raw": '{"name": "pay_bill", "arguments": {}}'}])
    res = cli("eval", "score", "--predictions", preds, "--gold", gold, "--catalog", tmp_path / "intents.yaml", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["metrics"]["rates"]["fully_correct"]["value"] == 1.0


@pytest.mark.parametrize("which, lines, message", [
    ("predictions", ['{"id": 1, "raw": "[]"}', "{not json"], "p.jsonl:2: not JSON"),
    ("predictions", ['{"id": 1}'], "p.jsonl:1: no output: expected one of raw, output, prediction, calls, label"),
    ("predictions", ['{"raw": "[]"}'], "p.jsonl:1: a prediction needs an 'id' or a 'text'"),
    ("gold", ['{"id": 1, "text": "x"}'], "gold.jsonl:1 field 'label': missing 'label'"),
    ("gold", ['{"id": 1, "text": "x", "label": [{"tool": "stocks", "args": {}}]}'],
     "gold.jsonl:1 field 'label[0]': unknown tool 'stocks'"),
    ("gold", ['[1, 2]'], "gold.jsonl:1: expected a JSON object, got list"),
    ("gold", [], "gold.jsonl: the gold file has no rows"),
])
def test_cli_score_bad_input_names_file_line_and_field(tmp_path, cli, which, lines, message):
    files = {"predictions": ['{"id": 1, "raw": "[]"}'], "gold": ['{"id": 1, "text": "hi", "label": []}']}
    files[which] = lines
    preds = write_jsonl(tmp_path / "p.jsonl", files["predictions"])
    gold = write_jsonl(tmp_path / "gold.jsonl", files["gold"])
    res = cli("eval", "score", "--predictions", preds, "--gold", gold)
    assert res.exit_code == 2
    assert message in res.stderr.replace("\n", " ")


def test_cli_score_missing_file(tmp_path, cli):
    gold = write_jsonl(tmp_path / "gold.jsonl", ['{"id": 1, "text": "hi", "label": []}'])
    res = cli("eval", "score", "--predictions", tmp_path / "nope.jsonl", "--gold", gold)
    assert res.exit_code == 2 and "nope.jsonl: cannot read: No such file or directory" in res.stderr


def test_an_exported_file_grades_ambiguous_rows_against_their_acceptable_answers(tmp_path, cli):
    from tooldistill.data import export_jsonl, generate

    db = open_db(tmp_path / "g.db")
    generate(db, 150, seed=9)
    export_jsonl(db, tmp_path / "gold.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "gold.jsonl").read_text(encoding="utf-8").splitlines()]
    other = {r["id"]: r["meta"]["acceptable"][1] for r in rows if r["meta"]}
    assert len(other) >= 5 and all(other[i] != r["label"] for r in rows for i in [r["id"]] if i in other)
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": r["id"], "raw": other.get(r["id"], r["label"])} for r in rows])
    res = cli("eval", "score", "--predictions", preds, "--gold", tmp_path / "gold.jsonl", "--json", "--resamples", "0")
    assert res.exit_code == 0, res.output
    rates = json.loads(res.stdout)["metrics"]["rates"]
    assert (rates["fully_correct"]["num"], rates["fully_correct"]["den"]) == (len(rows), len(rows))
