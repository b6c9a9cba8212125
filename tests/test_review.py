"""curate review: flags -> decisions (a file or the terminal UI) -> reviews that win over every other label."""

import json

import pytest

from tooldistill.catalog import parse_label
from tooldistill.curate import pending_flags
from tooldistill.db import NewQuery, add_label, current_labels, insert_queries, open_db

W = lambda city: [{"tool": "weather", "args": {"location": city}}]  # noqa: E731
S = lambda q: [{"tool": "web_search", "args": {"query": q}}]  # noqa: E731
ROWS = [  # text, gold, teacher label: every teacher label contradicts its gold
    ("weather in oslo", W("Oslo"), S("weather in oslo")),
    ("weather in lima", W("Lima"), S("weather in lima")),
    ("weather in rome", W("Rome"), S("weather in rome")),
    ("weather in bern", W("Bern"), S("weather in bern")),
]


@pytest.fixture
def audited(workspace, cli):
    """A workspace whose four teacher labels contradict their gold, audited: four flags with suggestions."""
    path = workspace / "tooldistill.db"
    db = open_db(path)
    ids = insert_queries(db, [NewQuery(t, "t", gold=parse_label(g), gold_source="template") for t, g, _ in ROWS]).ids
    for qid, (_, _, teacher) in zip(ids, ROWS):
        add_label(db, qid, parse_label(teacher), model="m")
    assert cli("--db", path, "curate", "audit", "--signals", "gold").exit_code == 0
    return path, db, ids


def sources(db):
    return {q: (c.source, c.label.canonical() if c.label else None, c.rejected)
            for q, c in current_labels(db, include_rejected=True).items()}


def test_a_decisions_file_changes_current_labels_and_closes_the_flags(audited, cli, tmp_path):
    path, db, ids = audited
    template = tmp_path / "decisions.jsonl"
    written = cli("--db", path, "curate", "review", "--template", template)
    assert "wrote 4 pending flags" in written.stdout
    rows = [json.loads(line) for line in template.read_text().splitlines()]
    assert [r["decision"] for r in rows] == ["accept"] * 4 and rows[0]["label"] == W("Oslo")
    assert rows[0]["teacher"] == S("weather in oslo") and rows[0]["current"] == {"source": "gold", "label": W("Oslo")}
    rows[1].update(decision="fix", label=W("Lima, Peru"))
    rows[2].update(decision="keep")
    rows[3].update(decision="reject", note="not a real request")
    template.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("--db", path, "curate", "review", "--apply", template)
    assert result.exit_code == 0, result.output
    # accepting gold's suggestion and keeping (gold stays) change no label; the fix and the reject do
    assert result.stdout.strip() == "applied 4 decisions (1 accept, 1 fix, 1 keep, 1 reject): 2 current labels " \
                                    "changed, 4 flags closed"
    now = sources(db)
    assert now[ids[0]] == ("review", W("Oslo"), False)
    assert now[ids[1]] == ("review", W("Lima, Peru"), False)  # the review wins over gold
    assert now[ids[2]] == ("review", W("Rome"), False)  # kept: the label precedence gave it, now settled
    assert now[ids[3]] == ("review", None, True) and ids[3] not in current_labels(db)
    assert db.execute("SELECT note FROM reviews WHERE query_id = ?", [ids[3]]).fetchone()[0] == "not a real request"
    assert {s for (s,) in db.execute("SELECT status FROM audit_flags")} == {"reviewed"}
    assert pending_flags(db) == []
    again = cli("--db", path, "curate", "audit", "--signals", "gold", "--json")
    assert json.loads(again.stdout)["flags_total"] == 0  # settled queries are not flagged again


@pytest.mark.parametrize("lines, message", [
    (['{"query_id": 1, "decision": "accept"}', '{"query_id": 2, "decision": "maybe"}'],
     "decisions.jsonl:2 field 'decision': expected one of accept, fix, keep, reject, got 'maybe'"),
    (['{"query_id": 1, "decision": "fix"}'],
     "decisions.jsonl:1 field 'label': decision fix needs a label (a list of calls, [] for no tool)"),
    (['{"query_id": 1, "decision": "fix", "label": [{"tool": "weather", "args": {}}]}'],
     "decisions.jsonl:1 field 'label[0]': weather: args.location: missing required argument"),
    (['{"query_id": 99, "decision": "keep"}'], "decisions.jsonl:1 field 'query_id': no query 99 in the database"),
    (['{"query_id": 1, "decision": "keep"}', '{"query_id": 1, "decision": "reject"}'],
     "decisions.jsonl:2 field 'query_id': query 1 already decided on line 1"),
    (['{"query_id": 1, "decison": "keep"}'],
     "decisions.jsonl:1 field 'decison': unknown field (expected query_id, decision, label, note)"),
    (['{"query_id": 1, "decision": "keep"', ], "decisions.jsonl:1: invalid JSON"),
])
def test_a_bad_decisions_file_names_file_line_and_field_and_applies_nothing(audited, cli, tmp_path, lines, message):
    path, db, _ = audited
    file = tmp_path / "decisions.jsonl"
    file.write_text("\n".join(lines) + "\n")
    result = cli("--db", path, "curate", "review", "--apply", file)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / message}") or result.stderr.startswith(
        f"Error: {tmp_path}/{message}")
    assert db.execute("SELECT count(*) FROM reviews").fetchone()[0] == 0


def test_accept_needs_a_suggestion(workspace, cli, tmp_path):
    path = workspace / "tooldistill.db"
    db = open_db(path)
    qid = insert_queries(db, [NewQuery("what is 12 * 7", "t")]).ids[0]
    add_label(db, qid, parse_label([{"tool": "calculator", "args": {}}]), model="m")  # a schema flag, no suggestion
    cli("--db", path, "curate", "audit", "--signals", "arguments")
    file = tmp_path / "d.jsonl"
    file.write_text(json.dumps({"query_id": qid, "decision": "accept"}) + "\n")
    result = cli("--db", path, "curate", "review", "--apply", file)
    assert result.exit_code == 2 and "has no suggested label to accept; give a label or use fix" in result.stderr


def test_the_terminal_review_records_each_decision_and_resumes_where_it_stopped(audited, cli):
    path, db, ids = audited
    keys = "\n".join([
        "a",                                      # flag 1: accept the suggestion
        "f", "not json", '[{"tool": "weather", "args": {"location": "Lima"}}]',  # flag 2: fix, a typo first
        "k",                                      # flag 3: keep the teacher's label
        "s",                                      # flag 4: skip for now
    ]) + "\n"
    first = cli("--db", path, "curate", "review", input=keys)
    assert first.exit_code == 0, first.output
    assert "flag 1/4" in first.stdout and "weather in oslo" in first.stdout
    assert "not a label" in first.stdout  # the typo is explained, and the prompt asks again
    assert first.stdout.strip().endswith("1 accept, 1 fix, 1 keep, 1 skip; 1 flags still pending")
    now = sources(db)
    assert now[ids[0]] == ("review", W("Oslo"), False) and now[ids[1]] == ("review", W("Lima"), False)
    assert now[ids[3]][0] == "gold"  # skipped: nothing decided
    second = cli("--db", path, "curate", "review", input="r\n")
    assert "flag 1/1" in second.stdout and "weather in bern" in second.stdout
    assert sources(db)[ids[3]] == ("review", None, True)
    third = cli("--db", path, "curate", "review")
    assert third.stdout.strip() == "nothing to review: every flag of this audit run is decided"
    decisions = [d for (d,) in db.execute("SELECT decision FROM reviews ORDER BY id")]
    assert decisions == ["accept", "fix", "keep", "skip", "reject"]


def test_quitting_the_terminal_review_keeps_what_was_decided(audited, cli):
    path, db, ids = audited
    result = cli("--db", path, "curate", "review", input="k\nq\n")
    assert result.stdout.strip().endswith("1 keep; 3 flags still pending")
    assert [f.query_id for f in pending_flags(db)] == ids[1:]
