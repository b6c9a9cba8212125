"""Export (the gold-file format), revalidation after a catalogue change, and `data catalog show/set`."""

import json

import pytest
import yaml

from tooldistill.catalog import dump_catalog, load_catalog, parse_label
from tooldistill.data import EXPORT_KEYS, export_jsonl, generate, import_queries, set_catalog, validate_labels
from tooldistill.db import add_label, add_review, get_catalog, insert_queries, NewQuery, open_db


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def weather_renamed_catalogue(tmp_path):
    """The default catalogue with weather's ``location`` renamed ``city`` and web_reader removed."""
    data = yaml.safe_load(dump_catalog(load_catalog()))
    data["tools"] = [t for t in data["tools"] if t["name"] != "web_reader"]
    weather = next(t for t in data["tools"] if t["name"] == "weather")
    weather["parameters"] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_export_writes_the_gold_file_format_line_by_line(db, tmp_path):
    generate(db, 200, seed=5)
    ids = insert_queries(db, [NewQuery("unlabelled question", "t")]).ids
    report = export_jsonl(db, tmp_path / "out" / "gold.jsonl")
    lines = read_jsonl(tmp_path / "out" / "gold.jsonl")
    assert (report.written, report.unlabeled, len(lines)) == (200, 1, 200)
    assert all(tuple(line) == EXPORT_KEYS for line in lines)
    assert ids[0] not in {line["id"] for line in lines}
    first = next(iter(db.query("SELECT * FROM queries WHERE id = ?", [lines[0]["id"]])))
    assert lines[0]["text"] == first["text"] and lines[0]["template_id"] == first["template_id"]
    assert {line["label_source"] for line in lines} == {"gold"}
    assert all(isinstance(line["label"], list) and all(set(c) == {"tool", "args"} for c in line["label"])
               for line in lines)


def test_export_then_import_as_gold_round_trips_texts_labels_and_templates(db, tmp_path):
    generate(db, 150, seed=9)
    export_jsonl(db, tmp_path / "gold.jsonl")
    fresh = open_db(tmp_path / "fresh.db")
    report = import_queries(fresh, tmp_path / "gold.jsonl", gold=True, strict=True)
    assert (report.added, report.labels_added) == (150, 150)
    export_jsonl(fresh, tmp_path / "again.jsonl")
    strip = lambda rows: [(r["text"], parse_label(r["label"]), r["category"], r["template_id"]) for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "gold.jsonl")) == strip(read_jsonl(tmp_path / "again.jsonl"))


def test_export_follows_the_label_precedence(db, tmp_path):
    qid = insert_queries(db, [NewQuery("weather in Oslo", "t")]).ids[0]
    add_label(db, qid, parse_label([{"tool": "web_search", "args": {"query": "Oslo"}}]))
    export_jsonl(db, tmp_path / "a.jsonl")
    assert read_jsonl(tmp_path / "a.jsonl")[0]["label_source"] == "teacher"
    fixed = parse_label([{"tool": "weather", "args": {"location": "Oslo"}}])
    add_review(db, qid, "fix", fixed)
    export_jsonl(db, tmp_path / "b.jsonl")
    line = read_jsonl(tmp_path / "b.jsonl")[0]
    assert (line["label_source"], line["label"]) == ("review", [{"tool": "weather", "args": {"location": "Oslo"}}])


def test_validate_lists_exactly_the_labels_a_catalogue_change_breaks(db, tmp_path):
    generate(db, 300, seed=2)
    qid = insert_queries(db, [NewQuery("read https://example.com/a", "t")]).ids[0]
    add_label(db, qid, parse_label([{"tool": "web_reader", "args": {"url": "https://example.com/a"}}]))
    assert validate_labels(db).count == 0
    catalog, previous, report = set_catalog(db, weather_renamed_catalogue(tmp_path))
    assert previous == load_catalog().hash and get_catalog(db).hash == catalog.hash
    broken_gold = {row[0] for row in db.execute(
        "SELECT id FROM queries WHERE gold_calls LIKE '%\"weather\"%' OR gold_calls LIKE '%\"web_reader\"%'")}
    assert {m.query_id for m in report.misfits if m.kind == "gold"} == broken_gold
    assert [m.query_id for m in report.misfits if m.kind == "label"] == [qid]
    assert report.checked == {"label": 1, "gold": 300, "review": 0, "adjudication": 0}
    weather = next(m for m in report.misfits if m.label[0]["tool"] == "weather")
    assert "weather: args.city: missing required argument" in weather.errors and weather.text


def test_cli_validate_and_catalog_set_report_the_misfits(cli, tmp_path):
    dbp = tmp_path / "w.db"
    assert cli("--db", dbp, "data", "generate", "--n", "120").exit_code == 0
    changed = weather_renamed_catalogue(tmp_path)
    result = cli("--db", dbp, "data", "catalog", "set", changed)
    assert result.exit_code == 0
    n = validate_labels(open_db(dbp)).count
    assert n > 0 and f"{n:,} of 120 stored labels no longer fit" in result.stdout
    as_json = json.loads(cli("--db", dbp, "data", "validate", "--json").stdout)
    assert as_json["count"] == n and len(as_json["misfits"]) == n
    table = cli("--db", dbp, "data", "validate")
    assert table.exit_code == 0 and f"{n:,} of 120 labels do not fit catalogue" in table.stdout


def test_cli_catalog_set_with_duplicate_names_changes_nothing(cli, tmp_path):
    dbp = tmp_path / "w.db"
    dup = tmp_path / "dup.yaml"
    dup.write_text("tools:\n- {name: weather, description: a}\n- {name: weather, description: b}\n")
    before = json.loads(cli("--db", dbp, "data", "catalog", "show", "--json").stdout)
    result = cli("--db", dbp, "data", "catalog", "set", dup)
    assert (result.exit_code, result.stderr) == (2, f"Error: {dup}: duplicate tool name(s): weather\n")
    assert json.loads(cli("--db", dbp, "data", "catalog", "show", "--json").stdout)["hash"] == before["hash"]
    assert before["hash"] == load_catalog().hash and len(before["tools"]) == 9


def test_cli_export_writes_the_file_and_says_how_many(cli, tmp_path):
    dbp = tmp_path / "w.db"
    cli("--db", dbp, "data", "generate", "--n", "60")
    result = cli("--db", dbp, "data", "export", "--out", tmp_path / "g.jsonl")
    assert result.exit_code == 0 and "wrote 60 labelled queries" in result.stdout
    assert len(read_jsonl(tmp_path / "g.jsonl")) == 60


def acceptable_by_text(db):
    """``{text: [alternative label, ...]}`` of every query whose meta declares acceptable answers."""
    from tooldistill.eval import acceptable_from_meta

    out = {}
    for text, meta in db.execute("SELECT text, meta FROM queries WHERE meta IS NOT NULL"):
        acc = acceptable_from_meta(meta)
        if acc is not None:
            out[text] = [label.canonical() for label in acc.labels]
    return out


def test_export_carries_the_acceptable_answers_of_ambiguous_queries_in_meta(db, tmp_path):
    generate(db, 150, seed=9)
    export_jsonl(db, tmp_path / "gold.jsonl")
    lines = read_jsonl(tmp_path / "gold.jsonl")
    declared = [line for line in lines if line["meta"]]
    assert {line["text"]: line["meta"]["acceptable"] for line in declared} == acceptable_by_text(db)
    assert all(line["meta"] for line in lines if line["category"] == "ambiguous")
    assert all(line["meta"]["acceptable"][0] == line["label"] for line in declared)  # gold first
    assert all(set(line["meta"]) == {"acceptable"} for line in declared)  # noise and the like stay home


@pytest.mark.parametrize("as_gold", [True, False])
def test_export_then_import_keeps_the_acceptable_sets(db, tmp_path, as_gold):
    generate(db, 150, seed=9)
    export_jsonl(db, tmp_path / "gold.jsonl")
    fresh = open_db(tmp_path / "fresh.db")
    import_queries(fresh, tmp_path / "gold.jsonl", gold=as_gold, strict=True)
    before = acceptable_by_text(db)
    assert len(before) >= 5 and acceptable_by_text(fresh) == before
    export_jsonl(fresh, tmp_path / "again.jsonl")
    metas = lambda path: {r["text"]: r["meta"] for r in read_jsonl(path)}  # noqa: E731
    assert metas(tmp_path / "again.jsonl") == metas(tmp_path / "gold.jsonl")


def test_import_reads_acceptable_answers_declared_at_the_top_level_or_as_json_text(db, tmp_path):
    rows = [{"text": "Paris", "label": [{"tool": "weather", "args": {"location": "Paris"}}],
             "acceptable": [[{"name": "web_search", "arguments": {"query": "Paris"}}]]},
            {"text": "Lima", "label": [{"tool": "weather", "args": {"location": "Lima"}}],
             "meta": json.dumps({"acceptable_args": {"weather.location": ["Lima", "Lima, Peru"]}, "other": 1})}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    import_queries(db, tmp_path / "in.jsonl", strict=True)
    stored = {t: json.loads(m) for t, m in db.execute("SELECT text, meta FROM queries")}
    assert stored["Paris"]["acceptable"] == [[{"tool": "web_search", "args": {"query": "Paris"}}]]
    assert stored["Lima"]["acceptable_args"] == {"weather.location": ["Lima", "Lima, Peru"]}
    assert "other" not in stored["Lima"]


@pytest.mark.parametrize("meta, message", [
    ({"acceptable": [[{"tool": "stocks", "args": {}}]]}, "field 'meta.acceptable[0][0]': unknown tool 'stocks'"),
    ({"acceptable": "web_search"}, "field 'meta.acceptable': expected a list of labels, got str"),
    ({"acceptable_args": {"query": "x"}}, "field 'meta.acceptable_args': the acceptable values of 'query' must be a "
                                          "list"),
])
def test_cli_import_bad_acceptable_answers_name_line_and_field(cli, tmp_path, meta, message):
    good = {"text": "hello there", "label": []}
    bad = {"text": "Oslo", "label": [{"tool": "weather", "args": {"location": "Oslo"}}], "meta": meta}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    res = cli("--db", tmp_path / "w.db", "data", "import", path, "--strict")
    assert res.exit_code == 2
    assert f"{path}:2 {message}" in res.stderr.replace("\n", " ")
