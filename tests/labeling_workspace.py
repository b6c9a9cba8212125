"""What the distill CLI tests share: a workspace of gold-labeled queries with fast limits and two keys in the
environment, and the fake Gemini server that answers from its gold (imported by test modules, not a test)."""

from __future__ import annotations

from pathlib import Path

from tooldistill.db import NewQuery, insert_queries, open_db
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec

KEY_A, KEY_B = "AIzaSyTEST-key-one-7c1f9d", "AIzaSyTEST-key-two-0b2e4a"
FLASH, LITE = "gemini-2.5-flash", "gemini-2.5-flash-lite"


def labeling_workspace(workspace: Path, monkeypatch, queries: list[NewQuery], *, concurrency: int) -> Path:
    """Turn ``workspace`` into the current folder with ``queries`` stored, no rate limits and ``KEY_A``/``KEY_B``
    (projects p1, p2) in GEMINI_API_KEYS; returns it."""
    (workspace / "tooldistill.toml").write_text(
        f"[distill]\nrpm = 0\nrpd = 0\nbackoff_base_s = 0.05\nconcurrency = {concurrency}\n")
    db = open_db(workspace / "tooldistill.db")
    insert_queries(db, queries)
    db.close()
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("GEMINI_API_KEYS", f"{KEY_A}@p1,{KEY_B}@p2")
    return workspace


def serve(ws: Path, **config) -> FakeGemini:
    """The fake server for ``ws``: both keys, flash and flash-lite with default limits unless ``models`` says
    otherwise, the workspace database's gold as the oracle; other FakeGeminiConfig fields pass through."""
    models = config.pop("models", {FLASH: ModelSpec(), LITE: ModelSpec()})
    return FakeGemini(FakeGeminiConfig(keys={KEY_A: "p1", KEY_B: "p2"}, oracle_db=ws / "tooldistill.db",
                                       models=models, **config))
