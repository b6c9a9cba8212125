"""`tooldistill distill` commands: run the teacher over the queue, and see where it stands."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOpt, err, out, print_json, state
from .distill_view import DEFAULT_LOG_EVERY_S, RunDisplay, human_duration, print_summary

app = typer.Typer(no_args_is_help=True, help="Label queries with the Gemini teacher: a durable job queue over a "
                  "quota-aware pool of keys; stop, kill or resume it at any moment.")

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
    pack: Annotated[int | None, typer.Option("--pack", min=1, max=50, help="Queries per request (structured "
                                             "output); free tiers count requests per day, so this multiplies "
                                             "labels per day.")] = None,
    votes: Annotated[int, typer.Option("--votes", min=1, max=9, help="Teacher labels wanted per query: the label "
                                       "plus votes from the other models (samples at temperature 1), for 'curate "
                                       "adjudicate'.")] = 1,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Prompt file (default: prompt.yaml in the "
                                               "workspace when present; see 'distill prompt show').")] = None,
    examples_from_gold: Annotated[int | None, typer.Option("--examples-from-gold", min=0, help="Few-shot examples "
                                                           "taken from gold-labeled queries.")] = None,
    log_every: Annotated[float, typer.Option("--log-every", min=1, help="Off a terminal: seconds between progress "
                                             "lines.")] = DEFAULT_LOG_EVERY_S,
    json_: JsonOpt = False,
) -> None:
    r"""Label every query that has no teacher label yet; stop, kill or resume it at any moment.

    Keys come from GEMINI_API_KEYS=KEY\[@PROJECT],... (environment or .env). Exit 75 when every quota is used up
    until the daily reset (the message says when), 130 after Ctrl-C; either way run it again to resume.

    Example: tooldistill distill run --pack 8 --wait
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
                     base_url=base_url, timeout_s=timeout, max_attempts=max_attempts, day_seconds=day_seconds,
                     pack=pack)
    try:
        with RunDisplay(quiet=st.quiet, log_every=log_every) as display:
            summary = run_workspace(st.workspace, db, progress=display, wait=wait, limit=limit,
                                    retry_failed=retry_failed, handle_signals=True, votes=votes, prompt_path=prompt,
                                    examples_from_gold=examples_from_gold, **overrides)
    except (QuotaExhausted, Interrupted, NeedsKeyError) as exc:
        if getattr(exc, "summary", None) is not None:
            print_summary(exc.summary, json_)
        raise
    print_summary(summary, json_)


@app.command("status")
def status_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the queue by purpose and state, buckets and keys with their states, and requests by outcome.

    Also the recent rate (labels per minute over the last 10 minutes), an ETA that waits out daily limits,
    tokens and their cost at list prices, and Batch Mode jobs. Reads the database only, so it works while a run
    goes on.

    Example: tooldistill distill status --json
    """
    from ..distill import distill_status, load_settings, make_clock

    st = state(ctx)
    db = st.open_db(create=False)
    settings = load_settings(st.workspace)
    report = distill_status(db, clock=make_clock(settings.day_seconds), prices=settings.prices)
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
    prog, cost = report["progress"], report["cost"]
    rate = prog["labels_per_min"]
    out.print(f"rate: {rate if rate is not None else '-'} labels/min (last 10 min); {prog['pending']:,} pending; "
              f"ETA {human_duration(prog['eta_s'])}; tokens {req['prompt_tokens']:,} in + {req['output_tokens']:,} "
              f"out; est. cost ${cost['usd']:.4f} (list prices)")
    if report["batches"]:
        b = report["batches"]
        states = ", ".join(f"{k} {v}" for k, v in b["by_state"].items())
        out.print(f"batches: {b['batches']} ({states}); {b['labels']:,} labels; ${b['cost_usd']:.4f} at the batch "
                  "price (see 'distill batches')")
    for e in report["recent_errors"]:
        err.print(f"{e['jobs']:,} job(s) {e['state']}: {e['error']}")


from . import distill_ops as _distill_ops  # noqa: E402,F401  (registers retry, plan and prompt on this app)
