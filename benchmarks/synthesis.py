"""Synthesis at scale: the teacher writes N queries for a coverage plan over the default catalogue through the fake
Gemini server, whose synthesis oracle repeats itself on purpose (exact repeats, case/punctuation variants, near
variants with a word added, and cells whose pool of fresh queries runs dry). Shows the duplicate rate caught on
arrival against what the oracle planted, the coverage table, and checks with curate's own batch near-duplicate
search that no duplicate entered the database.

Usage: python benchmarks/synthesis.py [--n 2000] [--per-request 10] [--repeat-rate 0.35] [--pool-size 14]
       [--concurrency 8] [--seed 0] [--json]
Prints one figure per line, then the coverage table. Timings depend on the machine's load.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import bench_parser, in_temp_folder, print_figures  # noqa: E402  (benchmarks/ is on sys.path as a script)

from tooldistill.curate.neardup import dedup_key, near_duplicate_pairs  # noqa: E402
from tooldistill.db import get_catalog, open_db  # noqa: E402
from tooldistill.distill.coverage import CATEGORIES, STYLES, coverage_report, make_plan  # noqa: E402
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig  # noqa: E402
from tooldistill.distill.keys import parse_keys  # noqa: E402
from tooldistill.distill.settings import DistillSettings  # noqa: E402
from tooldistill.distill.synthesize import SynthesisSettings, synthesize  # noqa: E402

KEYS = {"synth-bench-key-1": "proj-a", "synth-bench-key-2": "proj-b"}


def run(n: int, *, per_request: int, repeat_rate: float, pool_size: int, concurrency: int, seed: int,
        workdir: Path) -> dict:
    db = open_db(workdir / "synth.db")
    catalog = get_catalog(db)
    cells = make_plan(db, catalog, total=n)
    config = FakeGeminiConfig(keys=KEYS, seed=seed, synthesis={"pool_size": pool_size, "repeat_rate": repeat_rate})
    with FakeGemini(config) as server:
        settings = DistillSettings(base_url=server.base_url, models=["gemini-2.5-flash", "gemini-2.5-flash-lite"],
                                   rpm=0, rpd=0, concurrency=concurrency)
        started = time.perf_counter()
        summary = synthesize(db, catalog=catalog, keys=parse_keys(",".join(f"{k}@{p}" for k, p in KEYS.items())),
                             settings=settings, synth=SynthesisSettings(per_request=per_request))
        elapsed = time.perf_counter() - started
        planted = server.synthesis_stats()
    texts = [r[0] for r in db.execute("SELECT text FROM queries WHERE source = 'synth:default'")]
    keys = [dedup_key(t) for t in texts]
    near = near_duplicate_pairs(keys)
    caught = summary.exact_dups + summary.near_dups
    report = coverage_report(db, top=8)
    fig = {
        "queries wanted": n, "plan cells": len(cells), "queries asked per request": per_request,
        "requests paid": summary.paid, "queries received": summary.received,
        "new queries stored": summary.accepted,
        "duplicates caught on arrival": caught, "  exact (after normalisation)": summary.exact_dups,
        "  near (MinHash LSH, Jaccard >= threshold)": summary.near_dups,
        "duplicate rate caught on arrival": f"{summary.dup_rate:.1%}",
        "repeats the oracle planted": planted["planted_repeats"],
        "  planted exact / case-punctuation / near": f"{planted['exact']} / {planted['surface']} / {planted['near']}",
        "  planted across cells": planted["cross_cell"],
        "caught / planted": f"{caught / planted['planted_repeats']:.3f}" if planted["planted_repeats"] else "n/a",
        "fresh queries flagged as near duplicates": max(0, caught - planted["planted_repeats"]),
        "invalid queries": summary.invalid,
        "cells full / saturated / open": f"{summary.cells['full']} / {summary.cells['saturated']} / "
                                         f"{summary.cells['open']}",
        "queries missing from targets": report["totals"]["missing"],
        "DB: synthesized queries stored": len(texts),
        "DB: exact duplicates among them (dedup key)": len(keys) - len(set(keys)),
        "DB: near-duplicate pairs among them (curate search)": len(near.pairs),
        "DB: labels on them (stay unlabeled until distill run)": db.execute(
            "SELECT count(*) FROM labels l JOIN queries q ON q.id = l.query_id WHERE q.source = 'synth:default'"
        ).fetchone()[0],
        "DB: with the cell's tool as hint": db.execute(
            "SELECT count(*) FROM queries WHERE source = 'synth:default' AND hint IS NOT NULL").fetchone()[0],
        "elapsed s (fake server, loaded 2-core machine)": round(elapsed, 1),
        "requests per second": round(summary.paid / elapsed, 1) if elapsed else None,
    }
    return {"figures": fig, "report": report}


def matrix(report: dict) -> str:
    width = max(len(s) for s in STYLES) + 2
    lines = ["accepted/target by category x style (summed over tools)",
             f"{'category':<11}" + "".join(f"{s:>{width}}" for s in STYLES)]
    for cat in CATEGORIES:
        row = f"{cat:<11}"
        for style in STYLES:
            group = [c for c in report["cells"] if c["category"] == cat and c["style"] == style]
            row += f"{sum(c['accepted'] for c in group)}/{sum(c['target'] for c in group)}".rjust(width)
        lines.append(row)
    lines.append("by tool: " + ", ".join(f"{r['tool']} {r['accepted']}/{r['target']} ({r['dup_rate']:.0%} dup)"
                                         for r in report["by_tool"]))
    lines.append("where the teacher repeats itself most (cell: duplicates/received, state):")
    lines += [f"  {c['cell']}: {c['duplicates']}/{c['received']} ({c['dup_rate']:.0%}), {c['state']}"
              for c in report["repetitive_cells"]]
    lines.append("queries it sent most often again:")
    lines += [f"  x{q['times']} in {q['cells']} cell(s): {q['text']}" for q in report["repeated_queries"][:5]]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--repeat-rate", type=float, default=0.35)
    parser.add_argument("--pool-size", type=int, default=14)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    result = in_temp_folder(run, args.n, per_request=args.per_request, repeat_rate=args.repeat_rate,
                            pool_size=args.pool_size, concurrency=args.concurrency, seed=args.seed)
    print_figures(result["figures"], as_json=args.json, table=matrix(result["report"]))


if __name__ == "__main__":
    main()
