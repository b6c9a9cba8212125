"""Opening the workspace database: WAL, busy timeout, foreign keys, migrations applied on open."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from sqlite_utils import Database

from ..errors import DatabaseError
from .migrations import MIGRATIONS

_SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000


def now_iso() -> str:
    """UTC timestamp with microseconds, the format every ``*_at`` column uses."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def open_db(path: str | os.PathLike, *, migrate: bool = True, create: bool = True) -> Database:
    """Open (and by default create and migrate) the workspace database.

    Args:
        path: the SQLite file.
        migrate: apply pending migrations (every command does; ``db status`` too).
        create: create the file if it does not exist; if False a missing file is an error.

    Returns: a ``sqlite_utils.Database`` in WAL mode with a busy timeout and foreign keys on.

    Raises: DatabaseError when the file is not SQLite, cannot be opened, or was written by a newer version.
    """
    path = Path(path)
    if path.exists():
        if path.is_dir():
            raise DatabaseError(f"{path} is a directory, not a database file; pass --db FILE")
        with path.open("rb") as fh:
            head = fh.read(16)
        if head and head != _SQLITE_MAGIC:
            raise DatabaseError(f"{path} is not a SQLite database (bad header); pass --db with a tooldistill database")
    elif not create:
        raise DatabaseError(f"{path} does not exist; run 'tooldistill init' or pass --db")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"cannot open {path}: {exc}") from None
    db = Database(conn, execute_plugins=False)
    if migrate:
        _check_not_newer(db, path)
        MIGRATIONS.apply(db)
    return db


def _check_not_newer(db: Database, path: Path) -> None:
    known = {m.name for m in MIGRATIONS._migrations}
    unknown = [m.name for m in MIGRATIONS.applied(db) if m.name not in known]
    if unknown:
        raise DatabaseError(
            f"{path} was written by a newer tooldistill (unknown migration {unknown[-1]}); "
            "upgrade with: pip install -U tooldistill"
        )


def pending_migrations(db: Database) -> list[str]:
    """Names of migrations not yet applied."""
    return [m.name for m in MIGRATIONS.pending(db)]


def backup(db: Database, dest: str | os.PathLike) -> Path:
    """Write a consistent copy of the database to ``dest`` with ``VACUUM INTO`` (safe while a run writes).

    Raises: DatabaseError if ``dest`` exists.
    """
    dest = Path(dest)
    if dest.exists():
        raise DatabaseError(f"{dest} already exists; choose a new path or delete it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    db.execute("VACUUM INTO ?", [str(dest)])
    return dest


def get_setting(db: Database, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else default


def set_setting(db: Database, key: str, value: str) -> None:
    db["settings"].upsert({"key": key, "value": value}, pk="key")
