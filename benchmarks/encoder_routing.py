"""Tool selection on the generated tool-routing data: encoder student, tiny LLM student, regex and majority.

Data: ``tooldistill.data.generate_queries`` (template queries with gold labels over the default catalogue:
single tools, multi-tool sets, no tool, ambiguous queries with their acceptable answers), split 70/10/20 seeded and
stratified by tool set: train to train, val for early stopping and thresholds, test to score. Every router is
graded by eval's own grader and metrics (``tooldistill.eval.grade`` / ``compute_metrics``, bootstrap 95%
intervals) on the same test rows, routed in eval's batches (``timed_batches``, 16 queries, as ``eval run``), so
the figures are comparable with ``eval run``. The encoder picks tools, not arguments: its tool accuracy, no-tool
recall, false-tool-call rate and multi-tool tool-set accuracy (``multi_tool_tools``) are the comparable rates
(argument metrics, ``fully_correct`` among them, do not apply to it).

The LLM student is trained here as a user would train it: the tiny offline base model
(``tooldistill.train.build_tiny_model``: random-initialised Qwen2 shapes, 2 layers, hidden 64), the train/val split
written as a ``data export`` JSONL, a fresh workspace database, and ``tooldistill.train.start_run`` with
``configs/tiny-cpu.yaml`` (what ``tooldistill train run -c configs/tiny-cpu.yaml --data FILE`` calls). It is then
loaded through eval's ``get_router(db, "run:ID")`` and generates greedily, as ``eval run --run ID`` does. On this
CPU the QLoRA path is fp32 LoRA (``quant.mode none``: bitsandbytes 4-bit is the CUDA path), one torch thread.
``--student-steps`` trains one run per step budget, to show how tool accuracy moves with training.

Other routers plug in with ``--router SPEC`` (anything ``tooldistill.eval.get_router`` builds without a database,
e.g. ``model:PATH`` for a merged student trained elsewhere) and are scored on the same test rows.

Usage:
    .venv/bin/python benchmarks/encoder_routing.py [--n 2000] [--quick] [--no-student] [--student-steps 60,300]
                                                   [--router model:PATH ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tooldistill.catalog import load_catalog  # noqa: E402
from tooldistill.eval import compute_metrics, get_router, grade, make_baseline, parse_output  # noqa: E402
from tooldistill.eval.generate import timed_batches  # noqa: E402
from tooldistill.eval.grade import acceptable_from_meta  # noqa: E402
from tooldistill.train.config import load_student_config, parse_overrides  # noqa: E402
from tooldistill.train.encoder import train_encoder  # noqa: E402
from tooldistill.train.encoder_router import EncoderRouter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# multi_tool_tools (the tool set right on multi-tool rows), not multi_tool_exact, which also needs the arguments
# and so is 0 for a router that picks tools only
RATES = ("tool_accuracy", "no_tool_recall", "false_tool_call", "multi_tool_tools", "fully_correct")
EVAL_BATCH = 16  # eval run's default routing batch
DEFAULT_STEPS = "60,300,1000"


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
    """Route the test rows in eval's batches, grade with eval's grader; return the metrics and routing seconds."""
    texts = [text for text, _, _ in test]
    raws: list = []
    t0 = time.perf_counter()
    for _start, batch, _ms in timed_batches(router.route, texts, batch_size=EVAL_BATCH):
        raws.extend(batch)
    seconds = time.perf_counter() - t0
    grades = [grade(parse_output(raw), gold, catalog, acceptable=acc) for raw, (_, gold, acc) in zip(raws, test)]
    return compute_metrics(grades, catalog=catalog, resamples=resamples, seed=0), seconds


def write_export(path: Path, rows: list[tuple[str, object, str]]) -> Path:
    """Write (text, gold, split) rows in the ``data export`` JSONL format that ``train run --data`` reads."""
    with path.open("w", encoding="utf-8") as f:
        for i, (text, gold, split) in enumerate(rows, start=1):
            f.write(json.dumps({"id": i, "text": text, "label": json.loads(gold.to_json()),
                                "label_source": "template", "split": split}, ensure_ascii=False) + "\n")
    return path


def train_student(train: list, val: list, catalog, *, steps: int, workdir: Path, base_model: Path):
    """Train the tiny LLM student with the train stage's entry point; return (db, TrainResult, wall seconds)."""
    from tooldistill.db import open_db
    from tooldistill.train import start_run

    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "train-val.jsonl"
    if not data.exists():
        write_export(data, [(t, g, "train") for t, g, _ in train] + [(t, g, "val") for t, g, _ in val])
    db = open_db(workdir / "tooldistill.db")
    # tiny-cpu.yaml as shipped, with the step budget raised; evals (and early stopping on val loss) every tenth
    # of the budget; no val generation at the end (the test rows are scored below instead).
    overrides = {"model.base_model": str(base_model), "optim.max_steps": steps, "eval.steps": max(20, steps // 10),
                 "eval.score_examples": 0, "cpu_threads": 1}
    t0 = time.perf_counter()
    result = start_run(db, root=workdir, config_path=ROOT / "configs" / "tiny-cpu.yaml", overrides=overrides,
                       data_file=data, catalog=catalog)
    return db, result, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="Generated queries (before the split).")
    ap.add_argument("--quick", action="store_true", help="400 queries, 1 encoder epoch, 20 student steps.")
    ap.add_argument("--set", action="append", default=[], help="Encoder config override KEY=VALUE.")
    ap.add_argument("--no-student", action="store_true", help="Skip the tiny LLM student (train and score).")
    ap.add_argument("--student-steps", default=None,
                    help=f"Comma-separated step budgets of the tiny LLM student, one run each (default "
                         f"{DEFAULT_STEPS}; --quick: 20).")
    ap.add_argument("--router", action="append", default=[], help="Another router spec to score (model:PATH).")
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args(argv)
    try:
        from tooldistill.data import generate_queries
    except ImportError:
        print("skipped: tooldistill.data.generate_queries is not available yet")
        return 0
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")

    catalog = load_catalog()
    n = 400 if args.quick else args.n
    queries = generate_queries(catalog, n, seed=0)
    items = [(q.text, q.gold, acceptable_from_meta(q.meta)) for q in queries]
    train, val, test = split3(items, seed=0)
    print(f"generated {len(items)} queries: train {len(train)}, val {len(val)}, test {len(test)} "
          f"({sum(1 for _, g, _ in test if g.is_no_tool)} no tool, {sum(1 for _, g, _ in test if g.is_multi)} "
          f"multi-tool)", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="encoder-routing-"))
    overrides = parse_overrides(["data.max_length=48", "optim.epochs=6"] + (["optim.epochs=1"] if args.quick else [])
                                + args.set)
    config = load_student_config(None, overrides, student="encoder")
    metrics = train_encoder([(t, g) for t, g, _ in train], [(t, g) for t, g, _ in val], catalog, config,
                            scratch / "encoder")
    print(f"encoder trained in {metrics['train_seconds']:.0f} s on CPU ({metrics['epochs_run']} epochs, best "
          f"{metrics['best_epoch']}; head {metrics['head']}, {metrics['outputs']} outputs)", flush=True)
    examples = [(t, g) for t, g, _ in train]
    trained_in: dict[str, float | None] = {"encoder": metrics["train_seconds"], "regex (keyword)": 0.0}
    routers = {"encoder": EncoderRouter(scratch / "encoder"), "regex (keyword)": make_baseline("keyword", catalog)}
    t0 = time.perf_counter()
    routers["regex (+mined keywords)"] = make_baseline("keyword", catalog, examples=examples)
    trained_in["regex (+mined keywords)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    routers["majority"] = make_baseline("majority", catalog, examples=examples)
    trained_in["majority"] = time.perf_counter() - t0
    for spec in args.router:  # any other router eval can build without a database
        routers[spec] = get_router(None, spec, catalog=catalog)
        trained_in[spec] = None

    students: list[tuple[str, int, object, object]] = []  # (name, steps, db, run_id)
    if not args.no_student:
        from tooldistill.train import build_tiny_model

        steps_list = [int(s) for s in (args.student_steps or ("20" if args.quick else DEFAULT_STEPS)).split(",")]
        t0 = time.perf_counter()
        base = build_tiny_model(scratch / "tiny", catalog=catalog)
        print(f"tiny base model built offline in {time.perf_counter() - t0:.0f} s (random-initialised Qwen2, 2 layers, "
              f"hidden 64)", flush=True)
        for steps in steps_list:
            db, result, wall = train_student(train, val, catalog, steps=steps, workdir=scratch / "student",
                                             base_model=base)
            m = result.metrics
            name = f"tiny LLM student, {m['steps']} steps"
            print(f"{name}: run {result.run_id} trained in {wall:.0f} s (trainer {m['train_runtime_s']:.0f} s; budget "
                  f"{steps} steps, {'stopped early' if m['stopped_early'] else 'ran all'}, best step {m['best_step']}, "
                  f"eval loss {m['eval_loss']:.3f}; {m['precision']['dtype']} LoRA on {m['precision']['device']}, "
                  f"4-bit {m['precision']['load_in_4bit']})", flush=True)
            students.append((name, steps, db, result.run_id))
            trained_in[name] = wall

    width = 32
    print(f"\n{'router':{width}s} " + " ".join(f"{r:24s}" for r in RATES) + " parsed  trained in  routed in")

    def row(name: str, router) -> None:
        m, seconds = score(router, test, catalog, args.resamples)
        train_s = trained_in.get(name)
        parsed = m["rates"]["parsed"]["value"]
        print(f"{name:{width}s} " + " ".join(f"{fmt(m['rates'][r]):24s}" for r in RATES)
              + f" {'n/a' if parsed is None else f'{100 * parsed:.0f}%':>6s} "
              + f"{'-' if train_s is None else f'{train_s:.1f} s':>10s}  {seconds:.2f} s", flush=True)

    row("encoder", routers["encoder"])
    if students:
        import torch

        torch.set_num_threads(1)  # tiny matmuls: one thread (notes/training-on-cpu.md), as training ran
        for name, _steps, db, run_id in students:
            row(name, get_router(db, f"run:{run_id}", catalog=catalog))  # what `eval run --run ID` loads
    for name in ("regex (keyword)", "regex (+mined keywords)", "majority", *args.router):
        row(name, routers[name])
    print(f"(n = {len(test)} test rows, 95% bootstrap intervals, {args.resamples} resamples; parsed: outputs eval "
          f"could read as a label; routed {EVAL_BATCH} queries a batch on this CPU)")
    if students:
        print("(tiny LLM student: tooldistill train run -c configs/tiny-cpu.yaml on the same train/val rows, the "
              "'QLoRA' student kind run as fp32 LoRA because bitsandbytes 4-bit QLoRA needs CUDA; a random-"
              "initialised 2-layer model, so it shows the pipeline, not what a pretrained Qwen2.5 student reaches)")
    print("(fully_correct needs arguments: n/a in spirit for the encoder, which picks tools only; an LLM student "
          "can fill them once the encoder picked the tool)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
