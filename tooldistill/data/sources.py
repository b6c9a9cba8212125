"""Reading import sources row by row: JSONL, JSON arrays, CSV/TSV, ``datasets`` folders, Hugging Face Hub ids.

Each source yields :class:`Row` objects that know where they came from (``file:line`` or ``folder[split]:row``)
so a bad row can be reported precisely. Files are streamed; ``datasets`` is imported only when a folder or a Hub
id is read.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from ..errors import InputError, ToolDistillError

TEXT_COLUMNS = ("text", "query", "question", "prompt", "utterance", "input", "sentence", "instruction")
LABEL_COLUMNS = ("label", "labels", "calls", "tool_calls", "intent")
FILE_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".tsv"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass
class Row:
    """One input record: ``data`` (None when it could not be parsed, with ``error`` saying why) and its place."""

    path: str
    line: int
    data: dict | None
    error: str | None = None


@dataclass
class Part:
    """A readable table: a file, or one split of a dataset. ``rows()`` can be called again (for a second pass)."""

    name: str
    """What ``queries.source`` records after ``import:`` (file name, ``folder/split``, ``hf:owner/name/split``)."""
    rows: Callable[[], Iterator[Row]]
    columns: list[str] | None = None
    total: int | None = None
    class_names: dict[str, list[str]] | None = None
    """Column -> names, for ``datasets`` ClassLabel columns (their ints are read back as names)."""


def open_source(source: str | os.PathLike, *, split: str | None = None, subset: str | None = None) -> list[Part]:
    """Return the tables of ``source``: one for a file, one per chosen split for a dataset.

    Raises: InputError for a missing or unreadable file, ToolDistillError when the Hub cannot be reached.
    """
    path = Path(source)
    if path.is_dir():
        return _dataset_parts(_load_from_disk(path), path.name, str(path), split)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            return [_csv_part(path, "\t" if suffix == ".tsv" else ",")]
        if suffix in (".jsonl", ".ndjson", ".json", ""):
            return [_json_part(path)]
        raise InputError(f"unsupported file type {suffix!r}; use JSONL, JSON, CSV or TSV, or a datasets folder",
                         path=str(path))
    text = str(source)
    if path.suffix.lower() in FILE_SUFFIXES or not _HUB_ID.match(text):
        raise InputError("no such file or folder", path=text)
    return _dataset_parts(_load_from_hub(text, subset), f"hf:{text}", text, split)


# ---------------------------------------------------------------- files


def _json_part(path: Path) -> Part:
    with path.open("rb") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith(b"["):
        return Part(path.name, lambda: _json_array_rows(path))
    return Part(path.name, lambda: _jsonl_rows(path))


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with _open_text(path) as fh:
        try:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Row(str(path), n, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(data, dict):
                    yield Row(str(path), n, None, f"expected a JSON object, got {type(data).__name__}")
                    continue
                yield Row(str(path), n, data)
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); re-save the file as UTF-8",
                             path=str(path)) from None


def _json_array_rows(path: Path) -> Iterator[Row]:
    try:
        with _open_text(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg})", path=str(path), line=exc.lineno) from None
    for n, item in enumerate(data, 1):
        ok = isinstance(item, dict)
        yield Row(str(path), n, item if ok else None, None if ok else f"item {n} is not an object")


def _csv_part(path: Path, delimiter: str) -> Part:
    with _open_text(path) as fh:
        header = next(csv.reader(fh, delimiter=delimiter), None)
    if not header:
        raise InputError("empty CSV file (no header row)", path=str(path))
    return Part(path.name, lambda: _csv_rows(path, delimiter), columns=[h.strip() for h in header])


def _csv_rows(path: Path, delimiter: str) -> Iterator[Row]:
    with _open_text(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
        start = reader.line_num + 1
        try:
            for record in reader:
                if None in record:
                    yield Row(str(path), start, None, f"{len(reader.fieldnames) + len(record[None])} fields, "
                                                      f"the header has {len(reader.fieldnames)}")
                else:
                    yield Row(str(path), start, dict(record))
                start = reader.line_num + 1
        except csv.Error as exc:
            raise InputError(f"malformed CSV: {exc}", path=str(path), line=reader.line_num) from None
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-8 text ({exc.reason}); re-save the file as UTF-8", path=str(path)) from None


def _open_text(path: Path, newline: str | None = None):
    try:
        return path.open(encoding="utf-8-sig", newline=newline)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None


# ---------------------------------------------------------------- datasets


def _load_from_disk(path: Path) -> Any:
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise InputError("a folder, but not a dataset saved with datasets' save_to_disk "
                         "(no dataset_info.json / dataset_dict.json)", path=str(path)) from None


def _hub_reachable(timeout: float = 3.0) -> str | None:
    """Return why the Hub cannot be reached (None when a TCP connection to it succeeds)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var} is set"
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        return f"no network connection to {host} ({exc.strerror or exc})"
    return None


def _load_from_hub(dataset_id: str, subset: str | None) -> Any:
    why = _hub_reachable()
    if why is not None:
        raise ToolDistillError(
            f"'{dataset_id}' is not a local file or folder, and the Hugging Face Hub cannot be reached: {why}; "
            "import a local copy (JSONL, CSV or a save_to_disk folder), or retry with the network on"
        )
    import datasets

    try:
        return datasets.load_dataset(dataset_id, subset)
    except (ConnectionError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ToolDistillError(f"cannot load '{dataset_id}' from the Hugging Face Hub: {first}") from None


def _dataset_parts(obj: Any, name: str, where: str, split: str | None) -> list[Part]:
    import datasets

    if isinstance(obj, datasets.DatasetDict):
        names = list(obj.keys())
        if split == "all":
            chosen = names
        elif split is not None:
            if split not in obj:
                raise InputError(f"no split {split!r}; the dataset has {', '.join(names)}", path=where)
            chosen = [split]
        elif len(names) == 1:
            chosen = names
        else:
            raise InputError(f"the dataset has splits {', '.join(names)}; pass --split NAME (or --split all)",
                             path=where)
        return [_dataset_part(obj[s], f"{name}/{s}", f"{where}[{s}]") for s in chosen]
    return [_dataset_part(obj, name, where)]


def _dataset_part(ds: Any, name: str, where: str) -> Part:
    import datasets

    class_names = {col: feat.names for col, feat in ds.features.items() if isinstance(feat, datasets.ClassLabel)}

    def rows() -> Iterator[Row]:
        for n, record in enumerate(ds, 1):
            for col, names in class_names.items():
                value = record.get(col)
                if isinstance(value, int) and 0 <= value < len(names):
                    record[col] = names[value]
            yield Row(where, n, record)

    return Part(name, rows, columns=list(ds.column_names), total=len(ds), class_names=class_names)
