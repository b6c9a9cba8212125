"""`tooldistill distill` commands: run the teacher over the queue, and see where it stands."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOpt, err, out, print_json, state

app = typer.Typer(no_args_is_help=True, help="Label queries with the Gemini teacher: a durable job queue over a "
                  "quota-aware pool of keys; stop, kill or resume it at any moment.")

PLAIN_EVERY_S = 10.0


class _Display:
    """Draws runner events: a live panel on a TTY, a plain line every few seconds otherwise."""

    def __init__(self, *, quiet: bool):
        self.quiet, self.tty = quiet, err.is_terminal
        self.live = None
        self.last_plain = 0.0

    def __enter__(self) -> "_Display":
        if self.tty and not self.quiet:
            from rich.live import Live

            self.live = Live(console=err, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, event) -> None:
        info = event.info
        kind = info.get("kind")
        if kind == "key_invalid":
            err.print(f"[bold red]{event.message}[/bold red]", highlight=False)
        elif kind == "waiting" and not self.quiet:
            until = time.strftime("%H:%M:%S", time.localtime(info["resets_at"]))
            err.print(f"every bucket is exhausted; waiting until {until} for the daily reset (Ctrl-C stops)")
        elif kind == "stopping" and not self.quiet:
            err.print(f"stopping: letting {info['in_flight']} in-flight request(s) finish "
                      "(Ctrl-C again abandons them)")
        if self.quiet:
            return
        if self.live is not None:
            self.live.update(_panel(event))
        elif kind in ("progress", "done") and (time.monotonic() - self.last_plain >= PLAIN_EVERY_S or kind == "done"):
            self.last_plain = time.monotonic()
            err.print(_plain(event), highlight=False)


def _plain(event) -> str:
    info = event.info
    reqs = " ".join(f"{k}={v}" for k, v in sorted(info["requests"].items())) or "none"
    busy = [f"{b['bucket']}={b['state']}" for b in info["buckets"] if b["state"] != "ready"]
    return (f"distill: {event.done}/{event.total} jobs done ({info['labels']} labels, {info['rejected']} rejected, "
            f"{info['failed'] + info['dead']} failed), {info['in_flight']} in flight; requests {reqs}"
            + (f"; {', '.join(busy)}" if busy else ""))


def _panel(event):
    from rich.console import Group
    from rich.progress_bar import ProgressBar

    info = event.info
    table = Table("bucket", "state", "until", "today", "rpm", "rpd", box=None, pad_edge=False)
    for b in info["buckets"]:
        until = time.strftime("%H:%M:%S", time.localtime(b["until"])) if b["until"] else ""
        color = {"ready": "green", "cooling": "yellow", "exhausted": "red"}.get(b["state"], "white")
        state_ = "[red]keys invalid[/red]" if b["invalid_slots"] == b["slots"] else f"[{color}]{b['state']}[/{color}]"
        table.add_row(b["bucket"], state_, until, str(b["requests_today"]), str(b["rpm"] or "-"),
                      str(b["rpd"] or "-"))
    reqs = "  ".join(f"{k} {v}" for k, v in sorted(info["requests"].items())) or "no requests yet"
    head = (f"[bold]distill[/bold] {event.done}/{event.total} jobs  labels {info['labels']}  rejected "
            f"{info['rejected']}  failed {info['failed'] + info['dead']}  cache hits {info['cache_hits']}  "
            f"in flight {info['in_flight']}")
    lines = Table.grid()  # a ProgressBar inside a plain Group runs into the next line
    lines.add_row(ProgressBar(total=max(event.total or 1, 1), completed=event.done, width=60))
    lines.add_row(f"requests: {reqs}")
    return Group(head, lines, table)


def _summary_table(summary) -> Table:
    table = Table("what", "count", title="distill run", show_header=False)
    rows = [("labels accepted", summary.labels), ("labels rejected (with reason)", summary.rejected),
            ("jobs failed (bad request)", summary.failed), ("jobs dead (max attempts)", summary.dead),
            ("answers from the cache", summary.cache_hits), ("requests paid", summary.paid)]
    rows += [(f"requests: {k}", v) for k, v in sorted(summary.requests.items())]
    rows += [("jobs still pending", summary.pending), ("leases reclaimed", summary.reclaimed),
             ("elapsed", f"{summary.elapsed_s:.1f}s")]
    for what, n in rows:
        table.add_row(what, f"{n:,}" if isinstance(n, int) else n)
    return table


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated teacher models "
                                               "(default: gemini-2.5-flash,gemini-2.5-flash-lite).")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=0, help="Requests per minute per project and model "
                                            "(0: no limit; default: the free tier's).")] = None,
    rpd: Annotated[int | None, typer.Option("--rpd", min=0, help="Requests per day per project and model "
                                            "(0: no limit; default: the free tier's).")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1,
                                                    help="Requests in flight at once.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1,
                                              help="Take at most this many jobs in this run.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="A proxy, gateway or stand-in server "
                                                 "(env: GEMINI_BASE_URL).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="When every quota is used up, sleep until the daily reset "
                                       "and carry on.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Per-request timeout in seconds.")] = None,
    max_attempts: Annotated[int | None, typer.Option("--max-attempts", min=1,
                                                     help="Attempts before a job is dead.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="First put failed and dead jobs back in "
                                               "the queue.")] = False,
    day_seconds: Annotated[float | None, typer.Option("--day-seconds", hidden=True,
                                                      help="Length of a quota day (tests, demos).")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Use Gemini Batch Mode (paid tier, 50% price): submit, "
                                        "poll and ingest; see 'distill batches'.")] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="With --batch: requests per "
                                                   "batch at most (default 1000).")] = None,
    poll_every: Annotated[float | None, typer.Option("--poll-every", min=0, help="With --batch: seconds between "
                                                     "polls (default 30).")] = None,
    json_: JsonOpt = False,
) -> None:
    r"""Label every query that has no teacher label yet; stop, kill or resume it at any moment.

    Keys come from GEMINI_API_KEYS=KEY\[@PROJECT],... (environment or .env). Exit 75 when every quota is used up
    until the daily reset (the message says when), 130 after Ctrl-C; either way run it again to resume.

    Example: tooldistill distill run --concurrency 8 --wait
    """
    if batch:
        from .distill_scale import run_batch_cmd

        return run_batch_cmd(ctx, models=models, base_url=base_url, timeout=timeout, max_attempts=max_attempts,
                             retry_failed=retry_failed, batch_size=batch_size, poll_every=poll_every, json_=json_)
    from ..distill import run_workspace
    from ..errors import Interrupted, NeedsKeyError, QuotaExhausted

    st = state(ctx)
    db = st.open_db()
    overrides = dict(models=models.split(",") if models else None, rpm=rpm, rpd=rpd, concurrency=concurrency,
                     base_url=base_url, timeout_s=timeout, max_attempts=max_attempts, day_seconds=day_seconds)
    summary = None
    try:
        with _Display(quiet=st.quiet) as display:
            summary = run_workspace(st.workspace, db, progress=display, wait=wait, limit=limit,
                                    retry_failed=retry_failed, handle_signals=True, **overrides)
    except (QuotaExhausted, Interrupted, NeedsKeyError) as exc:
        if getattr(exc, "summary", None) is not None:
            _print_summary(exc.summary, json_)
        raise
    _print_summary(summary, json_)


def _print_summary(summary, json_: bool) -> None:
    if json_:
        print_json(summary.to_dict())
    else:
        out.print(_summary_table(summary))
    for p in summary.problems:
        err.print(f"{p['jobs']:,} job(s) {p['state']}: {p['error']}", highlight=False)
    if summary.problems:
        err.print("retry them with: tooldistill distill run --retry-failed")


@app.command("status")
def status_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the queue by purpose and state, buckets and keys with their states, and requests by outcome.

    Reads the database only, so it works while a run goes on.

    Example: tooldistill distill status --json
    """
    from ..distill import distill_status

    report = distill_status(state(ctx).open_db(create=False))
    if json_:
        print_json(report)
        return
    queue = Table("purpose", "pending", "leased", "done", "failed", "dead", title="queue")
    for purpose, counts in sorted(report["queue"].items()):
        queue.add_row(purpose, *(f"{counts[k]:,}" for k in ("pending", "leased", "done", "failed", "dead")))
    out.print(queue)
    labels = ", ".join(f"{p}: {c['accepted']:,} accepted, {c['rejected']:,} rejected"
                       for p, c in sorted(report["labels"].items())) or "none yet"
    out.print(f"teacher labels: {labels}")
    buckets = Table("bucket", "state", "until", "today", "rpm", "rpd", title="buckets (project:model)")
    for b in report["buckets"]:
        until = time.strftime("%m-%d %H:%M:%S", time.localtime(b["until"])) if b["until"] else ""
        buckets.add_row(b["bucket"], b["state"], until, str(b["requests_today"]),
                        str(b["rpm"] if b["rpm"] is not None else "-"), str(b["rpd"] if b["rpd"] is not None else "-"))
    out.print(buckets)
    for b in report["buckets"]:
        if b["reason"]:
            out.print(f"{b['bucket']}: {b['state']} until {b['until_local']}: {b['reason']}")
    bad = [s for s in report["slots"] if s["state"] != "ready"]
    for s in bad:
        out.print(f"key {s['fingerprint']} ({s['env_var']}) {s['model']}: {s['state']} {s['reason'] or ''}")
    req = report["requests"]
    outcomes = ", ".join(f"{k} {v:,}" for k, v in req["by_outcome"].items()) or "none"
    out.print(f"requests: {req['total']:,} ({req['paid']:,} paid): {outcomes}; last at {req['last_request'] or '-'}")
    out.print(f"cache: {report['cache']['entries']:,} answers stored, {report['cache']['hits']:,} jobs served from it")
    for e in report["recent_errors"]:
        err.print(f"{e['jobs']:,} job(s) {e['state']}: {e['error']}")
