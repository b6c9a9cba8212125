"""Reading dataset versions (content-hashed splits) written by ``curate split``: what train and eval consume."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from ..catalog import Label, parse_label
from ..errors import ToolDistillError


@dataclass(frozen=True)
class SplitExample:
    query_id: int
    text: str
    label: Label
    label_source: str
    split: str


def resolve_version(db: Database, ref: str) -> str:
    """Return the full id of a dataset version from an id, a unique id prefix, a name, or ``latest``.

    Raises: ToolDistillError listing what exists when nothing (or more than one) matches.
    """
    if ref == "latest":
        row = db.execute("SELECT id FROM dataset_versions ORDER BY created_at DESC LIMIT 1").fetchone()
        if row is None:
            raise ToolDistillError("no dataset version yet; run 'tooldistill curate split' first")
        return row[0]
    rows = db.execute(
        "SELECT id FROM dataset_versions WHERE id = ? OR id LIKE ? OR name = ?", [ref, ref + "%", ref]
    ).fetchall()
    ids = sorted({r[0] for r in rows})
    if len(ids) == 1:
        return ids[0]
    known = [r[0][:12] for r in db.execute("SELECT id FROM dataset_versions ORDER BY created_at DESC LIMIT 5")]
    if not ids:
        raise ToolDistillError(f"no dataset version {ref!r} (recent: {', '.join(known) or 'none'})")
    raise ToolDistillError(f"dataset version {ref!r} is ambiguous: {', '.join(i[:12] for i in ids)}")


def parse_split_ref(ref: str, default_split: str = "test") -> tuple[str, str]:
    """Split ``VERSION:SPLIT`` into its parts (``VERSION`` alone means ``default_split``)."""
    version, _, split = ref.partition(":")
    return version, split or default_split


def load_split(db: Database, version: str, split: str) -> list[SplitExample]:
    """Return the examples of one split of a dataset version, in query-id order, with their frozen labels."""
    version_id = resolve_version(db, version)
    rows = db.execute(
        "SELECT m.query_id, q.text, m.calls, m.label_source, m.split FROM split_members m"
        " JOIN queries q ON q.id = m.query_id WHERE m.version_id = ? AND m.split = ? ORDER BY m.query_id",
        [version_id, split],
    ).fetchall()
    if not rows:
        splits = [r[0] for r in db.execute(
            "SELECT DISTINCT split FROM split_members WHERE version_id = ?", [version_id])]
        raise ToolDistillError(f"dataset version {version_id[:12]} has no split {split!r} (has: {', '.join(splits)})")
    return [SplitExample(qid, text, parse_label(json.loads(calls)), src, sp) for qid, text, calls, src, sp in rows]


def version_info(db: Database, version: str) -> dict:
    """The dataset version row with its JSON columns decoded."""
    version_id = resolve_version(db, version)
    row = dict(db["dataset_versions"].get(version_id))
    for key in ("params", "lineage", "counts", "report"):
        row[key] = json.loads(row[key]) if row.get(key) else None
    return row
