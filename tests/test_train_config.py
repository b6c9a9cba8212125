"""The train config: YAML + overrides, validation errors users can act on, mapping onto bnb/peft/trl, precision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_train_support import CONFIGS, REPO
from tooldistill.errors import InputError
from tooldistill.train import (SFTRunConfig, load_config, parse_overrides, select_precision, sft_config_kwargs,
                               to_bnb_config, to_lora_config, to_sft_config)

EXAMPLES = sorted(CONFIGS.glob("*.yaml"))
SFT_EXAMPLES = [p for p in EXAMPLES if (yaml.safe_load(p.read_text()) or {}).get("student", "sft") == "sft"]
CUDA = select_precision(cuda=True, bf16_supported=True)
CPU = select_precision(cuda=False)


def test_the_four_example_configs_exist():
    assert {p.name for p in EXAMPLES} >= {"tiny-cpu.yaml", "qwen2.5-0.5b.yaml", "qwen2.5-7b-r64.yaml",
                                          "mistral-7b-r16.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_config_validates_as_its_student_kind(path):
    from tooldistill.train import load_student_config

    config = load_student_config(path)
    assert config.student == (yaml.safe_load(path.read_text()) or {}).get("student", "sft")


@pytest.mark.parametrize("path", SFT_EXAMPLES, ids=lambda p: p.stem)
def test_every_sft_example_config_maps_to_the_library_objects_without_weights(path, tmp_path):
    import torch
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import SFTConfig

    config = load_config(path)
    lora = to_lora_config(config)
    assert isinstance(lora, LoraConfig) and lora.r == config.lora.r and lora.lora_alpha == config.lora.alpha
    assert lora.task_type == "CAUSAL_LM"
    # CPU branch: the real SFTConfig object (it checks the hardware when built)
    cpu_args = to_sft_config(config, CPU, output_dir=tmp_path, eos_token="<|im_end|>")
    assert isinstance(cpu_args, SFTConfig)
    assert cpu_args.use_cpu and not cpu_args.bf16 and cpu_args.completion_only_loss is True
    assert cpu_args.learning_rate == config.optim.learning_rate and cpu_args.max_length == config.data.max_length
    assert to_bnb_config(config, CPU) is None
    # CUDA branch: every kwarg is an SFTConfig field (an unknown or renamed name would be a TypeError on a GPU)
    cuda_kwargs = sft_config_kwargs(config, CUDA, output_dir=tmp_path)
    assert set(cuda_kwargs) <= set(SFTConfig.__dataclass_fields__)
    assert cuda_kwargs["bf16"] is True and cuda_kwargs["use_cpu"] is False
    if config.quant.mode == "auto":
        bnb = to_bnb_config(config, CUDA)
        assert isinstance(bnb, BitsAndBytesConfig) and bnb.load_in_4bit
        assert bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
        assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
        assert cuda_kwargs["optim"] == "paged_adamw_8bit" and cuda_kwargs["activation_checkpointing"] is True


def test_the_7b_config_is_the_seeds_best_recipe():
    c = load_config(CONFIGS / "qwen2.5-7b-r64.yaml")
    assert (c.quant.quant_type, c.quant.double_quant) == ("nf4", True)
    assert (c.lora.r, c.lora.alpha, c.lora.dropout) == (64, 128, 0.05)
    assert c.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (c.optim.learning_rate, c.optim.lr_scheduler, c.optim.epochs) == (2e-4, "cosine", 3)
    assert (c.optim.batch_size, c.optim.grad_accum) == (4, 4)
    assert c.eval.load_best and c.eval.strategy == "epoch"


def test_overrides_beat_the_yaml_and_values_parse_as_yaml():
    overrides = parse_overrides(["optim.learning_rate=1e-4", "lora.target_modules=[q_proj, v_proj]",
                                 "eval.early_stopping_patience=null", "data.catalog_in_prompt=false"])
    c = load_config(CONFIGS / "qwen2.5-0.5b.yaml", overrides)
    assert c.optim.learning_rate == 1e-4 and c.lora.target_modules == ["q_proj", "v_proj"]
    assert c.eval.early_stopping_patience is None and c.data.catalog_in_prompt is False
    assert c.lora.r == 16  # untouched fields keep the file's values


def test_an_unknown_key_names_file_line_field_and_the_known_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  base_model: x\nlora:\n  r: 8\n  rank: 8\n", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"{path}:5 field 'lora.rank': unknown key (known in lora: r, alpha,")
    assert exc.value.exit_code == 2


def test_a_bad_override_names_set_and_the_field():
    with pytest.raises(InputError, match=r"^--set field 'optim.batch_size': Input should be greater than 0$"):
        load_config(None, parse_overrides(["optim.batch_size=0"]))
    with pytest.raises(InputError, match="is not KEY=VALUE"):
        parse_overrides(["optim.learning_rate"])


def test_a_bare_no_means_the_word_not_false(tmp_path):
    path = tmp_path / "no.yaml"
    path.write_text("eval:\n  strategy: no\n  load_best: no\n  early_stopping_patience: null\n", encoding="utf-8")
    assert load_config(path).eval.strategy == "no" and load_config(path).eval.load_best is False
    overrides = parse_overrides(["eval.strategy=no", "eval.load_best=no", "eval.early_stopping_patience=null"])
    assert overrides["eval.strategy"] == "no" and load_config(None, overrides).eval.strategy == "no"


def test_impossible_combinations_are_rejected():
    with pytest.raises(InputError, match="eval.strategy 'steps' needs eval.steps"):
        load_config(None, {"eval.strategy": "steps"})
    with pytest.raises(InputError, match="early stopping needs evals"):
        load_config(None, {"eval.strategy": "no", "eval.load_best": False})


def test_a_renamed_field_still_works_and_warns(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text("data:\n  max_seq_length: 777\n", encoding="utf-8")
    assert load_config(path).data.max_length == 777
    assert "data.max_seq_length is renamed data.max_length; the old name stops working in 0.3" in caplog.text


def test_precision_is_qlora_on_cuda_and_fp32_lora_on_cpu():
    assert (CUDA.load_in_4bit, CUDA.compute_dtype, CUDA.bf16, CUDA.use_cpu, CUDA.device_map) == \
        (True, "bfloat16", True, False, {"": 0})
    old_gpu = select_precision(cuda=True, bf16_supported=False)
    assert (old_gpu.compute_dtype, old_gpu.bf16, old_gpu.fp16) == ("float16", False, True)
    assert (CPU.load_in_4bit, CPU.dtype, CPU.bf16, CPU.use_cpu, CPU.device_map) == (False, "float32", False, True, None)
    forced = select_precision(cuda=False, quant="4bit")
    assert (forced.load_in_4bit, forced.compute_dtype, forced.device_map) == (True, "float32", {"": "cpu"})
    plain = select_precision(cuda=True, bf16_supported=True, quant="none")
    assert not plain.load_in_4bit and plain.dtype == "bfloat16"
    assert select_precision(cuda=True, bf16_supported=True, local_rank=3).device_map == {"": 3}


def test_cpu_runs_use_plain_adamw_and_no_checkpointing(tmp_path):
    kw = sft_config_kwargs(SFTRunConfig(), CPU, output_dir=tmp_path)
    assert kw["optim"] == "adamw_torch" and kw["activation_checkpointing"] is False


def test_the_resolved_config_round_trips_through_yaml():
    from tooldistill.train import config_to_yaml

    c = load_config(CONFIGS / "mistral-7b-r16.yaml", {"optim.epochs": 1})
    assert SFTRunConfig.model_validate(yaml.safe_load(config_to_yaml(c))) == c


def test_cli_config_prints_the_resolved_config(cli):
    result = cli("train", "config", "-c", CONFIGS / "qwen2.5-7b-r64.yaml", "--set", "optim.epochs=1")
    assert result.exit_code == 0
    data = yaml.safe_load(result.stdout)
    assert data["optim"]["epochs"] == 1 and data["lora"]["r"] == 64 and data["student"] == "sft"


def test_cli_bad_config_is_one_line_and_exit_2(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  learning_rat: 0.1\n", encoding="utf-8")
    result = cli("train", "config", "-c", path)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {path}:2 field 'optim.learning_rat': unknown key (known in optim: learning_rate, lr_scheduler, "
        "warmup, weight_decay, epochs, max_steps, batch_size, grad_accum, max_grad_norm, optimizer, "
        "gradient_checkpointing, packing)"]


def test_cli_unknown_student_kind(cli):
    result = cli("train", "config", "--student", "forest")
    assert result.exit_code == 2
    assert "unknown student kind 'forest' (known: sft, encoder)" in result.stderr


@pytest.mark.parametrize("command", ["run", "runs", "merge", "push", "config", "tiny-model"])
def test_every_train_command_has_help_with_an_example(cli, command):
    result = cli("train", command, "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout


def test_print_accelerate_command_pins_a_shared_run_id(cli):
    result = cli("train", "run", "-c", "configs/qwen2.5-7b-r64.yaml", "--dataset", "latest", "--gpus", "4",
                 "--run-id", "train-x", "--print-accelerate-command")
    assert result.exit_code == 0
    assert result.stdout.strip() == ("accelerate launch --multi_gpu --num_processes 4 -m tooldistill train run "
                                     "--config configs/qwen2.5-7b-r64.yaml --dataset latest --run-id train-x")


def test_importing_the_train_package_loads_no_heavy_library():
    code = ("import sys, tooldistill.train, tooldistill.train.encoder_router, tooldistill.train.encoder_onnx, "
            "tooldistill.cli; print(sorted(m for m in ('torch','transformers','datasets','trl','peft','matplotlib',"
            "'onnx','onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_report_to_keeps_installed_trackers_and_warns_about_missing_ones():
    from tooldistill.train.sft import available_trackers

    ok, warnings = available_trackers(["json", "tooldistill_no_such_tracker"])
    assert ok == ["json"]
    assert warnings == ["report_to 'tooldistill_no_such_tracker' skipped: tooldistill_no_such_tracker is not "
                        "installed (pip install tooldistill_no_such_tracker)"]
