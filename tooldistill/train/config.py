"""The training run config: a pydantic model loaded from YAML with ``--set key=value`` overrides.

Precedence: defaults < the YAML file < ``--set`` overrides (< the flags a command maps onto ``--set``, like
``--base-model``). Unknown keys are errors naming the file, line and field. The resolved config is saved beside
the run's artifacts and in its ``runs`` row.

Every config names its ``student`` kind. ``sft`` (this module's :class:`SFTRunConfig`) fine-tunes a causal LM
with LoRA/QLoRA; other kinds register in :data:`STUDENT_KINDS` with the module that owns their config and
training (see :func:`load_student_config`).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InputError

log = logging.getLogger(__name__)

STUDENT_KINDS: dict[str, str] = {
    "sft": "tooldistill.train.sft",
    "encoder": "tooldistill.train.encoder",
}
"""Student kind -> the module that trains it. Each module exposes ``Config`` (a pydantic model with a
``student`` field) and ``train(db, config, *, request) -> TrainResult`` (see :mod:`tooldistill.train.runs`)."""

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Renamed fields: old dotted path -> (new dotted path, version that removes the old name).
RENAMED = {"data.max_seq_length": ("data.max_length", "0.3"), "optim.lr": ("optim.learning_rate", "0.3")}


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelOptions(_Group):
    base_model: str = Field(default="Qwen/Qwen2.5-0.5B-Instruct",
                            description="Hub id or local folder of the base model (its tokenizer needs a chat template).")
    trust_remote_code: bool = Field(default=False, description="Allow model code from the hub repo.")
    attn_implementation: str | None = Field(default=None,
                                            description="eager, sdpa or flash_attention_2 (None: transformers' choice).")


class QuantOptions(_Group):
    mode: Literal["auto", "4bit", "none"] = Field(
        default="auto", description="auto: 4-bit QLoRA on CUDA, plain LoRA on CPU; 4bit: always; none: never.")
    quant_type: Literal["nf4", "fp4"] = Field(default="nf4", description="bitsandbytes 4-bit data type.")
    double_quant: bool = Field(default=True, description="Quantize the quantization constants too (saves ~0.4 bit/param).")
    compute_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Matmul dtype of 4-bit layers (auto: bf16 where supported, else fp16/fp32).")


class LoraOptions(_Group):
    r: int = Field(default=16, gt=0, description="LoRA rank.")
    alpha: int = Field(default=32, gt=0, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: list(ALL_PROJECTIONS), description="Module names to adapt, or 'all-linear'.")
    bias: Literal["none", "all", "lora_only"] = Field(default="none", description="Which biases to train.")
    use_rslora: bool = Field(default=False, description="Rank-stabilised scaling alpha / sqrt(r).")


class DataOptions(_Group):
    max_length: int = Field(default=2048, gt=8, description="Longest example in tokens (prompt + output).")
    too_long: Literal["drop", "error"] = Field(
        default="drop", description="Examples over max_length: drop them (counted and reported) or stop with an error.")
    system_prompt: str | None = Field(default=None, description="Router system prompt (None: the built-in one).")
    catalog_in_prompt: bool = Field(
        default=True, description="Put the catalogue in the prompt as tools; false lets the student learn it "
        "(much shorter prompts, but a catalogue change needs retraining).")
    tool_format: Literal["auto", "qwen", "mistral", "json"] = Field(
        default="auto", description="Assistant output form; auto follows the chat template.")
    val_fraction: float = Field(default=0.1, ge=0, lt=1,
                                description="Share of train held out for eval when the data has no val split.")
    max_train_examples: int | None = Field(default=None, gt=0, description="Cap the train examples (smoke runs).")


class OptimOptions(_Group):
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field(default="cosine", description="transformers scheduler name (cosine, linear, constant...).")
    warmup: float = Field(default=0.03, ge=0, description="Warmup: a ratio of total steps if < 1, else steps.")
    weight_decay: float = Field(default=0.0, ge=0)
    epochs: float = Field(default=3, gt=0, description="Passes over the train split.")
    max_steps: int = Field(default=-1, description="Stop after this many optimizer steps (-1: use epochs).")
    batch_size: int = Field(default=4, gt=0, description="Examples per device per step.")
    grad_accum: int = Field(default=4, gt=0, description="Micro-batches per optimizer step.")
    max_grad_norm: float = Field(default=1.0, gt=0)
    optimizer: str = Field(default="auto",
                           description="auto: paged_adamw_8bit for QLoRA on CUDA, adamw_torch otherwise.")
    gradient_checkpointing: Literal["auto", True, False] = Field(
        default="auto", description="Recompute activations to save memory (auto: on CUDA only).")
    packing: bool = Field(default=False, description="Pack short examples into rows (short router rows rarely gain).")


class EvalOptions(_Group):
    strategy: Literal["epoch", "steps", "no"] = Field(default="epoch", description="When to compute eval loss.")
    steps: int | None = Field(default=None, gt=0, description="Eval (and checkpoint) every N steps for strategy=steps.")
    early_stopping_patience: int | None = Field(default=2, ge=1,
                                                description="Stop after N evals without improvement (None: off).")
    load_best: bool = Field(default=True, description="Keep the checkpoint with the lowest eval loss.")
    batch_size: int = Field(default=8, gt=0, description="Eval batch size (loss and generation).")
    score_examples: int = Field(default=64, ge=0,
                                description="Val examples generated and scored after training (0: skip).")
    max_new_tokens: int = Field(default=128, gt=0, description="Generation budget when scoring val examples.")
    keep_checkpoints: bool = Field(default=False, description="Keep checkpoints/ after a successful run.")

    @field_validator("strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML 1.1 reads a bare `no` as false


class LoggingOptions(_Group):
    steps: int = Field(default=10, gt=0, description="Log the train loss every N steps.")
    report_to: list[str] = Field(default_factory=list,
                                 description="Trackers (tensorboard, wandb) used when installed.")


class SFTRunConfig(BaseModel):
    """A supervised fine-tuning run of a causal-LM student (LoRA, or QLoRA on CUDA)."""

    model_config = ConfigDict(extra="forbid")

    student: Literal["sft"] = Field(default="sft", description="Student kind.")
    model: ModelOptions = Field(default_factory=ModelOptions)
    quant: QuantOptions = Field(default_factory=QuantOptions)
    lora: LoraOptions = Field(default_factory=LoraOptions)
    data: DataOptions = Field(default_factory=DataOptions)
    optim: OptimOptions = Field(default_factory=OptimOptions)
    eval: EvalOptions = Field(default_factory=EvalOptions)
    logging: LoggingOptions = Field(default_factory=LoggingOptions)
    seed: int = Field(default=0, description="Seeds data order, LoRA init and dropout.")
    cpu_threads: int | None = Field(default=None, gt=0, description="torch threads while training (None: "
                                    "torch's default; 1 is fastest for tiny models on a busy machine).")

    @model_validator(mode="after")
    def _consistent(self) -> "SFTRunConfig":
        if self.eval.strategy == "steps" and self.eval.steps is None:
            raise ValueError("eval.strategy 'steps' needs eval.steps")
        if self.eval.strategy == "no" and self.eval.early_stopping_patience is not None:
            raise ValueError("early stopping needs evals: set eval.early_stopping_patience to null or pick a strategy")
        if self.eval.strategy == "no" and self.eval.load_best:
            raise ValueError("eval.load_best needs evals: set it to false or pick an eval.strategy")
        if self.optim.max_steps == 0 or self.optim.max_steps < -1:
            raise ValueError("optim.max_steps must be positive, or -1 to train for optim.epochs")
        return self


# ------------------------------------------------------------------ loading


def _yaml_line(text: str, loc: tuple) -> int | None:
    """The 1-based line of the key at ``loc`` in YAML ``text`` (the deepest one found)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _set_path(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"{part} is not a group; cannot set {dotted}", field=dotted)
    node[leaf] = value


def _apply_renames(data: dict, source: str) -> None:
    for old, (new, version) in RENAMED.items():
        group, _, key = old.partition(".")
        if isinstance(data.get(group), dict) and key in data[group]:
            log.warning("%s: %s is renamed %s; the old name stops working in %s", source, old, new, version)
            _set_path(data, new, data[group].pop(key))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``key.path=value`` strings (values as YAML: numbers, booleans, lists) into a dotted-key dict.

    Raises: InputError naming the item without ``=``.
    """
    import yaml

    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"override {item!r} is not KEY=VALUE (e.g. optim.learning_rate=1e-4)", field="--set")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
            value = raw.strip()  # YAML 1.1 reads yes/no/on/off as booleans; on the command line they are words
        result[key.strip()] = value
    return result


def read_config_data(path: str | Path | None, overrides: dict[str, Any] | None = None) -> tuple[dict, str]:
    """Read a YAML config file (or nothing) and apply dotted overrides; return ``(data, yaml_text)``.

    Raises: InputError for a missing or unparseable file.
    """
    import yaml

    text, data = "", {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read config: {exc.strerror}", path=str(path)) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", path=str(path),
                             line=(mark.line + 1) if mark else None) from None
        if not isinstance(data, dict):
            raise InputError("a train config is a mapping of groups (model, lora, optim, ...)", path=str(path))
    _apply_renames(data, str(path or "--set"))
    for key, value in (overrides or {}).items():
        old = RENAMED.get(key)
        _set_path(data, old[0] if old else key, value)
    return data, text


def validate_config(model_cls: type[BaseModel], data: dict, *, source: str | None = None, text: str = "",
                    overrides: dict | None = None) -> BaseModel:
    """Validate ``data`` with ``model_cls``; turn the first pydantic error into one InputError line.

    The error names the file and line when the field came from the YAML, or ``--set`` when from an override.
    """
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(x) for x in err.get("loc", ()))
        dotted = ".".join(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key (known in {'.'.join(loc[:-1]) or 'the top level'}: " \
                  f"{', '.join(_known_keys(model_cls, loc[:-1]))})"
        from_override = any(dotted == k or dotted.startswith(k + ".") for k in (overrides or {}))
        where = "--set" if from_override else source
        line = None if from_override else _yaml_line(text, loc)
        raise InputError(msg, path=where, line=line, field=dotted or None) from None


def _known_keys(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    cls: Any = model_cls
    for part in loc:
        field = cls.model_fields.get(part) if hasattr(cls, "model_fields") else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        cls = field.annotation
    return list(cls.model_fields)


def student_module(kind: str):
    """Import the module that trains student ``kind``.

    Raises: InputError naming the known kinds, or the module that is not installed yet.
    """
    if kind not in STUDENT_KINDS:
        raise InputError(f"unknown student kind {kind!r} (known: {', '.join(STUDENT_KINDS)})", field="student")
    try:
        return importlib.import_module(STUDENT_KINDS[kind])
    except ModuleNotFoundError as exc:
        if exc.name != STUDENT_KINDS[kind]:
            raise
        raise InputError(f"student kind {kind!r} is not available in this install ({STUDENT_KINDS[kind]} is "
                         "missing)", field="student") from None


def load_student_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                        student: str | None = None, data: dict | None = None) -> BaseModel:
    """Load any student kind's config: YAML file (or an existing config dict) + overrides, validated.

    Args:
        path: a YAML config file, or None for the kind's defaults.
        overrides: dotted ``key -> value`` pairs (``--set``), applied after the file.
        student: the kind to use (beats the file's ``student`` key; default ``sft``).
        data: a config dict to start from instead of a file (``--like`` passes a run's resolved config).

    Returns: the kind's config object (an :class:`SFTRunConfig` for ``sft``).

    Raises: InputError naming the file, line and field of the first problem.
    """
    if data is not None:
        data, text = dict(data), ""
        for key, value in (overrides or {}).items():
            _set_path(data, RENAMED[key][0] if key in RENAMED else key, value)
    else:
        data, text = read_config_data(path, overrides)
    if student is not None:
        if data.get("student") not in (None, student) and path is not None:
            raise InputError(f"config is for student {data.get('student')!r}, not {student!r}", path=str(path),
                             field="student")
        data["student"] = student
    kind = data.setdefault("student", "sft")
    cls = SFTRunConfig if kind == "sft" else getattr(student_module(kind), "Config")
    return validate_config(cls, data, source=str(path) if path else None, text=text, overrides=overrides)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SFTRunConfig:
    """Load an ``sft`` config from YAML (or defaults) with dotted overrides; see :func:`load_student_config`."""
    cfg = load_student_config(path, overrides, student="sft")
    assert isinstance(cfg, SFTRunConfig)
    return cfg


def config_to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML (the file saved beside a run's artifacts; loads back unchanged)."""
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


# ------------------------------------------------------------------ mapping onto the libraries


def compute_dtype_name(config: SFTRunConfig, precision) -> str:
    """The dtype name of 4-bit matmuls: the config's choice, or the precision's (bf16/fp16/fp32)."""
    return precision.compute_dtype if config.quant.compute_dtype == "auto" else config.quant.compute_dtype


def to_bnb_config(config: SFTRunConfig, precision):
    """Return the ``BitsAndBytesConfig`` for a 4-bit load, or None when ``precision`` loads unquantized."""
    if not precision.load_in_4bit:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=config.quant.quant_type,
        bnb_4bit_use_double_quant=config.quant.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype_name(config, precision)),
    )


def to_lora_config(config: SFTRunConfig):
    """Return the peft ``LoraConfig`` (causal-LM task) of ``config.lora``."""
    from peft import LoraConfig

    lo = config.lora
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, bias=lo.bias, use_rslora=lo.use_rslora,
                      target_modules=lo.target_modules if isinstance(lo.target_modules, str) else list(lo.target_modules),
                      task_type="CAUSAL_LM")


def sft_config_kwargs(config: SFTRunConfig, precision, *, output_dir: str | Path, run_name: str | None = None,
                      eos_token: str | None = None, report_to: list[str] | None = None) -> dict[str, Any]:
    """The keyword arguments of trl's ``SFTConfig`` for ``config`` on ``precision`` (a pure mapping).

    Kept apart from :func:`to_sft_config` because SFTConfig checks the hardware when built: the CUDA branch's
    kwargs can be tested on a CPU machine, the object cannot.
    """
    o, e = config.optim, config.eval
    ckpt = precision.device == "cuda" if o.gradient_checkpointing == "auto" else bool(o.gradient_checkpointing)
    optimizer = o.optimizer
    if optimizer == "auto":
        optimizer = "paged_adamw_8bit" if (precision.load_in_4bit and precision.device == "cuda") else "adamw_torch"
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir), run_name=run_name, seed=config.seed, data_seed=config.seed,
        num_train_epochs=o.epochs, max_steps=o.max_steps, per_device_train_batch_size=o.batch_size,
        per_device_eval_batch_size=e.batch_size, gradient_accumulation_steps=o.grad_accum,
        learning_rate=o.learning_rate, lr_scheduler_type=o.lr_scheduler, warmup_steps=o.warmup,
        weight_decay=o.weight_decay, max_grad_norm=o.max_grad_norm, optim=optimizer,
        bf16=precision.bf16, fp16=precision.fp16, use_cpu=precision.use_cpu,
        activation_checkpointing=ckpt, logging_steps=config.logging.steps, logging_first_step=True,
        eval_strategy=e.strategy, save_strategy=e.strategy, save_total_limit=2,
        load_best_model_at_end=e.load_best, metric_for_best_model="eval_loss", greater_is_better=False,
        report_to=report_to if report_to is not None else (config.logging.report_to or "none"),
        disable_tqdm=True, max_length=config.data.max_length, packing=o.packing,
        completion_only_loss=True, eos_token=eos_token, include_num_input_tokens_seen="non_padding",
        dataset_num_proc=None, ddp_find_unused_parameters=False,
    )
    if e.strategy == "steps":
        kw.update(eval_steps=e.steps, save_steps=e.steps)
    if ckpt:
        kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    return kw


def to_sft_config(config: SFTRunConfig, precision, *, output_dir: str | Path, run_name: str | None = None,
                  eos_token: str | None = None, report_to: list[str] | None = None):
    """Return trl's ``SFTConfig`` for ``config`` (see :func:`sft_config_kwargs`)."""
    from trl import SFTConfig

    return SFTConfig(**sft_config_kwargs(config, precision, output_dir=output_dir, run_name=run_name,
                                         eos_token=eos_token, report_to=report_to))
