"""Training runs: ``runs`` rows with their lineage, and :func:`start_run`, the one entry point of ``train run``.

A run is a row (``kind="train"``, config JSON with its ``student`` kind, dataset version, parent run, base
model, metrics, artifact folder) plus ``runs/<run_id>/`` under the workspace root. ``--like RUN`` repeats a
run's resolved config on new data and records the old run as ``parent_run_id``; ``--resume RUN`` continues an
interrupted run from its last checkpoint under the same id.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..catalog import Catalog
from ..db import now_iso
from ..errors import InputError, ToolDistillError
from ..progress import ProgressCallback, noop

RUNS_DIR = "runs"
_JSON_COLUMNS = ("config", "metrics", "inputs")


@dataclass
class TrainRequest:
    """What a run trains on and where it writes: everything but the config.

    Attributes:
        root: the workspace root; artifacts go to ``root/runs/<run_id>/``.
        dataset: a dataset version reference (id, unique prefix, name or ``latest``).
        data_file: a labeled export JSONL to train on instead (its content hash is the version).
        catalog: the catalogue for ``data_file`` (default: the workspace's current one).
        parent_run_id: the run this one repeats (``--like``), recorded as lineage.
        resume_run_id: continue this run from its last checkpoint.
        run_id: an explicit id for a new run (``accelerate launch`` passes one so every process agrees).
        progress: receives :class:`~tooldistill.progress.ProgressEvent` s.
    """

    root: Path
    dataset: str | None = None
    data_file: Path | None = None
    catalog: Catalog | None = None
    parent_run_id: str | None = None
    resume_run_id: str | None = None
    run_id: str | None = None
    progress: ProgressCallback = noop


@dataclass
class TrainResult:
    """A finished run: its id, folder, status, dataset version and summary metrics."""

    run_id: str
    run_dir: Path
    status: str
    dataset_version: str
    metrics: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    trainer: Any = field(default=None, repr=False)
    """The trainer (in-process callers may inspect its model); None when unavailable."""

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": str(self.run_dir), "status": self.status,
                "dataset_version": self.dataset_version, "metrics": self.metrics, "warnings": self.warnings}


def is_main_process() -> bool:
    """True unless this is a non-zero rank under ``accelerate launch``/torchrun (only rank 0 writes rows)."""
    return int(os.environ.get("RANK", "0")) == 0


def new_run_id(kind: str = "train") -> str:
    """A new run id: ``<kind>-<UTC yyyymmdd-hhmmss>-<4 hex>``, sortable by time."""
    return f"{kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def runs_dir(root: str | Path) -> Path:
    return Path(root) / RUNS_DIR


def _decode(row: dict) -> dict:
    row = dict(row)
    for key in _JSON_COLUMNS:
        if isinstance(row.get(key), str):
            try:
                row[key] = json.loads(row[key])
            except json.JSONDecodeError:
                pass
    return row


def create_run(db: Database, *, run_id: str, kind: str, config: dict, dataset_version: str | None,
               base_model: str | None, artifact_path: str | Path, parent_run_id: str | None = None,
               inputs: dict | None = None, status: str = "running") -> dict:
    """Insert a ``runs`` row (status ``running``) and return it decoded."""
    row = {
        "id": run_id, "kind": kind, "status": status, "created_at": now_iso(), "finished_at": None,
        "config": json.dumps(config, ensure_ascii=False), "dataset_version": dataset_version,
        "parent_run_id": parent_run_id, "base_model": base_model, "metrics": None,
        "artifact_path": str(artifact_path), "notes": None, "inputs": json.dumps(inputs or {}, ensure_ascii=False),
    }
    db["runs"].insert(row)
    return get_run(db, run_id)


def update_run(db: Database, run_id: str, **fields: Any) -> None:
    """Update columns of a run; dict values of JSON columns are encoded."""
    values = {k: (json.dumps(v, ensure_ascii=False, default=str) if k in _JSON_COLUMNS and v is not None else v)
              for k, v in fields.items()}
    db["runs"].update(run_id, values)


def finish_run(db: Database, run_id: str, *, status: str, metrics: dict | None = None,
               notes: str | None = None) -> None:
    """Close a run: ``done``, ``failed`` or ``interrupted``, with its metrics and a note."""
    fields: dict[str, Any] = {"status": status, "finished_at": now_iso()}
    if metrics is not None:
        fields["metrics"] = metrics
    if notes is not None:
        fields["notes"] = notes
    update_run(db, run_id, **fields)


def resolve_run(db: Database, ref: str, *, kind: str | None = None) -> str:
    """Return a run's full id from its id, a unique prefix or ``latest`` (optionally of one kind).

    Raises: ToolDistillError listing recent runs when nothing or more than one matches.
    """
    where, params = ("kind = ?", [kind]) if kind else ("1 = 1", [])
    if ref == "latest":
        row = db.execute(f"SELECT id FROM runs WHERE {where} ORDER BY created_at DESC LIMIT 1", params).fetchone()
        if row is None:
            raise ToolDistillError("no run yet; start one with 'tooldistill train run'")
        return row[0]
    ids = sorted({r[0] for r in db.execute(f"SELECT id FROM runs WHERE {where} AND (id = ? OR id LIKE ?)",
                                           params + [ref, ref + "%"])})
    if ref in ids:
        return ref
    if len(ids) == 1:
        return ids[0]
    if not ids:
        recent = [r[0] for r in db.execute(f"SELECT id FROM runs WHERE {where} ORDER BY created_at DESC LIMIT 5",
                                           params)]
        raise ToolDistillError(f"run {ref!r} does not exist (recent: {', '.join(recent) or 'none'}); list them "
                               f"with 'tooldistill train runs --kind {kind or 'all'}'")
    raise ToolDistillError(f"run {ref!r} is ambiguous: {', '.join(ids)}")


def get_run(db: Database, ref: str, *, kind: str | None = None) -> dict:
    """Return a run row (JSON columns decoded) by id, unique prefix or ``latest``."""
    return _decode(db["runs"].get(resolve_run(db, ref, kind=kind)))


def list_runs(db: Database, *, kind: str | None = "train", limit: int | None = None) -> list[dict]:
    """Return runs newest first, decoded, each with ``children`` (ids of runs that name it as parent)."""
    where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
    sql = f"SELECT * FROM runs {where} ORDER BY created_at DESC" + (f" LIMIT {int(limit)}" if limit else "")
    rows = [_decode(dict(zip([c[0] for c in cur.description], r))) for cur in [db.execute(sql, params)]
            for r in cur.fetchall()]
    children: dict[str, list[str]] = {}
    for pid, cid in db.execute("SELECT parent_run_id, id FROM runs WHERE parent_run_id IS NOT NULL ORDER BY id"):
        children.setdefault(pid, []).append(cid)
    for row in rows:
        row["children"] = children.get(row["id"], [])
    return rows


def lineage(db: Database, ref: str) -> list[dict]:
    """The chain of runs from the oldest ancestor to ``ref`` (each repeated with ``--like``)."""
    chain, seen = [], set()
    row: dict | None = get_run(db, ref)
    while row is not None and row["id"] not in seen:
        seen.add(row["id"])
        chain.append(row)
        parent = row.get("parent_run_id")
        row = _decode(db["runs"].get(parent)) if parent and db["runs"].count_where("id = ?", [parent]) else None
    return chain[::-1]


def eval_runs_for(db: Database, run_id: str) -> list[dict]:
    """Eval runs of a trained run: rows of kind ``eval`` whose parent is it (or whose config names it)."""
    rows = db.execute(
        "SELECT * FROM runs WHERE kind = 'eval' AND (parent_run_id = ? OR json_extract(config, '$.run') = ?"
        " OR json_extract(config, '$.run_id') = ?) ORDER BY created_at", [run_id, run_id, run_id])
    cols = [c[0] for c in rows.description]
    return [_decode(dict(zip(cols, r))) for r in rows.fetchall()]


def run_dir_of(db: Database | None, run: str | Path) -> Path:
    """The artifact folder of a run given as a folder path, or as a run id/prefix looked up in ``db``.

    Raises: ToolDistillError when ``run`` is neither an existing folder nor a known run.
    """
    path = Path(run)
    if path.is_dir() and (path / "config.yaml").is_file():
        return path
    if db is None:
        raise ToolDistillError(f"{run} is not a run folder (no config.yaml) and there is no workspace database to "
                               "look it up in; pass a run folder, or --db with the run's database")
    row = get_run(db, str(run))
    folder = Path(row["artifact_path"] or "")
    if not folder.is_dir():
        raise ToolDistillError(f"run {row['id']} has no artifact folder at {folder}; was it moved? pass the folder")
    return folder


# ------------------------------------------------------------------ starting a run


def start_run(db: Database, *, root: str | Path, config_path: str | Path | None = None,
              overrides: dict[str, Any] | None = None, student: str | None = None, dataset: str | None = None,
              data_file: str | Path | None = None, catalog: Catalog | None = None, like: str | None = None,
              resume: str | None = None, run_id: str | None = None, progress: ProgressCallback = noop) -> TrainResult:
    """Start (or resume) a training run of any student kind and return its result.

    Args:
        db: the workspace database.
        root: the workspace root (artifacts go to ``root/runs/<id>/``).
        config_path: a YAML config; ``overrides`` (dotted keys) apply on top.
        student: the student kind (``sft``, ``encoder``); default: the config's, else ``sft``.
        dataset: a dataset version reference; or ``data_file``: a labeled export JSONL (with ``catalog``).
        like: repeat this run's resolved config (plus overrides) on ``dataset``/``data_file``; lineage recorded.
        resume: continue this interrupted run from its last checkpoint (same config and data).
        run_id: an explicit id for the new run.
        progress: progress callback.

    Side effects: a ``runs`` row and ``root/runs/<id>/``; the training itself (minutes to hours).

    Raises: InputError for bad configs or arguments; Interrupted (exit 130) on Ctrl-C, after marking the run.
    """
    from .config import load_student_config, student_module

    if resume and (like or config_path or dataset or data_file):
        raise InputError("--resume continues a run with its own config and data; drop --like/--config/--dataset/"
                         "--data", field="--resume")
    parent_run_id = None
    if resume:
        row = get_run(db, resume)
        if row["status"] == "done":
            raise ToolDistillError(f"run {row['id']} already finished; start a new one with --like {row['id']}")
        config = load_student_config(data=row["config"], overrides=overrides)
        inputs = row.get("inputs") or {}
        dataset, data_file = inputs.get("dataset"), inputs.get("data_file")
        parent_run_id, run_id = row.get("parent_run_id"), row["id"]
    elif like:
        parent = get_run(db, like)
        if not (dataset or data_file):
            raise InputError(f"--like {parent['id']} repeats its config on new data: add --dataset VERSION or "
                             "--data FILE", field="--dataset")
        config = load_student_config(data=parent["config"], overrides=overrides, student=student)
        parent_run_id = parent["id"]
    else:
        if not (dataset or data_file):
            raise InputError("say what to train on: --dataset VERSION (from 'curate split') or --data FILE "
                             "(a labeled export JSONL)", field="--dataset")
        config = load_student_config(config_path, overrides, student=student)
    if dataset and data_file:
        raise InputError("pass --dataset or --data, not both", field="--data")
    request = TrainRequest(root=Path(root), dataset=dataset, data_file=Path(data_file) if data_file else None,
                           catalog=catalog, parent_run_id=parent_run_id, resume_run_id=resume and run_id,
                           run_id=run_id, progress=progress)
    return student_module(config.student).train(db, config, request=request)


def accelerate_command(args: list[str], *, gpus: int, run_id: str | None = None) -> str:
    """The ``accelerate launch`` line that runs ``tooldistill <args>`` on ``gpus`` GPUs (data parallel).

    Every process trains on its shard; only rank 0 writes the run row and artifacts, so the command pins a run
    id that all processes share. Each process holds a whole 4-bit copy of the base (QLoRA + DDP).
    """
    import shlex

    run_id = run_id or new_run_id("train")
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(gpus), "-m", "tooldistill"]
    return shlex.join([*launch, *args, "--run-id", run_id])
