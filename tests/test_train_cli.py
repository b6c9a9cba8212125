"""The `tooldistill train` CLI end to end: the demo's run, a retrain on relabeled data with lineage, runs listing,
merge, push at the Hub boundary, training from an export file, the tiny-model builder, and bad inputs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from test_train_support import CONFIGS, noisy, offline_env, tiny_model, write_version

TINY_CPU = CONFIGS / "tiny-cpu.yaml"
QUICK = ["--set", "optim.max_steps=20", "--set", "eval.score_examples=8"]


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """A workspace where v1 (teacher labels, 15% wrongly 'no tool') was trained on, then v2 (relabeled) with --like."""
    from tooldistill.cli import app
    from tooldistill.config import init_workspace
    from tooldistill.db import get_catalog, open_db
    from tooldistill.train import synthetic_examples

    root = tmp_path_factory.mktemp("ws")
    init_workspace(root)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**offline_env(), "HF_HOME": str(root / "hf_home"), "TOOLDISTILL_RAISE_ERRORS": ""}.items():
            mp.setenv(key, value)
        mp.delenv("TOOLDISTILL_DB", raising=False)
        mp.chdir(root)
        db = open_db(root / "tooldistill.db")
        catalog = get_catalog(db)
        clean = synthetic_examples(catalog, 200, seed=2)
        v1 = write_version(db, noisy(clean, share=0.15, seed=2), name="v1", catalog=catalog)
        v2 = write_version(db, clean, name="v2-relabeled", catalog=catalog)
        runner = CliRunner()
        first = runner.invoke(app, ["train", "run", "--config", str(TINY_CPU), "--dataset", v1, "--base-model",
                                    str(tiny_model()), *QUICK], catch_exceptions=False)
        first_id = db.execute("SELECT id FROM runs WHERE kind = 'train' ORDER BY created_at DESC").fetchone()[0]
        second = runner.invoke(app, ["train", "run", "--like", first_id, "--dataset", v2, "--json"],
                               catch_exceptions=False)
        yield {"root": root, "db": db, "v1": v1, "v2": v2, "first": first, "first_id": first_id, "second": second}
        db.close()


def test_the_demo_command_trains_the_tiny_student_and_records_the_run(story):
    from tooldistill.train import get_run

    result = story["first"]
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"run {story['first_id']} done: 20 steps, train loss ")
    assert lines[1].startswith("train: ") and lines[2].startswith("val: ")
    row = get_run(story["db"], story["first_id"])
    assert (row["status"], row["dataset_version"], row["config"]["student"]) == ("done", story["v1"], "sft")
    assert row["artifact_path"] == str(story["root"] / "runs" / story["first_id"])


def test_a_retrain_on_the_relabeled_version_records_lineage_to_the_first_run(story):
    from tooldistill.train import get_run, lineage

    assert story["second"].exit_code == 0, story["second"].stderr
    second = json.loads(story["second"].stdout)
    row = get_run(story["db"], second["run_id"])
    first = get_run(story["db"], story["first_id"])
    assert (row["parent_run_id"], row["dataset_version"]) == (story["first_id"], story["v2"])
    assert row["config"] == first["config"]  # the same recipe, on the new data
    assert [r["id"] for r in lineage(story["db"], row["id"])] == [story["first_id"], row["id"]]


def test_train_runs_lists_both_runs_with_their_lineage_and_metrics(story, cli):
    result = cli("--db", story["root"] / "tooldistill.db", "train", "runs", "--json")
    assert result.exit_code == 0
    runs = {r["id"]: r for r in json.loads(result.stdout)}
    second_id = json.loads(story["second"].stdout)["run_id"]
    assert runs[story["first_id"]]["children"] == [second_id]
    assert runs[second_id]["parent_run_id"] == story["first_id"]
    assert all(r["metrics"]["eval_loss"] > 0 for r in runs.values())
    table = cli("--db", story["root"] / "tooldistill.db", "train", "runs")
    assert story["first_id"] in table.stdout and second_id in table.stdout


def _fake_hub(monkeypatch) -> list:
    """Replace the two Hub calls with recorders (the boundary of `train push`)."""
    from huggingface_hub import HfApi

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", self.token, repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        files = sorted(p.name for p in folder.iterdir())
        calls.append(("upload_folder", self.token, kwargs, files, (folder / "README.md").read_text()))
        return None

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_uploads_the_adapter_with_a_model_card(story, cli, monkeypatch):
    from tooldistill.db import now_iso

    calls = _fake_hub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    rate = {"value": 0.9, "lo": 0.8, "hi": 0.95}
    story["db"]["runs"].insert({
        "id": "eval-card-test", "kind": "eval", "status": "done", "created_at": now_iso(),
        "parent_run_id": story["first_id"], "dataset_version": story["v1"],
        "config": json.dumps({"split": f"{story['v1']}:val"}),
        "metrics": json.dumps({"summary": {"views": {"split": {"n": 25, "rates": {"tool_accuracy": rate}}}}})},
        replace=True)
    result = cli("--db", story["root"] / "tooldistill.db", "train", "push", story["first_id"], "--to",
                 "me/tiny-router", "--json")
    assert result.exit_code == 0, result.stderr
    (_, token, repo, repo_kwargs), (_, token2, upload, files, card) = calls
    assert (token, token2, repo) == ("hf_test_token", "hf_test_token", "me/tiny-router")
    assert repo_kwargs == {"private": False, "exist_ok": True, "repo_type": "model"}
    assert upload["repo_id"] == "me/tiny-router"
    assert upload["folder_path"] == str(story["root"] / "runs" / story["first_id"] / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json", "README.md"} <= set(files)
    assert card.startswith("---\nlibrary_name: peft\n")
    assert f"base model: `{tiny_model()}`" in card and f"dataset version `{story['v1']}`" in card
    assert "| `eval-card-test` | " + f"{story['v1']}:val | split labels, n=25: tool_accuracy 0.900 [0.800, 0.950] |" \
        in card
    assert "- `weather`: Get the current weather" in card and "lora:\n  r: 16" in card
    assert "no catalogue in the prompt (the student learned it" in card  # tiny-cpu.yaml leaves it out
    assert json.loads(result.stdout)["repo"] == "me/tiny-router"


def test_push_merged_needs_a_merge_first_then_uploads_the_merged_model(story, cli, monkeypatch):
    calls = _fake_hub(monkeypatch)
    db_args = ("--db", story["root"] / "tooldistill.db")
    second_id = json.loads(story["second"].stdout)["run_id"]
    refused = cli(*db_args, "train", "push", second_id, "--to", "me/merged", "--merged")
    assert refused.exit_code == 1 and calls == []
    assert f"run 'tooldistill train merge {second_id}' first" in refused.stderr
    merged = cli(*db_args, "train", "merge", second_id)
    assert merged.exit_code == 0 and merged.stdout.startswith("merged model: ")
    pushed = cli(*db_args, "train", "push", second_id, "--to", "me/merged", "--merged")
    assert pushed.exit_code == 0, pushed.stderr
    _, _, upload, files, card = calls[-1]
    assert upload["folder_path"].endswith(f"{second_id}/merged") and "model.safetensors" in files
    assert card.startswith("---\nlibrary_name: transformers\n") and f"(parent run `{story['first_id']}`)" in card


def test_train_from_a_labeled_export_file_records_its_content_hash(cli, tmp_path):
    from tooldistill.catalog import content_hash, load_catalog
    from tooldistill.train import get_run, synthetic_examples
    from tooldistill.db import open_db

    rows = [{"id": i, "text": q, "label": [{"tool": c.tool, "args": c.args} for c in lab.calls],
             "label_source": "teacher", "split": "test" if i % 10 == 0 else "train"}
            for i, (q, lab) in enumerate(synthetic_examples(load_catalog(), 60, seed=4))]
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = cli("train", "run", "-c", TINY_CPU, "--data", path, "--base-model", tiny_model(), "--set",
                 "optim.max_steps=3", "--set", "eval.strategy=no", "--set", "eval.load_best=false", "--set",
                 "eval.early_stopping_patience=null", "--set", "eval.score_examples=0")
    assert result.exit_code == 0, result.stderr
    row = get_run(open_db(tmp_path / "tooldistill.db"), "latest")
    assert row["dataset_version"] == content_hash(path.read_text(encoding="utf-8"))
    assert row["inputs"]["data_file"] == str(path) and row["inputs"]["val_from_train"] == 5  # 10% of 54
    assert row["metrics"]["data"]["train"]["examples"] == 49


def test_a_bad_label_in_the_export_file_names_file_line_and_field(cli, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "label": []}\n{"text": "beam me", "label": [{"tool": "teleport"}]}\n')
    result = cli("train", "run", "-c", TINY_CPU, "--data", path, "--base-model", tiny_model())
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: {path}:2 field 'label[0]': unknown tool 'teleport'")


@pytest.mark.parametrize("args, code, message", [
    (["train", "run", "-c", str(TINY_CPU)], 2,
     "Error: field '--dataset': say what to train on: --dataset VERSION (from 'curate split') or --data FILE"),
    (["train", "run", "--like", "train-nope", "--dataset", "v1"], 1, "Error: run 'train-nope' does not exist (recent: none)"),
    (["train", "merge", "train-nope"], 1, "Error: train-nope is not a run folder (no config.yaml) and there is no "
     "workspace database to look it up in; pass a run folder, or --db with the run's database"),
])
def test_bad_arguments_are_one_line_with_the_documented_exit_code(cli, args, code, message):
    result = cli(*args)
    assert result.exit_code == code
    assert result.stderr.strip().splitlines()[0].startswith(message)


def test_resuming_a_finished_run_is_refused(story, cli):
    result = cli("--db", story["root"] / "tooldistill.db", "train", "run", "--resume", story["first_id"])
    assert result.exit_code == 1
    assert f"run {story['first_id']} already finished; start a new one with --like {story['first_id']}" in \
        result.stderr


def test_tiny_model_builds_a_folder_that_loads_like_any_checkpoint(cli, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = cli("train", "tiny-model", tmp_path / "tiny")
    assert result.exit_code == 0 and "tiny model: " in result.stdout
    tok = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    assert model.config.model_type == "qwen2" and model.config.hidden_size == 64
    assert model.config.num_hidden_layers == 2 and "<tool_call>" in tok.chat_template
    assert tok.decode(tok("weather in Oslo")["input_ids"]) == "weather in Oslo"
