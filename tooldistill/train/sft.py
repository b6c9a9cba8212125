"""Supervised fine-tuning of a causal-LM router with LoRA (QLoRA on CUDA), through trl's SFTTrainer.

Each example is a prompt/completion pair rendered by :mod:`tooldistill.train.render`: the prompt is exactly what
inference feeds the model, the completion the answer plus the template's end-of-turn token. trl's
completion-only loss then trains the answer and nothing else, with any chat template: unlike
``assistant_only_loss`` it needs no ``{% generation %}`` markers in the template.

Writes ``runs/<id>/``: config.yaml (resolved), catalog.yaml, adapter/ (PEFT adapter + tokenizer), loss.png,
metrics.json, and checkpoints/ while running (removed after success unless eval.keep_checkpoints).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Iterator

from sqlite_utils import Database

from ..catalog import Catalog, dump_catalog
from ..db import SplitExample
from ..errors import InputError, Interrupted, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .config import SFTRunConfig, config_to_yaml
from .examples import TrainingData, load_training_data
from .runs import (TrainRequest, TrainResult, create_run, finish_run, is_main_process, new_run_id, runs_dir,
                   update_run)

Config = SFTRunConfig
"""The config class of the ``sft`` student kind (the student-kind protocol of :mod:`tooldistill.train.config`)."""

log = logging.getLogger(__name__)
CHECKPOINTS_DIR = "checkpoints"
_TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
             "trackio": ("trackio",)}


# ------------------------------------------------------------------ data


def prepare_rows(tokenizer, catalog: Catalog, examples: list[SplitExample], config: SFTRunConfig, fmt,
                 *, split: str) -> tuple[list[dict], dict]:
    """Render examples as ``{"prompt", "completion"}`` rows and enforce ``data.max_length``.

    Returns: the rows kept, and a report ``{"examples", "kept", "too_long", "max_tokens", "mean_tokens"}``:
    examples over max_length are counted there (``too_long=drop``), never dropped silently.

    Raises: InputError for the first example over max_length when ``data.too_long`` is ``error``, or when every
    example is over it.
    """
    from .render import render_example

    rendered = [render_example(tokenizer, catalog, e.text, e.label, fmt=fmt) for e in examples]
    if not rendered:
        return [], {"examples": 0, "kept": 0, "too_long": 0, "max_tokens": 0, "mean_tokens": 0.0}
    ids = tokenizer([r["prompt"] + r["completion"] for r in rendered], add_special_tokens=False)["input_ids"]
    lengths = [len(x) for x in ids]
    limit = config.data.max_length
    rows, too_long = [], []
    for ex, row, n in zip(examples, rendered, lengths):
        (too_long if n > limit else rows).append((ex, n) if n > limit else row)
    if too_long and config.data.too_long == "error":
        ex, n = too_long[0]
        raise InputError(f"{split} example (query {ex.query_id}) has {n} tokens > data.max_length {limit} "
                         f"({len(too_long)} such); raise data.max_length or set data.too_long=drop",
                         field="data.max_length")
    if not rows:
        raise InputError(f"all {len(examples)} {split} examples exceed data.max_length {limit} (shortest "
                         f"{min(lengths)} tokens); raise data.max_length", field="data.max_length")
    report = {"examples": len(examples), "kept": len(rows), "too_long": len(too_long), "max_tokens": max(lengths),
              "mean_tokens": round(sum(lengths) / len(lengths), 1)}
    return rows, report


# ------------------------------------------------------------------ trainer pieces


def _progress_callback(progress: ProgressCallback):
    from transformers import TrainerCallback

    class ProgressCallbackBridge(TrainerCallback):
        """Turns trainer events into ProgressEvents (the CLI draws them; nothing here prints)."""

        def __init__(self) -> None:
            self.loss: float | None = None
            self.eval_loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            self.loss = logs.get("loss", self.loss)
            self.eval_loss = logs.get("eval_loss", self.eval_loss)

        def on_step_end(self, args, state, control, **kwargs):
            parts = [f"train loss {self.loss:.3f}" if self.loss is not None else "training"]
            if self.eval_loss is not None:
                parts.append(f"eval loss {self.eval_loss:.3f}")
            progress(ProgressEvent("train", state.global_step, state.max_steps, message=", ".join(parts),
                                   info={"loss": self.loss, "eval_loss": self.eval_loss, "epoch": state.epoch}))

    return ProgressCallbackBridge()


def available_trackers(requested: list[str]) -> tuple[list[str], list[str]]:
    """Split requested ``report_to`` trackers into installed ones and warnings for the missing ones."""
    ok, warnings = [], []
    for name in requested:
        modules = _TRACKERS.get(name, (name,))
        if any(importlib.util.find_spec(m) is not None for m in modules):
            ok.append(name)
        else:
            warnings.append(f"report_to {name!r} skipped: {modules[0]} is not installed (pip install {modules[0]})")
    return ok, warnings


def build_trainer(model, tokenizer, train_rows: list[dict], val_rows: list[dict], config: SFTRunConfig, precision,
                  *, output_dir: Path, eos_token: str, run_name: str | None = None,
                  progress: ProgressCallback = noop, report_to: list[str] | None = None):
    """Return an SFTTrainer for prompt/completion rows with LoRA on ``model`` (prepared for k-bit when 4-bit)."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, PrinterCallback
    from trl import SFTTrainer

    from .config import to_lora_config, to_sft_config

    args = to_sft_config(config, precision, output_dir=output_dir, run_name=run_name, eos_token=eos_token,
                         report_to=report_to)
    if getattr(model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.activation_checkpointing)
    callbacks = [_progress_callback(progress)]
    has_eval = config.eval.strategy != "no" and bool(val_rows)
    if has_eval and config.eval.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.eval.early_stopping_patience))
    if not has_eval:
        args.eval_strategy, args.load_best_model_at_end = "no", False
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                         eval_dataset=Dataset.from_list(val_rows) if has_eval else None, processing_class=tokenizer,
                         peft_config=to_lora_config(config), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # with tqdm off, it prints every log dict to stdout
    return trainer


# ------------------------------------------------------------------ metrics and charts


def summarize(trainer, reports: dict, *, runtime: float) -> dict[str, Any]:
    """Summary metrics of a finished trainer: losses, best step, steps, tokens/s, data reports."""
    state = trainer.state
    history = state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    evals = [h for h in history if "eval_loss" in h]
    best = min(evals, key=lambda h: h["eval_loss"]) if evals else None
    tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
    return {
        "steps": state.global_step, "max_steps": state.max_steps, "epochs": round(state.epoch or 0, 3),
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "eval_loss": best["eval_loss"] if best else None, "best_step": best["step"] if best else None,
        "eval_loss_last": evals[-1]["eval_loss"] if evals else None,
        "stopped_early": state.global_step < state.max_steps,
        "train_runtime_s": round(runtime, 2), "tokens_seen": tokens,
        "tokens_per_s": round(tokens / runtime, 1) if runtime > 0 and tokens else None,
        "data": reports,
    }


def plot_loss(history: list[dict], path: Path, *, title: str) -> Path:
    """Write ``loss.png``: train loss and eval loss against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def score_outputs(catalog: Catalog, examples: list[SplitExample], outputs: list[str]) -> dict[str, Any]:
    """Quick val scores of generated outputs: valid (parses and fits the catalogue), tool set right, exact match."""
    from .render import parse_output

    valid = tools = exact = 0
    for ex, text in zip(examples, outputs):
        try:
            label = parse_output(text)
        except ValueError:
            continue
        if catalog.label_errors(label):
            continue
        label = catalog.validate_label(label)
        valid += 1
        tools += label.tool_set_key == ex.label.tool_set_key
        exact += label == ex.label
    n = len(outputs)
    return {"n": n, "valid": round(valid / n, 4) if n else None, "tool_accuracy": round(tools / n, 4) if n else None,
            "exact": round(exact / n, 4) if n else None}


# ------------------------------------------------------------------ the run


def _resolved(config: SFTRunConfig) -> SFTRunConfig:
    """The config with a local base-model path made absolute (the run must reload it from anywhere)."""
    base = Path(config.model.base_model).expanduser()
    if base.exists():
        return config.model_copy(update={"model": config.model.model_copy(update={"base_model": str(base.resolve())})})
    return config


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch CPU threads for the block (the process's count is restored after)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _last_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / CHECKPOINTS_DIR).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return ckpts[-1] if ckpts else None


def train(db: Database, config: SFTRunConfig, *, request: TrainRequest) -> TrainResult:
    """Train an ``sft`` student: render, fine-tune with LoRA/QLoRA, save the adapter, record the run.

    Args:
        db: the workspace database (the run's row; the dataset version).
        config: the run config.
        request: the data, lineage, output root and progress callback (see :class:`TrainRequest`).

    Returns: a :class:`TrainResult` (``trainer`` set for in-process inspection).

    Side effects: a ``runs`` row (``running`` then ``done``/``failed``/``interrupted``) and ``runs/<id>/``. Under
    ``accelerate launch`` only rank 0 writes the row and artifacts.

    Raises: InputError for data problems; Interrupted (exit 130) on Ctrl-C, with the resume command.
    """
    config = _resolved(config)
    progress = request.progress
    progress(ProgressEvent("prepare", 0, None, message="loading data"))
    data = load_training_data(db, dataset=request.dataset, data_file=request.data_file, catalog=request.catalog,
                              val_fraction=config.data.val_fraction, seed=config.seed)
    if config.data.max_train_examples:
        data.train = data.train[: config.data.max_train_examples]
    run_id = request.run_id or new_run_id("train")
    run_dir = runs_dir(request.root) / run_id
    main = is_main_process()
    resume_from = None
    if request.resume_run_id:
        resume_from = _last_checkpoint(run_dir)
        if resume_from is None:
            raise ToolDistillError(f"run {run_id} has no checkpoint under {run_dir / CHECKPOINTS_DIR}; start a new "
                                   f"run with --like {run_id}")
    if main:
        _open_run(db, config, data, run_id, run_dir, request)
    from .load import quiet_libraries

    try:
        with quiet_libraries(), _threads(config.cpu_threads):
            return _fit(db, config, data, run_id, run_dir, main=main, resume_from=resume_from, progress=progress)
    except KeyboardInterrupt:
        ckpt = _last_checkpoint(run_dir)
        if main:
            finish_run(db, run_id, status="interrupted", notes=f"stopped by Ctrl-C; last checkpoint {ckpt}")
        how = f"resume with: tooldistill train run --resume {run_id}" if ckpt else \
            f"no checkpoint was saved yet; start again with --like {run_id}"
        raise Interrupted(f"training {run_id} stopped; {how}") from None
    except BaseException as exc:
        if main:
            finish_run(db, run_id, status="failed", notes=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _open_run(db: Database, config: SFTRunConfig, data: TrainingData, run_id: str, run_dir: Path,
              request: TrainRequest) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(config), encoding="utf-8")
    (run_dir / "catalog.yaml").write_text(dump_catalog(data.catalog), encoding="utf-8")
    if request.resume_run_id:
        update_run(db, run_id, status="running", finished_at=None, notes=None)
        return
    create_run(db, run_id=run_id, kind="train", config=config.model_dump(mode="json"),
               dataset_version=data.version, base_model=config.model.base_model, artifact_path=run_dir.resolve(),
               parent_run_id=request.parent_run_id,
               inputs={**data.source, "catalog_hash": data.catalog.hash})


def _fit(db: Database, config: SFTRunConfig, data: TrainingData, run_id: str, run_dir: Path, *, main: bool,
         resume_from: Path | None, progress: ProgressCallback) -> TrainResult:
    import time

    from transformers import set_seed

    from .config import to_bnb_config
    from .load import ADAPTER_DIR, generate_batch, load_base_model, load_tokenizer
    from .precision import detect_precision
    from .render import detect_format, render_prompt, set_render_options

    set_seed(config.seed)
    precision = detect_precision(config.quant.mode)
    tokenizer = load_tokenizer(config.model.base_model, trust_remote_code=config.model.trust_remote_code)
    fmt = detect_format(tokenizer, tool_format=config.data.tool_format)
    set_render_options(tokenizer, system_prompt=config.data.system_prompt,
                       catalog_in_prompt=config.data.catalog_in_prompt)
    train_rows, train_report = prepare_rows(tokenizer, data.catalog, data.train, config, fmt, split="train")
    val_rows, val_report = (prepare_rows(tokenizer, data.catalog, data.val, config, fmt, split="val")
                            if data.val else ([], None))
    reports = {"train": train_report, "val": val_report, "tool_format": fmt.tool_format, **data.source}
    trackers, warnings = available_trackers(config.logging.report_to)
    progress(ProgressEvent("prepare", 1, 1, message=f"loading {config.model.base_model} ({precision.device}, "
                                                  f"{'4-bit' if precision.load_in_4bit else precision.dtype})"))
    model = load_base_model(config.model.base_model, precision=precision, bnb_config=to_bnb_config(config, precision),
                            trust_remote_code=config.model.trust_remote_code,
                            attn_implementation=config.model.attn_implementation)
    trainer = build_trainer(model, tokenizer, train_rows, val_rows, config, precision,
                            output_dir=run_dir / CHECKPOINTS_DIR, eos_token=fmt.end_of_turn, run_name=run_id,
                            progress=progress, report_to=trackers or "none")
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    runtime = time.perf_counter() - start
    metrics = {**summarize(trainer, reports, runtime=runtime), "precision": precision.to_dict()}
    if not main:
        return TrainResult(run_id, run_dir, "done", data.version, metrics, warnings, trainer)
    adapter_dir = run_dir / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    scored = data.val[: config.eval.score_examples]
    if scored:
        progress(ProgressEvent("score", 0, len(scored), message=f"scoring {len(scored)} val examples"))
        prompts = [render_prompt(tokenizer, data.catalog, e.text, fmt=fmt) for e in scored]
        outputs = generate_batch(trainer.model, tokenizer, prompts, max_new_tokens=config.eval.max_new_tokens,
                                 batch_size=config.eval.batch_size)
        metrics["val_score"] = score_outputs(data.catalog, scored, outputs)
        progress(ProgressEvent("score", len(scored), len(scored), message="scored"))
    plot_loss(trainer.state.log_history, run_dir / "loss.png", title=f"{run_id} ({Path(config.model.base_model).name})")
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "warnings": warnings,
                                                      "history": trainer.state.log_history}, indent=2, default=str),
                                          encoding="utf-8")
    if not config.eval.keep_checkpoints:
        shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    finish_run(db, run_id, status="done", metrics=metrics, notes="; ".join(warnings) or None)
    return TrainResult(run_id, run_dir, "done", data.version, metrics, warnings, trainer)

