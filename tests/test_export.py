"""curate export: every format loads back with datasets.load_dataset unchanged; chat-messages rows with the catalogue
as tools; the dataset card; the Hub push at its boundary (the Hub is not reachable here)."""

import json

import pytest
import yaml

from tooldistill.catalog import load_catalog, parse_label
from tooldistill.curate import build_rows, export, push_to_hub, split
from tooldistill.data import generate_queries
from tooldistill.db import NewQuery, get_catalog, insert_queries, now_iso, open_db
from tooldistill.errors import ConfigError, InputError


@pytest.fixture
def version(db):
    insert_queries(db, generate_queries(load_catalog(), 300, seed=2))
    insert_queries(db, [NewQuery("tell me a joke about penguins", "t", gold=parse_label([]), gold_source="t")])
    return split(db, name="v1").version_id


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_every_format_loads_back_with_load_dataset_unchanged(db, version, tmp_path, fmt):
    from datasets import load_dataset

    report = export(db, "v1", tmp_path / fmt, fmt=fmt)
    _, rows = build_rows(db, version)
    loaded = load_dataset(str(tmp_path / fmt))
    assert list(loaded) == list(rows) == ["train", "val", "test", "hard"]
    for name, examples in rows.items():
        assert loaded[name].to_list() == examples
    assert report.counts == {k: len(v) for k, v in rows.items()}
    assert (tmp_path / fmt / "README.md").is_file() and "README.md" in report.files
    if fmt == "hf":
        from datasets import load_from_disk

        assert load_from_disk(str(tmp_path / fmt))["train"].to_list() == rows["train"]


def test_examples_are_chat_messages_with_the_catalogue_as_tools(db, version, tmp_path):
    catalog = get_catalog(db)
    _, rows = build_rows(db, version)
    examples = [ex for split_rows in rows.values() for ex in split_rows]
    for ex in examples:
        assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
        calls = json.loads(ex["messages"][2]["content"])
        label = parse_label(ex["label"])
        assert calls == [{"name": c["tool"], "arguments": c["args"]} for c in label.canonical()]
        assert ex["label"] == label.canonical_json() and ex["label_source"] == "gold"
        assert ex["tools"] == examples[0]["tools"]
    assert json.loads(examples[0]["tools"]) == catalog.to_openai_tools()
    joke = next(ex for ex in examples if ex["messages"][1]["content"] == "tell me a joke about penguins")
    assert joke["messages"][2]["content"] == "[]" and joke["label"] == "[]"
    multi = next(ex for ex in examples if len(json.loads(ex["label"])) > 1)
    assert isinstance(multi["messages"][2]["content"], str)  # a plain string, never nested structs

    _, gemini = build_rows(db, version, tool_format="gemini")
    g = gemini["train"][0]
    assert json.loads(g["tools"]) == catalog.to_gemini_declarations(include_no_tool=False)
    assert all(set(call) == {"name", "args"} for call in json.loads(g["messages"][2]["content"]))
    assert '"args"' in g["messages"][0]["content"]


def test_the_card_has_front_matter_counts_dedup_leakage_and_lineage(db, version, tmp_path):
    report = export(db, version[:10], tmp_path / "out", fmt="jsonl", license="cc-by-4.0")
    card = (tmp_path / "out" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] == "v1"
    files = {d["split"]: d["path"] for d in meta["configs"][0]["data_files"]}
    assert files == {name: f"data/{name}.jsonl" for name in report.counts}
    for name, n in report.counts.items():
        assert f"| {name} | {n:,} |" in card
    assert "| `<none>` |" in card and "## Deduplication" in card and "found " in card
    assert "train vs held-out = **0**" in card
    assert f"version `{version}`" in card and "labels by precedence review > gold > adjudicated > teacher" in card
    assert "No label audit has run on this data yet" in card


def test_examples_keep_the_acceptable_answers_of_their_queries_in_meta(db, version, tmp_path):
    from datasets import load_dataset

    from tooldistill.eval import acceptable_from_meta

    declared = {qid: json.loads(meta)["acceptable"] for qid, meta in db.execute(
        "SELECT id, meta FROM queries WHERE meta LIKE '%\"acceptable\"%'")}
    _, rows = build_rows(db, version)
    examples = [ex for split_rows in rows.values() for ex in split_rows]
    with_meta = {ex["query_id"]: json.loads(ex["meta"])["acceptable"] for ex in examples if ex["meta"] != "{}"}
    exported = {ex["query_id"] for ex in examples}
    assert len(with_meta) >= 5 and with_meta == {q: a for q, a in declared.items() if q in exported}
    held_out = next(ex for name in ("test", "hard") for ex in rows.get(name, []) if ex["meta"] != "{}")
    acc = acceptable_from_meta(held_out["meta"])
    assert [a.canonical() for a in acc.labels] == declared[held_out["query_id"]]
    export(db, version, tmp_path / "out", fmt="parquet")
    loaded = load_dataset(str(tmp_path / "out"))
    assert {ex["query_id"]: ex["meta"] for name in loaded for ex in loaded[name]} == {
        ex["query_id"]: ex["meta"] for ex in examples}
    assert "| `meta` |" in (tmp_path / "out" / "README.md").read_text()


def test_the_card_summarises_audit_flags_on_the_version(db, version, tmp_path):
    member = db.execute("SELECT query_id FROM split_members WHERE version_id = ? LIMIT 1", [version]).fetchone()[0]
    run = db["audit_runs"].insert({"created_at": now_iso(), "n_flags": 2}).last_pk
    db["audit_flags"].insert_all([{"run_id": run, "query_id": member, "rank": 1, "score": 0.9, "status": "open"},
                                  {"run_id": run, "query_id": member, "rank": 2, "score": 0.8, "status": "reviewed"}])
    card = export(db, version, tmp_path / "out", fmt="parquet").card
    assert "| audit_flags | 2 | 2 | open: 1, reviewed: 1 |" in card
    assert "| audit_runs | 1 |" in card


def test_the_out_folder_must_be_empty_unless_replacing_a_previous_export(db, version, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="is not empty; choose another --out"):
        export(db, version, foreign, fmt="jsonl")
    with pytest.raises(InputError, match="holds no tooldistill export"):
        export(db, version, foreign, fmt="jsonl", overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"
    export(db, version, tmp_path / "out", fmt="jsonl")
    again = export(db, version, tmp_path / "out", fmt="parquet", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == sorted(
        f"{name}-00000-of-00001.parquet" for name in again.counts)
    with pytest.raises(InputError, match="unknown export format 'xml'"):
        export(db, version, tmp_path / "x", fmt="xml")


@pytest.fixture
def hub(monkeypatch):
    """Stand-ins for the two Hub calls: they record what they were given."""
    import datasets
    import huggingface_hub

    calls = {}

    def fake_push(self, repo_id, **kwargs):
        calls["push"] = {"repo_id": repo_id, "splits": {k: v.to_list() for k, v in self.items()}, **kwargs}

    def fake_upload(self, **kwargs):
        calls["upload"] = {**kwargs, "token": self.token}

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", fake_push)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", fake_upload)
    return calls


def test_push_to_hub_sends_the_splits_then_the_card(db, version, hub):
    report = push_to_hub(db, "v1", "me/router-data", token="hf_secret", private=True, license="apache-2.0")
    _, rows = build_rows(db, version)
    push, upload = hub["push"], hub["upload"]
    assert (push["repo_id"], push["private"], push["token"]) == ("me/router-data", True, "hf_secret")
    assert push["splits"] == rows
    assert (upload["path_in_repo"], upload["repo_id"], upload["repo_type"], upload["token"]) == (
        "README.md", "me/router-data", "dataset", "hf_secret")
    card = upload["path_or_fileobj"].decode()
    assert card == report.card
    meta = _front_matter(card)
    assert meta["license"] == "apache-2.0"
    assert {d["split"]: d["path"] for d in meta["configs"][0]["data_files"]} == {n: f"data/{n}-*" for n in rows}
    assert 'load_dataset("me/router-data")' in card
    with pytest.raises(ConfigError, match="HF_TOKEN is not set"):
        push_to_hub(db, "v1", "me/router-data", token=None)
    with pytest.raises(InputError, match="not a Hub repo id"):
        push_to_hub(db, "v1", "router data", token="hf_secret")


def test_cli_export_and_push_read_hf_token_from_the_workspace_env(tmp_path, cli, hub, monkeypatch):
    from tooldistill.config import init_workspace, load_workspace

    ws = tmp_path / "ws"
    init_workspace(ws)
    db = open_db(load_workspace(ws).db_path)
    get_catalog(db)
    insert_queries(db, generate_queries(load_catalog(), 120, seed=4))
    version = split(db).version_id
    monkeypatch.chdir(ws)
    res = cli("curate", "export", "latest", "--push-to-hub", "me/data")
    assert res.exit_code == 1 and res.stderr.strip().startswith("Error: HF_TOKEN is not set")
    (ws / ".env").write_text("HF_TOKEN=hf_from_dotenv\n")
    res = cli("curate", "export", "latest", "--format", "jsonl", "--out", "exported", "--push-to-hub", "me/data",
              "--private", "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["export"]["version_id"] == result["push"]["version_id"] == version
    assert hub["push"]["token"] == hub["upload"]["token"] == "hf_from_dotenv" and hub["push"]["private"] is True
    assert (ws / "exported" / "data" / "train.jsonl").is_file()
    res = cli("curate", "export", "latest", "--format", "csv", "--out", "x")
    assert res.exit_code == 2
    assert res.stderr.strip() == "Error: field 'format': unknown export format 'csv'; use one of: jsonl, parquet, hf"
    res = cli("curate", "export", "latest")
    assert res.exit_code == 2 and "nothing to do: pass --out DIR, --push-to-hub OWNER/NAME, or both" in res.stderr
    res = cli("curate", "export", "nope", "--out", "y")
    assert res.exit_code == 1 and "no dataset version 'nope'" in res.stderr
