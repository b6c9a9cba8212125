"""Workspace configuration: ``tooldistill.toml`` plus secrets from the environment or ``.env``.

Precedence: built-in defaults < the workspace's ``tooldistill.toml`` < environment variables (``TOOLDISTILL_DB``,
``GEMINI_API_KEYS``, ``GEMINI_BASE_URL``, ``HF_TOKEN``; from the environment or ``.env``) < CLI flags.
Secrets only ever come from the environment or ``.env``, never from the TOML file or the database.

Each stage reads its own table of the TOML (``[distill]``, ``[curate]``, ...) with its own model, beside the code
that uses it; this module only finds and parses the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

CONFIG_FILE = "tooldistill.toml"
SECRET_VARS = ("GEMINI_API_KEYS", "GEMINI_API_KEY", "GOOGLE_API_KEY", "HF_TOKEN")
ENV_VARS = ("TOOLDISTILL_DB", "GEMINI_API_KEYS", "GEMINI_BASE_URL", "HF_TOKEN")


class WorkspaceConfig(BaseModel):
    """The top level of ``tooldistill.toml``; stage tables are kept raw for their own models."""

    model_config = ConfigDict(extra="forbid")

    db: str = Field(default="tooldistill.db", description="Database file, relative to the workspace folder.")
    catalog: str | None = Field(default=None, description="Catalogue file (YAML/JSON) of this workspace.")
    data: dict = Field(default_factory=dict)
    distill: dict = Field(default_factory=dict)
    curate: dict = Field(default_factory=dict)
    train: dict = Field(default_factory=dict)
    eval: dict = Field(default_factory=dict)


@dataclass
class Workspace:
    """A resolved workspace: its folder, config, environment (``.env`` under the real one) and database path."""

    root: Path
    config: WorkspaceConfig
    env: dict[str, str] = field(default_factory=dict)
    db_path: Path = Path("tooldistill.db")
    config_path: Path | None = None

    def getenv(self, name: str, default: str | None = None) -> str | None:
        return self.env.get(name, default)

    def section(self, name: str) -> dict:
        """The raw TOML table of a stage (``{}`` when absent)."""
        return dict(getattr(self.config, name, {}) or {})

    @property
    def catalog_path(self) -> Path | None:
        return (self.root / self.config.catalog) if self.config.catalog else None


def find_config(start: Path) -> Path | None:
    """Return the nearest ``tooldistill.toml`` in ``start`` or a parent folder."""
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
    return None


def read_env(root: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Merge ``root/.env`` under the process environment (the environment wins)."""
    from dotenv import dotenv_values

    merged: dict[str, str] = {}
    env_file = root / ".env"
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return merged


def load_workspace(start: str | os.PathLike | None = None, *, db: str | os.PathLike | None = None,
                   environ: dict[str, str] | None = None) -> Workspace:
    """Resolve the workspace around ``start`` (default: the current folder).

    Args:
        start: folder to search from; the nearest ``tooldistill.toml`` up the tree defines the workspace.
        db: a ``--db`` flag value, which beats ``TOOLDISTILL_DB`` and the TOML.
        environ: the environment to use (default ``os.environ``).

    Raises: ConfigError naming the file and key when the TOML is invalid.
    """
    start = Path(start or os.getcwd()).resolve()
    config_path = find_config(start)
    root = config_path.parent if config_path else start
    config = WorkspaceConfig()
    if config_path:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
            config = WorkspaceConfig.model_validate(data)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(map(str, err["loc"]))
            raise ConfigError(f"{config_path}: key {key!r}: {err['msg']}") from None
    env = read_env(root, environ)
    if db is not None:
        db_path = Path(db)
    elif env.get("TOOLDISTILL_DB"):
        db_path = Path(env["TOOLDISTILL_DB"])
    else:
        db_path = root / config.db
    if not db_path.is_absolute():
        db_path = (Path.cwd() / db_path) if (db is not None or env.get("TOOLDISTILL_DB")) else (root / db_path)
    return Workspace(root=root, config=config, env=env, db_path=db_path, config_path=config_path)


DEFAULT_TOML = """\
# tooldistill workspace. Secrets (API keys, HF token) go in .env or the environment, never here.
db = "tooldistill.db"
catalog = "catalog.yaml"

[distill]
# teacher models, tried by any ready slot
# models = ["gemini-2.5-flash", "gemini-2.5-flash-lite"]
# per (project, model) limits override the free-tier defaults
# rpm = 5
# rpd = 20

[curate]

[train]

[eval]
"""

ENV_EXAMPLE = """\
# Copy to .env and fill in. Never commit .env.
# Comma-separated keys; KEY@PROJECT groups keys of one Google Cloud project (they share quota).
GEMINI_API_KEYS=
# Optional: a proxy, gateway or stand-in server for the Gemini API.
GEMINI_BASE_URL=
# Hugging Face token for 'curate export --push-to-hub' and 'train push'.
HF_TOKEN=
# Optional: the workspace database (default: tooldistill.db beside tooldistill.toml).
TOOLDISTILL_DB=
"""


def init_workspace(folder: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Create a workspace in ``folder``: ``tooldistill.toml``, ``.env.example``, ``catalog.yaml``, ``.gitignore``.

    Returns: the files written. Existing files are kept unless ``force``.
    """
    from .catalog import dump_catalog, load_catalog

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        CONFIG_FILE: DEFAULT_TOML,
        ".env.example": ENV_EXAMPLE,
        "catalog.yaml": dump_catalog(load_catalog()),
        ".gitignore": ".env\n*.db\n*.db-wal\n*.db-shm\nruns/\n",
    }
    written = []
    for name, text in files.items():
        path = folder / name
        if path.exists() and not force:
            continue
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
