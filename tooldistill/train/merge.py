"""Merging a run's adapter into its base model for deployment.

The base is always reloaded unquantized (bf16 on CUDA, fp32 on CPU, or the dtype asked for): merging into the
4-bit base rounds the LoRA update into NF4 and changes generations (peft #2321; notes/training-on-cpu.md
section 7). The result in ``runs/<id>/merged/`` loads with ``AutoModelForCausalLM.from_pretrained`` alone.
"""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from ..errors import InputError, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .runs import run_dir_of

DTYPES = ("auto", "bfloat16", "float16", "float32")


def merge_dtype(dtype: str, *, cuda: bool, bf16_supported: bool) -> str:
    """The dtype to merge in: the one asked for, or ``auto``: bf16 where the GPU has it, else fp32."""
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}", field="--dtype")
    if dtype != "auto":
        return dtype
    return "bfloat16" if cuda and bf16_supported else "float32"


def merge_run(run: str | Path, *, db: Database | None = None, dtype: str = "auto", force: bool = False,
              progress: ProgressCallback = noop) -> Path:
    """Merge a run's LoRA adapter into an unquantized copy of its base and save it to ``runs/<id>/merged/``.

    Args:
        run: a run folder or a run id/prefix (with ``db``).
        db: the workspace database, to look up a run id.
        dtype: ``auto`` (bf16 on a bf16 GPU, else fp32), ``bfloat16``, ``float16`` or ``float32``.
        force: overwrite an existing ``merged/``.
        progress: progress callback.

    Returns: the merged folder (model weights, config, generation config and the run's tokenizer).

    Raises: ToolDistillError when the run has no adapter, or merged/ exists and not ``force``.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from .config import load_config
    from .load import ADAPTER_DIR, MERGED_DIR, load_tokenizer, quiet_libraries

    folder = run_dir_of(db, run)
    adapter, out = folder / ADAPTER_DIR, folder / MERGED_DIR
    if not (adapter / "adapter_config.json").is_file():
        raise ToolDistillError(f"run {folder.name} has no adapter at {adapter}; did it finish?")
    if (out / "config.json").is_file() and not force:
        raise ToolDistillError(f"{out} already exists; pass --force to merge again")
    config = load_config(folder / "config.yaml")
    name = merge_dtype(dtype, cuda=torch.cuda.is_available(),
                       bf16_supported=torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    progress(ProgressEvent("merge", 0, 2, message=f"loading {config.model.base_model} in {name}"))
    with quiet_libraries():
        base = AutoModelForCausalLM.from_pretrained(config.model.base_model, dtype=getattr(torch, name),
                                                    trust_remote_code=config.model.trust_remote_code)
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
        progress(ProgressEvent("merge", 1, 2, message=f"saving {out}"))
        merged.save_pretrained(str(out))
        load_tokenizer(adapter).save_pretrained(str(out))
    progress(ProgressEvent("merge", 2, 2, message="merged"))
    return out
