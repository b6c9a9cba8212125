"""The encoder student on CLINC150: in-scope accuracy and out-of-scope recall with 95% bootstrap intervals.

Protocol (the dataset's own): train on ``train.jsonl`` (15,100 rows, 100 of them ``oos``), early stopping and the
no-tool (out-of-scope) threshold on ``validation.jsonl`` (3,100 rows, 100 ``oos``), scored once on ``test.jsonl``
(5,500 rows, 1,000 ``oos``). The 150 intents are 150 parameterless tools; ``oos`` is no tool. In-scope accuracy
counts an in-scope query right only when it gets its intent (a wrongly rejected query is wrong); OOS recall is the
share of ``oos`` queries answered with no tool.

For scale (measured on this machine): frozen MiniLM embeddings + logistic regression reach 95.3% in-scope and
53.4% OOS recall (``--frozen-baseline`` measures it again). Target: >= 96.5% in-scope and >= 70% OOS recall.

Usage:
    .venv/bin/python benchmarks/encoder_clinc.py                      # full run, default config (CPU)
    .venv/bin/python benchmarks/encoder_clinc.py --quick              # 1,500 train rows, 1 epoch: checks it works
    .venv/bin/python benchmarks/encoder_clinc.py --set optim.epochs=4 --set head.kind=softmax --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tooldistill.catalog import Catalog, Label
from tooldistill.eval import ratio_intervals
from tooldistill.train.config import load_student_config, parse_overrides
from tooldistill.train.encoder import train_encoder
from tooldistill.train.encoder_router import EncoderRouter, calibrate_thresholds, decide, tool_set

CLINC = Path(os.environ.get("CLINC_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "external" /
                            "clinc150"))
CLINC_CONFIG = ["data.max_length=32", "optim.epochs=5", "optim.batch_size=32", "eval.patience=2"]
"""The benchmark's config on top of the defaults: CLINC queries are short (99.9% fit in 32 tokens)."""


def load_clinc(folder: Path) -> tuple[Catalog, dict[str, list[tuple[str, Label]]]]:
    rows = {split: [json.loads(line) for line in (folder / f"{split}.jsonl").open(encoding="utf-8")]
            for split in ("train", "validation", "test")}
    catalog = Catalog.from_class_names({r["label"] for r in rows["train"]}, none_label="oos", name="clinc150")
    return catalog, {s: [(r["text"], catalog.class_label(r["label"])) for r in rs] for s, rs in rows.items()}


def scores(pred: list[tuple], gold: list[tuple], resamples: int) -> dict[str, dict]:
    """In-scope accuracy, OOS recall/precision and overall accuracy, with the same bootstrap resamples."""
    has_tool = np.array([bool(g) for g in gold], dtype=float)
    hit = np.array([p == g for p, g in zip(pred, gold)], dtype=float)
    said_none = np.array([not p for p in pred], dtype=float)
    return ratio_intervals({
        "in_scope_accuracy": (hit * has_tool, has_tool),
        "oos_recall": (said_none * (1 - has_tool), 1 - has_tool),
        "oos_precision": (said_none * (1 - has_tool), said_none),
        "accuracy": (hit, np.ones_like(hit)),
    }, resamples=resamples, seed=0)


def fmt(rate: dict) -> str:
    return f"{100 * rate['value']:.2f}% [{100 * rate['lo']:.2f}, {100 * rate['hi']:.2f}]"


def frozen_baseline(data: dict, resamples: int) -> dict:
    """Frozen mean-pooled MiniLM embeddings + logistic regression, max-probability OOS threshold from val."""
    from sklearn.linear_model import LogisticRegression

    from tooldistill.embeddings import embed_texts

    t0 = time.perf_counter()
    emb = {s: embed_texts([t for t, _ in rows], batch_size=128) for s, rows in data.items()}
    embed_s = time.perf_counter() - t0
    y = [(tool_set(lab) or ("oos",))[0] for _, lab in data["train"]]
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(emb["train"], y)
    classes = [("<none>" if c == "oos" else c) for c in clf.classes_]
    gold = {s: [tool_set(lab) for _, lab in rows] for s, rows in data.items()}
    th = calibrate_thresholds(clf.predict_proba(emb["validation"]), classes, gold["validation"], head="softmax")
    pred = decide(clf.predict_proba(emb["test"]), classes, head="softmax", no_tool_threshold=th.no_tool)
    return {"scores": scores(pred, gold["test"], resamples), "embed_seconds": round(embed_s, 1),
            "no_tool_threshold": th.no_tool}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], help="Config override KEY=VALUE (repeatable).")
    ap.add_argument("--quick", action="store_true", help="1,510 train rows, 1 epoch, a fifth of val and test: a "
                                                         "smoke run (and a CPU speed reading).")
    ap.add_argument("--out", type=Path, default=None, help="Model folder to write (default: a temp folder).")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--reuse", type=Path, default=None, help="Score an already trained model folder (no training).")
    ap.add_argument("--frozen-baseline", action="store_true", help="Also measure frozen embeddings + LogReg.")
    ap.add_argument("--json", type=Path, default=None, help="Write the results here too.")
    args = ap.parse_args(argv)

    catalog, data = load_clinc(CLINC)
    overrides = parse_overrides(CLINC_CONFIG + (["optim.epochs=1", "data.max_train_examples=1500"] if args.quick
                                                else []) + args.set)
    config = load_student_config(None, overrides, student="encoder")
    train = data["train"]
    if args.quick:  # stratified slices: every 10th train row keeps all intents and some oos
        train = train[::10]
        data = {"train": train, "validation": data["validation"][::5], "test": data["test"][::5]}
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="encoder-clinc-")) / "model"
    print(f"config: {json.dumps(config.model_dump(mode='json'), sort_keys=True)}", flush=True)
    print(f"train {len(train)} / val {len(data['validation'])} / test {len(data['test'])} rows; torch threads "
          f"{__import__('torch').get_num_threads()}; device {config.device}", flush=True)
    t_wall = time.perf_counter()

    def show(event) -> None:  # a line every 100 steps: how fast it goes on this machine
        if event.task == "train" and event.done % 100 == 0:
            print(f"  step {event.done}/{event.total} {event.message} "
                  f"({time.perf_counter() - t_wall:.0f} s)", file=sys.stderr, flush=True)

    metrics: dict = {}
    if args.reuse:
        out_dir = args.reuse
    else:
        metrics = train_encoder(train, data["validation"], catalog, config, out_dir, progress=show)
    for row in metrics.get("history", []):
        print(f"  epoch {row['epoch']}: loss {row['train_loss']:.4f}, val objective {row.get('val_objective')}, "
              f"val ceiling {row.get('val_in_scope_ceiling')}, val in-scope {row.get('val_in_scope_accuracy')}, val no-tool recall {row.get('val_no_tool_recall')}, "
              f"{row['seconds']} s", flush=True)
    router = EncoderRouter(out_dir, device=config.device if config.device != "auto" else "cpu")
    t0 = time.perf_counter()
    test_probs, test_sims = router.outputs([t for t, _ in data["test"]], batch_size=128)
    infer_s = time.perf_counter() - t0
    val_probs, val_sims = router.outputs([t for t, _ in data["validation"]], batch_size=128)
    gold = [tool_set(lab) for _, lab in data["test"]]
    val_gold = [tool_set(lab) for _, lab in data["validation"]]
    m, e = router.meta, config.eval
    if metrics:
        print(f"trained in {metrics['train_seconds']:.0f} s ({metrics['epochs_run']} epochs, best "
              f"{metrics['best_epoch']})")
    ceiling = scores(decide(test_probs, router.labels, head=m["head"], no_tool_threshold=0.0,
                            max_tools=m["max_tools"], tool_threshold=m["tool_threshold"]), gold, args.resamples)
    print(f"test, never saying no tool: in-scope accuracy {fmt(ceiling['in_scope_accuracy'])} (the ceiling)")
    # Every row below calibrates its thresholds on val only; test only scores them. The first is the config's own.
    settings = [(f"{e.objective} (config)", e.objective, e.no_tool_weight, e.in_scope_budget, True),
                ("retain, budget 0.5 pt", "retain", 0.5, 0.005, True),
                ("retain, budget 2 pt", "retain", 0.5, 0.02, True),
                ("balanced 0.5", "balanced", 0.5, 0.01, True),
                ("balanced 0.3", "balanced", 0.3, 0.01, True),
                (f"{e.objective}, no similarity gate", e.objective, e.no_tool_weight, e.in_scope_budget, False)]
    results = {}
    for name, objective, weight, budget, gate in settings:
        if gate and val_sims is None:
            continue
        th = calibrate_thresholds(val_probs, router.labels, val_gold, head=m["head"], max_tools=m["max_tools"],
                                  objective=objective, no_tool_weight=weight, in_scope_budget=budget,
                                  similarity=val_sims if gate else None)
        pred = decide(test_probs, router.labels, head=m["head"], no_tool_threshold=th.no_tool,
                      tool_threshold=th.tool, max_tools=m["max_tools"], similarity=test_sims if gate else None,
                      similarity_threshold=th.similarity)
        s = scores(pred, gold, args.resamples)
        results[name] = {"scores": s, "no_tool_threshold": th.no_tool, "similarity_threshold": th.similarity}
        print(f"{name:32s} in-scope {fmt(s['in_scope_accuracy'])}  OOS recall {fmt(s['oos_recall'])}  "
              f"OOS precision {fmt(s['oos_precision'])}  (no-tool {th.no_tool:.4f}, gate {th.similarity})",
              flush=True)
    result = next(iter(results.values()))["scores"]
    print(f"test: in-scope accuracy {fmt(result['in_scope_accuracy'])}   target >= 96.5%")
    print(f"test: OOS recall        {fmt(result['oos_recall'])}   target >= 70%")
    print(f"test inference: {len(gold)} queries in {infer_s:.1f} s (batch 128, similarity gate included)")
    out = {"config": config.model_dump(mode="json"), "metrics": metrics, "test": result, "settings": results,
           "ceiling": ceiling,
           "infer_seconds": infer_s, "n_train": len(train)}
    if args.frozen_baseline:
        base = frozen_baseline(data, args.resamples)
        print(f"frozen embeddings + LogReg: in-scope {fmt(base['scores']['in_scope_accuracy'])}, OOS recall "
              f"{fmt(base['scores']['oos_recall'])} (embedding 23,700 texts took {base['embed_seconds']} s)")
        out["frozen_baseline"] = base
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
