"""Label conflicts inside a duplicate cluster: near-identical queries should get the same tools.

Clusters come from the dedup stage (:mod:`tooldistill.curate.dedup`): the latest dedup run that covers the current
queries, or, when there is none, a run made now with its defaults (stored, and said in the report). Oversized
clusters (chains of paraphrases linked pair by pair, or a template family) are not duplicates and are skipped.

A member whose tool set differs from the one most of the *other* members carry gets strength
``0.9 * m / (m + 2) * m / k`` (``m`` of its ``k`` cluster-mates agree with each other against it, ``m >= 2``):
0.45 for two against one, which only supports other evidence (flags need a combined 0.5), and more as the
majority grows. A conflicting pair is not evidence at all: it says one of the two is wrong but not which
(confident learning usually can).
"""

from __future__ import annotations

from collections import Counter

from .base import AuditContext, Hit, SignalOutput, suggest_label


def duplicate_clusters(db, progress=None) -> tuple[dict[int, str], str] | None:
    """Cluster id per clustered query (oversized clusters left out) and where the clusters came from.

    Returns None when this build has no dedup stage. Side effect: a dedup run with default settings when no
    stored run covers the current queries.
    """
    try:
        from ..dedup import cluster_membership, corpus_hash, ensure_dedup_run, get_dedup_run
    except ImportError:  # pragma: no cover - the dedup stage ships with the package
        return None
    current, _, _ = corpus_hash(db)
    row = db.execute("SELECT id FROM dedup_runs WHERE corpus_hash = ? ORDER BY id DESC LIMIT 1", [current]).fetchone()
    if row is not None:
        run, created = get_dedup_run(db, row[0]), False
    else:
        run, created = ensure_dedup_run(db, progress=progress)
    oversized = {c for (c,) in db.execute("SELECT id FROM dedup_clusters WHERE run_id = ? AND oversized = 1",
                                          [run.id])}
    members = {q: str(c) for q, (c, _, _) in cluster_membership(db, run.id).items() if c not in oversized}
    source = f"dedup run {run.id} ({run.method}, threshold {run.threshold:g})"
    return members, source + (", made now with the defaults" if created else "")


class DuplicatesSignal:
    """Tool-set conflicts between near-duplicate queries."""

    name = "duplicates"
    description = "label conflicts inside a duplicate cluster"

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        found = duplicate_clusters(ctx.db)
        if found is None:
            out.skipped = "no duplicate clusters; run 'tooldistill curate dedup' first"
            return out
        cluster_of, source = found
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
