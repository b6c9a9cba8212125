"""The regex (keyword) and majority baselines scored on the generated data and on CLINC150, with 95% intervals.

What it shows: how good the thing a distilled student replaces is, measured the way eval measures students, so
a student's numbers have a floor to beat. Two datasets:

- generated: ``tooldistill.data.generate_queries`` (template queries with gold labels, ambiguous ones carrying
  their acceptable answers), split 80/20 seeded and stratified by tool set (``curate split`` when it is
  available is the production path; the benchmark keeps to a pure split so it needs no database);
- CLINC150 (../shared/external/clinc150): a class catalogue derived from the 150 intents (``oos`` = no tool),
  trained on ``train.jsonl``, scored on ``test.jsonl``; the keyword router once with class-name tokens only and
  once with keywords mined from the training split.

Prints one figure per line. Usage:
    .venv/bin/python benchmarks/eval_baselines.py [--n 3000] [--resamples 1000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from tooldistill.catalog import Catalog, Label, load_catalog
from tooldistill.eval import compute_metrics, grade, make_baseline, parse_output
from tooldistill.eval.grade import acceptable_from_meta

CLINC = Path(__file__).resolve().parents[1].parent / "shared" / "external" / "clinc150"
RATES = ("tool_accuracy", "fully_correct", "args_exact", "arg_f1", "false_tool_call", "no_tool_recall",
         "multi_tool_exact", "valid_json")


def fmt(rate: dict) -> str:
    if rate["value"] is None:
        return "n/a"
    return f"{100 * rate['value']:.1f}% [{100 * rate['lo']:.1f}, {100 * rate['hi']:.1f}] ({rate['num']:.0f}/{rate['den']:.0f})"


def stratified_split(items: list, key, *, test_share: float, seed: int) -> tuple[list, list]:
    groups = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    rng = random.Random(seed)
    train, test = [], []
    for k in sorted(groups):
        members = groups[k]
        rng.shuffle(members)
        cut = round(len(members) * test_share)
        test += members[:cut]
        train += members[cut:]
    return train, test


def score(router, test: list[tuple[str, Label, object]], catalog: Catalog, resamples: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    raws = router.route([text for text, _, _ in test])
    route_s = time.perf_counter() - t0
    grades = [grade(parse_output(raw), gold, catalog, acceptable=acc) for raw, (_, gold, acc) in zip(raws, test)]
    return compute_metrics(grades, catalog=catalog, resamples=resamples, seed=0), route_s


def report(title: str, metrics: dict, route_s: float, extra: dict | None = None) -> None:
    print(f"== {title} (n={metrics['n']}, routed in {route_s:.2f} s)")
    for name in RATES:
        print(f"{title} {name}: {fmt(metrics['rates'][name])}")
    for name, rate in (extra or {}).items():
        print(f"{title} {name}: {fmt(rate)}")


def generated(n: int, resamples: int) -> None:
    from tooldistill.data import generate_queries

    catalog = load_catalog()
    t0 = time.perf_counter()
    queries = generate_queries(catalog, n, seed=0)
    items = [(q.text, q.gold, acceptable_from_meta(q.meta)) for q in queries]
    train, test = stratified_split(items, lambda it: it[1].tool_set_key, test_share=0.2, seed=0)
    print(f"generated: {len(queries)} queries in {time.perf_counter() - t0:.1f} s; train {len(train)}, test {len(test)}")
    examples = [(text, label) for text, label, _ in train]
    for name in ("keyword", "majority"):
        metrics, route_s = score(make_baseline(name, catalog, examples=examples), test, catalog, resamples)
        report(f"generated/{name}", metrics, route_s)


def clinc(resamples: int, limit: int | None) -> None:
    def read(name: str) -> list[dict]:
        return [json.loads(line) for line in (CLINC / name).read_text(encoding="utf-8").splitlines() if line.strip()]

    train_rows, test_rows = read("train.jsonl"), read("test.jsonl")
    if limit:
        test_rows = random.Random(0).sample(test_rows, min(limit, len(test_rows)))
    catalog = Catalog.from_class_names({r["label"] for r in train_rows}, none_label="oos", name="clinc150")
    train = [(r["text"], catalog.class_label(r["label"])) for r in train_rows]
    test = [(r["text"], catalog.class_label(r["label"]), None) for r in test_rows]
    print(f"clinc150: {len(catalog.tools)} intents + oos; train {len(train)}, test {len(test)} "
          f"({sum(r['is_oos'] for r in test_rows)} oos)")
    in_scope = [i for i, r in enumerate(test_rows) if not r["is_oos"]]
    routers = {"keyword(name tokens)": make_baseline("keyword", catalog),
               "keyword(+mined)": make_baseline("keyword", catalog, examples=train),
               "majority": make_baseline("majority", catalog, examples=train)}
    for name, router in routers.items():
        metrics, route_s = score(router, test, catalog, resamples)
        in_metrics, _ = score(router, [test[i] for i in in_scope], catalog, resamples)
        extra = {"in_scope_accuracy": in_metrics["rates"]["tool_accuracy"],
                 "oos_recall": metrics["rates"]["no_tool_recall"],
                 "oos_precision": metrics["rates"]["no_tool_precision"]}
        report(f"clinc150/{name}", metrics, route_s, extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="generated queries")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small scale: 300 generated, 500 CLINC test rows")
    args = parser.parse_args(argv)
    n, limit = (300, 500) if args.quick else (args.n, None)
    t0 = time.perf_counter()
    generated(n, args.resamples)
    if CLINC.is_dir():
        clinc(args.resamples, limit)
    else:
        print(f"clinc150: skipped ({CLINC} not found)")
    print(f"total wall time: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
