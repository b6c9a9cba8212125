"""`tooldistill eval` commands: run, baselines, score, show, compare, list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import InputError
from .common import ArgsRunOpt, JsonOpt, info, out, print_json, progress_bar, state

app = typer.Typer(no_args_is_help=True, help="Evaluate routers noise-aware: metrics with intervals, baselines, "
                  "paired comparisons, reports.")

SplitOpt = Annotated[str, typer.Option("--split", help="Dataset split to evaluate, VERSION:SPLIT (VERSION alone = "
                                       "its test split; 'latest' works).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Queries per routing (generation) batch.")]
ResamplesOpt = Annotated[int, typer.Option("--resamples", min=0, help="Bootstrap resamples per interval (0: none).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Bootstrap seed.")]
RunsDirOpt = Annotated[Optional[Path], typer.Option("--runs-dir", help="Folder of run folders (default: "
                                                    "runs/ in the workspace).")]
HEADLINE_ROWS = ("tool_accuracy", "fully_correct", "args_exact", "arg_f1", "false_tool_call", "no_tool_recall",
                 "multi_tool_exact", "valid_json", "schema_valid")


def _runs_dir(ctx: typer.Context, runs_dir: Path | None) -> Path:
    return runs_dir if runs_dir is not None else state(ctx).workspace.root / "runs"


def summary_table(summary: dict, *, title: str) -> Table:
    """Headline rates (rows) against each label view (columns), value [95% interval]."""
    from ..eval.report import VIEW_TITLES

    views = summary["views"]
    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    for v in views:
        table.add_column(f"{VIEW_TITLES.get(v, v)}\nn={views[v]['n']}", no_wrap=True)
    for name in HEADLINE_ROWS:
        table.add_row(name, *(_compact(views[v]["rates"].get(name)) for v in views))
    return table


def _compact(rate: dict | None) -> str:
    """``93.1%`` over ``[92–94]``: the interval in whole points, on its own line, keeps four views in 80 columns."""
    if not rate or rate.get("value") is None:
        return "n/a"
    text = f"{100 * rate['value']:.1f}%"
    if rate.get("lo") is not None:
        text += f"\n[{100 * rate['lo']:.0f}–{100 * rate['hi']:.0f}]"
    return text


def _print_summary(report_or_summary: dict, *, title: str) -> None:
    from ..eval.metrics import format_rate

    summary = report_or_summary
    if "metrics" in summary and "rates" in summary["metrics"]:  # a full report
        summary = {"views": {v: {"n": m["n"], "rates": m["rates"]} for v, m in summary["views"].items()},
                   "latency": summary["metrics"]["latency"], "label_error": summary.get("label_error", {}).get(
                       "estimate", {}) | {"method": summary.get("label_error", {}).get("method")}}
    out.print(summary_table(summary, title=title))
    lat = summary.get("latency") or {}
    if lat.get("p50_ms") is not None:
        qps = f", {lat['throughput_qps']:.1f} queries/s" if lat.get("throughput_qps") else ""
        out.print(f"latency p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms{qps}")
    le = summary.get("label_error") or {}
    if le.get("value") is not None:
        out.print(f"test-label error estimate: {format_rate(le)} ({le['method']})")


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    split: SplitOpt,
    run: Annotated[Optional[str], typer.Option("--run", help="A train run id: evaluate its adapter.")] = None,
    args_run: ArgsRunOpt = None,
    merged: Annotated[bool, typer.Option("--merged", help="With --run: evaluate the merged model.")] = False,
    model: Annotated[Optional[Path], typer.Option("--model", help="A model folder (causal LM).")] = None,
    adapter: Annotated[Optional[Path], typer.Option("--adapter", help="With --model: a PEFT adapter folder.")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="majority, keyword (alias regex).")] = None,
    teacher: Annotated[bool, typer.Option("--teacher", help="The teacher itself: its stored answers (no quota "
                                          "used), or with --teacher-model a model asked now.")] = False,
    teacher_model: Annotated[Optional[str], typer.Option("--teacher-model", help="Ask this Gemini model now "
                                                         "(uses API quota; keys from GEMINI_API_KEYS).")] = None,
    teacher_prompt: Annotated[Optional[str], typer.Option("--teacher-prompt", help="With --teacher-model: a prompt "
                              "file or a recorded version ('distill prompt versions'); default: the workspace's "
                              "active prompt, as 'distill run' uses it.")] = None,
    batch_size: BatchOpt = 16,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="LLM generation budget.")] = 128,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N queries.")] = None,
    resamples: ResamplesOpt = 1000,
    seed: SeedOpt = 0,
    runs_dir: RunsDirOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Route a split with one router, store every prediction, and write a noise-aware report.

    Example: tooldistill eval run --split latest:test --baseline keyword
    """
    from ..eval import RouterSpec, run_eval

    chosen = [x for x in (run, model, baseline, (teacher or teacher_model) or None) if x]
    if len(chosen) != 1:
        raise InputError("choose exactly one target: --run RUN, --model PATH, --baseline NAME or --teacher")
    if adapter and not model:
        raise InputError("--adapter goes with --model PATH")
    spec = RouterSpec.trained(run, args_run=args_run, merged=merged) or (
        RouterSpec("model", model=str(model), adapter=str(adapter) if adapter else None) if model
        else RouterSpec("baseline", baseline) if baseline
        else RouterSpec("teacher", teacher_model, prompt=teacher_prompt))
    db = state(ctx).open_db(create=False)
    with progress_bar(ctx) as progress:
        report = run_eval(db, split, spec, runs_dir=_runs_dir(ctx, runs_dir), batch_size=batch_size,
                          max_new_tokens=max_new_tokens, limit=limit, resamples=resamples, seed=seed,
                          on_progress=progress)
    if json_:
        print_json(report)
        return
    _print_summary(report, title=f"{report['target']} on {split} ({report['run_id']})")
    info(f"report: {Path(report['files'][1]) if report.get('files') else '(not written)'}", ctx)


@app.command("baselines")
def baselines_cmd(
    ctx: typer.Context,
    split: SplitOpt,
    resamples: ResamplesOpt = 1000,
    seed: SeedOpt = 0,
    runs_dir: RunsDirOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate every baseline (majority, keyword) on a split, one eval run each.

    Example: tooldistill eval baselines --split latest:test
    """
    from ..eval import BASELINES, RouterSpec, run_eval

    db = state(ctx).open_db(create=False)
    reports = [run_eval(db, split, RouterSpec("baseline", name), runs_dir=_runs_dir(ctx, runs_dir),
                        resamples=resamples, seed=seed) for name in BASELINES]
    if json_:
        print_json({r["target"]: {"run_id": r["run_id"], "views": {v: m["rates"] for v, m in r["views"].items()}}
                    for r in reports})
        return
    for r in reports:
        _print_summary(r, title=f"{r['target']} on {split} ({r['run_id']})")


@app.command("score")
def score_cmd(
    ctx: typer.Context,
    predictions: Annotated[Path, typer.Option("--predictions", help="JSONL of {id or text, raw}.")],
    gold: Annotated[Path, typer.Option("--gold", help="JSONL in the 'data export' format.")],
    catalog: Annotated[Optional[Path], typer.Option("--catalog", help="Catalogue file (default: the "
                                                    "workspace's, else the packaged one).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Also write report.md/json and charts here.")] = None,
    resamples: ResamplesOpt = 1000,
    seed: SeedOpt = 0,
    json_: JsonOpt = False,
) -> None:
    """Grade a predictions file against a gold file (routers built anywhere, scored the same way).

    Example: tooldistill eval score --predictions preds.jsonl --gold test.jsonl --json
    """
    from ..catalog import load_catalog
    from ..eval import score_files

    cat = load_catalog(catalog) if catalog else _workspace_catalog(ctx)
    report = score_files(predictions, gold, cat, resamples=resamples, seed=seed)
    if out_dir is not None:
        from ..eval.report import write_eval_report

        report["files"] = [str(p) for p in write_eval_report(report, out_dir)]
    if json_:
        print_json(report)
        return
    _print_summary(report, title=f"{predictions.name} vs {gold.name}")
    info(f"matched on {report['matched_on']}; {report['missing']} gold rows without a prediction, "
         f"{report['unmatched']} predictions without a gold row", ctx)


def _workspace_catalog(ctx: typer.Context):
    from ..catalog import load_catalog

    st = state(ctx)
    if st.workspace.db_path.exists():
        from ..db import get_catalog

        return get_catalog(st.open_db(create=False))
    return load_catalog(st.workspace.catalog_path) if st.workspace.catalog_path else load_catalog()


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help="Eval run id (or a unique prefix).")],
    rescore: Annotated[bool, typer.Option("--rescore", help="Score again against the labels as they are now "
                                          "(after later audits/reviews) and rewrite the report.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Print an eval run's summary table: headline rates per label view, latency, label-error estimate.

    Example: tooldistill eval show eval-20261122-153012-9f3a --rescore
    """
    from ..eval import get_run, score_run

    db = state(ctx).open_db(create=False)
    if rescore:
        score_run(db, run)
    row = get_run(db, run, kind="eval")
    summary = row["metrics"].get("summary")
    if json_:
        print_json({k: row[k] for k in ("id", "status", "created_at", "finished_at", "dataset_version",
                                        "parent_run_id", "artifact_path", "config", "metrics")})
        return
    if summary is None:
        out.print(f"run {row['id']} is {row['status']} and has no scores yet")
        return
    _print_summary(summary, title=f"{row['config'].get('target')} ({row['id']}, {row['status']})")
    info(f"report: {row['metrics'].get('report')}", ctx)


@app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Eval run A (e.g. the base model or a baseline).")],
    b: Annotated[str, typer.Argument(help="Eval run B (e.g. the tuned student).")],
    view: Annotated[str, typer.Option("--view", help="Labels to grade against: split, teacher, corrected, "
                                      "clean.")] = "split",
    resamples: ResamplesOpt = 1000,
    seed: SeedOpt = 0,
    json_: JsonOpt = False,
) -> None:
    """Compare two eval runs on their shared queries: paired differences, intervals, McNemar's test.

    Example: tooldistill eval compare eval-base eval-tuned --view corrected
    """
    from ..eval import compare_runs, format_rate

    result = compare_runs(state(ctx).open_db(create=False), a, b, view=view, resamples=resamples, seed=seed)
    if json_:
        print_json(result)
        return
    table = Table("metric", f"A {result['a']['target']}", f"B {result['b']['target']}", "B - A [95%]",
                  "A only", "B only", "McNemar p", title=f"paired on {result['n']} queries, {view} labels")
    for name, r in result["metrics"].items():
        d = r["diff"]
        diff = "n/a" if d["value"] is None else f"{100 * d['value']:+.1f} pts" + (
            f" [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]" if d.get("lo") is not None else "")
        mc = r["mcnemar"]
        table.add_row(name, format_rate(r["a"]), format_rate(r["b"]), diff, str(mc["a_only"]), str(mc["b_only"]),
                      f"{mc['p_value']:.3g}")
    out.print(table)
    info(f"report: {result['files'][0]}" if result.get("files") else "", ctx)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many recent runs.")] = 20,
    json_: JsonOpt = False,
) -> None:
    """List recent eval runs with their target, split and headline rates.

    Example: tooldistill eval list --json
    """
    from ..eval import format_rate, list_eval_runs

    runs = list_eval_runs(state(ctx).open_db(create=False), limit=limit)
    if json_:
        print_json(runs)
        return
    table = Table("run", "status", "target", "split", "n", "tool acc. (split)", "fully correct (corrected)")
    for r in runs:
        views = (r["metrics"].get("summary") or {}).get("views", {})
        table.add_row(r["id"], r["status"], str(r["config"].get("target")),
                      f"{str(r['dataset_version'])[:12]}:{r['config'].get('split')}",
                      str((r["metrics"].get("generation") or {}).get("n", "")),
                      format_rate((views.get("split") or {}).get("rates", {}).get("tool_accuracy")),
                      format_rate((views.get("corrected") or {}).get("rates", {}).get("fully_correct")))
    out.print(table)


@app.command("board")
def board_cmd(
    ctx: typer.Context,
    runs: Annotated[list[str], typer.Argument(help="Eval runs to put side by side (ids or unique prefixes).")],
    rescore: Annotated[bool, typer.Option("--rescore", help="Score each run against the labels as they are "
                                          "now first.")] = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Write board.md/json/png here (default: "
                                                    "runs/board/ in the workspace).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Put routers side by side: each run's headline rates against every label view, with intervals.

    Example: tooldistill eval board eval-majority eval-keyword eval-teacher eval-student
    """
    from ..eval import leaderboard
    from ..eval.report import VIEW_TITLES, write_board

    board = leaderboard(state(ctx).open_db(create=False), runs, rescore=rescore)
    board["files"] = [str(p) for p in write_board(board, out_dir or _runs_dir(ctx, None) / "board")]
    if json_:
        print_json(board)
        return
    views = [v for v in ("split", "teacher", "corrected", "clean") if any(v in r["views"] for r in board["runs"])]
    for metric in ("tool_accuracy", "fully_correct"):
        table = Table(title=metric)
        table.add_column("router", overflow="fold")
        for v in views:
            table.add_column(VIEW_TITLES.get(v, v), no_wrap=True)
        for r in board["runs"]:
            table.add_row(str(r["target"]), *(_compact(r["views"].get(v, {}).get("rates", {}).get(metric))
                                              for v in views))
        out.print(table)
    info(f"board: {board['files'][0]}", ctx)
