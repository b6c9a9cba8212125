"""Export a dataset version in chat-messages form: JSONL, Parquet, a ``datasets`` folder, or the Hugging Face Hub.

Each example: ``messages`` (system, user, assistant), ``tools`` (the catalogue as a JSON string), ``label``
(canonical JSON), ``query_id``, ``label_source`` and ``meta``: the query's acceptable answers as JSON text
(``{"acceptable": [label, ...]}`` for an ambiguous template query, as ``data export`` writes them; ``{}`` for
none), which :func:`tooldistill.eval.acceptable_from_meta` reads, so the held-out splits keep them. The
assistant's content is the call list as a plain JSON string, ``[]`` for no tool: Arrow turns per-call argument
dicts into one struct with every key (null where missing), which silently corrupts training
(notes/training-on-cpu.md section 9), so no nested calls are stored.
A dataset card (README.md) goes with every export; its ``configs`` make ``datasets.load_dataset(DIR)`` load the
splits as written.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlite_utils import Database

from ..catalog import Catalog, Label
from ..data.export import export_meta
from ..db import get_catalog_by_hash, load_split, version_info
from ..errors import ConfigError, InputError
from ..progress import ProgressCallback, ProgressEvent, noop
from .card import gather_card_data, render_card

FORMATS = ("jsonl", "parquet", "hf")
TOOL_FORMATS = ("openai", "gemini")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_SYSTEM = ("You are a tool router. Answer the user's request with a JSON list of tool calls, each "
           '{{"name": <tool name>, "{key}": {{...}}}}, using only the tools provided. Answer [] when no tool fits.')


@dataclass
class ExportReport:
    version_id: str
    fmt: str
    tool_format: str
    out: str
    files: list[str]
    counts: dict[str, int]
    card: str = field(repr=False, default="")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "card"}


@dataclass
class PushReport:
    repo: str
    private: bool
    version_id: str
    counts: dict[str, int]
    card: str = field(repr=False, default="")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "card"}


def system_prompt(tool_format: str = "openai") -> str:
    """The system turn of every exported example."""
    return _SYSTEM.format(key="arguments" if tool_format == "openai" else "args")


def tools_json(catalog: Catalog, tool_format: str = "openai") -> str:
    """The catalogue as the ``tools`` column: OpenAI ``tools`` or Gemini ``functionDeclarations`` (no no_tool)."""
    tools = catalog.to_openai_tools() if tool_format == "openai" else catalog.to_gemini_declarations(include_no_tool=False)
    return json.dumps(tools, ensure_ascii=False)


def assistant_content(label: Label, tool_format: str = "openai") -> str:
    """The assistant's answer: the calls (canonical order) as a JSON string, name first; ``[]`` for no tool."""
    key = "arguments" if tool_format == "openai" else "args"
    return json.dumps([{"name": c["tool"], key: c["args"]} for c in label.canonical()], ensure_ascii=False)


def build_rows(db: Database, version: str, *, tool_format: str = "openai") -> tuple[str, dict[str, list[dict]]]:
    """Return ``(version_id, {split: [example, ...]})`` in chat-messages form, splits in their usual order."""
    _check_tool_format(tool_format)
    info = version_info(db, version)
    catalog = get_catalog_by_hash(db, info["catalog_hash"])
    tools, system = tools_json(catalog, tool_format), system_prompt(tool_format)
    names = [s for s in ("train", "val", "test", "hard") if (info["counts"] or {}).get(s, {}).get("total")]
    names += sorted({r[0] for r in db.execute("SELECT DISTINCT split FROM split_members WHERE version_id = ?",
                                              [info["id"]])} - set(names))
    metas = _acceptable_metas(db, info["id"])
    out = {}
    for name in names:
        out[name] = [{
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": ex.text},
                         {"role": "assistant", "content": assistant_content(ex.label, tool_format)}],
            "tools": tools, "label": ex.label.canonical_json(), "query_id": ex.query_id,
            "label_source": ex.label_source, "meta": metas.get(ex.query_id, "{}"),
        } for ex in load_split(db, info["id"], name)]
    return info["id"], out


def _acceptable_metas(db: Database, version_id: str) -> dict[int, str]:
    """``{query_id: meta JSON}`` for the version's queries that declare acceptable answers (as ``data export``)."""
    out = {}
    for qid, meta in db.execute("SELECT id, meta FROM queries WHERE meta IS NOT NULL AND id IN (SELECT query_id FROM "
                                "split_members WHERE version_id = ?)", [version_id]):
        kept = export_meta(meta)
        if kept:
            out[qid] = json.dumps(kept, ensure_ascii=False)
    return out


def features():
    """The ``datasets.Features`` of an exported split (fixed, so every format loads back with the same types)."""
    from datasets import Features, List, Value

    return Features({"messages": List({"role": Value("string"), "content": Value("string")}),
                     "tools": Value("string"), "label": Value("string"), "query_id": Value("int64"),
                     "label_source": Value("string"), "meta": Value("string")})


def to_dataset_dict(rows: dict[str, list[dict]]):
    """The splits as a ``datasets.DatasetDict`` with :func:`features`."""
    from datasets import Dataset, DatasetDict

    feats = features()
    return DatasetDict({name: Dataset.from_list(examples, features=feats) for name, examples in rows.items()})


def export(db: Database, version: str, out: str | Path, *, fmt: str, tool_format: str = "openai",
           license: str = "other", overwrite: bool = False, progress: ProgressCallback | None = None) -> ExportReport:
    """Write a dataset version to ``out`` with its dataset card.

    Args:
        db: the workspace database.
        version: a version id, unique id prefix, name, or ``latest``.
        out: the folder to write; must be empty or absent (``overwrite`` replaces a previous tooldistill export).
        fmt: ``jsonl`` (``data/<split>.jsonl``), ``parquet`` (``data/<split>-00000-of-00001.parquet``) or ``hf``
            (``DatasetDict.save_to_disk``).
        tool_format: ``openai`` or ``gemini``: the shape of ``tools`` and of the calls in the assistant turn.
        license: the card's license field (a Hub license id; ``other`` by default).
        progress: called with ``export`` events, one per split.

    Returns: an :class:`ExportReport`; ``datasets.load_dataset(str(out))`` loads the splits back unchanged.

    Raises: InputError for an unknown format or an unusable ``out``; ToolDistillError for an unknown version.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}", field="format")
    _check_tool_format(tool_format)
    progress = progress or noop
    out = Path(out)
    _prepare_out(out, overwrite)
    version_id, rows = build_rows(db, version, tool_format=tool_format)
    files, data_files = [], {}
    with _quiet_datasets():
        if fmt == "hf":
            to_dataset_dict(rows).save_to_disk(str(out))
            for name in rows:
                data_files[name] = f"{name}/data-*.arrow"
            files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        else:
            (out / "data").mkdir(parents=True, exist_ok=True)
            for done, (name, examples) in enumerate(rows.items(), 1):
                rel = f"data/{name}.jsonl" if fmt == "jsonl" else f"data/{name}-00000-of-00001.parquet"
                _write(out / rel, examples, fmt)
                files.append(rel)
                data_files[name] = rel
                progress(ProgressEvent("export", done, len(rows), f"export: {name}"))
    card = render_card(gather_card_data(db, version_id), data_files=data_files, license=license,
                       load_path=str(out), tool_format=tool_format)
    (out / "README.md").write_text(card, encoding="utf-8")
    files.append("README.md")
    return ExportReport(version_id=version_id, fmt=fmt, tool_format=tool_format, out=str(out), files=files,
                        counts={k: len(v) for k, v in rows.items()}, card=card)


def _write(path: Path, examples: list[dict], fmt: str) -> None:
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(json.dumps(ex, ensure_ascii=False) + "\n")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features().arrow_schema
    pq.write_table(pa.Table.from_pylist(examples, schema=schema), path)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder; choose another --out", path=str(out))
    if out.is_dir() and any(out.iterdir()):
        card = out / "README.md"
        ours = card.is_file() and "tooldistill" in card.read_text(encoding="utf-8", errors="replace")[:2000]
        if not overwrite:
            raise InputError("is not empty; choose another --out, or pass --overwrite to replace a previous export",
                             path=str(out))
        if not ours:
            raise InputError("is not empty and holds no tooldistill export (no README.md of ours); --overwrite "
                             "only replaces a previous export", path=str(out))
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _check_tool_format(tool_format: str) -> None:
    if tool_format not in TOOL_FORMATS:
        raise InputError(f"unknown tool format {tool_format!r}; use one of: {', '.join(TOOL_FORMATS)}",
                         field="tool_format")


@contextlib.contextmanager
def _quiet_datasets():
    """``datasets`` draws its own progress bars on stderr; the library must not print, so hide them meanwhile."""
    import datasets

    was_enabled = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def push_to_hub(db: Database, version: str, repo: str, *, token: str | None, private: bool = False,
                tool_format: str = "openai", license: str = "other") -> PushReport:
    """Push a dataset version to the Hugging Face Hub as a dataset repo, then upload its dataset card.

    Args:
        repo: ``owner/name`` of the dataset repo (created if absent).
        token: a Hub token with write access (the CLI reads ``HF_TOKEN`` from the environment or ``.env``).
        private: create the repo private.

    Side effects: ``DatasetDict.push_to_hub`` (Parquet shards under ``data/``) and one ``README.md`` upload.

    Raises: ConfigError without a token; InputError for a malformed repo id.
    """
    if not _REPO_RE.match(repo or ""):
        raise InputError(f"not a Hub repo id: {repo!r}; use OWNER/NAME, e.g. my-org/router-data", field="repo")
    if not token:
        raise ConfigError("HF_TOKEN is not set; add HF_TOKEN=hf_... (a write token) to .env or the environment")
    from huggingface_hub import HfApi

    version_id, rows = build_rows(db, version, tool_format=tool_format)
    with _quiet_datasets():
        to_dataset_dict(rows).push_to_hub(repo, private=private, token=token,
                                          commit_message=f"tooldistill dataset version {version_id[:12]}")
    card = render_card(gather_card_data(db, version_id), data_files={n: f"data/{n}-*" for n in rows},
                       license=license, load_path=repo, tool_format=tool_format)
    HfApi(token=token).upload_file(path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md", repo_id=repo,
                                   repo_type="dataset", commit_message="dataset card (tooldistill)")
    return PushReport(repo=repo, private=private, version_id=version_id, counts={k: len(v) for k, v in rows.items()},
                      card=card)
