"""Deduplicate queries on their text: exact, near-duplicate (MinHash LSH) and semantic clusters, stored, never deleted.

Only the user query is compared, never a whole record with its system prompt and tools (peers.md section 5:
MinHash over whole function-calling records collapsed 859,092 rows to 2). A cluster is a connected component of
verified pairs (exact Jaccard of word + character shingles, or embedding cosine, at least the threshold), so a
duplicate cluster never straddles two splits. Transitive chains are not collapsed silently: a cluster larger
than ``max_cluster_size`` is marked *oversized* and reported, and none of its members is marked a duplicate.
In a normal cluster the members directly similar to the representative are marked ``duplicate`` (what
``curate split --drop-duplicates`` leaves out); chain-linked members are kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from sqlite_utils import Database

from ..catalog import Label, content_hash
from ..db import current_labels, now_iso
from ..errors import InputError, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .neardup import NearDupParams, components, dedup_key, exact_jaccard, near_duplicate_pairs
from . import semantic

log = logging.getLogger(__name__)

METHODS = ("minhash", "semantic")
DEFAULT_THRESHOLD = {"minhash": NearDupParams().threshold, "semantic": semantic.DEFAULT_THRESHOLD}
DEFAULT_MAX_CLUSTER = 50
_MEDOID_LIMIT = 64  # clusters up to this many distinct keys get an all-pairs medoid; larger ones use degree
_STAGES = ("read", "shingle", "minhash", "lsh", "embed", "pairs", "cluster", "store")


@dataclass
class ClusterMember:
    query_id: int
    text: str
    similarity: float
    """Similarity to the representative (Jaccard of shingles, or cosine for semantic runs)."""
    is_representative: bool
    duplicate: bool
    """Directly similar to the representative (at least the threshold) in a cluster that is not oversized."""
    label: Label | None = None
    label_source: str | None = None

    def to_dict(self) -> dict:
        return {"query_id": self.query_id, "text": self.text, "similarity": round(self.similarity, 4),
                "is_representative": self.is_representative, "duplicate": self.duplicate,
                "label": self.label.canonical() if self.label is not None else None,
                "label_source": self.label_source}


@dataclass
class Cluster:
    id: int
    run_id: int
    kind: str
    """``exact`` (one normalised text), ``near`` (MinHash) or ``semantic``."""
    representative_id: int
    size: int
    oversized: bool
    min_similarity: float
    mean_similarity: float
    members: list[ClusterMember] = field(default_factory=list)

    @property
    def label_counts(self) -> dict[str, int]:
        """Current labels of the members (canonical JSON -> count); unlabeled members are not counted."""
        return dict(Counter(m.label.canonical_json() for m in self.members if m.label is not None).most_common())

    @property
    def tool_sets(self) -> dict[str, int]:
        """Tool sets (:attr:`Label.tool_set_key`) of the labeled members -> count."""
        return dict(Counter(m.label.tool_set_key for m in self.members if m.label is not None).most_common())

    @property
    def label_conflict(self) -> bool:
        """True when members that should agree do not: a duplicate-conflict audit signal.

        That is: labeled members call different tool sets, or members with the same normalised text (an exact
        duplicate) carry labels that differ beyond letter case. Near-duplicates with the same tools but different arguments ("weather
        in Paris" / "weather in Hanoi") are not a conflict.
        """
        if len(self.tool_sets) > 1:
            return True
        by_text: dict[str, set] = defaultdict(set)
        for m in self.members:
            if m.label is not None:
                by_text[dedup_key(m.text)].add(m.label.canonical_json().casefold())
        return any(len(v) > 1 for v in by_text.values())

    def to_dict(self) -> dict:
        return {"id": self.id, "run_id": self.run_id, "kind": self.kind, "representative_id": self.representative_id,
                "size": self.size, "oversized": self.oversized, "min_similarity": round(self.min_similarity, 4),
                "mean_similarity": round(self.mean_similarity, 4), "label_conflict": self.label_conflict,
                "tool_sets": self.tool_sets, "label_counts": self.label_counts, "members": [m.to_dict() for m in self.members]}


@dataclass
class DedupRun:
    id: int
    method: str
    params: dict
    created_at: str
    n_queries: int
    max_query_id: int
    corpus_hash: str
    n_clusters: int
    n_duplicates: int
    n_oversized: int
    n_pairs: int
    seconds: float
    report: dict

    @property
    def threshold(self) -> float:
        return self.params["threshold"]


@dataclass
class DedupReport:
    """What a dedup run found. ``n_clustered`` queries sit in ``n_clusters`` clusters of two or more."""

    run_id: int
    method: str
    params: dict
    n_queries: int
    n_clusters: int
    n_exact_clusters: int
    n_clustered: int
    n_duplicates: int
    n_pairs: int
    n_candidates: int
    n_conflicts: int
    largest: list[dict]
    oversized: list[dict]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_hash(db: Database) -> tuple[str, int, int]:
    """Hash of the query set (ids and normalised-text hashes): ``(hash, count, max id)``."""
    rows = db.execute("SELECT id, norm_hash FROM queries ORDER BY id").fetchall()
    digest = content_hash("\n".join(f"{i}:{h}" for i, h in rows), length=32)
    return digest, len(rows), (rows[-1][0] if rows else 0)


def dedup(db: Database, *, method: str = "minhash", threshold: float | None = None,
          max_cluster_size: int = DEFAULT_MAX_CLUSTER, num_perm: int = 128, seed: int = 0,
          progress: ProgressCallback | None = None) -> DedupReport:
    """Cluster the workspace's queries by text and store the clusters as a new dedup run (nothing is deleted).

    Args:
        db: the workspace database.
        method: ``minhash`` (exact + near-duplicate, the default) or ``semantic`` (exact + embedding cosine;
            needs the encoder extra).
        threshold: pair similarity at or above which two queries are duplicates (default 0.8 Jaccard for
            minhash, 0.92 cosine for semantic).
        max_cluster_size: a larger cluster is reported as oversized (probably a template family or a chain),
            kept whole for grouping, and none of its members is marked a duplicate.
        num_perm, seed: MinHash permutations and their seed.
        progress: called with one ``dedup`` event per stage.

    Returns: a :class:`DedupReport`. Side effects: one ``dedup_runs`` row, its clusters and members.

    Raises: InputError for a bad method, threshold or cap; NeedsExtraError for semantic without the extra.
    """
    threshold = _check_args(method, threshold, max_cluster_size, num_perm)
    progress = progress or noop
    started = time.perf_counter()

    def step(stage: str) -> None:
        progress(ProgressEvent("dedup", _STAGES.index(stage), len(_STAGES), f"dedup: {stage}"))

    step("read")
    rows = db.execute("SELECT id, text FROM queries ORDER BY id").fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    keys = [dedup_key(r[1]) for r in rows]
    uniq: dict[str, int] = {}
    key_of = np.array([uniq.setdefault(k, len(uniq)) for k in keys], dtype=np.int64)
    ukeys = list(uniq)
    first_doc = np.full(len(ukeys), -1, dtype=np.int64)
    first_doc[key_of[::-1]] = np.arange(len(keys))[::-1]
    params = {"threshold": threshold, "max_cluster_size": max_cluster_size}
    if method == "minhash":
        nd = NearDupParams(threshold=threshold, num_perm=num_perm, seed=seed)
        params.update(nd.to_dict())
        found = near_duplicate_pairs(ukeys, nd, progress=step)
        kpairs, n_candidates = found.pairs, found.candidates
        similar = lambda pairs: exact_jaccard(found.sketch.shingles, pairs)  # noqa: E731
    else:
        step("embed")
        texts = [rows[i][1] for i in first_doc]
        emb = semantic.embed(texts, progress=progress)
        step("pairs")
        kpairs = semantic.similar_pairs(emb, threshold=threshold)
        n_candidates = len(kpairs)
        params.update({"model": semantic.MODEL_NAME})
        similar = lambda pairs: np.einsum("ij,ij->i", emb[pairs[:, 0]], emb[pairs[:, 1]])  # noqa: E731
    step("cluster")
    exact_edges = np.stack([np.arange(len(keys)), first_doc[key_of]], axis=1)
    edges = np.concatenate([exact_edges, first_doc[kpairs]]) if len(kpairs) else exact_edges
    comp = components(len(keys), edges)
    clusters = _build_clusters(comp, key_of, kpairs, similar, max_cluster_size, threshold)
    step("store")
    c_hash, n_q, max_id = corpus_hash(db)
    labels = current_labels(db)
    report = _store(db, method, params, clusters, ids, key_of, labels, c_hash, n_q, max_id,
                    len(kpairs), n_candidates, rows, started)
    log.info("dedup run %s: %d clusters, %d duplicates", report.run_id, report.n_clusters, report.n_duplicates)
    return report


def _check_args(method: str, threshold: float | None, max_cluster_size: int, num_perm: int) -> float:
    if method not in METHODS:
        raise InputError(f"unknown dedup method {method!r}; use one of: {', '.join(METHODS)}", field="method")
    threshold = DEFAULT_THRESHOLD[method] if threshold is None else threshold
    if not 0 < threshold <= 1:
        raise InputError(f"threshold must be in (0, 1], got {threshold}", field="threshold")
    if max_cluster_size < 2:
        raise InputError(f"max cluster size must be at least 2, got {max_cluster_size}", field="max_cluster_size")
    if num_perm < 16:
        raise InputError(f"num_perm must be at least 16, got {num_perm}", field="num_perm")
    return float(threshold)


@dataclass
class _Draft:
    docs: np.ndarray
    kind: str
    rep: int
    sim: np.ndarray
    oversized: bool
    duplicate: np.ndarray


def _build_clusters(comp, key_of, kpairs, similar, max_size: int, threshold: float) -> list[_Draft]:
    """Pick a representative per component and each member's similarity to it (two batched similarity calls)."""
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    groups = []
    medoid_pairs: list[tuple[int, int]] = []
    for docs in np.split(order, bounds):
        if len(docs) < 2:
            continue
        dkeys = key_of[docs]
        distinct = list(dict.fromkeys(dkeys.tolist()))
        groups.append((docs, dkeys, distinct))
        if 1 < len(distinct) <= _MEDOID_LIMIT:
            medoid_pairs += [(a, b) for i, a in enumerate(distinct) for b in distinct[i + 1:]]
    pair_sim = dict(zip(medoid_pairs, _similarities(similar, medoid_pairs)))
    degree = Counter(kpairs.ravel().tolist())
    reps = []
    for docs, dkeys, distinct in groups:
        if len(distinct) == 1:
            rep_key = distinct[0]
        elif len(distinct) <= _MEDOID_LIMIT:
            # the medoid over queries: a phrasing many queries share counts that many times
            weight = Counter(dkeys.tolist())
            total = Counter(weight)
            for i, a in enumerate(distinct):
                for b in distinct[i + 1:]:
                    s = pair_sim[a, b]
                    total[a] += s * weight[b]
                    total[b] += s * weight[a]
            rep_key = max(distinct, key=lambda k: (total[k], -distinct.index(k)))
        else:
            rep_key = max(distinct, key=lambda k: (degree.get(k, 0), -distinct.index(k)))
        reps.append(rep_key)
    to_rep = [(rep, k) for (_, dkeys, _), rep in zip(groups, reps) for k in dkeys.tolist() if k != rep]
    rep_sims = iter(_similarities(similar, to_rep))
    drafts = []
    for (docs, dkeys, distinct), rep_key in zip(groups, reps):
        sim = np.array([1.0 if k == rep_key else next(rep_sims) for k in dkeys.tolist()], dtype=np.float32)
        rep = int(docs[np.flatnonzero(dkeys == rep_key)[0]])
        oversized = len(docs) > max_size
        duplicate = (sim >= threshold - 1e-6) & (docs != rep) & (not oversized)
        kind = "exact" if len(distinct) == 1 else "near"
        drafts.append(_Draft(docs, kind, rep, sim, oversized, duplicate))
    return drafts


def _similarities(similar, pairs: list[tuple[int, int]]) -> list[float]:
    return similar(np.array(pairs, dtype=np.int64).reshape(-1, 2)).tolist() if pairs else []


def _conflict(qids: list[int], texts: list[str], labels: dict) -> bool:
    members = [ClusterMember(q, t, 1.0, False, False, labels[q].label if q in labels else None)
               for q, t in zip(qids, texts)]
    return Cluster(0, 0, "", 0, len(members), False, 1.0, 1.0, members).label_conflict


def _store(db, method, params, drafts, ids, key_of, labels, c_hash, n_q, max_id, n_pairs, n_candidates, rows,
           started) -> DedupReport:
    near_kind = "near" if method == "minhash" else "semantic"
    conflicts = 0
    largest, oversized = [], []
    with db.atomic():
        run_id = db["dedup_runs"].insert({"method": method, "params": json.dumps(params), "created_at": now_iso(),
                                          "n_queries": n_q, "max_query_id": max_id, "corpus_hash": c_hash}).last_pk
        next_id = (db.execute("SELECT max(id) FROM dedup_clusters").fetchone()[0] or 0) + 1
        cluster_rows, member_rows = [], []
        for cid, d in enumerate(sorted(drafts, key=lambda d: int(ids[d.docs].min())), start=next_id):
            kind = d.kind if d.kind == "exact" else near_kind
            cluster_rows.append((cid, run_id, kind, int(ids[d.rep]), len(d.docs), int(d.oversized),
                                 float(d.sim.min()), float(d.sim.mean())))
            qids = ids[d.docs].tolist()
            for qid, s, dup in zip(qids, d.sim.tolist(), d.duplicate.tolist()):
                member_rows.append((run_id, cid, qid, float(s), int(qid == ids[d.rep]), int(dup)))
            conflicts += _conflict(qids, [rows[i][1] for i in d.docs], labels)
            summary = {"cluster_id": cid, "size": len(d.docs), "kind": kind,
                       "representative": rows[d.rep][1], "min_similarity": round(float(d.sim.min()), 4)}
            largest.append(summary)
            if d.oversized:
                oversized.append(summary)
        db.conn.executemany("INSERT INTO dedup_clusters (id, run_id, kind, representative_id, size, oversized,"
                            " min_similarity, mean_similarity) VALUES (?,?,?,?,?,?,?,?)", cluster_rows)
        db.conn.executemany("INSERT INTO dedup_members (run_id, cluster_id, query_id, similarity, is_representative,"
                            " duplicate) VALUES (?,?,?,?,?,?)", member_rows)
        largest.sort(key=lambda s: -s["size"])
        n_dup = sum(int(d.duplicate.sum()) for d in drafts)
        cap = params["max_cluster_size"]
        warnings = [
            f"cluster {s['cluster_id']} has {s['size']} members (cap {cap}): probably a template family or a "
            f"chain of near-duplicates, not one duplicate; kept whole for splits, none marked duplicate; inspect "
            f"with 'tooldistill curate dups --cluster {s['cluster_id']}'" for s in oversized[:10]]
        if len(oversized) > 10:
            warnings.append(f"... and {len(oversized) - 10} more oversized clusters")
        report = DedupReport(
            run_id=run_id, method=method, params=params, n_queries=n_q, n_clusters=len(drafts),
            n_exact_clusters=sum(d.kind == "exact" for d in drafts),
            n_clustered=sum(len(d.docs) for d in drafts), n_duplicates=n_dup, n_pairs=int(n_pairs),
            n_candidates=int(n_candidates), n_conflicts=conflicts, largest=largest[:5], oversized=oversized,
            seconds=round(time.perf_counter() - started, 3), warnings=warnings)
        db["dedup_runs"].update(run_id, {
            "n_clusters": report.n_clusters, "n_duplicates": n_dup, "n_oversized": len(oversized),
            "n_pairs": report.n_pairs, "seconds": report.seconds,
            "report": json.dumps({k: v for k, v in report.to_dict().items() if k not in ("params",)})})
    return report


# ---------------------------------------------------------------- reading runs and clusters


def _run(row: dict) -> DedupRun:
    return DedupRun(id=row["id"], method=row["method"], params=json.loads(row["params"]), created_at=row["created_at"],
                    n_queries=row["n_queries"], max_query_id=row["max_query_id"], corpus_hash=row["corpus_hash"],
                    n_clusters=row["n_clusters"] or 0, n_duplicates=row["n_duplicates"] or 0,
                    n_oversized=row["n_oversized"] or 0, n_pairs=row["n_pairs"] or 0, seconds=row["seconds"] or 0.0,
                    report=json.loads(row["report"]) if row["report"] else {})


def list_dedup_runs(db: Database) -> list[DedupRun]:
    """Every dedup run, newest first."""
    return [_run(r) for r in db.query("SELECT * FROM dedup_runs ORDER BY id DESC")]


def get_dedup_run(db: Database, run_id: int | None = None, *, method: str | None = None) -> DedupRun:
    """Return dedup run ``run_id`` (default: the latest, of ``method`` if given).

    Raises: ToolDistillError when there is none.
    """
    if run_id is not None:
        row = db.execute("SELECT 1 FROM dedup_runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            raise ToolDistillError(f"no dedup run {run_id}; list them with 'tooldistill curate dups --runs'")
        return _run(next(db.query("SELECT * FROM dedup_runs WHERE id = ?", [run_id])))
    where, args = ("WHERE method = ?", [method]) if method else ("", [])
    row = next(db.query(f"SELECT * FROM dedup_runs {where} ORDER BY id DESC LIMIT 1", args), None)
    if row is None:
        raise ToolDistillError("no dedup run yet; run 'tooldistill curate dedup' first")
    return _run(row)


def ensure_dedup_run(db: Database, *, method: str = "minhash",
                     progress: ProgressCallback | None = None) -> tuple[DedupRun, bool]:
    """Return the latest ``method`` run that covers the current queries, running one with defaults if none does.

    Returns: ``(run, created)``.
    """
    c_hash, _, _ = corpus_hash(db)
    row = next(db.query("SELECT * FROM dedup_runs WHERE method = ? AND corpus_hash = ? ORDER BY id DESC LIMIT 1",
                        [method, c_hash]), None)
    if row is not None:
        return _run(row), False
    report = dedup(db, method=method, progress=progress)
    return get_dedup_run(db, report.run_id), True


def get_clusters(db: Database, *, run_id: int | None = None, cluster_id: int | None = None,
                 conflicts_only: bool = False, with_labels: bool = True) -> list[Cluster]:
    """Return the clusters of a dedup run (default: the latest run), largest first, with members and labels.

    Args:
        run_id: which run; ``None`` is the latest.
        cluster_id: only this cluster (its run is used whatever ``run_id`` says).
        conflicts_only: only clusters whose members carry different current labels.
        with_labels: attach each member's current label (:func:`tooldistill.db.current_labels`).

    Raises: ToolDistillError when there is no such run or cluster.
    """
    if cluster_id is not None:
        row = db.execute("SELECT run_id FROM dedup_clusters WHERE id = ?", [cluster_id]).fetchone()
        if row is None:
            raise ToolDistillError(f"no duplicate cluster {cluster_id}; list them with 'tooldistill curate dups'")
        run_id = row[0]
    run = get_dedup_run(db, run_id)
    where, args = ("c.run_id = ?", [run.id]) if cluster_id is None else ("c.id = ?", [cluster_id])
    members: dict[int, list] = defaultdict(list)
    for cid, qid, text, sim, is_rep, dup in db.execute(
            "SELECT m.cluster_id, m.query_id, q.text, m.similarity, m.is_representative, m.duplicate"
            " FROM dedup_members m JOIN dedup_clusters c ON c.id = m.cluster_id JOIN queries q ON q.id = m.query_id"
            f" WHERE {where} ORDER BY m.is_representative DESC, m.similarity DESC, m.query_id", args):
        members[cid].append(ClusterMember(qid, text, sim, bool(is_rep), bool(dup)))
    labels = current_labels(db) if with_labels else {}
    out = []
    for r in db.query(f"SELECT * FROM dedup_clusters c WHERE {where} ORDER BY size DESC, id", args):
        cluster = Cluster(id=r["id"], run_id=r["run_id"], kind=r["kind"], representative_id=r["representative_id"],
                          size=r["size"], oversized=bool(r["oversized"]), min_similarity=r["min_similarity"],
                          mean_similarity=r["mean_similarity"], members=members[r["id"]])
        for m in cluster.members:
            if m.query_id in labels:
                m.label, m.label_source = labels[m.query_id].label, labels[m.query_id].source
        if not conflicts_only or cluster.label_conflict:
            out.append(cluster)
    return out


def cluster_membership(db: Database, run_id: int) -> dict[int, tuple[int, bool, bool]]:
    """``query_id -> (cluster_id, is_representative, duplicate)`` for every clustered query of a run."""
    return {q: (c, bool(r), bool(d)) for q, c, r, d in db.execute(
        "SELECT query_id, cluster_id, is_representative, duplicate FROM dedup_members WHERE run_id = ?", [run_id])}
