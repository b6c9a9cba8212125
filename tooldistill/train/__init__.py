"""train stage: supervised fine-tuning of the student router (LoRA, QLoRA on CUDA), with lineage.

Importing this package is cheap: torch, transformers, peft and trl load inside the functions that need them.

Inference contract (what eval relies on): load a run with :func:`load_trained`, build prompts with
:func:`render_prompt` (byte-identical to training), generate with :func:`generate_batch` (greedy, left padding)
and read answers with :func:`parse_output`.
"""

from .config import (STUDENT_KINDS, SFTRunConfig, config_to_yaml, load_config, load_student_config, parse_overrides,
                     sft_config_kwargs, to_bnb_config, to_lora_config, to_sft_config)
from .examples import TrainingData, load_training_data
from .load import generate_batch, load_trained
from .merge import merge_run
from .precision import Precision, detect_precision, select_precision
from .push import model_card, push_run
from .render import (DEFAULT_SYSTEM_PROMPT, ChatFormat, detect_format, format_output, output_prefix, parse_output,
                     render_prompt)
from .runs import (TrainRequest, TrainResult, eval_runs_for, get_run, lineage, list_runs, resolve_run, run_dir_of,
                   start_run)
from .tiny import build_tiny_model, synthetic_examples

__all__ = [
    "STUDENT_KINDS", "SFTRunConfig", "config_to_yaml", "load_config", "load_student_config", "parse_overrides",
    "sft_config_kwargs", "to_bnb_config", "to_lora_config", "to_sft_config",
    "TrainingData", "load_training_data",
    "generate_batch", "load_trained", "merge_run",
    "Precision", "detect_precision", "select_precision",
    "model_card", "push_run",
    "DEFAULT_SYSTEM_PROMPT", "ChatFormat", "detect_format", "format_output", "output_prefix", "parse_output",
    "render_prompt",
    "TrainRequest", "TrainResult", "eval_runs_for", "get_run", "lineage", "list_runs", "resolve_run", "run_dir_of",
    "start_run", "build_tiny_model", "synthetic_examples",
    "EncoderRouter", "key_set",
]

# The encoder student's serving side loads on first use (PEP 562): it costs ~40 ms to import, which commands
# that never touch an encoder should not pay.
_LAZY = {"EncoderRouter": "encoder_router", "key_set": "encoder_router"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
