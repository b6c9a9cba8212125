"""The examples a run trains on: a dataset version from the database, or a labeled export JSONL.

Both give train and val examples (:class:`~tooldistill.db.SplitExample`), the catalogue their labels were
validated against, and a version id recorded on the run: the dataset version's id, or the content hash of the
JSONL file. When the data has no val split, a seeded share of train is held out and said so in ``info``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from ..catalog import Catalog, content_hash
from ..db import SplitExample, get_catalog, get_catalog_by_hash, load_split, resolve_version, version_info
from ..errors import InputError, ToolDistillError

VAL_SPLITS = ("val", "validation", "dev")


@dataclass
class TrainingData:
    """Train and val examples with the catalogue and the version id they come from."""

    train: list[SplitExample]
    val: list[SplitExample]
    catalog: Catalog
    version: str
    source: dict = field(default_factory=dict)
    """How to load it again: ``{"dataset": id}`` or ``{"data_file": path}``, plus ``val_from_train`` if carved."""


def _carve_val(train: list[SplitExample], fraction: float, seed: int) -> tuple[list, list]:
    if fraction <= 0 or len(train) < 2:
        return train, []
    n_val = max(1, round(len(train) * fraction))
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_val])
    val = [SplitExample(e.query_id, e.text, e.label, e.label_source, "val") for i, e in enumerate(train) if i in held]
    return [e for i, e in enumerate(train) if i not in held], val


def load_dataset_version(db: Database, ref: str, *, val_fraction: float = 0.1, seed: int = 0) -> TrainingData:
    """Load the train and val splits of a dataset version (val carved from train when it has none).

    Raises: ToolDistillError when the version or its train split does not exist.
    """
    version = resolve_version(db, ref)
    train = load_split(db, version, "train")
    val: list[SplitExample] = []
    splits = {r[0] for r in db.execute("SELECT DISTINCT split FROM split_members WHERE version_id = ?", [version])}
    for name in VAL_SPLITS:
        if name in splits:
            val = load_split(db, version, name)
            break
    source: dict = {"dataset": version}
    if not val:
        train, val = _carve_val(train, val_fraction, seed)
        source["val_from_train"] = len(val)
    catalog_hash = version_info(db, version).get("catalog_hash")
    catalog = get_catalog_by_hash(db, catalog_hash) if catalog_hash else get_catalog(db)
    return TrainingData(train, val, catalog, version, source)


def load_export_file(path: str | Path, catalog: Catalog, *, val_fraction: float = 0.1,
                     seed: int = 0) -> TrainingData:
    """Load a labeled export JSONL (``{"id", "text", "label": [{"tool", "args"}], "split"?, ...}`` per line).

    Rows whose ``split`` is ``test`` (or ``hard``) are left out; ``val``/``validation`` rows form val; the rest is
    train. Labels are validated against ``catalog``.

    Raises: InputError naming the file, line and field of the first bad row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read data file: {exc.strerror}", path=str(path)) from None
    train, val = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", path=str(path), line=n) from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise InputError("each line needs 'text' and 'label' (the 'data export' format)", path=str(path), line=n)
        label = catalog.validate_label(row["label"], source=str(path), line=n)
        split = str(row.get("split") or "train")
        qid = row.get("id") if isinstance(row.get("id"), int) else n
        ex = SplitExample(qid, row["text"], label, str(row.get("label_source") or "file"), split)
        if split in VAL_SPLITS:
            val.append(ex)
        elif split not in ("test", "hard"):
            train.append(ex)
    if not train:
        raise InputError("no train rows (every row is test/val, or the file is empty)", path=str(path))
    source: dict = {"data_file": str(path.resolve())}
    if not val:
        train, val = _carve_val(train, val_fraction, seed)
        source["val_from_train"] = len(val)
    return TrainingData(train, val, catalog, content_hash(text), source)


def load_training_data(db: Database, *, dataset: str | None = None, data_file: str | Path | None = None,
                       catalog: Catalog | None = None, val_fraction: float = 0.1, seed: int = 0) -> TrainingData:
    """Load what a run trains on: ``dataset`` (a version reference) or ``data_file`` (export JSONL)."""
    if data_file is not None:
        return load_export_file(data_file, catalog or get_catalog(db), val_fraction=val_fraction, seed=seed)
    if dataset is None:
        raise ToolDistillError("no data: pass a dataset version or a data file")
    return load_dataset_version(db, dataset, val_fraction=val_fraction, seed=seed)
