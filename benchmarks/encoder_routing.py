"""Tool selection on the generated tool-routing data: the encoder student beside the regex baseline (and others).

Data: ``tooldistill.data.generate_queries`` (template queries with gold labels over the default catalogue:
single tools, multi-tool sets, no tool, ambiguous queries with their acceptable answers), split 70/10/20 seeded and
stratified by tool set: train to train, val for early stopping and thresholds, test to score. Every router is
graded by eval's own grader and metrics (``tooldistill.eval.grade`` / ``compute_metrics``, bootstrap 95%
intervals), so the figures are comparable with ``eval run``. The encoder picks tools, not arguments: its tool
accuracy, no-tool recall, false-tool-call rate and multi-tool exact are the comparable rates (argument metrics do
not apply to it).

Other routers plug in with ``--router SPEC`` (anything ``tooldistill.eval.get_router`` builds without a database,
e.g. ``model:runs/<id>/merged`` for a trained QLoRA student) and are scored on the same test rows.

Usage:
    .venv/bin/python benchmarks/encoder_routing.py [--n 2000] [--quick] [--router model:PATH ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tooldistill.catalog import load_catalog  # noqa: E402
from tooldistill.eval import compute_metrics, get_router, grade, make_baseline, parse_output  # noqa: E402
from tooldistill.eval.grade import acceptable_from_meta  # noqa: E402
from tooldistill.train.config import load_student_config, parse_overrides  # noqa: E402
from tooldistill.train.encoder import train_encoder  # noqa: E402
from tooldistill.train.encoder_router import EncoderRouter  # noqa: E402

RATES = ("tool_accuracy", "no_tool_recall", "false_tool_call", "multi_tool_exact", "fully_correct")


def fmt(rate: dict) -> str:
    if rate.get("value") is None:
        return "n/a"
    return f"{100 * rate['value']:.1f}% [{100 * rate['lo']:.1f}, {100 * rate['hi']:.1f}]"


def split3(items: list, seed: int) -> tuple[list, list, list]:
    from eval_baselines import stratified_split

    rest, test = stratified_split(items, lambda it: it[1].tool_set_key, test_share=0.2, seed=seed)
    train, val = stratified_split(rest, lambda it: it[1].tool_set_key, test_share=0.125, seed=seed + 1)
    return train, val, test


def score(router, test: list, catalog, resamples: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    raws = router.route([text for text, _, _ in test])
    seconds = time.perf_counter() - t0
    grades = [grade(parse_output(raw), gold, catalog, acceptable=acc) for raw, (_, gold, acc) in zip(raws, test)]
    return compute_metrics(grades, catalog=catalog, resamples=resamples, seed=0), seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="Generated queries (before the split).")
    ap.add_argument("--quick", action="store_true", help="400 queries, 1 epoch: checks it works.")
    ap.add_argument("--set", action="append", default=[], help="Encoder config override KEY=VALUE.")
    ap.add_argument("--router", action="append", default=[], help="Another router spec to score (model:PATH).")
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args(argv)
    try:
        from tooldistill.data import generate_queries
    except ImportError:
        print("skipped: tooldistill.data.generate_queries is not available yet")
        return 0

    catalog = load_catalog()
    n = 400 if args.quick else args.n
    queries = generate_queries(catalog, n, seed=0)
    items = [(q.text, q.gold, acceptable_from_meta(q.meta)) for q in queries]
    train, val, test = split3(items, seed=0)
    print(f"generated {len(items)} queries: train {len(train)}, val {len(val)}, test {len(test)} "
          f"({sum(1 for _, g, _ in test if g.is_no_tool)} no tool, {sum(1 for _, g, _ in test if g.is_multi)} "
          f"multi-tool)")
    overrides = parse_overrides(["data.max_length=48", "optim.epochs=6"] + (["optim.epochs=1"] if args.quick else [])
                                + args.set)
    config = load_student_config(None, overrides, student="encoder")
    folder = Path(tempfile.mkdtemp(prefix="encoder-routing-")) / "model"
    metrics = train_encoder([(t, g) for t, g, _ in train], [(t, g) for t, g, _ in val], catalog, config, folder)
    print(f"encoder trained in {metrics['train_seconds']:.0f} s on CPU ({metrics['epochs_run']} epochs, best "
          f"{metrics['best_epoch']}; head {metrics['head']}, {metrics['outputs']} outputs)")
    examples = [(t, g) for t, g, _ in train]
    routers = {"encoder": EncoderRouter(folder), "regex (keyword)": make_baseline("keyword", catalog),
               "regex (+mined keywords)": make_baseline("keyword", catalog, examples=examples),
               "majority": make_baseline("majority", catalog, examples=examples)}
    for spec in args.router:  # hook: the QLoRA student (model:PATH) or any other router eval can build
        routers[spec] = get_router(None, spec, catalog=catalog)
    print(f"{'router':26s} " + " ".join(f"{r:28s}" for r in RATES) + " routed in")
    for name, router in routers.items():
        m, seconds = score(router, test, catalog, args.resamples)
        print(f"{name:26s} " + " ".join(f"{fmt(m['rates'][r]):28s}" for r in RATES) + f" {seconds:.2f} s",
              flush=True)
    print("(fully_correct needs arguments: n/a in spirit for the encoder, which picks tools only; a QLoRA student "
          "can fill them once the encoder picked the tool)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
