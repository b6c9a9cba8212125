"""Dedup speed and quality on 100,000 queries with planted near-duplicates; datasketch's MinHashLSH side by side.

The queries: ``tooldistill.data.generate_queries`` (template queries for the default catalogue) plus the real
CLINC150 and Banking77 texts, reduced to one query per near-duplicate cluster (so the only near-duplicate pairs
left are the planted ones), then ``--planted`` of them get one variant each: a typo, two adjacent words swapped,
or a filler word or phrase added (a third each). Both methods see the same 100,000 texts and the same shingles.

- ours: ``tooldistill.curate.dedup`` on a workspace database, timed end to end (read, shingle, MinHash, LSH,
  exact-Jaccard verification, clustering, storing the clusters); ``--threshold`` (default 0.8).
- datasketch: ``MinHash.generator`` + plain ``MinHashLSH(threshold, num_perm=128)`` (insert all, query each; no
  verification), clusters = connected components of what the LSH returns.

Scores, over pairs in one cluster that involve a planted variant: recall = planted pairs found in one cluster /
planted pairs; precision = planted pairs among those same-cluster pairs. Also: the first run on the raw
generated queries (before the reduction), as a realistic figure.

    .venv/bin/python benchmarks/dedup_bench.py                    # 100,000 queries, 10,000 planted
    .venv/bin/python benchmarks/dedup_bench.py --n 5000 --planted 500 --no-raw    # a quick check

Prints one figure per line. Timings: wall clock (what a user waits, on whatever else the machine is running)
and CPU time of the process (numpy here runs on one core).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

EXTERNAL = Path("/work/shared/external")
FILLERS = ["please", "hey", "um", "thanks", "quick question", "can you", "i was wondering", "asap", "for me",
           "real quick", "so", "right now"]


def real_texts() -> list[str]:
    texts = []
    for name in ("train", "validation", "test"):
        with (EXTERNAL / "clinc150" / f"{name}.jsonl").open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    for name in ("train", "test"):
        with (EXTERNAL / "banking77" / f"{name}.csv").open(encoding="utf-8") as fh:
            texts += [row["text"] for row in csv.DictReader(fh)]
    return texts


def typo(text: str, rng: random.Random) -> str | None:
    words = text.split()
    spots = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not spots:
        return None
    i = rng.choice(spots)
    w, k = words[i], rng.randrange(1, len(words[i]) - 1)
    op = rng.choice(("swap", "delete", "insert", "substitute"))
    letters = "abcdefghijklmnopqrstuvwxyz"
    if op == "swap":
        w = w[:k] + w[k + 1] + w[k] + w[k + 2:]
    elif op == "delete":
        w = w[:k] + w[k + 1:]
    elif op == "insert":
        w = w[:k] + rng.choice(letters) + w[k:]
    else:
        w = w[:k] + rng.choice(letters.replace(w[k].lower(), "")) + w[k + 1:]
    words[i] = w
    return " ".join(words)


def swap(text: str, rng: random.Random) -> str | None:
    words = text.split()
    if len(words) < 3:
        return None
    i = rng.randrange(len(words) - 1)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def filler(text: str, rng: random.Random) -> str:
    f = rng.choice(FILLERS)
    return f"{f} {text}" if rng.random() < 0.5 else f"{text} {f}"


KINDS = {"typo": typo, "swap": swap, "filler": filler}


def clean_base(texts: list[str], threshold: float) -> list[str]:
    """One text per near-duplicate cluster (and per normalised text)."""
    from tooldistill.curate.neardup import NearDupParams, components, dedup_key, near_duplicate_pairs

    keys = list(dict.fromkeys(dedup_key(t) for t in texts))
    first = {}
    for t in texts:
        first.setdefault(dedup_key(t), t)
    found = near_duplicate_pairs(keys, NearDupParams(threshold=threshold))
    comp = components(len(keys), found.pairs)
    _, keep = np.unique(comp, return_index=True)
    return [first[keys[i]] for i in sorted(keep)]


def plant(base: list[str], n: int, seed: int) -> tuple[list[str], list[tuple[int, int, str]]]:
    """Variants of ``n`` base texts; returns the variants and (source index, variant index, kind)."""
    from tooldistill.textnorm import normalize_text

    rng = random.Random(seed)
    seen = {normalize_text(t) for t in base}
    variants, truth = [], []
    for src in rng.sample(range(len(base)), len(base)):
        if len(variants) == n:
            break
        kind = list(KINDS)[len(variants) % 3]
        v = KINDS[kind](base[src], rng)
        if v is None or normalize_text(v) in seen:
            continue
        seen.add(normalize_text(v))
        truth.append((src, len(base) + len(variants), kind))
        variants.append(v)
    return variants, truth


def score(cluster_of: dict[int, int], truth, n_base: int) -> dict:
    """Recall and precision over same-cluster pairs that involve a planted variant."""
    members: dict[int, list[int]] = {}
    for doc, c in cluster_of.items():
        members.setdefault(c, []).append(doc)
    planted = {(s, v) for s, v, _ in truth}
    found = {(s, v) for s, v in planted if s in cluster_of and cluster_of.get(v) == cluster_of[s]}
    involving = 0
    base_pairs = 0
    for docs in members.values():
        k = len(docs)
        variants = sum(d >= n_base for d in docs)
        involving += k * (k - 1) // 2 - (k - variants) * (k - variants - 1) // 2
        base_pairs += (k - variants) * (k - variants - 1) // 2
    by_kind = Counter(kind for _, _, kind in truth)
    hit = Counter(kind for s, v, kind in truth if (s, v) in found)
    return {"recall": len(found) / max(len(planted), 1), "precision": len(found) / max(involving, 1),
            "pairs_with_variants": involving, "base_pairs": base_pairs,
            "recall_by_kind": {k: round(hit[k] / by_kind[k], 3) for k in KINDS}}


def run_ours(texts: list[str], threshold: float) -> tuple[tuple[float, float], dict[int, int], dict]:
    from tooldistill.curate.dedup import dedup
    from tooldistill.db import NewQuery, get_catalog, insert_queries, open_db

    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.db")
        get_catalog(db)
        ids = insert_queries(db, [NewQuery(t, "bench") for t in texts], batch_size=20_000).ids
        assert len(set(ids)) == len(texts), "texts must be distinct after normalize_text"
        index = {qid: i for i, qid in enumerate(ids)}
        started, cpu = time.perf_counter(), time.process_time()
        report = dedup(db, threshold=threshold, max_cluster_size=10**9)
        seconds = (time.perf_counter() - started, time.process_time() - cpu)
        rows = db.execute("SELECT query_id, cluster_id FROM dedup_members WHERE run_id = ?", [report.run_id])
        cluster_of = {index[q]: c for q, c in rows}
        db.close()
    return seconds, cluster_of, report.to_dict()


def run_datasketch(texts: list[str], threshold: float) -> tuple[tuple[float, float], dict[int, int]]:
    from datasketch import MinHash, MinHashLSH

    from tooldistill.curate.neardup import components, dedup_key, shingle

    started, cpu = time.perf_counter(), time.process_time()
    sh = shingle([dedup_key(t) for t in texts])
    sets = [sh.doc(i).tolist() for i in range(sh.n)]
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    sketches = list(MinHash.generator(sets, num_perm=128, hashfunc=lambda h: h))
    with lsh.insertion_session() as session:
        for i, m in enumerate(sketches):
            session.insert(i, m)
    pairs = [(i, j) for i, m in enumerate(sketches) for j in lsh.query(m) if j > i]
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    comp = components(len(texts), np.array(pairs, dtype=np.int64).reshape(-1, 2))
    sizes = Counter(comp.tolist())
    return seconds, {i: int(c) for i, c in enumerate(comp.tolist()) if sizes[c] > 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="total queries (base + planted)")
    ap.add_argument("--planted", type=int, default=10_000)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-datasketch", action="store_true")
    ap.add_argument("--no-raw", action="store_true", help="skip the run on the raw generated queries")
    args = ap.parse_args()

    from tooldistill.catalog import load_catalog
    from tooldistill.data import generate_queries

    t0 = time.perf_counter()
    generated = [q.text for q in generate_queries(load_catalog(), min(args.n, 100_000), seed=args.seed)]
    print(f"generated queries: {len(generated):,} in {time.perf_counter() - t0:.1f} s")
    if not args.no_raw:
        seconds, cluster_of, rep = run_ours(generated, args.threshold)
        print(f"raw generated, ours: {seconds[0]:.1f} s wall, {seconds[1]:.1f} s CPU for {len(generated):,} queries; {rep['n_clusters']:,} clusters "
              f"holding {rep['n_clustered']:,} queries; largest {rep['largest'][0]['size'] if rep['largest'] else 0}")
    pool = generated + (real_texts() if args.n > 20_000 else [])
    base = clean_base(pool, args.threshold)
    need = args.n - args.planted
    if len(base) < need:
        raise SystemExit(f"only {len(base):,} base queries after reduction; lower --n")
    base = random.Random(args.seed).sample(base, need)
    variants, truth = plant(base, args.planted, args.seed)
    texts = base + variants
    sources = "generated + CLINC150 + Banking77" if args.n > 20_000 else "generated"
    print(f"benchmark queries: {len(texts):,} = {len(base):,} base (one per near-duplicate cluster of {sources}) "
          f"+ {len(variants):,} planted variants (typo / word swap / filler)")
    seconds, cluster_of, rep = run_ours(texts, args.threshold)
    s = score(cluster_of, truth, len(base))
    print(f"ours seconds: {seconds[0]:.1f} wall, {seconds[1]:.1f} CPU (dedup end to end, threshold {args.threshold}, {rep['n_candidates']:,} "
          f"candidates checked, {rep['n_pairs']:,} verified pairs)")
    print(f"ours recall: {s['recall']:.3f} {s['recall_by_kind']}")
    print(f"ours precision: {s['precision']:.3f} ({s['pairs_with_variants']:,} same-cluster pairs with a variant; "
          f"{s['base_pairs']:,} base-base pairs merged)")
    if not args.no_datasketch:
        seconds, cluster_of = run_datasketch(texts, args.threshold)
        s = score(cluster_of, truth, len(base))
        print(f"datasketch seconds: {seconds[0]:.1f} wall, {seconds[1]:.1f} CPU (MinHash.generator + MinHashLSH insert/query, same shingles, "
              "no verification, no storing)")
        print(f"datasketch recall: {s['recall']:.3f} {s['recall_by_kind']}")
        print(f"datasketch precision: {s['precision']:.3f} ({s['pairs_with_variants']:,} same-cluster pairs with a "
              f"variant; {s['base_pairs']:,} base-base pairs merged)")


if __name__ == "__main__":
    main()
