"""Import: every source format, label shapes and class labels, bad rows (strict vs skip), idempotence, policy."""

import json

import pytest

from tooldistill.catalog import Catalog, parse_label
from tooldistill.data import generate, import_queries
from tooldistill.db import count_queries, current_labels, get_catalog, open_db
from tooldistill.errors import InputError, ToolDistillError

WEATHER = [{"tool": "weather", "args": {"location": "Oslo"}}]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def labels_of(db):
    return {row["text"]: (row["calls"], row["source"]) for row in db.query(
        "SELECT q.text, l.calls, l.source FROM labels l JOIN queries q ON q.id = l.query_id")}


def test_jsonl_labels_in_our_openai_and_name_arguments_shapes(db, tmp_path):
    src = write_jsonl(tmp_path / "calls.jsonl", [
        {"text": "weather in Oslo", "label": WEATHER},
        {"text": "what is 2+2", "label": [{"type": "function", "function": {
            "name": "calculator", "arguments": "{\"expression\": \"2+2\"}"}}]},
        {"text": "define zeal", "label": [{"name": "dictionary", "arguments": {"word": "zeal"}}]},
        {"text": "hello!", "label": []},
        {"text": "just a query"},
    ])
    report = import_queries(db, src)
    assert (report.rows, report.added, report.labels_added, report.skipped) == (5, 5, 4, 0)
    assert report.label_mode == "calls" and report.catalog_action == "unchanged"
    got = labels_of(db)
    assert parse_label(json.loads(got["what is 2+2"][0])).calls[0].args == {"expression": "2+2"}
    assert parse_label(json.loads(got["hello!"][0])).is_no_tool
    assert {source for _, source in got.values()} == {"import"} and "just a query" not in got
    assert {r["source"] for r in db.query("SELECT source FROM queries")} == {"import:calls.jsonl"}
    assert {c.source for c in current_labels(db).values()} == {"teacher"}  # imported labels rank as teacher's


def test_gold_import_stores_verified_labels_on_the_queries(db, tmp_path):
    src = write_jsonl(tmp_path / "gold.jsonl", [{"query": "weather in Oslo", "calls": WEATHER}])
    report = import_queries(db, src, gold=True)
    assert report.text_column == "query" and report.label_column == "calls" and report.labels_added == 1
    row = next(db.query("SELECT gold_calls, gold_source FROM queries"))
    assert row["gold_source"] == "import" and json.loads(row["gold_calls"]) == WEATHER
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    assert [c.source for c in current_labels(db).values()] == ["gold"]


def test_csv_class_labels_derive_the_catalogue_with_a_none_class(db, tmp_path):
    src = tmp_path / "intents.csv"
    src.write_text('utterance,intent\n"book a flight, please",book_flight\nhi there,oos\n'
                   "what's my balance,balance\n", encoding="utf-8")
    report = import_queries(db, src, none_label="oos")
    assert report.label_mode == "classes" and report.catalog_action == "stored"
    catalog = get_catalog(db)
    assert catalog.names == ["balance", "book_flight"] and catalog.none_label == "oos"
    labels = {db.execute("SELECT text FROM queries WHERE id = ?", [qid]).fetchone()[0]: c.label.tools
              for qid, c in current_labels(db).items()}
    assert labels == {"book a flight, please": ["book_flight"], "hi there": [], "what's my balance": ["balance"]}


def test_datasets_folder_with_class_label_feature_and_splits(db, tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "intent": datasets.ClassLabel(names=["greet", "weather"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["hi", "rain in Rome?"], "intent": [0, 1]}, features=features),
        "test": datasets.Dataset.from_dict({"sentence": ["hello"], "intent": [0]}, features=features),
    })
    dd.save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InputError, match=r"the dataset has splits train, test; pass --split NAME"):
        import_queries(db, tmp_path / "ds")
    report = import_queries(db, tmp_path / "ds", split="train", none_label="greet")
    assert (report.added, report.labels_added, report.query_sources) == (2, 2, ["import:ds/train"])
    assert get_catalog(db).names == ["weather"]
    everything = import_queries(db, tmp_path / "ds", split="all", none_label="greet")
    assert (everything.added, everything.duplicates) == (1, 2)


def test_bad_rows_are_skipped_and_reported_with_file_line_and_reason(db, tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [
        {"text": "weather in Oslo", "label": WEATHER},
        '{"text": "what is 2+2", "label": [',
        {"text": "book me a flight", "label": [{"tool": "book_flight", "args": {}}]},
        {"text": "convert ten km", "label": [{"tool": "unit_converter", "args": {"value": "ten", "from": "km",
                                                                                  "to": "mi"}}]},
        {"text": "  ", "label": []},
    ])
    report = import_queries(db, src)
    assert (report.added, report.skipped) == (1, 4)
    path = str(src)
    assert report.problems == [
        f"{path}:2: not valid JSON (Expecting value at column 35)",
        f"{path}:3 field 'label[0]': unknown tool 'book_flight' (known: web_search, calculator, weather, wikipedia, "
        "datetime, dictionary, translate, unit_converter, web_reader)",
        f"{path}:4 field 'label[0]': unit_converter: args.value: expected number, got str 'ten'",
        f"{path}:5 field 'text': empty text",
    ]


def test_strict_stops_at_the_first_bad_row_with_nothing_written(db, tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"text": "weather in Oslo", "label": WEATHER},
                                               {"text": "x", "label": [{"tool": "nope", "args": {}}]}])
    with pytest.raises(InputError) as exc:
        import_queries(db, src, strict=True, batch_size=1)
    assert str(exc.value) == (f"{src}:2 field 'label[0]': unknown tool 'nope' (known: web_search, calculator, "
                              "weather, wikipedia, datetime, dictionary, translate, unit_converter, web_reader) "
                              "(--strict: nothing was imported; fix the row, or drop --strict to skip bad rows)")
    assert count_queries(db) == 0 and db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0


def test_cli_strict_exit_2_and_default_exit_0_with_the_skipped_rows_on_stderr(cli, tmp_path):
    src = write_jsonl(tmp_path / "bad.jsonl", [{"text": "weather in Oslo", "label": WEATHER},
                                               '{"text": "oops" "label": []}'])
    strict = cli("--db", tmp_path / "w.db", "data", "import", src, "--strict")
    assert strict.exit_code == 2
    assert strict.stderr == (f"Error: {src}:2: not valid JSON (Expecting ',' delimiter at column 17) (--strict: "
                             "nothing was imported; fix the row, or drop --strict to skip bad rows)\n")
    lenient = cli("--db", tmp_path / "w.db", "data", "import", src)
    assert lenient.exit_code == 0
    assert "1 new queries" in lenient.stdout and "1 bad rows skipped" in lenient.stdout
    assert lenient.stderr == f"skipped {src}:2: not valid JSON (Expecting ',' delimiter at column 17)\n"


def test_reimporting_the_same_file_adds_nothing(db, tmp_path):
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": f"weather in city {i}", "label": [
        {"tool": "weather", "args": {"location": f"city {i}"}}]} for i in range(30)])
    first = import_queries(db, src, batch_size=7)
    again = import_queries(db, src, batch_size=7)
    assert (first.added, first.labels_added) == (30, 30)
    assert (again.added, again.duplicates, again.labels_added, again.labels_present) == (0, 30, 0, 30)
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 30
    gold = import_queries(db, src, gold=True)  # now verified: gold is set on the existing queries, once
    assert (gold.added, gold.labels_added) == (0, 30)
    assert import_queries(db, src, gold=True).labels_present == 30


def test_labels_under_another_catalogue_are_refused_and_nothing_is_written(db, tmp_path):
    generate(db, 50, seed=0)
    src = tmp_path / "intents.csv"
    src.write_text("text,label\nhi,greet\nbye,farewell\n", encoding="utf-8")
    with pytest.raises(ToolDistillError, match=r"already holds 50 labels under catalogue 'default'.*fresh database"):
        import_queries(db, src)
    assert count_queries(db) == 50 and get_catalog(db).name == "default"
    assert import_queries(db, src, labels=False).added == 2  # the queries alone are fine


def test_a_class_catalogue_grows_by_new_classes(db, tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nhi,greet\nrain?,weather\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("text,label\nbye,farewell\n", encoding="utf-8")
    import_queries(db, tmp_path / "a.csv")
    report = import_queries(db, tmp_path / "b.csv")
    assert report.catalog_action == "extended"
    assert get_catalog(db).names == ["farewell", "greet", "weather"]
    assert import_queries(db, tmp_path / "a.csv").catalog_action == "unchanged"


def test_an_explicit_catalogue_maps_class_names_to_its_tools(db, tmp_path):
    cat = tmp_path / "cat.yaml"
    cat.write_text("tools:\n- {name: greet, description: Say hi}\n- {name: weather, description: Weather}\n")
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "hi", "label": "greet"}, {"text": "x", "label": "dance"}])
    report = import_queries(db, src, catalog=cat)
    assert (report.added, report.skipped, report.catalog_action) == (1, 1, "stored")
    assert "unknown tool 'dance'" in report.problems[0]


def test_progress_reports_rows_read(db, tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"text": f"q {i}"} for i in range(25)])
    events = []
    import_queries(db, src, batch_size=10, progress=events.append)
    assert [e.done for e in events] == [10, 20, 25] and {e.task for e in events} == {"import"}


def test_cli_catalogue_with_duplicate_tool_names_is_exit_2(cli, tmp_path):
    cat = tmp_path / "dup.yaml"
    cat.write_text("tools:\n- {name: weather, description: a}\n- {name: weather, description: b}\n")
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "hi", "label": "weather"}])
    result = cli("--db", tmp_path / "w.db", "data", "import", src, "--catalog", cat)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {cat}: duplicate tool name(s): weather\n"


def test_cli_hub_id_without_network_is_one_line_exit_1(cli, tmp_path):
    result = cli("--db", tmp_path / "w.db", "data", "import", "someone/some_dataset")
    assert result.exit_code == 1
    assert result.stderr == ("Error: 'someone/some_dataset' is not a local file or folder, and the Hugging Face Hub "
                             "cannot be reached: HF_HUB_OFFLINE is set; import a local copy (JSONL, CSV or a "
                             "save_to_disk folder), or retry with the network on\n")


def test_cli_missing_file_and_non_sqlite_database(cli, tmp_path):
    missing = cli("--db", tmp_path / "w.db", "data", "import", "nope.jsonl")
    assert (missing.exit_code, missing.stderr) == (2, "Error: nope.jsonl: no such file or folder\n")
    notes = tmp_path / "notes.db"
    notes.write_text("not a database")
    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "hi"}])
    result = cli("--db", notes, "data", "import", src)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {notes} is not a SQLite database (bad header); pass --db with a tooldistill "
                             "database\n")


def test_class_names_that_collide_are_a_clear_error(tmp_path):
    db = open_db(tmp_path / "c.db")
    src = write_jsonl(tmp_path / "c.jsonl", [{"text": "a", "label": "card arrival"},
                                             {"text": "b", "label": "card_arrival"}])
    with pytest.raises(InputError, match="collide"):
        import_queries(db, src)
    assert isinstance(get_catalog(db), Catalog) and count_queries(db) == 0
