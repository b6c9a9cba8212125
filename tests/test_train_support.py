"""Helpers shared by the train tests (no tests here): the tiny model built once per process, dataset versions.

Curate writes dataset versions in production; these tests write the rows directly (tables of migration m002),
the way tooldistill.db.datasets reads them.
"""

from __future__ import annotations

import os
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tooldistill.catalog import Catalog, Label, content_hash
from tooldistill.db import NewQuery, insert_queries, now_iso

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# Fast settings for training tests: short rows (catalogue learned, not prompted), one thread (tiny matmuls on a
# shared 2-core machine), the notes' learning rate for a random tiny model.
FAST = {
    "quant.mode": "none", "data.catalog_in_prompt": False, "data.max_length": 512,
    "optim.learning_rate": 5e-3, "optim.lr_scheduler": "constant", "optim.warmup": 0, "optim.batch_size": 8,
    "optim.grad_accum": 1, "lora.dropout": 0.0, "logging.steps": 5, "eval.strategy": "steps", "eval.steps": 15,
    "eval.early_stopping_patience": None, "eval.score_examples": 8, "eval.max_new_tokens": 40,
    "eval.batch_size": 16, "cpu_threads": 1, "seed": 0,
}

_TINY: dict[str, Path] = {}


def tiny_model() -> Path:
    """The tiny offline student, built once per test process into a temporary folder."""
    if "path" not in _TINY:
        from tooldistill.train import build_tiny_model

        folder = Path(tempfile.mkdtemp(prefix="tooldistill-tiny-"))
        _TINY["path"] = build_tiny_model(folder / "tiny")
    return _TINY["path"]


def offline_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@contextmanager
def offline_workspace(tmp_path_factory) -> Iterator[tuple[Path, object, Catalog]]:
    """A fresh workspace (root, open database, its catalogue) with the hubs offline and a private HF_HOME."""
    import pytest

    from tooldistill.db import get_catalog, open_db

    with pytest.MonkeyPatch.context() as mp:
        for key, value in offline_env().items():
            mp.setenv(key, value)
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home")))
        root = tmp_path_factory.mktemp("ws")
        db = open_db(root / "tooldistill.db")
        try:
            yield root, db, get_catalog(db)
        finally:
            db.close()


def write_version(db, examples: list[tuple[str, Label]], *, name: str, catalog: Catalog, val_every: int = 8,
                  test_every: int = 0) -> str:
    """Write queries and a dataset version (train/val[/test] members with frozen labels); return its id."""
    ids = insert_queries(db, [NewQuery(text=q, source="test") for q, _ in examples]).ids
    members, seen = [], set()
    for i, (qid, (_, label)) in enumerate(zip(ids, examples)):
        if qid in seen:
            continue
        seen.add(qid)
        split = "val" if i % val_every == 0 else "test" if test_every and i % test_every == 1 else "train"
        members.append({"query_id": qid, "split": split, "calls": label.canonical_json(), "label_hash": label.hash,
                        "label_source": "teacher", "group_id": None})
    version = content_hash({"members": members, "name": name})
    with db.atomic():
        db["dataset_versions"].insert({"id": version, "name": name, "created_at": now_iso(), "params": "{}",
                                       "lineage": "{}", "counts": "{}", "report": None, "catalog_hash": catalog.hash})
        db["split_members"].insert_all([{**m, "version_id": version} for m in members])
    return version


def noisy(examples: list[tuple[str, Label]], *, share: float, seed: int) -> list[tuple[str, Label]]:
    """The examples with ``share`` of their tool calls relabeled ``[]`` (a teacher that wrongly saw no tool)."""
    rng = random.Random(seed)
    return [(text, Label(calls=[]) if label.calls and rng.random() < share else label) for text, label in examples]


def set_offline(monkeypatch) -> None:
    for key, value in offline_env().items():
        monkeypatch.setenv(key, value)
    os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="hf-home-"))
