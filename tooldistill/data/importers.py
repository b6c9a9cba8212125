"""Importing queries (and their labels) from files, ``datasets`` folders and the Hugging Face Hub.

Labels come as tool-call lists (ours, OpenAI ``tool_calls``, ``{name, arguments}``; see
:func:`tooldistill.catalog.parse_label`) or as class names. Class names map to the parameterless tools of a
catalogue derived from them (``--none-label`` names the class that means no tool) unless a catalogue is given.

Catalogue policy (documented contract): the workspace keeps one current catalogue. An import whose catalogue
differs from it replaces it only while the workspace holds no labels at all (teacher or imported labels, gold,
reviews, adjudications); a class catalogue may also grow by new classes, because every existing label still
fits. Anything else is refused, with the advice to import into a fresh database (``--db``) or to switch the
catalogue first with ``data catalog set`` and ``data validate``. So two label sets never mix silently.

Acceptable answers: a row's ``meta.acceptable`` (and ``acceptable_labels``/``acceptable_args``, in ``meta`` or
at the top level), as ``data export`` writes them, are validated against the catalogue and kept in the query's
meta, so ``eval`` grades an ambiguous query against every answer it allows after a round trip.

Idempotence: queries deduplicate on normalised text; an imported label is not added again when the query already
holds an imported label with the same hash (``--gold``: the same gold label), so re-importing a file adds nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..catalog import Catalog, Label, load_catalog
from ..db import NewQuery, add_label, get_catalog, insert_queries, store_catalog
from ..errors import InputError, LabelError, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .export import META_KEYS
from .sources import LABEL_COLUMNS, TEXT_COLUMNS, Part, Row, open_source

CATEGORIES = ("single", "multi", "no_tool", "ambiguous", "edge")
MAX_PROBLEMS = 20
IMPORT_SOURCE = "import"
"""``labels.source`` and ``queries.gold_source`` of imported labels."""


@dataclass
class ImportReport:
    """What :func:`import_queries` did. ``problems`` lists the first skipped rows as ``file:line: reason``."""

    source: str
    text_column: str
    label_column: str | None
    label_mode: str | None
    """``calls`` (tool-call lists), ``classes`` (class names) or None (queries only)."""
    gold: bool
    catalog_hash: str
    catalog_name: str
    catalog_tools: int
    catalog_action: str = "unchanged"
    """``unchanged``, ``stored`` (now the workspace's current catalogue) or ``extended`` (new classes added)."""
    query_sources: list[str] = field(default_factory=list)
    rows: int = 0
    added: int = 0
    duplicates: int = 0
    labeled: int = 0
    labels_added: int = 0
    labels_present: int = 0
    label_conflicts: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _BadRow(Exception):
    def __init__(self, reason: str, column: str | None = None):
        super().__init__(reason)
        self.reason, self.column = reason, column


@dataclass
class _Item:
    text: str
    label: Label | None
    raw: Any
    meta: dict
    category: str | None
    template_id: str | None


def import_queries(
    db: Database, source: str | os.PathLike, *, text_column: str | None = None, label_column: str | None = None,
    none_label: str | None = None, split: str | None = None, subset: str | None = None,
    catalog: Catalog | str | os.PathLike | None = None, gold: bool = False, strict: bool = False,
    labels: bool = True, progress: ProgressCallback | None = None, batch_size: int = 1000,
) -> ImportReport:
    """Import queries, and labels when the source has them, into the workspace database.

    Args:
        db: the workspace database.
        source: a JSONL/JSON/CSV/TSV file, a folder written by ``datasets``' ``save_to_disk``, or a Hugging Face
            Hub dataset id (needs the network).
        text_column, label_column: column names; by default the first of :data:`TEXT_COLUMNS` /
            :data:`LABEL_COLUMNS` present (no label column: queries only).
        none_label: the class (or label string) that means no tool, mapped to ``[]``.
        split: a split of a dataset dict, or ``"all"``; subset: the Hub dataset's config name.
        catalog: a catalogue (or its file) for the labels; default: derived from class names, or the workspace's.
        gold: store labels as verified gold (``queries.gold_*``) instead of imported teacher-level labels.
        strict: stop at the first bad row with nothing written (one transaction); by default bad rows are skipped
            and reported.
        labels: False ignores any label column.
        progress: called with ``import`` events (rows read).

    Returns: an :class:`ImportReport`.

    Raises: InputError (exit 2) for an unreadable source, a bad catalogue, or a bad row under ``strict``;
    ToolDistillError when the Hub cannot be reached or the catalogue policy refuses the import.
    """
    progress = progress or noop
    parts = open_source(source, split=split, subset=subset)
    first = _first_record(parts[0])
    text_col = _pick_column(text_column, TEXT_COLUMNS, parts[0], first, "text")
    label_col = _pick_column(label_column, LABEL_COLUMNS, parts[0], first, "label", required=False) if labels else None
    mode = _label_mode(parts, label_col)
    explicit = load_catalog(catalog) if isinstance(catalog, (str, os.PathLike)) else catalog
    with db.atomic() if strict else contextlib.nullcontext():
        target, action = _adopt_catalog(db, source, parts, label_col, mode, explicit, none_label)
        report = ImportReport(source=str(source), text_column=text_col, label_column=label_col if mode else None,
                              label_mode=mode, gold=gold, catalog_hash=target.hash, catalog_name=target.name,
                              catalog_tools=len(target.tools), catalog_action=action)
        for part in parts:
            _import_part(db, part, report, catalog=target, text_col=text_col, label_col=label_col if mode else None,
                         mode=mode, none_label=none_label, gold=gold, strict=strict, batch_size=batch_size,
                         progress=progress)
    return report


# ---------------------------------------------------------------- columns, label mode, catalogue


def _first_record(part: Part) -> dict | None:
    for i, row in enumerate(part.rows()):
        if row.data is not None:
            return row.data
        if i >= 1000:
            break
    return None


def _pick_column(name: str | None, candidates: tuple[str, ...], part: Part, first: dict | None, what: str,
                 *, required: bool = True) -> str | None:
    columns = part.columns if part.columns is not None else list(first or {})
    if name is not None:
        if columns and name not in columns:
            raise InputError(f"no column {name!r}; the columns are {', '.join(columns)}", path=part.name)
        return name
    found = next((c for c in candidates if c in columns), None)
    if found is None and required:
        shown = ", ".join(columns) if columns else "none (no readable row)"
        raise InputError(f"no {what} column found (looked for {', '.join(candidates)}); the columns are {shown}; "
                         f"pass --{what}-column", path=part.name)
    return found


def _label_mode(parts: list[Part], label_col: str | None) -> str | None:
    if label_col is None:
        return None
    if any(label_col in (p.class_names or {}) for p in parts):
        return "classes"
    for part in parts:
        for row in part.rows():
            value = (row.data or {}).get(label_col)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if isinstance(value, (list, dict)) or (isinstance(value, str) and value.strip()[:1] in "[{"):
                return "calls"
            return "classes"
    return None


def _class_names(parts: list[Part], label_col: str, none_label: str | None) -> list[str]:
    names: dict[str, None] = {}
    for part in parts:
        if label_col in (part.class_names or {}):
            names.update(dict.fromkeys(part.class_names[label_col]))
            continue
        for row in part.rows():
            value = (row.data or {}).get(label_col)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                names[str(value)] = None
    if none_label is not None:
        names.pop(none_label, None)
    return list(names)


def count_labels(db: Database) -> int:
    """How many labels of any kind the workspace holds (valid labels, gold, reviews with a label, adjudications)."""
    return db.execute(
        "SELECT (SELECT count(*) FROM labels WHERE valid = 1) + (SELECT count(*) FROM queries WHERE gold_calls IS "
        "NOT NULL) + (SELECT count(*) FROM reviews WHERE calls IS NOT NULL) + (SELECT count(*) FROM adjudications)"
    ).fetchone()[0]


def _catalog_name(source: str | os.PathLike) -> str:
    """``data/clinc150/train.jsonl`` -> ``clinc150 classes`` (a split's file is named after its folder)."""
    path = Path(str(source).rstrip("/"))
    stem = path.stem
    if stem.lower() in {"train", "test", "validation", "val", "dev", "data", "dataset"} and path.parent.name:
        stem = path.parent.name
    return f"{stem} classes"


def _adopt_catalog(db: Database, source: str | os.PathLike, parts: list[Part], label_col: str | None, mode: str | None,
                   explicit: Catalog | None, none_label: str | None) -> tuple[Catalog, str]:
    current = get_catalog(db)
    if mode is None:
        return current, "unchanged"
    if explicit is not None:
        target = explicit
    elif mode == "classes":
        if none_label is None and current.is_class_catalog:
            none_label = current.none_label
        derived = Catalog.from_class_names(_class_names(parts, label_col, none_label), none_label=none_label,
                                           name=_catalog_name(source))
        target = _grow(current, derived) or derived
    else:
        target = current
    if target.hash == current.hash:
        return current, "unchanged"
    grows = _is_growth(current, target)
    n_labels = count_labels(db)
    if n_labels and not grows:
        raise ToolDistillError(
            f"the workspace already holds {n_labels:,} labels under catalogue '{current.name}' ({current.hash}, "
            f"{len(current.tools)} tools); these labels need catalogue '{target.name}' ({target.hash}, "
            f"{len(target.tools)} tools). Import into a fresh database (tooldistill --db other.db data import ...), "
            "import the queries alone with --no-labels, or switch catalogues first ('tooldistill data catalog set "
            "FILE', then 'tooldistill data validate')"
        )
    store_catalog(db, target)
    return target, "extended" if grows and n_labels else "stored"


def _grow(current: Catalog, derived: Catalog) -> Catalog | None:
    """The current class catalogue, or it plus the new classes, when ``derived`` is compatible with it."""
    if not (current.is_class_catalog and current.none_label == derived.none_label):
        return None
    new = [t for t in derived.tools if t.name not in current.by_name]
    if not new:
        return current
    tools = tuple(sorted((*current.tools, *new), key=lambda t: t.name))
    return Catalog(name=current.name, tools=tools, none_label=current.none_label)


def _is_growth(current: Catalog, target: Catalog) -> bool:
    return (current.is_class_catalog and target.is_class_catalog and current.none_label == target.none_label
            and all(target.by_name.get(t.name) == t for t in current.tools))


# ---------------------------------------------------------------- rows


def _short_reason(reason: str) -> str:
    """Shorten the list of known tools a catalogue error carries (a class catalogue may have hundreds)."""
    def cut(m: re.Match) -> str:
        names = m.group(1).split(", ")
        return m.group(0) if len(names) <= 12 else f"(known: {', '.join(names[:8])}, ... {len(names) - 8} more)"

    return re.sub(r"\(known: ([^)]*)\)", cut, reason)


def _convert(data: dict, *, text_col: str, label_col: str | None, mode: str | None, catalog: Catalog,
             none_label: str | None) -> _Item:
    if text_col not in data:
        raise _BadRow("missing", text_col)
    text = data[text_col]
    if not isinstance(text, str):
        raise _BadRow(f"expected a string, got {type(text).__name__}", text_col)
    if not text.strip():
        raise _BadRow("empty text", text_col)
    label, raw = None, None
    if label_col is not None:
        raw = data.get(label_col)
        label = _label(raw, mode=mode, catalog=catalog, none_label=none_label, label_col=label_col)
    meta = {}
    if isinstance(data.get("id"), (str, int)) and "id" not in (text_col, label_col):
        meta["source_id"] = data["id"]
    meta.update(_acceptable(data, mode=mode, catalog=catalog, none_label=none_label))
    category = data.get("category") if label_col != "category" and data.get("category") in CATEGORIES else None
    template_id = data.get("template_id") if isinstance(data.get("template_id"), str) else None
    return _Item(text.strip(), label, raw, meta, category, template_id)


def _label(raw: Any, *, mode: str | None, catalog: Catalog, none_label: str | None, label_col: str) -> Label | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if none_label is not None and isinstance(raw, str) and raw.strip() == none_label:
        return Label(calls=[])
    try:
        if mode == "classes":
            if not isinstance(raw, (str, int)) or isinstance(raw, bool):
                raise _BadRow(f"expected a class name, got {type(raw).__name__}", label_col)
            return catalog.class_label(str(raw).strip())
        return catalog.validate_label(raw)
    except LabelError as exc:
        column = label_col + (exc.field[len("label"):] if exc.field and exc.field.startswith("label") else "")
        reason = exc.reason
        if reason.startswith("unknown tool") and "(known:" not in reason:
            reason += f" (known: {', '.join(catalog.names)})"
        raise _BadRow(_short_reason(reason), column) from None


def _acceptable(data: dict, *, mode: str | None, catalog: Catalog, none_label: str | None) -> dict:
    """The acceptable answers a row declares (in ``meta``, as ``data export`` writes them, or at the top level
    as ``eval score`` also reads them), validated against ``catalog``, labels in canonical form.

    A ``meta`` that is neither an object nor its JSON text belongs to some other dataset and is ignored.
    """
    meta = data.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta.strip().startswith("{") else None
        except json.JSONDecodeError:
            meta = None
    found = [("meta.", meta)] if isinstance(meta, dict) else []
    found.append(("", data))
    out: dict = {}
    for prefix, where in found:
        for key in META_KEYS:
            value = where.get(key)
            if value in (None, [], {}):
                continue
            column = prefix + key
            if isinstance(value, list) and key != "acceptable_args":
                labels = [_label(v, mode=mode if isinstance(v, (str, int)) else "calls", catalog=catalog,
                                 none_label=none_label, label_col=f"{column}[{i}]") for i, v in enumerate(value)]
                if any(lab is None for lab in labels):
                    raise _BadRow("an acceptable answer is empty; use [] for no tool", column)
                out[key] = [lab.canonical() for lab in labels]
            elif isinstance(value, dict) and key != "acceptable_labels":
                bad = next((k for k, v in value.items() if not isinstance(v, list)), None)
                if bad is not None:
                    raise _BadRow(f"the acceptable values of {bad!r} must be a list", column)
                out[key] = value
            else:
                want = "a list of labels" if key != "acceptable_args" else "an object of value lists"
                raise _BadRow(f"expected {want}, got {type(value).__name__}", column)
    return out


def _import_part(db: Database, part: Part, report: ImportReport, *, catalog: Catalog, text_col: str,
                 label_col: str | None, mode: str | None, none_label: str | None, gold: bool, strict: bool,
                 batch_size: int, progress: ProgressCallback) -> None:
    name = f"{IMPORT_SOURCE}:{part.name}"
    report.query_sources.append(name)
    batch: list[_Item] = []
    for row in part.rows():
        report.rows += 1
        try:
            if row.data is None:
                raise _BadRow(row.error or "unreadable row")
            item = _convert(row.data, text_col=text_col, label_col=label_col, mode=mode, catalog=catalog,
                            none_label=none_label)
        except _BadRow as bad:
            _skip(report, row, bad, strict)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            _flush(db, batch, report, source=name, catalog=catalog, gold=gold)
            progress(ProgressEvent("import", report.rows, part.total, f"importing {part.name}"))
    if batch:
        _flush(db, batch, report, source=name, catalog=catalog, gold=gold)
    progress(ProgressEvent("import", report.rows, part.total or report.rows, f"importing {part.name}"))


def _skip(report: ImportReport, row: Row, bad: _BadRow, strict: bool) -> None:
    if strict:
        raise InputError(f"{bad.reason} (--strict: nothing was imported; fix the row, or drop --strict to skip "
                         "bad rows)", path=row.path, line=row.line, field=bad.column)
    report.skipped += 1
    if len(report.problems) < MAX_PROBLEMS:
        report.problems.append(str(InputError(bad.reason, path=row.path, line=row.line, field=bad.column)))


def _flush(db: Database, batch: list[_Item], report: ImportReport, *, source: str, catalog: Catalog,
           gold: bool) -> None:
    max_id = db.execute("SELECT coalesce(max(id), 0) FROM queries").fetchone()[0]
    new = [NewQuery(text=it.text, source=source, template_id=it.template_id, category=it.category, meta=it.meta,
                    gold=it.label if gold else None, gold_source=IMPORT_SOURCE if gold else None,
                    catalog_hash=catalog.hash) for it in batch]
    with db.atomic():
        result = insert_queries(db, new, batch_size=len(new) + 1)
        report.added += result.added
        report.duplicates += result.duplicates
        rows = list(zip(result.ids, batch))
        report.labeled += sum(it.label is not None for it in batch)
        if gold:
            _store_gold(db, rows, report, max_id=max_id, catalog=catalog)
        else:
            _store_labels(db, [(qid, it) for qid, it in rows if it.label is not None], report, catalog=catalog)
    batch.clear()


def _existing(db: Database, sql: str, ids: list[int]) -> list[tuple]:
    if not ids:
        return []
    return db.execute(sql.format(marks=",".join("?" * len(ids))), ids).fetchall()


def _store_gold(db: Database, rows: list[tuple[int, _Item]], report: ImportReport, *, max_id: int,
                catalog: Catalog) -> None:
    ids = sorted({qid for qid, it in rows if it.label is not None})
    current = dict(_existing(db, "SELECT id, gold_hash FROM queries WHERE id IN ({marks})", ids))
    inserted: set[int] = set()
    for qid, it in rows:
        first = qid > max_id and qid not in inserted
        inserted.add(qid)
        if it.label is None:
            continue
        if first:  # inserted just now, with this row's label as its gold
            report.labels_added += 1
        elif current.get(qid) is None:
            db.execute("UPDATE queries SET gold_calls = ?, gold_hash = ?, gold_source = ?, gold_catalog_hash = ? "
                       "WHERE id = ?", [it.label.canonical_json(), it.label.hash, IMPORT_SOURCE, catalog.hash, qid])
            current[qid] = it.label.hash
            report.labels_added += 1
        elif current[qid] == it.label.hash:
            report.labels_present += 1
        else:
            report.label_conflicts += 1


def _store_labels(db: Database, labeled: list[tuple[int, _Item]], report: ImportReport, *,
                  catalog: Catalog) -> None:
    held: dict[int, set[str]] = {}
    sql = "SELECT query_id, label_hash FROM labels WHERE source = 'import' AND valid = 1 AND query_id IN ({marks})"
    for qid, label_hash in _existing(db, sql, sorted({qid for qid, _ in labeled})):
        held.setdefault(qid, set()).add(label_hash)
    for qid, it in labeled:
        hashes = held.setdefault(qid, set())
        if it.label.hash in hashes:
            report.labels_present += 1
            continue
        if hashes:
            report.label_conflicts += 1
        raw = it.raw if isinstance(it.raw, str) else json.dumps(it.raw, ensure_ascii=False)
        add_label(db, qid, it.label, source=IMPORT_SOURCE, catalog_hash=catalog.hash, raw=raw)
        hashes.add(it.label.hash)
        report.labels_added += 1
