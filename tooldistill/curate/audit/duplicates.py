"""Label conflicts inside a duplicate cluster: near-identical queries should get the same tools.

Clusters come from the dedup stage's stored clusters when the database has them (any table with ``query_id``
and ``cluster_id`` columns; the latest run when it has a run column). Without them they are computed on the fly
with the near-duplicate search of :mod:`tooldistill.curate.neardup` at its default threshold. A member whose tool
set differs from the one most of the *other* members carry gets strength ``0.9 * m / (m + 2) * m / k`` (``m`` of
its ``k`` cluster-mates agree with each other against it, ``m >= 2``): 0.45 for two against one, which only
supports other evidence (flags need a combined 0.5), and more as the majority grows. A conflicting pair is not
evidence at all: it says one of the two is wrong but not which (confident learning usually can). Near-duplicate
components chain paraphrases of different intents together, so on its own a small conflict is weak evidence.
"""

from __future__ import annotations

from collections import Counter

from .base import AuditContext, Hit, SignalOutput, suggest_label

_RUN_COLUMNS = ("run_id", "dedup_run_id", "version")


def stored_clusters(db) -> tuple[dict[int, str], str] | None:
    """Cluster id per query id from the dedup stage's tables, and the table read; None when there are none."""
    for table in sorted(db.table_names()):
        cols = db[table].columns_dict
        if "query_id" not in cols or "cluster_id" not in cols:
            continue
        run_col = next((c for c in _RUN_COLUMNS if c in cols), None)
        if run_col:
            latest = db.execute(f"SELECT max([{run_col}]) FROM [{table}]").fetchone()[0]
            rows = db.execute(f"SELECT query_id, cluster_id FROM [{table}] WHERE [{run_col}] = ?", [latest])
        else:
            rows = db.execute(f"SELECT query_id, cluster_id FROM [{table}]")
        found = {int(q): str(c) for q, c in rows if c is not None}
        if found:
            return found, table
    return None


def computed_clusters(texts: dict[int, str]) -> dict[int, str] | None:
    """Near-duplicate clusters of the texts (only members of clusters of two or more); None if unavailable."""
    try:
        from ..neardup import components, dedup_key, near_duplicate_pairs
    except ImportError:  # the dedup stage is not installed in this build
        return None
    ids = list(texts)
    search = near_duplicate_pairs([dedup_key(texts[q]) for q in ids])
    comp = components(len(ids), search.pairs)
    sizes = Counter(comp.tolist())
    return {q: f"c{c}" for q, c in zip(ids, comp.tolist()) if sizes[c] > 1}


class DuplicatesSignal:
    """Tool-set conflicts between near-duplicate queries."""

    name = "duplicates"
    description = "label conflicts inside a duplicate cluster"

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        stored = stored_clusters(ctx.db)
        if stored is not None:
            cluster_of, source = stored
        else:
            cluster_of = computed_clusters({it.query_id: it.text for it in ctx.items})
            source = "computed (near-duplicate search; no stored clusters)"
            if cluster_of is None:
                out.skipped = "no duplicate clusters; run 'tooldistill curate dedup' first"
                return out
        members: dict[str, list] = {}
        for it in ctx.items:
            if it.query_id in cluster_of:
                members.setdefault(cluster_of[it.query_id], []).append(it)
        clusters = {c: m for c, m in members.items() if len(m) >= 2}
        out.info = {"source": source, "clusters": len(clusters),
                    "clustered_rows": sum(len(m) for m in clusters.values())}
        targets = {it.query_id for it in ctx.targets}
        for cid, group in clusters.items():
            for it in group:
                if it.query_id not in targets:
                    continue
                out.checked += 1
                others = Counter(o.train_label.tool_set_key for o in group if o.query_id != it.query_id)
                best, m = others.most_common(1)[0]
                if best == it.cls or m < 2 or m <= others.get(it.cls, 0):
                    continue
                donor = next(o.train_label for o in group if o.train_label.tool_set_key == best)
                suggested = donor if ctx.catalog.is_class_catalog else suggest_label(ctx.catalog, best, it.label)
                evidence = {"cluster": cid, "size": len(group), "agree": m, "cluster_labels": dict(others),
                            "examples": [o.text for o in group if o.train_label.tool_set_key == best][:3]}
                k = len(group) - 1
                out.hits[it.query_id] = Hit(0.9 * m / (m + 2) * m / k, evidence, suggested=suggested,
                                            suggested_class=best)
        return out
