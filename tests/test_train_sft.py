"""Real training on the tiny offline student (CPU): LoRA and forced QLoRA, artifacts, runs rows, resume, merge."""

from __future__ import annotations

import json

import pytest

from test_train_support import FAST, offline_workspace, tiny_model, write_version
from tooldistill.errors import Interrupted
from tooldistill.progress import ProgressEvent


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A workspace with a dataset version of 220 generated router queries (the default catalogue)."""
    from tooldistill.train import synthetic_examples

    with offline_workspace(tmp_path_factory) as (root, db, catalog):
        version = write_version(db, synthetic_examples(catalog, 220, seed=1), name="v1", catalog=catalog)
        yield {"root": root, "db": db, "version": version, "catalog": catalog, "tiny": tiny_model()}


@pytest.fixture(scope="module")
def lora_run(world):
    """One fp32 LoRA run of 30 steps through the library entry point (what `train run` calls)."""
    from tooldistill.train import start_run

    return start_run(world["db"], root=world["root"], config_path=None, dataset="v1",
                     overrides={**FAST, "model.base_model": str(world["tiny"]), "optim.max_steps": 30})


def _losses(run_dir) -> dict[int, float]:
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def test_loss_at_step_30_is_below_half_the_step_5_loss(lora_run):
    losses = _losses(lora_run.run_dir)
    assert losses[30] < 0.5 * losses[5], losses


def test_the_run_writes_adapter_config_chart_metrics_and_a_runs_row(lora_run, world):
    from safetensors import safe_open

    from tooldistill.train import get_run, load_config

    d = lora_run.run_dir
    adapter_cfg = json.loads((d / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 16 and set(adapter_cfg["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    with safe_open(d / "adapter" / "adapter_model.safetensors", "pt") as f:
        assert any("lora_B" in k for k in f.keys())
    assert (d / "adapter" / "tokenizer_config.json").is_file()
    assert (d / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (d / "checkpoints").exists()  # removed after success (eval.keep_checkpoints is false)
    assert load_config(d / "config.yaml").model.base_model == str(world["tiny"])
    row = get_run(world["db"], lora_run.run_id)
    assert (row["kind"], row["status"], row["dataset_version"], row["parent_run_id"]) == (
        "train", "done", world["version"], None)
    assert row["config"]["student"] == "sft" and row["base_model"] == str(world["tiny"])
    assert row["artifact_path"] == str(d.resolve()) and row["metrics"]["steps"] == 30
    assert row["metrics"]["data"]["train"]["too_long"] == 0 and row["metrics"]["val_score"]["n"] == 8
    assert row["inputs"] == {"dataset": world["version"], "catalog_hash": world["catalog"].hash}


def test_base_weights_are_unchanged_and_lora_weights_changed(lora_run, world):
    from safetensors.torch import load_file

    import torch

    base = load_file(world["tiny"] / "model.safetensors")
    compared = changed = 0
    for name, param in lora_run.trainer.model.named_parameters():
        if "base_layer.weight" in name:
            key = name.replace("base_model.model.", "", 1).replace("base_layer.", "")
            assert torch.equal(param.detach().cpu(), base[key]), name
            compared += 1
        if "lora_B" in name:  # peft initialises B to zeros: any non-zero entry was learned
            changed += bool(param.detach().abs().sum() > 0)
    assert compared == 14 and changed == 14  # 7 projections x 2 layers


def test_reload_merge_and_left_padded_batches_equal_one_at_a_time(lora_run, world, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from tooldistill.db import load_split
    from tooldistill.train import generate_batch, load_trained, merge_run, render_prompt

    model, tok, catalog, config = load_trained(lora_run.run_id, db=world["db"])
    val = load_split(world["db"], world["version"], "val")[:10]
    prompts = [render_prompt(tok, catalog, e.text) for e in val]
    assert len({len(tok(p)["input_ids"]) for p in prompts}) > 1  # lengths differ, so padding matters
    batched = generate_batch(model, tok, prompts, max_new_tokens=40, batch_size=10)
    single = [generate_batch(model, tok, [p], max_new_tokens=40, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert not any("<|im_end|>" in text for text in batched)

    merged_dir = merge_run(lora_run.run_id, db=world["db"])
    assert AutoModelForCausalLM.from_pretrained(merged_dir).dtype == torch.float32  # plain weights, no peft
    merged, mtok, _, _ = load_trained(lora_run.run_dir, merged=True)
    assert generate_batch(merged, mtok, prompts, max_new_tokens=40, batch_size=10) == \
        [generate_batch(merged, mtok, [p], max_new_tokens=40)[0] for p in prompts]
    enc = tok(prompts[:3], add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        gap = (model(**enc).logits - merged(**enc).logits).abs().max().item()
    assert gap < 1e-4  # the merged model computes what base + adapter computed


def test_forced_4bit_qlora_trains_on_cpu(world):
    from safetensors import safe_open

    from tooldistill.train import generate_batch, load_trained, render_prompt, start_run

    # No forward pass may touch the 4-bit model before training (bitsandbytes CPU pitfall, notes section 7):
    # start_run loads and trains straight away.
    result = start_run(world["db"], root=world["root"], dataset="v1",
                       overrides={**FAST, "model.base_model": str(world["tiny"]), "quant.mode": "4bit",
                                  "optim.max_steps": 15, "eval.steps": 15, "eval.score_examples": 4})
    assert result.metrics["precision"]["load_in_4bit"] is True
    losses = _losses(result.run_dir)
    assert losses[15] < 0.75 * losses[1], losses
    with safe_open(result.run_dir / "adapter" / "adapter_model.safetensors", "pt") as f:
        assert sum("lora_B" in k for k in f.keys()) == 14
    model, tok, catalog, _ = load_trained(result.run_id, db=world["db"], quant="4bit")
    assert model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.__class__.__name__ == "Linear4bit"
    outputs = generate_batch(model, tok, [render_prompt(tok, catalog, "weather in Oslo")], max_new_tokens=20)
    assert isinstance(outputs[0], str)


def test_ctrl_c_marks_the_run_interrupted_and_resume_continues_from_the_checkpoint(world):
    from tooldistill.train import get_run, start_run

    def stop_at_step_7(event: ProgressEvent) -> None:
        if event.task == "train" and event.done == 7:
            raise KeyboardInterrupt

    overrides = {**FAST, "model.base_model": str(world["tiny"]), "optim.max_steps": 10, "eval.steps": 5,
                 "eval.score_examples": 0}
    with pytest.raises(Interrupted, match=r"stopped; resume with: tooldistill train run --resume train-"):
        start_run(world["db"], root=world["root"], dataset="v1", overrides=overrides, progress=stop_at_step_7)
    row = get_run(world["db"], "latest")
    assert row["status"] == "interrupted" and "checkpoint-5" in row["notes"]
    trained_steps = []
    resumed = start_run(world["db"], root=world["root"], resume=row["id"],
                        progress=lambda e: trained_steps.append(e.done) if e.task == "train" else None)
    assert resumed.run_id == row["id"] and get_run(world["db"], row["id"])["status"] == "done"
    assert trained_steps == [6, 7, 8, 9, 10]  # continued after checkpoint-5, steps 1-5 not trained again
    assert resumed.metrics["steps"] == 10
