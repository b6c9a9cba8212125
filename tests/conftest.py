"""Shared fixtures: every test runs in its own tmp workspace, offline, with no user config or keys in sight."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def env_setup(tmp_path, monkeypatch):
    """Point all state at tmp and scrub the variables that would reach real services or user config."""
    for var in ("GEMINI_API_KEYS", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL", "HF_TOKEN",
                "TOOLDISTILL_DB", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE",
                "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TOOLDISTILL_RAISE_ERRORS", "")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def workspace(tmp_path) -> Path:
    """An initialised workspace folder (tooldistill.toml, catalog.yaml, empty database)."""
    from tooldistill.config import init_workspace, load_workspace
    from tooldistill.db import open_db, store_catalog
    from tooldistill.catalog import load_catalog

    ws = tmp_path / "ws"
    init_workspace(ws)
    db = open_db(load_workspace(ws).db_path)
    store_catalog(db, load_catalog())
    db.close()
    return ws


@pytest.fixture
def db(tmp_path):
    """A fresh migrated database file in tmp, with the default catalogue current."""
    from tooldistill.db import get_catalog, open_db

    database = open_db(tmp_path / "test.db")
    get_catalog(database)
    yield database
    database.close()


@pytest.fixture
def catalog():
    from tooldistill.catalog import load_catalog

    return load_catalog()


@pytest.fixture
def cli(tmp_path):
    """Run the real CLI; returns a function ``cli(*args) -> Result`` with stdout and stderr separate."""
    from tooldistill.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke
