"""Batched greedy inference of an LLM student (a train run, or a model folder with an optional adapter).

Prompts are rendered and models loaded the way the train stage saved them (``tooldistill.train``'s
``render_prompt`` / ``load_trained`` / ``generate_batch``, imported lazily); a model folder from elsewhere is
loaded with transformers (+ peft for an adapter). Generation is greedy, batched, with left padding, so one
batch's prompts end at the same position and the first new token of each is predicted from its own prompt.
Importing this module imports no torch; the functions do.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..catalog import Catalog
from ..errors import InputError, ToolDistillError, require_extra
from ..progress import ProgressCallback, ProgressEvent, noop


def _train_api(name: str) -> Callable | None:
    """A function of the train stage's public API, or None while it does not exist."""
    try:
        module = importlib.import_module("tooldistill.train")
    except ImportError:
        return None
    return getattr(module, name, None)


def render_prompts(tokenizer: Any, catalog: Catalog, texts: Sequence[str]) -> list[str]:
    """Render each query as the student's prompt (the train stage's ``render_prompt`` when it is there)."""
    render = _train_api("render_prompt")
    if render is not None:
        return [render(tokenizer, catalog, text) for text in texts]
    tools = catalog.to_openai_tools()
    return [tokenizer.apply_chat_template([{"role": "user", "content": t}], tools=tools, tokenize=False,
                                          add_generation_prompt=True) for t in texts]


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 128,
                   batch_size: int = 16) -> list[str]:
    """Greedy completions of ``prompts``, ``batch_size`` at a time, left-padded; returns the new text only.

    Uses ``tooldistill.train.generate_batch`` when the train stage provides it (its stop tokens match how it
    trained), else transformers' ``generate`` directly.
    """
    train_generate = _train_api("generate_batch")
    if train_generate is not None:
        return list(train_generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens,
                                   batch_size=batch_size))
    torch = require_extra("torch", "train")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        out.extend(tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


class LMRouter:
    """A causal-LM student as a router: renders prompts, generates greedily, returns the raw completions."""

    kind = "sft"

    def __init__(self, model: Any, tokenizer: Any, catalog: Catalog, *, name: str, max_new_tokens: int = 128):
        self.model, self.tokenizer, self.catalog = model, tokenizer, catalog
        self.name, self.max_new_tokens = name, max_new_tokens

    def route(self, texts: Sequence[str]) -> list[str]:
        """Raw completions for one batch of queries (the whole list is one generation batch)."""
        prompts = render_prompts(self.tokenizer, self.catalog, texts)
        return generate_batch(self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                              batch_size=max(1, len(prompts)))


def load_run_router(db: Any, run_id: str, *, merged: bool = False, max_new_tokens: int = 128) -> LMRouter:
    """The router of a train run, loaded by the train stage's ``load_trained`` (adapter, or ``merged/``)."""
    load_trained = _train_api("load_trained")
    if load_trained is None:
        raise ToolDistillError("this install cannot load train runs yet (tooldistill.train.load_trained is missing); "
                               "evaluate the model folder with --model PATH [--adapter PATH]")
    model, tokenizer, catalog, _config = load_trained(run_id, db=db, merged=merged)
    return LMRouter(model, tokenizer, catalog, name=f"run:{run_id}" + (":merged" if merged else ""),
                    max_new_tokens=max_new_tokens)


def load_model_router(model_path: str | Path, catalog: Catalog, *, adapter: str | Path | None = None,
                      max_new_tokens: int = 128, dtype: str = "auto") -> LMRouter:
    """A router of a model folder (any causal LM with a chat template), with an optional PEFT adapter.

    ``dtype``: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``bfloat16``, ``float16`` or ``float32``. In 16-bit,
    a batched answer can differ from the one-at-a-time answer where two tokens' logits nearly tie (padding
    changes the order of the floating-point sums); float32 makes them agree.

    Raises: InputError when a folder does not exist or holds no model.
    """
    model_path = Path(model_path)
    for path, what in ((model_path, "model"), (Path(adapter) if adapter else None, "adapter")):
        if path is not None and not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise InputError(f"no {what} here (no config.json or adapter_config.json); pass a saved {what} folder",
                             path=str(path))
    torch = require_extra("torch", "train")
    transformers = require_extra("transformers", "train")
    tok_dir = adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else model_path
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
    tokenizer.padding_side = "left"
    cuda = torch.cuda.is_available()
    torch_dtype = (torch.bfloat16 if cuda else torch.float32) if dtype == "auto" else getattr(torch, dtype)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch_dtype)
    if adapter:
        peft = require_extra("peft", "train")
        model = peft.PeftModel.from_pretrained(model, str(adapter))
    model = model.to("cuda" if cuda else "cpu").eval()
    name = f"model:{model_path.name}" + (f"+{Path(adapter).name}" if adapter else "")
    return LMRouter(model, tokenizer, catalog, name=name, max_new_tokens=max_new_tokens)


def timed_batches(route: Callable[[Sequence[str]], list], texts: Sequence[str], *, batch_size: int,
                  on_progress: ProgressCallback = noop, task: str = "eval"):
    """Yield ``(start, raws, latency_ms)`` per batch: what ``route`` answered and how long the batch took.

    The latency of a batch is the wall time every query in it waited, which is what a caller of a batched
    router experiences; throughput is computed from the total.
    """
    total = len(texts)
    for start in range(0, total, batch_size):
        chunk = list(texts[start:start + batch_size])
        t0 = time.perf_counter()
        raws = route(chunk)
        latency_ms = 1000 * (time.perf_counter() - t0)
        if len(raws) != len(chunk):
            raise ToolDistillError(f"router returned {len(raws)} outputs for a batch of {len(chunk)}; this is a bug")
        yield start, raws, latency_ms
        on_progress(ProgressEvent(task, done=min(start + batch_size, total), total=total))
