"""`tooldistill distill retry | plan | prompt show | prompt versions` (registered on the distill sub-app)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOpt, err, out, print_json, state
from .distill import app
from .distill_view import human_duration

prompt_app = typer.Typer(no_args_is_help=True, help="The teacher prompt: what the teacher sees, and its versions.")
app.add_typer(prompt_app, name="prompt")


@app.command("retry")
def retry_cmd(
    ctx: typer.Context,
    failed: Annotated[bool, typer.Option("--failed", help="Jobs failed by a bad request.")] = False,
    dead: Annotated[bool, typer.Option("--dead", help="Jobs that ran out of attempts.")] = False,
    rejected: Annotated[bool, typer.Option("--rejected", help="Jobs whose answer was rejected (paid: asked again, "
                                           "the rejection stays stored).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Only jobs whose error or reject reason contains "
                                               "this text.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only jobs last answered or tried by this "
                                              "model.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Put failed, dead or rejected jobs back in the queue (default: failed and dead); 'distill run' asks again.

    Example: tooldistill distill retry --rejected --reason "finish reason MALFORMED" --model gemini-2.5-flash
    """
    from ..distill.retry import retry

    report = retry(state(ctx).open_db(create=False), failed=failed, dead=dead, rejected=rejected, reason=reason,
                   model=model)
    if json_:
        print_json(report.to_dict())
        return
    matched = ", ".join(f"{k} {v:,}" for k, v in report.matched.items())
    out.print(f"back in the queue: {report.total:,} job(s) ({report.failed:,} failed, {report.dead:,} dead, "
              f"{report.rejected:,} rejected; matched: {matched}); {report.cache_dropped:,} cached answer(s) dropped")
    if report.total:
        out.print("next: tooldistill distill run")


@app.command("plan")
def plan_cmd(
    ctx: typer.Context,
    pack: Annotated[int | None, typer.Option("--pack", min=1, max=50, help="Queries per request to plan for.")]
    = None,
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated teacher models.")] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=0, help="Requests per minute per project and model.")]
    = None,
    rpd: Annotated[int | None, typer.Option("--rpd", min=0, help="Requests per day per project and model.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="A stand-in server (env: GEMINI_BASE_URL).")]
    = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="Do not contact the API (assume every key "
                                           "works).")] = False,
    day_seconds: Annotated[float | None, typer.Option("--day-seconds", hidden=True, help="Length of a quota day "
                                                      "(tests, demos).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Check every key once (valid? which models answer?) and estimate requests, days, tokens and cost of the job.

    The check is one GET per key and model and spends no generate quota.

    Example: tooldistill distill plan --pack 8
    """
    from ..distill.plan import plan_workspace

    st = state(ctx)
    report = plan_workspace(st.workspace, st.open_db(), check=not no_check, pack=pack,
                            models=models.split(",") if models else None, rpm=rpm, rpd=rpd, base_url=base_url,
                            day_seconds=day_seconds)
    if json_:
        print_json(report)
        return
    keys = Table("key", "from", "project", "model", "check", title="keys")
    for k in report["keys"]:
        keys.add_row(k["fingerprint"], k["env_var"], k["project"], k["model"],
                     "[green]ok[/green]" if k["ok"] else f"[red]{k['outcome']}[/red] {k['message'] or ''}")
    out.print(keys)
    buckets = Table("bucket (project:model)", "rpm", "rpd", "used today", "left today", title="buckets")
    for b in report["buckets"]:
        buckets.add_row(b["bucket"], f"{b['rpm']} ({b['rpm_source']})", f"{b['rpd']} ({b['rpd_source']})",
                        str(b["requests_today"]), "-" if b["left_today"] is None else str(b["left_today"]))
    out.print(buckets)
    j, t = report["jobs"], report["tokens"]
    per_day = report["requests_per_day"]
    lines = [
        ("jobs", f"{j['total']:,} ({j['pending']:,} queued, {j['to_enqueue']:,} to enqueue)"),
        ("queries per request", str(report["pack"])),
        ("requests", f"{report['requests']:,}"),
        ("requests per day", "unlimited" if per_day is None else f"{per_day:,} ({report['left_today']:,} left today)"),
        ("quota days", "-" if report["days"] is None else f"{report['days']} ({report['day']})"),
        ("sending time per day at RPM", "-" if report["minutes_of_sending_per_day"] is None
         else f"{report['minutes_of_sending_per_day']} min"),
        ("done in about", human_duration(report["finish_in_s"])),
        ("tokens", f"{t['prompt']:,} in + {t['output']:,} out ({t['per_request_prompt']:.0f} + "
                   f"{t['per_request_output']:.0f} per request, {t['source']})"),
        ("cost at list prices", f"${report['cost_usd']:.2f} ("
         + ", ".join(f"{m} ${c['usd'] if c['usd'] is not None else '?'}" for m, c in report["cost_by_model"].items())
         + ")"),
        ("prompt", f"{report['prompt']['version']} ({report['prompt']['source']})"),
    ]
    table = Table("what", "estimate", title="plan", show_header=False)
    for what, value in lines:
        table.add_row(what, value)
    out.print(table)
    for w in report["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


@prompt_app.command("show")
def prompt_show_cmd(
    ctx: typer.Context,
    prompt: Annotated[str | None, typer.Option("--prompt", help="A prompt file instead of the workspace's.")] = None,
    examples_from_gold: Annotated[int | None, typer.Option("--examples-from-gold", min=0, help="Few-shot examples "
                                                           "taken from gold-labeled queries.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="A version used before (see 'distill prompt "
                                                "versions').")] = None,
    packed: Annotated[bool, typer.Option("--packed", help="The packed form (--pack): system text and answer "
                                         "schema.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Print the exact system prompt and function declarations the teacher sees, and the prompt's version.

    Edit prompt.yaml in the workspace (instructions, examples, examples_from_gold) to change it; every change is
    a new version and the next 'distill run' relabels under it (old labels stay stored).

    Example: tooldistill distill prompt show --examples-from-gold 8
    """
    from ..db import get_catalog
    from ..distill.prompt import get_prompt_version, load_prompt

    st = state(ctx)
    db = st.open_db()
    if version is not None:
        shown, source = get_prompt_version(db, version), f"recorded version {version}"
    else:
        shown, source = load_prompt(get_catalog(db), workspace=st.workspace, db=db, path=prompt,
                                    examples_from_gold=examples_from_gold)
    system, tools = shown.system_instruction, {"function_declarations": shown.declarations}
    if packed:
        from ..distill.packing import pack_schema, pack_system_instruction

        system, tools = pack_system_instruction(shown), {"response_json_schema": pack_schema(shown)}
    if json_:
        print_json({"version": shown.version, "source": source, "system_instruction": system, **tools})
        return
    out.print(f"[bold]prompt version[/bold] {shown.version}  ({source})")
    out.print("[bold]system instruction[/bold]")
    out.print(system, markup=False, highlight=False)
    out.print("[bold]" + ("answer schema" if packed else "function declarations") + "[/bold]")
    out.print(json.dumps(tools, indent=2, ensure_ascii=False), markup=False, highlight=False, soft_wrap=True)


@prompt_app.command("versions")
def prompt_versions_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the prompt versions runs have used, newest first, with their teacher labels.

    Example: tooldistill distill prompt versions
    """
    from ..distill.prompt import prompt_versions

    rows = prompt_versions(state(ctx).open_db(create=False))
    if json_:
        print_json(rows)
        return
    table = Table("version", "source", "examples", "labels", "rejected", "last used", title="prompt versions")
    for r in rows:
        table.add_row(r["version"], r["source"], str(r["examples"]), f"{r['labels']:,}", f"{r['rejected']:,}",
                      r["last_used_at"] or "")
    out.print(table)
    if not rows:
        out.print("no prompt used yet: 'tooldistill distill prompt show' shows the current one")

