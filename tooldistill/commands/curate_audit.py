"""`tooldistill curate audit|flags|review|relabel|adjudicate` (registered on the curate sub-app)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import JsonOpt, info, out, print_json, progress_bar, state
from .curate import app

SHOWN_FLAGS = 20
SIGNALS_HELP = "confident, gold, votes, duplicates, arguments, student"
RunOpt = Annotated[int | None, typer.Option("--run", help="Audit run id (default: the latest).")]


def _short(label) -> str:
    """A label in one short line: ``weather(location=Tokyo) + calculator(...)``, ``<none>`` for no tool."""
    if label is None:
        return "-"
    if not label.calls:
        return "<none>"
    parts = []
    for call in label.calls:
        args = ", ".join(f"{k}={v if not isinstance(v, str) or len(v) < 30 else v[:27] + '...'}"
                         for k, v in call.args.items())
        parts.append(f"{call.tool}({args})" if args else call.tool)
    return " + ".join(parts)


def _flags_table(flags, title: str) -> Table:
    table = Table(title=title, expand=True)
    table.add_column("#", justify="right", no_wrap=True, min_width=3)
    table.add_column("query", justify="right", no_wrap=True, min_width=5)
    table.add_column("score", justify="right", no_wrap=True, min_width=5)
    for name, ratio in (("text", 3), ("label", 2), ("suggested", 2)):
        table.add_column(name, ratio=ratio, no_wrap=True, overflow="ellipsis", min_width=8)
    table.add_column("signals", ratio=2, no_wrap=True, overflow="ellipsis", min_width=8)
    for f in flags:
        suggested = _short(f.suggested) if f.suggested is not None else (f"{f.suggested_class} (tools only)"
                                                                         if f.suggested_class else "-")
        table.add_row(str(f.rank), str(f.query_id), f"{f.score:.2f}", escape(f.text), escape(_short(f.label)),
                      escape(suggested), ",".join(f.signals))
    return table


def _signal_note(name: str, s: dict) -> str:
    if s["skipped"]:
        return f"skipped: {s['skipped']}"
    inf = s.get("info") or {}
    if name == "confident":
        return (f"{inf.get('view')} view, {inf.get('classes')} classes; cleanlab estimates {inf.get('estimated_issues')} "
                f"label issues among {inf.get('rows'):,} rows; the classifiers agree with {inf.get('accuracy_vs_labels', 0):.1%} "
                "of the labels")
    if name == "duplicates":
        return f"{inf.get('clusters', 0)} clusters from {inf.get('source', '?')}"
    if name == "arguments":
        return f"extractive arguments: {', '.join(inf.get('extractive', {})) or 'none found yet'}"
    if name == "student":
        note = (f"{inf.get('predictions', 0):,} student predictions cover {inf.get('covered', 0):,} of the "
                f"{inf.get('audited', 0):,} audited queries (an eval run covers its split only); min confidence "
                f"{inf.get('min_confidence')}")
        return note + (f"; {inf['unscored']:,} of unknown confidence left out" if inf.get("unscored") else "")
    return ""


def _render_signals(signals: dict) -> None:
    table = Table("signal", "fired", "supporting", "in flags", "only it", "checked", title="signals")
    for name, s in signals.items():
        table.add_row(name, f"{s['fired']:,}", f"{s.get('supporting', 0):,}", f"{s.get('in_flags', 0):,}",
                      f"{s['only']:,}", f"{s['checked']:,}")
    out.print(table)
    for name, s in signals.items():
        note = _signal_note(name, s)
        if note:
            out.print(f"  {name}: {escape(note)}", highlight=False)


@app.command("audit")
def audit_cmd(
    ctx: typer.Context,
    signals: Annotated[str | None, typer.Option(help=f"Signals to run, comma-separated (default: all): "
                                                     f"{SIGNALS_HELP}.")] = None,
    confident: Annotated[bool, typer.Option("--confident/--no-confident", help="Confident learning.")] = True,
    gold: Annotated[bool, typer.Option("--gold/--no-gold", help="Disagreement with gold labels.")] = True,
    votes: Annotated[bool, typer.Option("--votes/--no-votes", help="Disagreement among teacher votes.")] = True,
    duplicates: Annotated[bool, typer.Option("--duplicates/--no-duplicates",
                                             help="Conflicts inside duplicate clusters.")] = True,
    arguments: Annotated[bool, typer.Option("--arguments/--no-arguments",
                                            help="Schema violations and ungrounded argument values.")] = True,
    model: Annotated[str, typer.Option(help="Confident-learning classifiers, comma-separated: 'ngram' and/or a "
                                            "registered encoder.")] = "ngram",
    folds: Annotated[int | None, typer.Option(min=2, max=20, help="Folds of the K-fold linear model (default: "
                                                                  "by size).")] = None,
    max_confident_flags: Annotated[int | None, typer.Option(min=0, help="Cap on confident-learning flags "
                                                                        "(default: cleanlab's estimate).")] = None,
    student: Annotated[Path | None, typer.Option(help="JSONL of a student's predictions: {\"query_id\", "
                                                      "\"label\", \"confidence\"} per line (confidence in [0, 1], "
                                                      "null if unknown).")] = None,
    student_run: Annotated[str | None, typer.Option("--student-run", help="An eval run whose stored predictions "
                                                    "are the student's (id, unique prefix or 'latest'); it covers "
                                                    "the split it scored, normally test.")] = None,
    student_min_confidence: Annotated[float, typer.Option("--student-min-confidence", min=0, max=1, help="A "
                                      "student's disagreement counts from this confidence. Predictions of unknown "
                                      "confidence (every router but the encoder student) count only at 0, each "
                                      "at strength 0.5.")] = 0.9,
    include_reviewed: Annotated[bool, typer.Option("--include-reviewed", help="Also flag queries already "
                                                                              "reviewed or adjudicated.")] = False,
    audit_gold: Annotated[bool, typer.Option("--audit-gold", help="Also flag labels that match their gold (by "
                                                                  "default gold agreement clears a label).")] = False,
    seed: Annotated[int, typer.Option(help="Seed for the folds.")] = 0,
    limit: Annotated[int | None, typer.Option(min=0, help="Flags to show (table default 20; --json: all).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Flag suspected teacher mislabels, ranked, each with a score, a suggested label and its evidence.

    Stores the run and its flags; then review them (curate review) or send them back to the teacher
    (curate relabel).

    A student's predictions (--student FILE, or --student-run EVAL_RUN: an eval run's stored predictions) add
    the student signal: its confident disagreements with the teacher.

    Example: tooldistill curate audit --no-gold --json

    Example: tooldistill curate audit --student-run latest
    """
    from ..curate.audit import (SIGNAL_NAMES, AuditConfig, load_student_predictions, run_audit,
                                student_predictions_from_run)
    from ..curate.audit.student import resolve_eval_run
    from ..errors import InputError

    chosen = [s.strip() for s in signals.split(",") if s.strip()] if signals else list(SIGNAL_NAMES)
    bad = [s for s in chosen if s not in SIGNAL_NAMES]
    if bad:
        raise InputError(f"unknown signal {bad[0]!r}; choose from {SIGNALS_HELP}", field="--signals")
    off = {"confident": confident, "gold": gold, "votes": votes, "duplicates": duplicates, "arguments": arguments}
    chosen = [s for s in chosen if off.get(s, True)]
    config = AuditConfig(signals=tuple(chosen), models=tuple(m.strip() for m in model.split(",") if m.strip()),
                         folds=folds, max_confident_flags=max_confident_flags, include_reviewed=include_reviewed,
                         gold_clears=not audit_gold, seed=seed, student_min_confidence=student_min_confidence)
    if student is not None and student_run is not None:
        raise InputError("--student and --student-run both name a student; pass one", field="--student-run")
    db = state(ctx).open_db()
    predictions, source = None, None
    if student is not None:
        predictions, source = load_student_predictions(student, _catalog(db)), str(student)
    elif student_run is not None:
        source = resolve_eval_run(db, student_run)
        predictions = student_predictions_from_run(db, source, _catalog(db))
    with progress_bar(ctx, transient=True) as callback:
        report = run_audit(db, config=config, student=predictions, student_source=source, progress=callback)
    if json_:
        print_json(report.to_dict(limit=limit))
        return
    shown = report.flags[:SHOWN_FLAGS if limit is None else limit]
    out.print(_flags_table(shown, f"audit run {report.run_id}: {len(report.flags):,} flags of {report.n_audited:,} "
                                  f"audited queries ({report.seconds:.1f}s)"))
    if len(report.flags) > len(shown):
        out.print(f"... {len(report.flags) - len(shown):,} more (curate flags --limit N, or --json)")
    _render_signals(report.signals)
    conf = report.signals.get("confident", {})
    inf = conf.get("info") or {}
    if not conf.get("skipped") and inf.get("classes") and inf["rows"] / inf["classes"] < 40 \
            and len(inf.get("models", [])) == 1:
        info(f"few labeled queries per class ({inf['rows'] / inf['classes']:.0f}): n-gram classifiers are weak there and "
             "over-flag; --model ngram,minilm adds a pretrained sentence encoder", ctx)
    if report.info.get("cleared_with_hits"):
        info(f"{report.info['cleared_with_hits']:,} labels other signals suspected match their gold and were not "
             "flagged (--audit-gold to flag them too)", ctx)
    if report.settled_skipped:
        info(f"{report.settled_skipped:,} queries already reviewed or adjudicated were not flagged "
             "(--include-reviewed to audit them too)", ctx)
    if report.flags:
        info("next: tooldistill curate review (one by one), curate review --template FILE (to edit offline), or "
             "curate relabel --top N (ask the teacher again)", ctx)


def _catalog(db):
    from ..db import get_catalog

    return get_catalog(db)


@app.command("flags")
def flags_cmd(
    ctx: typer.Context,
    run: RunOpt = None,
    status: Annotated[str | None, typer.Option(help="Only flags in this status: open, reviewed, relabel, "
                                                    "adjudicated, needs_review.")] = None,
    min_score: Annotated[float | None, typer.Option(min=0, max=1, help="Only flags scoring at least this.")] = None,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many (table default 50).")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the flags of an audit run, best first, with their status.

    Example: tooldistill curate flags --status open --min-score 0.8
    """
    from ..curate.audit import FLAG_STATUSES, get_flags, get_run
    from ..errors import InputError

    if status is not None and status not in FLAG_STATUSES:
        raise InputError(f"unknown status {status!r}; choose from {', '.join(FLAG_STATUSES)}", field="--status")
    db = state(ctx).open_db()
    meta = get_run(db, run)
    flags = get_flags(db, meta["id"], statuses=[status] if status else None, min_score=min_score,
                      limit=limit if (limit is not None or json_) else 50)
    if json_:
        print_json({"run_id": meta["id"], "created_at": meta["created_at"], "flags": [f.to_dict() for f in flags]})
        return
    counts = Counter(s for (s,) in db.execute("SELECT status FROM audit_flags WHERE run_id = ?", [meta["id"]]))
    out.print(_flags_table(flags, f"audit run {meta['id']} ({meta['created_at'][:19]}): "
                                  + ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))))


def _render_flag(flag, index: int, total: int, current) -> None:
    lines = [f"[bold]{escape(flag.text)}[/bold]", "",
             f"teacher    {escape(_short(flag.label))}"]
    if current is not None and current.label is not None and current.label != flag.label:
        lines.append(f"current    {escape(_short(current.label))}  ({current.source}; keep leaves this)")
    suggested = escape(_short(flag.suggested)) if flag.suggested is not None else "-"
    if flag.suggested is None and flag.suggested_class:
        suggested += f"  ({escape(flag.suggested_class)}, tools only: fix to give the arguments)"
    lines += [f"suggested  {suggested}", f"score      {flag.score:.2f}  signals: {', '.join(flag.signals)}"]
    for name, ev in flag.evidence.items():
        lines.append(f"  {name} ({ev.get('strength', 0):.2f}): {escape(_evidence_text(name, ev))}")
    out.rule(f"flag {index}/{total} · query {flag.query_id} · rank {flag.rank}")
    for line in lines:
        out.print(line, highlight=False)


def _evidence_text(name: str, ev: dict) -> str:
    """One readable line of a signal's evidence."""
    if name == "confident":
        return (f"the classifiers give the label p={ev['p_label']:.2f}; most likely {ev['suggested']} "
                f"(p={ev['p_suggested']:.2f})")
    if name == "gold":
        return f"gold is {ev['gold']}" + (f" (arguments differ: {', '.join(ev['args'])})" if ev.get("args") else "")
    if name == "votes":
        others = "; ".join(f"{a['model'] or '?'}: {a['label']}" for a in ev.get("answers", [])[:3])
        return f"{ev['against']} of {ev['votes']} answers disagree ({others})"
    if name == "duplicates":
        example = ev.get("examples", [""])[0]
        return f"{ev['agree']} of {ev['size'] - 1} near-duplicates say otherwise, e.g. {example!r}"
    if name == "arguments":
        if "schema" in ev:
            return "; ".join(ev["schema"])
        return f"{ev['argument']} = {ev['value']!r} {ev['problem']}"
    if name == "student":
        conf = "unknown" if ev.get("confidence") is None else f"{ev['confidence']:.2f}"
        return f"the student predicts {ev['predicted']} (confidence {conf})"
    return json.dumps({k: v for k, v in ev.items() if k != "strength"}, ensure_ascii=False)


def _ask_label(catalog):
    from rich.prompt import Prompt

    from ..errors import InputError

    while True:
        text = Prompt.ask("label as JSON (e.g. [{\"tool\": \"weather\", \"args\": {\"location\": \"Paris\"}}], "
                          "[] for no tool; empty to go back)", default="", show_default=False, console=out)
        if not text.strip():
            return None
        try:
            return catalog.validate_label(text)
        except InputError as exc:
            out.print(f"[red]{escape(str(exc))}[/red]")


@app.command("review")
def review_cmd(
    ctx: typer.Context,
    apply: Annotated[Path | None, typer.Option("--apply", help="Apply decisions from a JSONL file: "
                                               "{\"query_id\", \"decision\": accept|fix|keep|reject, \"label\"}.")]
    = None,
    template: Annotated[Path | None, typer.Option("--template", help="Write the pending flags as a decisions file "
                                                  "to edit, then --apply it.")] = None,
    run: RunOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Review at most this many flags.")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Name stored with each decision.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Decide flags one by one: accept the suggestion, fix (type a label), keep, reject the query, or skip.

    Every decision is saved at once and wins over every other label source; a later session resumes with the
    flags still undecided. With --apply, decisions come from a file instead (validated first, all or nothing).

    Example: tooldistill curate review --apply decisions.jsonl
    """
    from ..curate.review import apply_decisions, pending_flags, write_template

    db = state(ctx).open_db()
    if apply is not None:
        report = apply_decisions(db, apply, run_id=run, reviewer=reviewer)
        if json_:
            print_json(report.to_dict())
            return
        out.print(f"applied {sum(report.decisions.values()):,} decisions ("
                  + ", ".join(f"{n:,} {d}" for d, n in sorted(report.decisions.items()))
                  + f"): {report.changed:,} current labels changed, {report.flags_closed:,} flags closed")
        return
    if template is not None:
        n = write_template(db, template, run_id=run, limit=limit)
        out.print(f"wrote {n:,} pending flags to {template}; edit the decisions, then: "
                  f"tooldistill curate review --apply {template}")
        return
    pending = pending_flags(db, run, limit=limit)
    if not pending:
        out.print("nothing to review: every flag of this audit run is decided")
        return
    decided = _review_loop(db, pending, reviewer)
    summary = ", ".join(f"{n} {d}" for d, n in sorted(decided.items())) or "nothing decided"
    remaining = len(pending_flags(db, run))
    out.print(f"{summary}; {remaining:,} flags still pending")


def _review_loop(db, pending, reviewer) -> Counter:
    from rich.prompt import Prompt

    from ..curate.review import Decision, record_decision

    from ..db import current_labels

    catalog = _catalog(db)
    current = current_labels(db)
    decided: Counter = Counter()
    for i, flag in enumerate(pending, 1):
        _render_flag(flag, i, len(pending), current.get(flag.query_id))
        while True:
            choices = (["a"] if flag.suggested is not None else []) + ["f", "k", "r", "s", "q"]
            prompt = ("a=accept  " if flag.suggested is not None else "") + \
                "f=fix  k=keep  r=reject query  s=skip  q=quit"
            choice = Prompt.ask(prompt, choices=choices, default=choices[0], show_choices=False, console=out)
            if choice == "q":
                return decided
            kind = {"a": "accept", "f": "fix", "k": "keep", "r": "reject", "s": "skip"}[choice]
            label = None
            if kind == "fix":
                label = _ask_label(catalog)
                if label is None:
                    continue
            record_decision(db, Decision(flag.query_id, kind, label, flag=flag), catalog=catalog, reviewer=reviewer)
            decided[kind] += 1
            break
    return decided


@app.command("relabel")
def relabel_cmd(
    ctx: typer.Context,
    top: Annotated[int | None, typer.Option(min=1, help="Relabel the first N undecided flags.")] = None,
    min_score: Annotated[float | None, typer.Option(min=0, max=1, help="Relabel the flags scoring at least "
                                                                       "this.")] = None,
    model: Annotated[str | None, typer.Option(help="Teacher model to ask (e.g. a stronger one); default: any "
                                                   "configured model.")] = None,
    votes: Annotated[int, typer.Option(min=1, max=15, help="Answers to collect per query.")] = 1,
    run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Send flagged queries back to the teacher: relabel jobs in the distill queue (a model and/or K votes).

    Then run 'tooldistill distill run' to answer them and 'tooldistill curate adjudicate' to settle each query.

    Example: tooldistill curate relabel --top 200 --model gemini-2.5-pro --votes 3
    """
    from ..curate.relabel import enqueue_relabels

    db = state(ctx).open_db()
    report = enqueue_relabels(db, top=top, min_score=min_score, run_id=run, model=model, votes=votes)
    if json_:
        print_json(report.to_dict())
        return
    who = f"model {model}" if model else "any configured model"
    out.print(f"queued {report.jobs_added:,} relabel jobs for {report.flags:,} flags of audit run {report.run_id} "
              f"({votes} vote(s) each, {who}); {report.jobs_existing:,} were already queued or answered")
    if report.flags:
        info("next: tooldistill distill run, then tooldistill curate adjudicate", ctx)


@app.command("adjudicate")
def adjudicate_cmd(
    ctx: typer.Context,
    models: Annotated[str | None, typer.Option(help="Teacher models, strongest first, comma-separated: ties go to "
                                                    "the stronger one.")] = None,
    tie: Annotated[str, typer.Option(help="How a tie is settled: 'stronger' (model order) or 'review'.")] = "stronger",
    teacher_vote: Annotated[bool, typer.Option("--teacher-vote/--no-teacher-vote", help="Count the original teacher "
                                               "label as one vote.")] = True,
    json_: JsonOpt = False,
) -> None:
    """Settle every relabeled query by majority of its votes; record the decision with its votes.

    Example: tooldistill curate adjudicate --models gemini-2.5-pro,gemini-2.5-flash
    """
    from ..curate.adjudicate import adjudicate

    db = state(ctx).open_db()
    order = [m.strip() for m in models.split(",") if m.strip()] if models else None
    report = adjudicate(db, models=order, include_teacher=teacher_vote, tie=tie)
    if json_:
        print_json(report.to_dict())
        return
    table = Table("query", "label", "how", "votes", title="adjudications")
    for a in report.settled + report.to_review:
        votes = Counter(_short(_vote_label(v)) for v in a.votes if v["valid"])
        table.add_row(str(a.query_id), escape(_short(a.label)) if a.label else "[yellow]to review[/yellow]",
                      escape(a.method), escape(", ".join(f"{k} x{n}" for k, n in votes.most_common())))
    if report.settled or report.to_review:
        out.print(table)
    out.print(f"{len(report.settled):,} settled, {len(report.to_review):,} ties sent to review, "
              f"{len(report.waiting):,} waiting for votes, {report.unchanged:,} unchanged")


def _vote_label(vote: dict):
    from ..catalog import parse_label

    return parse_label(vote["calls"])
