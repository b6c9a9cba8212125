"""How `distill run` looks while it works: a live panel on a TTY, plain periodic lines in logs, a final summary.

Everything shown comes from the runner's progress events (``info``: counts, rate, ETA, buckets, tokens, cost);
nothing here computes what a library user would need.
"""

from __future__ import annotations

import time

from rich.table import Table

from .common import err, out, print_json

DEFAULT_LOG_EVERY_S = 15.0


def human_duration(seconds: float | None) -> str:
    """``3h05m``, ``4m10s``, ``12s``; ``-`` when unknown; days for long jobs (``2d04h``)."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    d, rem = divmod(seconds, 86_400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d{h:02d}h"
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _cost(info: dict) -> str:
    cost = info.get("cost_usd")
    return "-" if cost is None else f"${cost:.4f}"


class RunDisplay:
    """Draws runner events: a live panel on a TTY, a plain line every ``log_every`` seconds otherwise.

    Args:
        quiet: only errors (a rejected key) and nothing else.
        log_every: seconds between plain lines off a TTY (a log of an unattended run stays readable).
        tty: force the live panel on or off (default: whether stderr is a terminal).
    """

    def __init__(self, *, quiet: bool, log_every: float = DEFAULT_LOG_EVERY_S, tty: bool | None = None):
        self.quiet, self.log_every = quiet, log_every
        self.tty = err.is_terminal if tty is None else tty
        self.live = None
        self.last_plain = 0.0

    def __enter__(self) -> "RunDisplay":
        if self.tty and not self.quiet:
            from rich.live import Live

            self.live = Live(console=err, refresh_per_second=4, transient=False)
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
            self.live.update(panel(event))
        elif kind in ("progress", "done") and (time.monotonic() - self.last_plain >= self.log_every
                                               or kind == "done" or not self.last_plain):
            self.last_plain = time.monotonic()
            err.print(plain_line(event), highlight=False, soft_wrap=True)


def plain_line(event) -> str:
    """One log line: progress, rate, ETA, requests, tokens, cost, and the buckets that are not ready."""
    info = event.info
    reqs = " ".join(f"{k}={v}" for k, v in sorted(info["requests"].items())) or "none"
    busy = [f"{b['bucket']}={b['state']}" for b in info["buckets"] if b["state"] != "ready"]
    left = [b["left_today"] for b in info["buckets"] if b.get("left_today") is not None]
    rate = info.get("labels_per_min")
    return (f"{time.strftime('%H:%M:%S')} distill: {event.done}/{event.total} done ({info['labels']} labels, "
            f"{info['rejected']} rejected, {info['failed'] + info['dead']} failed, {info['pending']} pending), "
            f"{rate if rate is not None else '-'}/min, ETA {human_duration(info.get('eta_s'))}, "
            f"{info['in_flight']} in flight; requests {reqs}"
            + (f"; {sum(left)} left today" if left and len(left) == len(info["buckets"]) else "")
            + f"; tokens {info.get('prompt_tokens', 0):,}+{info.get('output_tokens', 0):,} ({_cost(info)})"
            + (f"; {', '.join(busy)}" if busy else ""))


def panel(event):
    """The live panel: totals, rate and ETA, a progress bar, requests, tokens and cost, and one row per bucket."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar

    info = event.info
    table = Table("bucket (project:model)", "state", "until", "sent today", "left today", "rpm", "rpd", box=None,
                  pad_edge=False)
    for b in info["buckets"]:
        until = time.strftime("%H:%M:%S", time.localtime(b["until"])) if b["until"] else ""
        color = {"ready": "green", "cooling": "yellow", "exhausted": "red"}.get(b["state"], "white")
        state_ = "[red]keys invalid[/red]" if b["invalid_slots"] == b["slots"] else f"[{color}]{b['state']}[/{color}]"
        left = b.get("left_today")
        table.add_row(b["bucket"], state_, until, str(b["requests_today"]), "-" if left is None else str(left),
                      str(b["rpm"] or "-"), str(b["rpd"] or "-"))
    reqs = "  ".join(f"{k} {v}" for k, v in sorted(info["requests"].items())) or "no requests yet"
    rate = info.get("labels_per_min")
    head = (f"[bold]{event.done:,}[/bold]/{event.total:,} done   [green]labels {info['labels']:,}[/green]   "
            f"[yellow]rejected {info['rejected']:,}[/yellow]   [red]failed {info['failed'] + info['dead']:,}[/red]   "
            f"pending {info['pending']:,}   cache hits {info['cache_hits']:,}")
    speed = (f"{rate if rate is not None else '-'} labels/min   ETA {human_duration(info.get('eta_s'))}   "
             f"elapsed {human_duration(info.get('elapsed_s'))}   in flight {info['in_flight']}"
             + (f"   pack {info['pack']} ({info['packed_requests']:,} packed, {info['unpacked']:,} asked alone)"
                if info.get("pack", 1) > 1 else ""))
    money = (f"tokens {info.get('prompt_tokens', 0):,} in + {info.get('output_tokens', 0):,} out   "
             f"est. cost {_cost(info)} (list prices)")
    lines = Table.grid()  # a ProgressBar inside a plain Group runs into the next line
    lines.add_row(ProgressBar(total=max(event.total or 1, 1), completed=event.done, width=60))
    lines.add_row(f"requests: {reqs}")
    return Panel(Group(head, speed, lines, money, table), title="distill run", border_style="blue", expand=False)


def summary_table(summary) -> Table:
    """The final summary of a run."""
    table = Table("what", "count", title="distill run", show_header=False)
    rate = summary.labels / summary.elapsed_s * 60 if summary.elapsed_s else 0.0
    rows = [("labels accepted", summary.labels), ("labels rejected (with reason)", summary.rejected),
            ("jobs failed (bad request)", summary.failed), ("jobs dead (max attempts)", summary.dead),
            ("answers from the cache", summary.cache_hits), ("requests paid", summary.paid),
            ("labels per paid request", f"{summary.labels_per_request:.2f}")]
    if summary.packed_requests or summary.unpacked:
        rows += [("packed requests", summary.packed_requests), ("asked alone after a packed answer failed",
                                                                 summary.unpacked)]
    if summary.votes_enqueued:
        rows.append(("vote jobs added", summary.votes_enqueued))
    rows += [(f"requests: {k}", v) for k, v in sorted(summary.requests.items())]
    if summary.batches:
        b = summary.batches
        rows.append(("Batch Mode jobs (see 'distill batches')", f"{b['batches']:,} ({b['live']:,} live, "
                                                                 f"{b['labels']:,} labels)"))
    rows += [("tokens in / out", f"{summary.prompt_tokens:,} / {summary.output_tokens:,}"),
             ("est. cost (list prices)", "-" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"),
             ("jobs still pending", summary.pending), ("leases reclaimed", summary.reclaimed),
             ("elapsed", f"{summary.elapsed_s:.1f}s ({rate:.1f} labels/min)")]
    for what, n in rows:
        table.add_row(what, f"{n:,}" if isinstance(n, int) else n)
    return table


def print_summary(summary, json_: bool) -> None:
    """Print a run's summary (table or JSON on stdout) and its failed/dead jobs (stderr)."""
    if json_:
        print_json(summary.to_dict())
    else:
        out.print(summary_table(summary))
    for p in summary.problems:
        err.print(f"{p['jobs']:,} job(s) {p['state']}: {p['error']}", highlight=False)
    if summary.problems:
        err.print("retry them with: tooldistill distill retry --failed  (or --dead, --reason TEXT)")
