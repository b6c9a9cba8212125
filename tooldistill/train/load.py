"""Loading a trained run for inference, and batched greedy generation with left padding.

The eval stage loads models through :func:`load_trained`, prompts them with
:func:`~tooldistill.train.render.render_prompt` and generates with :func:`generate_batch`, so inference sees
exactly what training saw.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Iterator

from sqlite_utils import Database

from ..catalog import Catalog, load_catalog
from ..errors import ToolDistillError
from .runs import run_dir_of

ADAPTER_DIR, MERGED_DIR = "adapter", "merged"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence the tqdm bars and FutureWarnings of transformers/datasets (nothing below the CLI prints)."""
    import datasets
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if bars[0]:
            hf_logging.enable_progress_bar()
        if bars[1]:
            datasets.enable_progress_bars()


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def load_base_model(base: str | Path, *, precision, bnb_config=None, trust_remote_code: bool = False,
                    attn_implementation: str | None = None):
    """Load a causal LM for training or inference in ``precision`` (4-bit when ``bnb_config`` is given).

    Never runs a forward pass: on CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for inference on the
    first no-grad forward, and training afterwards fails (notes/training-on-cpu.md section 7).
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(precision.dtype), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if bnb_config is not None:
        kwargs.update(quantization_config=bnb_config, device_map=precision.device_map)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base), **kwargs)
    except OSError as exc:
        raise ToolDistillError(f"cannot load base model {base}: {str(exc).splitlines()[0]} (a local folder, or a "
                               "hub id with the hub reachable; 'tooldistill train tiny-model DIR' builds an offline "
                               "one)") from None
    if bnb_config is None and precision.device == "cuda":
        model = model.to("cuda")
    return model


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """Load a tokenizer with a pad token (the EOS when it has none)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ToolDistillError(f"cannot load the tokenizer of {path}: {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_trained(run: str | Path, *, db: Database | None = None, merged: bool = False, quant: str | None = None):
    """Load a trained run for inference: ``(model, tokenizer, catalog, config)``.

    Args:
        run: a run folder (``runs/<id>``) or a run id/prefix looked up in ``db``.
        db: the workspace database (needed for a run id).
        merged: load ``merged/`` (after ``train merge``) instead of base + adapter.
        quant: ``4bit`` or ``none``; None follows the run's own config on this machine (4-bit base on CUDA for
            a QLoRA run, fp32 on CPU).

    Returns: the model in eval mode, its tokenizer (left padding), the run's catalogue and its SFTRunConfig.

    Raises: ToolDistillError when the run has no adapter (or no merged model when ``merged``).
    """
    from .config import SFTRunConfig, load_config, to_bnb_config
    from .precision import detect_precision

    folder = run_dir_of(db, run)
    config: SFTRunConfig = load_config(folder / "config.yaml")
    catalog: Catalog = load_catalog(folder / "catalog.yaml")
    precision = detect_precision(quant or config.quant.mode)
    with quiet_libraries():
        model, tokenizer = _load_run_model(folder, config, precision, to_bnb_config(config, precision), merged)
    tokenizer.padding_side = "left"
    model.eval()
    return model, tokenizer, catalog, config


def _load_run_model(folder: Path, config, precision, bnb, merged: bool):
    if merged:
        path = folder / MERGED_DIR
        if not (path / "config.json").is_file():
            raise ToolDistillError(f"run {folder.name} has no merged model; run 'tooldistill train merge {folder.name}'")
        model = load_base_model(path, precision=precision, bnb_config=bnb)
        tokenizer = load_tokenizer(path)
    else:
        from peft import PeftModel

        path = folder / ADAPTER_DIR
        if not (path / "adapter_config.json").is_file():
            raise ToolDistillError(f"run {folder.name} has no adapter at {path}; did it finish? see 'tooldistill "
                                   "train runs'")
        base = load_base_model(config.model.base_model, precision=precision, bnb_config=bnb,
                               trust_remote_code=config.model.trust_remote_code)
        model = PeftModel.from_pretrained(base, str(path))
        tokenizer = load_tokenizer(path)
    return model, tokenizer


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end a student's answer: the template's end-of-turn token and the tokenizer's EOS."""
    from .render import detect_format

    ids = []
    eot = detect_format(tokenizer).end_of_turn
    for token in (eot, tokenizer.eos_token):
        tid = tokenizer.convert_tokens_to_ids(token) if token else None
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


def generate_batch(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 128,
                   batch_size: int = 8) -> list[str]:
    """Greedy-generate an answer per prompt, batched with left padding; returns the decoded new text.

    Prompts are batched by length (less padding) and answers returned in input order. Left padding keeps every
    prompt's last token at the end of the row, so a batched answer equals the one-at-a-time answer.

    Args:
        prompts: strings from :func:`~tooldistill.train.render.render_prompt` (tokenized without special tokens,
            since the template already holds any BOS).
        max_new_tokens: generation budget per answer.
        batch_size: prompts per forward.
    """
    import torch

    if not prompts:
        return []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    stops = stop_token_ids(tokenizer)
    device = next(model.parameters()).device
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    answers: dict[int, str] = {}
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], add_special_tokens=False, padding=True,
                            return_tensors="pt").to(device)
            with torch.inference_mode():
                out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stops,
                                     pad_token_id=tokenizer.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                answers[i] = text.strip()
    finally:
        tokenizer.padding_side = side
    return [answers[i] for i in range(len(prompts))]
