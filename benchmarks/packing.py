"""Packing: K queries per request against one per request, same queries, same fake teacher, label for label.

The fake Gemini server answers packed requests from its oracle with the same seeded per-query noise as single
ones, so on clean data (no injected faults) a packed run must store exactly the labels an unpacked run stores,
with K times fewer requests. A second packed run where half the packs come back with one answer naming an
unknown tool and one answer missing shows the fallback: those queries go back to the queue and are asked alone, and still end with the same
labels.

Usage: python benchmarks/packing.py [--queries 400] [--pack 8] [--noise 0.05] [--json]
Prints one figure per line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import print_figures  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from tooldistill.db import get_catalog, insert_queries, open_db  # noqa: E402
from tooldistill.distill import DistillSettings, parse_keys, run_distill  # noqa: E402
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec, default_structured_answer  # noqa: E402

MODELS = ("gemini-2.5-flash",)
"""One teacher model: the fake's noise is seeded per (model, query), so with two models a query answered by
another model in the other run would differ for that reason alone."""
KEYS = {"pack-key-1": "proj-a", "pack-key-2": "proj-b"}


def make_queries(n: int, seed: int):
    from tooldistill.catalog import load_catalog
    from tooldistill.data import generate_queries

    return generate_queries(load_catalog(), n, seed=seed)


def spoil_some_packs(request, answer_for):
    """Every other pack comes back with its first answer naming an unknown tool and its last answer missing
    (single requests, asked for the queries sent back, are answered normally)."""
    value = default_structured_answer(request, answer_for)
    answers = value.get("answers") if isinstance(value, dict) else None
    if answers and len(answers) > 1 and zlib.crc32(json.dumps(answers[0]).encode()) % 2 == 0:
        first = {**answers[0], "calls": [{"name": "teleport", "args": {}}]}
        value = {**value, "answers": [first, *answers[1:-1]]}
    return value


def labels_of(db) -> dict[str, str]:
    """query text -> the stored label's canonical calls (or the reject reason)."""
    return {text: calls if valid else f"rejected: {reason}" for text, calls, valid, reason in db.execute(
        "SELECT q.text, l.calls, l.valid, l.reject_reason FROM labels l JOIN queries q ON q.id = l.query_id")}


def run_one(work: Path, name: str, queries, server, *, pack: int) -> dict:
    db = open_db(work / f"{name}.db")
    get_catalog(db)
    insert_queries(db, queries)
    settings = DistillSettings(models=list(MODELS), base_url=server.base_url, rpm=0, rpd=0, pack=pack,
                               backoff_base_s=0.05)
    before = server.stats()["paid"]
    t0 = time.time()
    summary = run_distill(db, catalog=get_catalog(db), keys=parse_keys(",".join(f"{k}@{p}" for k, p in KEYS.items())),
                          settings=settings)
    out = {"summary": summary, "labels": labels_of(db), "paid": server.stats()["paid"] - before,
           "seconds": round(time.time() - t0, 1)}
    db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--pack", type=int, default=8)
    ap.add_argument("--noise", type=float, default=0.05, help="The fake teacher's seeded label noise rate.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="td-packing-"))
    queries = make_queries(args.queries, args.seed)
    oracle = work / "oracle.db"
    odb = open_db(oracle)
    get_catalog(odb)
    insert_queries(odb, queries)
    odb.close()
    stripped = [dataclasses.replace(q, gold=None) for q in queries]  # the workspace does not know the answers
    config = FakeGeminiConfig(keys=KEYS, oracle_db=oracle, seed=args.seed,
                              models={m: ModelSpec(noise_rate=args.noise) for m in MODELS})
    with FakeGemini(config) as server:
        single = run_one(work, "single", stripped, server, pack=1)
        packed = run_one(work, "packed", stripped, server, pack=args.pack)
        server.set_structured_answer(spoil_some_packs)
        faulty = run_one(work, "packed-faults", stripped, server, pack=args.pack)
    same = sum(single["labels"].get(t) == v for t, v in packed["labels"].items())
    same_faulty = sum(single["labels"].get(t) == v for t, v in faulty["labels"].items())
    fig = {
        "queries": args.queries, "pack size": args.pack, "teacher noise rate": args.noise,
        "unpacked: paid requests": single["paid"], "unpacked: labels stored": len(single["labels"]),
        "packed (clean): paid requests": packed["paid"], "packed (clean): labels stored": len(packed["labels"]),
        "packed (clean): labels per request": round(len(packed["labels"]) / packed["paid"], 2),
        "packed (clean): queries sent back to be asked alone": packed["summary"].unpacked,
        "packed (clean): queries with the same label as unpacked": f"{same}/{len(single['labels'])}",
        "packed (half the packs: one answer invalid, one missing): paid requests": faulty["paid"],
        "packed (faults): queries sent back to be asked alone": faulty["summary"].unpacked,
        "packed (faults): labels per request": round(len(faulty["labels"]) / faulty["paid"], 2),
        "packed (faults): queries with the same label as unpacked": f"{same_faulty}/{len(single['labels'])}",
        "seconds (unpacked, packed, packed with faults)": [single["seconds"], packed["seconds"], faulty["seconds"]],
    }
    print_figures(fig, as_json=args.json)


if __name__ == "__main__":
    main()
