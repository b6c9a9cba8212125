"""`tooldistill curate audit` and `curate flags` through the real CLI: the table, --json, the switches, errors."""

import json

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, add_label, insert_queries, open_db

WEATHER = [{"tool": "weather", "args": {"location": "Oslo"}}]
SEARCH = [{"tool": "web_search", "args": {"query": "oslo weather"}}]


@pytest.fixture
def dbfile(workspace):
    """A workspace database with three teacher labels: two contradict their gold, one has a bad argument."""
    path = workspace / "tooldistill.db"
    db = open_db(path)
    ids = insert_queries(db, [
        NewQuery("oslo weather", "t", gold=parse_label(WEATHER), gold_source="template"),
        NewQuery("weather in oslo now", "t", gold=parse_label(WEATHER), gold_source="template"),
        NewQuery("what is 12 * 7", "t"),
    ]).ids
    add_label(db, ids[0], parse_label(SEARCH), model="m")
    add_label(db, ids[1], parse_label([{"tool": "weather", "args": {"location": "Bergen"}}]), model="m")
    add_label(db, ids[2], parse_label([{"tool": "calculator", "args": {}}]), model="m")  # breaks the schema
    db.close()
    return path


def test_audit_prints_ranked_flags_and_what_each_signal_produced(cli, dbfile, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    result = cli("--db", dbfile, "curate", "audit")
    assert result.exit_code == 0, result.output
    assert "audit run 1: 3 flags of 3 audited queries" in result.stdout
    assert "oslo weather" in result.stdout and "web_search" in result.stdout
    for signal in ("confident", "gold", "votes", "duplicates", "arguments", "student"):
        assert signal in result.stdout
    assert "no student predictions" in result.stdout
    assert "next: tooldistill curate review" in result.stderr


def test_audit_json_lists_every_flag_with_text_labels_score_and_signals(cli, dbfile):
    result = cli("--db", dbfile, "curate", "audit", "--json")
    report = json.loads(result.stdout)
    flags = report["flags"]
    assert [f["rank"] for f in flags] == [1, 2, 3] and report["flags_total"] == 3
    first = flags[0]
    assert first["text"] == "oslo weather" and first["label"] == SEARCH and first["suggested"] == WEATHER
    assert first["signals"][0] == "gold" and 0.99 <= first["score"] <= 1
    schema = next(f for f in flags if f["text"] == "what is 12 * 7")
    assert schema["signals"] == ["arguments"] and schema["suggested"] is None
    assert schema["evidence"]["arguments"]["schema"] == ["calculator: args.expression: missing required argument"]
    assert report["signals"]["gold"]["fired"] == 2 and report["signals"]["confident"]["skipped"]
    db = open_db(dbfile)
    assert db.execute("SELECT count(*) FROM audit_flags WHERE run_id = ?", [report["run_id"]]).fetchone()[0] == 3


def test_each_signal_can_be_switched_off_or_chosen(cli, dbfile):
    no_gold = json.loads(cli("--db", dbfile, "curate", "audit", "--no-gold", "--json").stdout)
    assert "gold" not in no_gold["signals"] and no_gold["flags_total"] == 1  # the schema violation
    only = json.loads(cli("--db", dbfile, "curate", "audit", "--signals", "gold", "--json").stdout)
    assert list(only["signals"]) == ["gold"] and only["flags_total"] == 2
    bad = cli("--db", dbfile, "curate", "audit", "--signals", "gold,vibes")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "Error: field '--signals': unknown signal 'vibes'; choose from confident, gold, " \
                                 "votes, duplicates, arguments, student"


def test_a_bad_student_file_names_its_line(cli, dbfile, tmp_path):
    path = tmp_path / "student.jsonl"
    path.write_text('{"query_id": 1, "label": [], "confidence": 0.9}\n{"query_id": 2, "label": []}\n')
    result = cli("--db", dbfile, "curate", "audit", "--student", path)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {path}:2 field 'confidence': missing"


def test_a_students_predictions_from_a_file_become_flags(cli, dbfile, tmp_path):
    path = tmp_path / "student.jsonl"
    path.write_text(json.dumps({"query_id": 3, "label": [{"tool": "calculator", "args": {"expression": "12*7"}}],
                                "confidence": 0.95}) + "\n" +
                    json.dumps({"query_id": 1, "label": [], "confidence": 0.99}) + "\n")
    report = json.loads(cli("--db", dbfile, "curate", "audit", "--signals", "student", "--json", "--student",
                            path).stdout)
    assert [(f["query_id"], f["suggested"]) for f in report["flags"]] == [(1, [])]


def test_audit_without_teacher_labels_says_what_to_run(cli, workspace):
    result = cli("--db", workspace / "tooldistill.db", "curate", "audit")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: no teacher labels to audit; run 'tooldistill distill run' or import " \
                                    "labels first"


def test_flags_lists_a_run_with_its_statuses_and_rejects_an_unknown_status(cli, dbfile):
    assert cli("--db", dbfile, "curate", "flags").exit_code == 1  # no audit run yet
    cli("--db", dbfile, "curate", "audit", "--json")
    listed = cli("--db", dbfile, "curate", "flags")
    assert "audit run 1" in listed.stdout and "3 open" in listed.stdout
    data = json.loads(cli("--db", dbfile, "curate", "flags", "--json", "--min-score", "0.9").stdout)
    assert [f["text"] for f in data["flags"]] == ["oslo weather", "what is 12 * 7"]
    bad = cli("--db", dbfile, "curate", "flags", "--status", "lost")
    assert bad.exit_code == 2 and "unknown status 'lost'" in bad.stderr


def test_every_curate_audit_command_has_help(cli):
    for command in ("audit", "flags", "review", "relabel", "adjudicate"):
        result = cli("curate", command, "--help")
        assert result.exit_code == 0 and "Example:" in result.stdout
