"""The dataset card (README.md) of an exported dataset version: YAML front matter for the Hub, then what is in
the data and where it came from (counts per split and label, dedup, audit, leakage check, lineage)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from sqlite_utils import Database

from .. import __version__
from ..db import version_info
from .dedup import get_dedup_run
from ..errors import ToolDistillError

SPLIT_ORDER = ("train", "val", "test", "hard")
_SPLIT_NOTES = {
    "train": "training examples",
    "val": "validation (model selection, early stopping)",
    "test": "held-out test (the easier part)",
    "hard": "held-out test: multi-tool, ambiguous and relabeled examples",
}


@dataclass
class CardData:
    """Everything the card says, gathered from the database."""

    version: dict
    dedup: dict | None
    audit: dict | None

    @property
    def splits(self) -> list[str]:
        counts = self.version["counts"] or {}
        return [s for s in (*SPLIT_ORDER, *sorted(set(counts) - set(SPLIT_ORDER))) if counts.get(s, {}).get("total")]


def gather_card_data(db: Database, version: str) -> CardData:
    """Read the version row, its dedup run and, when audit tables exist, the audit flags on its members."""
    info = version_info(db, version)
    dedup = None
    run_id = ((info["lineage"] or {}).get("dedup_run") or {}).get("id")
    if run_id is not None:
        try:
            run = get_dedup_run(db, run_id)
        except ToolDistillError:
            run = None
        if run is not None:
            dedup = {"run_id": run.id, "method": run.method, "threshold": run.threshold,
                     "queries": run.n_queries, "clusters": run.n_clusters, "duplicates": run.n_duplicates,
                     "oversized": run.n_oversized, "conflicts": run.report.get("n_conflicts"),
                     "max_cluster_size": run.params.get("max_cluster_size")}
    return CardData(version=info, dedup=dedup, audit=_audit_summary(db, info["id"]))


def _audit_summary(db: Database, version_id: str) -> dict | None:
    """Audit tables are another engineer's; read them by name and columns only (never import the audit module)."""
    tables = [t for t in db.table_names() if t.startswith("audit")]
    if not tables:
        return None
    out: dict = {}
    for table in sorted(tables):
        cols = set(db[table].columns_dict)
        entry = {"rows": db.execute(f"SELECT count(*) FROM [{table}]").fetchone()[0]}
        if "query_id" in cols:
            members = ("SELECT count(*) FROM [{t}] WHERE query_id IN "
                       "(SELECT query_id FROM split_members WHERE version_id = ?)").format(t=table)
            entry["on_members"] = db.execute(members, [version_id]).fetchone()[0]
            if "status" in cols:
                entry["on_members_by_status"] = dict(db.execute(
                    f"SELECT coalesce(status, '?'), count(*) FROM [{table}] WHERE query_id IN "
                    "(SELECT query_id FROM split_members WHERE version_id = ?) GROUP BY 1 ORDER BY 2 DESC, 1",
                    [version_id]).fetchall())
        out[table] = entry
    return out


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def front_matter(data: CardData, *, data_files: dict[str, str], license: str) -> dict:
    """The YAML header the Hub reads: license, tags, size and one config whose splits point at ``data_files``."""
    total = sum((data.version["counts"] or {}).get(s, {}).get("total", 0) for s in data.splits)
    return {
        "license": license,
        "pretty_name": data.version.get("name") or f"tooldistill {data.version['id'][:12]}",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["tool-calling", "function-calling", "router", "tooldistill"],
        "size_categories": [_size_category(total)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": data_files[s]} for s in data.splits if s in data_files]}],
    }


def render_card(data: CardData, *, data_files: dict[str, str], license: str = "other", load_path: str = ".",
                tool_format: str = "openai") -> str:
    """Return the README.md text of an export: YAML front matter, then counts, dedup, audit, leakage, lineage."""
    import yaml

    v = data.version
    counts, params, lineage, report = v["counts"] or {}, v["params"] or {}, v["lineage"] or {}, v["report"] or {}
    head = yaml.safe_dump(front_matter(data, data_files=data_files, license=license), sort_keys=False,
                          allow_unicode=True)
    lines = [f"---\n{head}---", "", f"# {v.get('name') or 'tooldistill dataset'} (version `{v['id'][:12]}`)", "",
             "Queries and their tool calls for training a small tool-calling router, exported by "
             f"tooldistill {__version__} from dataset version `{v['id']}`.", "",
             "## Loading", "", "```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("{load_path}")', "```", ""]
    lines += _fields(tool_format) + _split_table(data, counts) + _label_table(data, counts)
    lines += _dedup_section(data.dedup) + _audit_section(data.audit) + _leakage_section(report.get("leakage"))
    lines += _lineage_section(v, params, lineage)
    lines += ["## License", "", f"`{license}`. The queries come from: "
              + ", ".join(f"`{k}` ({n:,})" for k, n in (lineage.get("query_sources") or {}).items())
              + "; check their licenses before publishing.", ""]
    return "\n".join(lines)


def _fields(tool_format: str) -> list[str]:
    key = "arguments" if tool_format == "openai" else "args"
    return ["## Fields", "", "| field | what |", "|---|---|",
            "| `messages` | system, user (the query) and assistant turns; the assistant's content is the call list "
            f"as a plain JSON string, `[{{\"name\": ..., \"{key}\": {{...}}}}]`, `[]` when no tool fits |",
            f"| `tools` | the tool catalogue as a JSON string ({tool_format} format) |",
            "| `label` | the label in tooldistill's canonical JSON (`[{\"args\": ..., \"tool\": ...}]`, sorted) |",
            "| `query_id` | the query's id in the workspace database |",
            "| `label_source` | where the label came from: review, gold, adjudicated or teacher |",
            "| `meta` | JSON text: the query's other acceptable answers (`{\"acceptable\": [label, ...]}` for an "
            "ambiguous query), `{}` for none |", ""]


def _split_table(data: CardData, counts: dict) -> list[str]:
    rows = [f"| {s} | {counts[s]['total']:,} | {_SPLIT_NOTES.get(s, '')} |" for s in data.splits]
    return ["## Splits", "", "| split | examples | what |", "|---|---:|---|", *rows, ""]


def _label_table(data: CardData, counts: dict, limit: int = 200) -> list[str]:
    totals = Counter()
    for s in data.splits:
        totals.update(counts[s]["labels"])
    header = "| label (tools called) | " + " | ".join(data.splits) + " |"
    rows = [f"| `{lab}` | " + " | ".join(f"{counts[s]['labels'].get(lab, 0):,}" for s in data.splits) + " |"
            for lab, _ in totals.most_common(limit)]
    more = ["", f"... and {len(totals) - limit} more labels."] if len(totals) > limit else []
    return ["## Labels per split", "", "`<none>` means no tool fits (the empty call list).", "", header,
            "|---|" + "---:|" * len(data.splits), *rows, *more, ""]


def _dedup_section(dedup: dict | None) -> list[str]:
    if not dedup:
        return []
    return ["## Deduplication", "",
            f"Dedup run {dedup['run_id']} ({dedup['method']}, threshold {dedup['threshold']}, on the query text only) "
            f"found {dedup['clusters']:,} clusters of duplicates among {dedup['queries']:,} queries; "
            f"{dedup['duplicates']:,} members are marked duplicates of their cluster's representative, "
            f"{dedup['oversized']:,} clusters exceeded the size cap of {dedup['max_cluster_size']} and were kept whole "
            f"without marking duplicates, and {dedup['conflicts'] or 0:,} clusters hold conflicting labels. "
            "A cluster never straddles two splits.", ""]


def _audit_section(audit: dict | None) -> list[str]:
    if not audit:
        return []
    if not any(e["rows"] for e in audit.values()):
        return ["## Audit", "", "No label audit has run on this data yet (`tooldistill curate audit`).", ""]
    lines = ["## Audit", "", "| table | rows | on this version's queries | by status |", "|---|---:|---:|---|"]
    for table, e in audit.items():
        status = ", ".join(f"{k}: {n:,}" for k, n in (e.get("on_members_by_status") or {}).items())
        lines.append(f"| {table} | {e['rows']:,} | {e.get('on_members', '')} | {status} |")
    return lines + [""]


def _leakage_section(leak: dict | None) -> list[str]:
    if not leak:
        return []
    pairs = ", ".join(f"{k}: {n}" for k, n in (leak.get("pairs") or {}).items()) or "none"
    return ["## Leakage check", "",
            f"Near-duplicate pairs between splits (MinHash LSH re-run independently of the grouping, exact "
            f"Jaccard >= {leak['threshold']}): train vs held-out = **{leak['train_test']}**; all pairs: {pairs}. "
            f"Templates across splits: {leak['templates_across']}; duplicate clusters across splits: "
            f"{leak['clusters_across']}.", ""]


def _lineage_section(v: dict, params: dict, lineage: dict) -> list[str]:
    dedup = lineage.get("dedup_run") or {}
    return ["## Lineage", "",
            f"- version `{v['id']}`, created {v['created_at']}, catalogue `{v.get('catalog_hash')}`",
            f"- split: seed {params.get('seed')}, fractions {params.get('fractions')}, hard split "
            f"{'on' if params.get('hard') else 'off'}, stratified by {params.get('stratify')}, grouped by "
            f"{' + '.join(params.get('groups') or [])}, duplicates {'dropped' if params.get('drop_duplicates') else 'kept'}",
            f"- labels by precedence {' > '.join(lineage.get('label_precedence') or [])}; sources: "
            + ", ".join(f"{k} {n:,}" for k, n in (lineage.get("label_sources") or {}).items()),
            f"- reviews: {json.dumps(lineage.get('reviews'))}; adjudications: {json.dumps(lineage.get('adjudications'))}",
            f"- dedup run {dedup.get('id')} ({dedup.get('method')}, {json.dumps(dedup.get('params'))})", ""]
