"""Leak-free splits on real and generated data: the split's own report, against naive and official splits.

For each dataset, in a fresh workspace database: ``curate dedup`` then ``curate split`` (seed 0, 0.8/0.1/0.1,
hard split on). Printed: the version id, per-split sizes, and the split report's leakage check (near-duplicate
pairs between train and the held-out splits, found by MinHash LSH re-run independently of the grouping; must be
0). For contrast the same check on a naive seeded random split of the same examples and, for CLINC150, on its
official train/validation/test split. Then the determinism claims: the same split again gives the same version
id without a new row, and a second database fed the same inputs gives the same id.

- generated: ``tooldistill.data.generate`` (template queries with gold labels), ``--n`` of them.
- CLINC150: all 23,700 rows (/work/shared/external/clinc150) imported with ``data import --gold`` semantics:
  the 150 intents become parameterless tools of a derived catalogue, ``oos`` becomes no tool.

    .venv/bin/python benchmarks/leakage.py                 # generated (20,000) and CLINC150
    .venv/bin/python benchmarks/leakage.py --n 2000 --skip-clinc    # a quick check

Prints one figure per line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

CLINC = Path("/work/shared/external/clinc150")


def fresh_db(folder: Path, name: str):
    from tooldistill.db import open_db

    return open_db(folder / f"{name}.db")


def load_generated(db, n: int, seed: int) -> None:
    from tooldistill.data import generate
    from tooldistill.db import get_catalog

    get_catalog(db)
    generate(db, n, seed=seed)


def load_clinc(db) -> dict[str, str]:
    """Import CLINC150 as gold class labels; returns the official split of each text."""
    from tooldistill.data import import_queries

    official = {}
    for name in ("train", "validation", "test"):
        path = CLINC / f"{name}.jsonl"
        import_queries(db, path, text_column="text", label_column="label", none_label="oos", gold=True)
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                official.setdefault(json.loads(line)["text"], {"validation": "val"}.get(name, name))
    return official


def leakage_line(label: str, leak) -> str:
    pairs = ", ".join(f"{k} {n}" for k, n in sorted(leak.pairs.items())) or "none"
    return (f"{label}: train vs test/hard near-duplicate pairs {leak.train_test} (all cross-split pairs: {pairs}; "
            f"templates across {leak.templates_across}, clusters across {leak.clusters_across})")


def members(db, version_id: str) -> tuple[list[str], list[str], list, list]:
    rows = db.execute("SELECT q.text, m.split, q.template_id, m.query_id FROM split_members m JOIN queries q "
                      "ON q.id = m.query_id WHERE m.version_id = ? ORDER BY m.query_id", [version_id]).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]


def study(name: str, db, make_twin, official: dict[str, str] | None = None) -> None:
    from tooldistill.curate import check_leakage, dedup, split
    from tooldistill.curate.neardup import NearDupParams

    t0 = time.perf_counter()
    run = dedup(db)
    print(f"{name} dedup: {run.n_queries:,} queries, {run.n_clusters:,} clusters holding {run.n_clustered:,} "
          f"queries ({len(run.oversized)} oversized) in {run.seconds:.1f} s")
    report = split(db, seed=0)
    sizes = ", ".join(f"{k} {v['total']:,}" for k, v in report.counts.items())
    print(f"{name} split: version {report.version_id} ({sizes}); {report.n_groups:,} groups, largest "
          f"{report.largest_group:,}; split + check {time.perf_counter() - t0 - run.seconds:.1f} s")
    print(leakage_line(f"{name} split report", report.leakage))
    for w in report.warnings:
        print(f"{name} split warning: {w}")
    texts, splits, templates, _ = members(db, report.version_id)
    params = NearDupParams.from_dict(run.params)
    rng = random.Random(0)
    naive = [rng.choices(["train", "val", "test"], weights=[0.8, 0.1, 0.1])[0] for _ in texts]
    print(leakage_line(f"{name} naive random split", check_leakage(texts, naive, params=params, templates=templates)))
    if official is not None:
        print(leakage_line(f"{name} official split", check_leakage(texts, [official[t] for t in texts], params=params)))
    again = split(db, seed=0)
    n_rows = db.execute("SELECT count(*) FROM dataset_versions").fetchone()[0]
    print(f"{name} same inputs again: version {again.version_id} (same id: {again.version_id == report.version_id}; "
          f"new row written: {again.created}; versions stored: {n_rows})")
    twin = make_twin()
    twin_report = split(twin, seed=0)
    print(f"{name} second database, same inputs: version {twin_report.version_id} "
          f"(same id: {twin_report.version_id == report.version_id})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="generated queries")
    ap.add_argument("--seed", type=int, default=0, help="generation seed")
    ap.add_argument("--skip-clinc", action="store_true")
    ap.add_argument("--skip-generated", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_generated:
            db = fresh_db(folder, "generated")
            load_generated(db, args.n, args.seed)

            def twin_generated():
                twin = fresh_db(folder, "generated_twin")
                load_generated(twin, args.n, args.seed)
                return twin

            study(f"generated ({args.n:,})", db, twin_generated)
        if not args.skip_clinc:
            db = fresh_db(folder, "clinc")
            official = load_clinc(db)

            def twin_clinc():
                twin = fresh_db(folder, "clinc_twin")
                load_clinc(twin)
                return twin

            study("CLINC150", db, twin_clinc, official)


if __name__ == "__main__":
    main()
