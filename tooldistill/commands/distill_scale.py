"""`tooldistill distill synthesize | coverage | batches` and the body of `distill run --batch`.

Registered on the distill sub-app; each command parses, calls one library function and renders.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOpt, err, out, print_json, state
from .distill import app


def _split(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


class _Lines:
    """Progress events as plain stderr lines (batch and synthesis runs are slow, one line per step is enough)."""

    def __init__(self, *, quiet: bool, every_s: float = 5.0):
        import time

        self.quiet, self.every_s, self.time, self.last = quiet, every_s, time, 0.0

    def __call__(self, event) -> None:
        kind = event.info.get("kind")
        if kind == "key_invalid":
            err.print(f"[bold red]{event.message}[/bold red]", highlight=False)
            return
        if self.quiet or kind == "done":
            return
        now = self.time.monotonic()
        if kind in ("progress", "poll", "waiting") and now - self.last < self.every_s:
            return
        self.last = now
        err.print(event.message or kind, highlight=False)


# ---------------------------------------------------------------- synthesize


@app.command("synthesize")
def synthesize_cmd(
    ctx: typer.Context,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Queries wanted over the whole plan (spread evenly "
                                          "over its cells); omit to resume the plan.")] = None,
    per_cell: Annotated[int | None, typer.Option("--per-cell", min=1, help="Queries wanted per cell instead.")] = None,
    plan: Annotated[str, typer.Option("--plan", help="The coverage plan's name.")] = "default",
    categories: Annotated[str | None, typer.Option("--categories", help="Comma-separated: single, multi, no_tool, "
                                                   "ambiguous, edge (default: all).")] = None,
    styles: Annotated[str | None, typer.Option("--styles", help="Comma-separated: terse, chatty, typos, "
                                               "non_native, specifics (default: all).")] = None,
    tools: Annotated[str | None, typer.Option("--tools", help="Comma-separated tools (default: all).")] = None,
    per_request: Annotated[int | None, typer.Option("--per-request", min=1, max=50, help="Queries asked for per "
                                                    "request (default 10, or [distill.synthesize]).")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0, max=2, help="Sampling temperature "
                                                      "(default 1.0, or [distill.synthesize]).")] = None,
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated teacher models.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, help="Requests in flight.")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=0, help="Requests per minute per project and model.")] = None,
    rpd: Annotated[int | None, typer.Option("--rpd", min=0, help="Requests per day per project and model.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="A stand-in server (env: GEMINI_BASE_URL).")]
    = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Send at most this many requests.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="When every quota is used up, sleep until the reset.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Have the teacher write new queries for the cells of a coverage plan, deduplicated as they arrive.

    Each cell is a (tool, category, style); duplicates of stored queries (exact or near) are counted, not
    stored. New queries are unlabeled (their cell's tool is kept as a hint); 'distill run' labels them.
    Run it again to resume; 'distill coverage' shows where each cell stands.

    Example: tooldistill distill synthesize --n 2000 --styles terse,chatty,typos
    """
    from ..distill.synthesize import synthesize_workspace
    from ..errors import Interrupted, NeedsKeyError, QuotaExhausted

    st = state(ctx)
    overrides = dict(models=list(_split(models)) if models else None, concurrency=concurrency, rpm=rpm, rpd=rpd,
                     base_url=base_url)
    try:
        summary = synthesize_workspace(st.workspace, st.open_db(), total=n, per_cell=per_cell, plan=plan,
                                       categories=_split(categories), styles=_split(styles),
                                       tools=list(_split(tools) or ()) or None,
                                       synth_overrides=dict(per_request=per_request, temperature=temperature),
                                       progress=_Lines(quiet=st.quiet), wait=wait, limit=limit,
                                       handle_signals=True, **overrides)
    except (QuotaExhausted, Interrupted, NeedsKeyError) as exc:
        if getattr(exc, "summary", None) is not None:
            _synth_summary(exc.summary, json_)
        raise
    _synth_summary(summary, json_)


def _synth_summary(summary, json_: bool) -> None:
    if json_:
        print_json(summary.to_dict())
        return
    table = Table("what", "count", title=f"distill synthesize (plan {summary.plan})", show_header=False)
    rows = [("requests paid", summary.paid), ("queries received", summary.received),
            ("new queries stored", summary.accepted), ("exact duplicates (not stored)", summary.exact_dups),
            ("near duplicates (not stored)", summary.near_dups), ("invalid (empty, too short or long)",
                                                                  summary.invalid),
            ("duplicate rate", f"{summary.dup_rate:.1%}"), ("unusable answers", summary.bad_answers)]
    rows += [(f"cells {k}", v) for k, v in summary.cells.items()]
    rows += [("synthesis jobs pending", summary.pending), ("elapsed", f"{summary.elapsed_s:.1f}s")]
    for what, n in rows:
        table.add_row(what, f"{n:,}" if isinstance(n, int) else n)
    out.print(table)


# ---------------------------------------------------------------- coverage


@app.command("coverage")
def coverage_cmd(
    ctx: typer.Context,
    plan: Annotated[str | None, typer.Option("--plan", help="The plan (default: the only one, or 'default').")]
    = None,
    cells: Annotated[bool, typer.Option("--cells", help="List every cell, not only those below target.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="How many repetitive cells and repeated queries.")] = 10,
    json_: JsonOpt = False,
) -> None:
    """Show synthesized queries per cell against the plan's targets, and where the teacher repeats itself.

    Example: tooldistill distill coverage --cells
    """
    from ..distill.coverage import coverage_report

    report = coverage_report(state(ctx).open_db(create=False), plan=plan, top=top)
    if json_:
        print_json(report)
        return
    t = report["totals"]
    out.print(f"plan {report['plan']}: {t['accepted']:,} of {t['target']:,} queries ({t['missing']:,} missing), "
              f"{t['requests']:,} requests, {t['received']:,} received, {t['duplicates']:,} duplicates "
              f"({t['dup_rate']:.1%}: {t['exact_dups']:,} exact, {t['near_dups']:,} near), {t['invalid']:,} invalid; "
              f"cells: {t['cells_full']} full, {t['cells_open']} open, {t['cells_saturated']} saturated")
    for key in ("by_category", "by_style", "by_tool"):
        name = key.removeprefix("by_")
        table = Table(name, "target", "accepted", "received", "dup rate", title=f"by {name}")
        for row in report[key]:
            table.add_row(row[name], f"{row['target']:,}", f"{row['accepted']:,}", f"{row['received']:,}",
                          f"{row['dup_rate']:.1%}")
        out.print(table)
    shown = [c for c in report["cells"] if cells or c["missing"] or c["state"] != "full"]
    if shown:
        table = Table("cell (tool|category|style)", "target", "accepted", "requests", "dups", "dup rate", "state",
                      title="cells" if cells else "cells below target")
        for c in shown:
            table.add_row(c["id"].split(":", 1)[1], str(c["target"]), str(c["accepted"]), str(c["requests"]),
                          str(c["duplicates"]), f"{c['dup_rate']:.0%}", c["state"])
        out.print(table)
    if report["repetitive_cells"]:
        table = Table("cell", "received", "duplicates", "dup rate", title="where the teacher repeats itself")
        for c in report["repetitive_cells"]:
            table.add_row(c["cell"], str(c["received"]), str(c["duplicates"]), f"{c['dup_rate']:.0%}")
        out.print(table)
    if report["repeated_queries"]:
        table = Table("times", "cells", "query", title="queries the teacher sent again")
        for q in report["repeated_queries"]:
            table.add_row(str(q["times"]), str(q["cells"]), q["text"])
        out.print(table)


# ---------------------------------------------------------------- batch mode


def run_batch_cmd(ctx: typer.Context, *, models: str | None = None, base_url: str | None = None,
                  timeout: float | None = None, max_attempts: int | None = None, retry_failed: bool = False,
                  batch_size: int | None = None, poll_every: float | None = None, json_: bool = False) -> None:
    """The body of ``distill run --batch``: submit pending jobs as Batch Mode jobs, poll, ingest, render."""
    from ..distill.batch import BatchModeUnavailable, run_batches_workspace
    from ..errors import Interrupted, NeedsKeyError

    st = state(ctx)
    overrides = dict(models=models.split(",") if models else None, base_url=base_url, timeout_s=timeout,
                     max_attempts=max_attempts)
    try:
        summary = run_batches_workspace(st.workspace, st.open_db(), progress=_Lines(quiet=st.quiet),
                                        batch_overrides=dict(max_requests=batch_size, poll_s=poll_every),
                                        retry_failed=retry_failed, handle_signals=True, **overrides)
    except (BatchModeUnavailable, Interrupted, NeedsKeyError) as exc:
        if getattr(exc, "summary", None) is not None:
            _batch_summary(exc.summary, json_)
        raise
    _batch_summary(summary, json_)


def _batch_summary(summary, json_: bool) -> None:
    if json_:
        print_json(summary.to_dict())
        return
    table = Table("what", "count", title="distill run --batch", show_header=False)
    rows = [("batches submitted", summary.submitted), ("batches found again after a stop", summary.adopted),
            ("batches ingested", summary.ingested), ("labels accepted", summary.labels),
            ("labels rejected (with reason)", summary.rejected), ("failed lines", summary.line_errors),
            ("jobs back to the queue", summary.requeued), ("answers from the cache", summary.cache_hits),
            ("cost at the batch price", f"${summary.cost_usd:.4f}"),
            ("same tokens at the standard price", f"${summary.standard_cost_usd:.4f}"),
            ("API calls", ", ".join(f"{k} {v}" for k, v in sorted(summary.http.items())) or "none"),
            ("batches still live", summary.live), ("jobs still pending", summary.pending),
            ("elapsed", f"{summary.elapsed_s:.1f}s")]
    for what, n in rows:
        table.add_row(what, f"{n:,}" if isinstance(n, int) else n)
    out.print(table)
    if summary.stopped == "waves" and summary.pending:
        err.print(f"{summary.pending:,} job(s) are still pending after {summary.waves} submission waves; run "
                  "'tooldistill distill run --batch' again, or label them online with 'tooldistill distill run'")


@app.command("batches")
def batches_cmd(
    ctx: typer.Context,
    poll: Annotated[bool, typer.Option("--poll", help="Poll the live batches once and ingest the finished ones "
                                       "(submits nothing).")] = False,
    json_: JsonOpt = False,
) -> None:
    """Show every Batch Mode job: state, requests, labels, lines back in the queue, cost at the batch price.

    A stopped or killed 'distill run --batch' leaves its batches running at the API; run it again (or use
    --poll here) to pick them up; nothing is submitted twice.

    Example: tooldistill distill batches --poll
    """
    from ..distill.batch import batch_report, run_batches_workspace

    st = state(ctx)
    db = st.open_db(create=False)
    if poll:
        run_batches_workspace(st.workspace, db, submit=False, wait=False, progress=_Lines(quiet=st.quiet))
    report = batch_report(db)
    if json_:
        print_json(report)
        return
    table = Table("batch", "state", "requests", "labels", "rejected", "failed lines", "requeued", "cost", "polls",
                  title="batches")
    for b in report["batches"]:
        table.add_row(b["id"], b["state"], f"{b['request_count']:,}", f"{b['labels']:,}", f"{b['rejected']:,}",
                      f"{b['line_errors']:,}", f"{b['requeued']:,}", f"${b['cost_usd'] or 0:.4f}", str(b["polls"]))
    out.print(table)
    t = report["totals"]
    states = ", ".join(f"{k} {v}" for k, v in t["by_state"].items()) or "none yet"
    out.print(f"{t['batches']} batch(es) ({states}); {t['labels']:,} labels; cost ${t['cost_usd']:.4f} at the batch "
              f"price (${t['standard_cost_usd']:.4f} online)")
