"""Seeded, stratified, group-aware splits, stored as content-hashed dataset versions with their lineage.

Groups: queries of one duplicate cluster (the latest dedup run that covers the current queries; one is run if
none does) and queries of one template are kept together, through the union of both, so neither a duplicate
cluster nor a template straddles two splits. Groups are assigned largest first (ties in a seeded order) to the
split whose label counts are furthest below target, which stratifies by label (``Label.tool_set_key``).
The hard split holds the test examples that are multi-tool, category ``ambiguous``, or relabeled (label source
``review`` or ``adjudicated``): carved from test, so ``test`` + ``hard`` are together the held-out set.

The version id is a hash of the members (normalised-text hash, split, label hash), the parameters and the
catalogue hash: the same inputs give the same id, and re-running does not add a row. The report includes a
leakage check computed independently of the grouping: MinHash LSH re-run across the splits with other
permutations and a wider bucket window, counting verified near-duplicate pairs between splits. Pairs it finds
across the train / val / held-out lines (ones the dedup run's LSH missed) are joined into groups and the split
is redone (at most ten rounds), so no known leak ships; ``leakage.regrouped`` counts them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
from sqlite_utils import Database

from ..catalog import content_hash
from ..db import PRECEDENCE, current_labels, get_catalog, now_iso
from ..errors import InputError, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .dedup import DedupRun, cluster_membership, corpus_hash, ensure_dedup_run, get_dedup_run
from .neardup import NearDupParams, Sketch, components, cross_group_pairs, dedup_key

SPLITS = ("train", "val", "test")
HARD = "hard"
HARD_SOURCES = ("review", "adjudicated")
CHECK_SEED_OFFSET = 7919  # the leakage check draws other permutations than the dedup run it checks
_HELD_OUT = {"test": "test", HARD: "test", "val": "val", "train": "train"}
MAX_ROUNDS = 10


@dataclass
class LeakageReport:
    """Near-duplicate pairs between splits, found without looking at the grouping."""

    threshold: float
    pairs: dict[str, int]
    """``"train-test"`` etc. -> verified near-duplicate pairs (exact duplicates included)."""
    exact: dict[str, int]
    """The same for pairs with identical normalised text."""
    examples: list[dict]
    templates_across: int
    clusters_across: int
    seconds: float
    regrouped: int = 0
    """Pairs the check found in an earlier round that the split then grouped (the dedup run had missed them)."""
    index_pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64), repr=False)

    @property
    def train_test(self) -> int:
        """Pairs between train and the held-out splits (test and hard): must be 0."""
        return self.pairs.get("train-test", 0) + self.pairs.get("train-hard", 0)

    def leak_pairs(self, splits: list[str]) -> np.ndarray:
        """The found pairs that cross the train / val / held-out lines (test-hard pairs are both held out)."""
        if not len(self.index_pairs):
            return self.index_pairs
        side = np.array([_HELD_OUT.get(s, s) for s in splits], dtype=object)
        return self.index_pairs[side[self.index_pairs[:, 0]] != side[self.index_pairs[:, 1]]]

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("threshold", "pairs", "exact", "examples", "templates_across",
                                            "clusters_across", "seconds", "regrouped")}
        return {**d, "train_test": self.train_test}


@dataclass
class SplitReport:
    version_id: str
    name: str | None
    created: bool
    """False when the same inputs had already produced this version (nothing was written)."""
    counts: dict[str, dict]
    params: dict
    lineage: dict
    leakage: LeakageReport
    hard_reasons: dict[str, int]
    n_groups: int
    largest_group: int
    n_unlabeled: int
    n_dropped_duplicates: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["leakage"] = self.leakage.to_dict()
        return d


@dataclass
class _Item:
    qid: int
    text: str
    norm_hash: str
    template_id: str | None
    category: str | None
    label: object
    source: str
    cluster: int | None


def split(db: Database, *, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), hard: bool = True,
          drop_duplicates: bool = False, name: str | None = None, dedup_run: int | None = None,
          progress: ProgressCallback | None = None) -> SplitReport:
    """Split the labeled queries into train/val/test (+ hard) and store the result as a dataset version.

    Args:
        db: the workspace database.
        seed: orders groups of equal size; another seed gives another split.
        fractions: train, val and test shares (non-negative, summing to 1, train above 0).
        hard: carve multi-tool, ambiguous and relabeled test examples into a ``hard`` split.
        drop_duplicates: leave out cluster members marked duplicate whose current label equals their
            representative's (different arguments are different examples and stay).
        name: an optional name for the version (``curate export NAME`` then works).
        dedup_run: the dedup run whose clusters group queries (default: the latest minhash run covering the
            current queries, run now if there is none).
        progress: called with ``split`` events.

    Returns: a :class:`SplitReport` whose ``version_id`` names the dataset version.
    Side effects: a ``dataset_versions`` row and its ``split_members`` (unless that version already exists);
    possibly a new dedup run.

    Raises: InputError for bad fractions or a name already taken; ToolDistillError when nothing is labeled.
    """
    fractions = _check_fractions(fractions)
    progress = progress or noop
    started = time.perf_counter()
    progress(ProgressEvent("split", 0, 4, "split: grouping"))
    run, run_created = (get_dedup_run(db, dedup_run), False) if dedup_run is not None else ensure_dedup_run(db)
    catalog = get_catalog(db)
    everything = current_labels(db, include_rejected=True)
    labels = {q: c for q, c in everything.items() if not c.rejected}
    n_rejected = len(everything) - len(labels)
    items, n_unlabeled, dropped = _items(db, labels, run, drop_duplicates)
    n_unlabeled -= n_rejected
    if not items:
        raise ToolDistillError("no labeled queries to split; label them first ('tooldistill distill run') or "
                               "import gold labels ('tooldistill data import --gold')")
    params = {"seed": seed, "fractions": list(fractions), "hard": hard, "drop_duplicates": drop_duplicates,
              "stratify": "tool_set_key", "groups": ["dedup_cluster", "template_id"],
              "dedup": {"method": run.method, "threshold": run.threshold}}
    progress(ProgressEvent("split", 1, 4, "split: assigning groups, checking leakage"))
    # a semantic run's threshold is a cosine: the check then uses the MinHash defaults
    check = NearDupParams.from_dict(run.params) if run.method == "minhash" else NearDupParams()
    groups, assign, reasons, leakage = _assign_checked(items, fractions, seed, hard, check)
    version_id = content_hash({"members": sorted([it.norm_hash, assign[i], it.label.hash] for i, it in enumerate(items)),
                               "params": params, "catalog": catalog.hash}, length=32)
    counts = _counts(items, assign)
    sizes = Counter(groups)
    warnings = _warnings(db, run, leakage, sizes, len(items), n_unlabeled)
    lineage = _lineage(db, items, run, run_created, catalog.hash, n_unlabeled, dropped)
    lineage["queries"]["rejected"] = n_rejected
    progress(ProgressEvent("split", 3, 4, "split: storing"))
    report = SplitReport(
        version_id=version_id, name=name, created=False, counts=counts, params=params, lineage=lineage,
        leakage=leakage, hard_reasons=dict(reasons), n_groups=len(sizes), largest_group=max(sizes.values()),
        n_unlabeled=n_unlabeled, n_dropped_duplicates=dropped, seconds=0.0, warnings=warnings)
    report.created = _store(db, report, items, assign, groups, catalog.hash)
    report.seconds = round(time.perf_counter() - started, 3)
    progress(ProgressEvent("split", 4, 4, "split: done"))
    return report


def _assign_checked(items: list[_Item], fractions, seed: int, hard: bool, check: NearDupParams):
    """Assign groups, carve the hard split, run the leakage check; regroup what it finds until it finds nothing.

    Returns: ``(groups, assignment, hard reasons, final leakage report)``.
    """
    texts = [it.text for it in items]
    extra = np.zeros((0, 2), dtype=np.int64)
    for _ in range(MAX_ROUNDS):
        groups = _groups(items, extra)
        assign, reasons = _assign(items, groups, fractions, seed), Counter()
        if hard:
            for i, it in enumerate(items):
                why = _hard_reasons(it) if assign[i] == "test" else []
                if why:
                    assign[i] = HARD
                    reasons.update(why)
        leakage = check_leakage(texts, assign, params=check, templates=[it.template_id for it in items],
                                clusters=[it.cluster for it in items])
        leaks = leakage.leak_pairs(assign)
        if not len(leaks):
            break
        # pairs the dedup run missed: group them too and assign again, so no known leak ships
        extra = np.concatenate([extra, leaks])
    leakage.regrouped = len(extra)
    return groups, assign, reasons, leakage


def _check_fractions(fractions) -> tuple[float, float, float]:
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise InputError(f"fractions must be three numbers, got {fractions!r}", field="fractions") from None
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6 or fr[0] <= 0:
        raise InputError(f"train/val/test fractions must be >= 0, sum to 1 and give train a share; got "
                         f"{', '.join(f'{f:g}' for f in fr)} (sum {sum(fr):g})", field="fractions")
    return fr


def _items(db: Database, labels: dict, run: DedupRun, drop_duplicates: bool) -> tuple[list[_Item], int, int]:
    member = cluster_membership(db, run.id)
    rep_of = {c: q for q, (c, is_rep, _) in member.items() if is_rep}
    items, unlabeled, dropped = [], 0, 0
    for qid, text, nh, tid, cat in db.execute(
            "SELECT id, text, norm_hash, template_id, category FROM queries ORDER BY id"):
        cur = labels.get(qid)
        if cur is None or cur.label is None:
            unlabeled += 1
            continue
        cluster, _, dup = member.get(qid, (None, False, False))
        if drop_duplicates and dup:
            rep = labels.get(rep_of.get(cluster))
            if rep is not None and rep.label == cur.label:
                dropped += 1
                continue
        items.append(_Item(qid, text, nh, tid, cat, cur.label, cur.source, cluster))
    return items, unlabeled, dropped


def _groups(items: list[_Item], pairs: np.ndarray) -> np.ndarray:
    """Component id per item over the union of 'same dedup cluster', 'same template' and the given item pairs."""
    n = len(items)
    extra: dict[tuple, int] = {}
    edges = []
    for i, it in enumerate(items):
        for key in (("c", it.cluster) if it.cluster is not None else None,
                    ("t", it.template_id) if it.template_id else None):
            if key is not None:
                edges.append((i, n + extra.setdefault(key, len(extra))))
    edges = np.concatenate([np.array(edges, dtype=np.int64).reshape(-1, 2), pairs])
    return components(n + len(extra), edges)[:n]


def _assign(items: list[_Item], groups: np.ndarray, fractions, seed: int) -> list[str]:
    """Greedy stratified assignment of whole groups, largest first, to the split furthest below its targets."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups.tolist()):
        members[g].append(i)
    per_label = Counter(it.label.tool_set_key for it in items)
    target = {s: {lab: f * n for lab, n in per_label.items()} for s, f in zip(SPLITS, fractions)}
    total_target = {s: f * len(items) for s, f in zip(SPLITS, fractions)}
    have = {s: Counter() for s in SPLITS}
    size = Counter()
    active = [s for s, f in zip(SPLITS, fractions) if f > 0]

    def order_key(g: int) -> tuple:
        first = min(items[i].norm_hash for i in members[g])
        return (-len(members[g]), hashlib.sha256(f"{seed}:{first}".encode()).hexdigest())

    assign = [""] * len(items)
    for g in sorted(members, key=order_key):
        counts = Counter(items[i].label.tool_set_key for i in members[g])
        best = max(active, key=lambda s: (
            sum(c * (target[s][lab] - have[s][lab]) / per_label[lab] for lab, c in counts.items()),
            total_target[s] - size[s]))
        have[best].update(counts)
        size[best] += len(members[g])
        for i in members[g]:
            assign[i] = best
    return assign


def _hard_reasons(it: _Item) -> list[str]:
    why = []
    if it.label.is_multi:
        why.append("multi_tool")
    if (it.category or "") == "ambiguous":
        why.append("ambiguous")
    if it.source in HARD_SOURCES:
        why.append("relabeled")
    return why


def check_leakage(texts: list[str], splits: list[str], *, params: NearDupParams = NearDupParams(),
                  templates: list | None = None, clusters: list | None = None) -> LeakageReport:
    """Count near-duplicate pairs between splits, independently of how the split was grouped.

    MinHash LSH is re-run over the texts with other permutations (``seed + 7919``) and a wider bucket window,
    and only pairs whose two texts lie in different splits are verified by exact Jaccard. ``test`` and
    ``hard`` count as different splits. Templates and clusters present on both sides of the held-out line
    (train / val / test+hard) are counted too when given.
    """
    started = time.perf_counter()
    names = sorted(set(splits), key=lambda s: (SPLITS + (HARD,)).index(s) if s in SPLITS + (HARD,) else 9)
    idx = np.array([names.index(s) for s in splits], dtype=np.int64)
    check = NearDupParams(**{**params.to_dict(), "seed": params.seed + CHECK_SEED_OFFSET})
    keys = [dedup_key(t) for t in texts]
    sketch = Sketch.build(keys, check)
    pairs, sims = cross_group_pairs(sketch, idx)
    found, exact, examples = Counter(), Counter(), []
    for (a, b), s in sorted(zip(pairs.tolist(), sims.tolist()), key=lambda x: -x[1]):
        first, second = sorted((splits[a], splits[b]), key=names.index)
        found[f"{first}-{second}"] += 1
        if keys[a] == keys[b]:
            exact[f"{first}-{second}"] += 1
        if len(examples) < 10:
            examples.append({"splits": [splits[a], splits[b]], "texts": [texts[a], texts[b]],
                             "similarity": round(float(s), 4)})
    return LeakageReport(threshold=check.threshold, pairs=dict(found), exact=dict(exact), examples=examples,
                         templates_across=_straddling(templates, splits), clusters_across=_straddling(clusters, splits),
                         seconds=round(time.perf_counter() - started, 3), index_pairs=pairs)


def _straddling(keys: list | None, splits: list[str]) -> int:
    if keys is None:
        return 0
    sides: dict = defaultdict(set)
    for k, s in zip(keys, splits):
        if k is not None and k != "":
            sides[k].add(_HELD_OUT.get(s, s))
    return sum(len(v) > 1 for v in sides.values())


def _counts(items: list[_Item], assign: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in (*SPLITS, HARD):
        labs = Counter(it.label.tool_set_key for it, s in zip(items, assign) if s == name)
        if labs or name in SPLITS:
            out[name] = {"total": sum(labs.values()), "labels": dict(sorted(labs.items()))}
    return out


def _warnings(db, run: DedupRun, leakage: LeakageReport, sizes: Counter, n: int, n_unlabeled: int) -> list[str]:
    out = []
    if run.corpus_hash != corpus_hash(db)[0]:
        out.append(f"dedup run {run.id} predates the current queries; run 'tooldistill curate dedup' again "
                   "so new queries are grouped with their duplicates")
    big = max(sizes.values())
    if big > 0.2 * n:
        out.append(f"the largest group (duplicate clusters joined with templates) holds {big} of {n} examples "
                   f"({big / n:.0%}); it sits whole in one split, so label proportions drift; a higher dedup "
                   "threshold makes fewer, smaller clusters")
    if leakage.regrouped:
        out.append(f"the leakage check found {leakage.regrouped} near-duplicate pairs across splits that the dedup "
                   f"run had not clustered; they were grouped and the split redone before the final check")
    if leakage.train_test:
        out.append(f"{leakage.train_test} near-duplicate pairs between train and the held-out splits "
                   "(see report.leakage.examples); re-run 'tooldistill curate dedup' then split again")
    if n_unlabeled:
        out.append(f"{n_unlabeled} queries have no current label and are not in the version")
    return out


def _lineage(db, items, run: DedupRun, run_created: bool, catalog_hash: str, n_unlabeled: int, dropped: int) -> dict:
    tables = set(db.table_names())

    def watermark(table: str) -> dict:
        count, max_id = db.execute(f"SELECT count(*), max(id) FROM [{table}]").fetchone()
        return {"rows": count, "max_id": max_id}

    lineage = {
        "label_precedence": list(PRECEDENCE),
        "label_sources": dict(Counter(it.source for it in items).most_common()),
        "catalog_hash": catalog_hash,
        "dedup_run": {"id": run.id, "method": run.method, "params": run.params, "n_clusters": run.n_clusters,
                      "created_for_this_split": run_created},
        "reviews": {**watermark("reviews"), "members": sum(it.source == "review" for it in items)},
        "adjudications": {**watermark("adjudications"), "members": sum(it.source == "adjudicated" for it in items)},
        "queries": {"members": len(items), "unlabeled": n_unlabeled, "dropped_duplicates": dropped},
        "query_sources": _sources(db, items),
    }
    audit = {t: db.execute(f"SELECT count(*) FROM [{t}]").fetchone()[0] for t in sorted(tables) if t.startswith("audit")}
    if audit:
        lineage["audit"] = audit
    return lineage


def _sources(db, items) -> dict:
    ids = {it.qid for it in items}
    out = Counter(src or "?" for qid, src in db.execute("SELECT id, source FROM queries") if qid in ids)
    return dict(out.most_common())


def _store(db: Database, report: SplitReport, items, assign, groups, catalog_hash: str) -> bool:
    """Write the version unless it exists; returns whether it was written."""
    if report.name:
        other = db.execute("SELECT id FROM dataset_versions WHERE name = ? AND id != ?",
                           [report.name, report.version_id]).fetchone()
        if other:
            raise InputError(f"the name {report.name!r} already names dataset version {other[0][:12]}; "
                             "choose another --name", field="name")
    if db.execute("SELECT 1 FROM dataset_versions WHERE id = ?", [report.version_id]).fetchone():
        if report.name:
            db["dataset_versions"].update(report.version_id, {"name": report.name})
        return False
    group_key: dict[int, str] = {}
    for it, g in zip(items, groups.tolist()):
        group_key[g] = min(group_key.get(g, it.norm_hash), it.norm_hash)
    body = {k: v for k, v in report.to_dict().items() if k not in ("params", "lineage", "counts", "version_id", "name")}
    with db.atomic():
        db["dataset_versions"].insert({
            "id": report.version_id, "name": report.name, "created_at": now_iso(), "params": json.dumps(report.params),
            "lineage": json.dumps(report.lineage), "counts": json.dumps(report.counts), "report": json.dumps(body),
            "catalog_hash": catalog_hash})
        db.conn.executemany(
            "INSERT INTO split_members (version_id, query_id, split, calls, label_hash, label_source, group_id)"
            " VALUES (?,?,?,?,?,?,?)",
            [(report.version_id, it.qid, s, it.label.canonical_json(), it.label.hash, it.source, "g" + group_key[g][:12])
             for it, s, g in zip(items, assign, groups.tolist())])
    return True


def list_versions(db: Database) -> list[dict]:
    """Every dataset version, newest first: id, name, created_at, per-split totals, seed, fractions, leakage."""
    out = []
    for row in db.query("SELECT * FROM dataset_versions ORDER BY created_at DESC"):
        params = json.loads(row["params"]) if row["params"] else {}
        counts = json.loads(row["counts"]) if row["counts"] else {}
        report = json.loads(row["report"]) if row["report"] else {}
        out.append({"id": row["id"], "name": row["name"], "created_at": row["created_at"],
                    "splits": {k: v.get("total", 0) for k, v in counts.items()}, "seed": params.get("seed"),
                    "fractions": params.get("fractions"), "catalog_hash": row["catalog_hash"],
                    "leakage_train_test": (report.get("leakage") or {}).get("train_test")})
    return out
