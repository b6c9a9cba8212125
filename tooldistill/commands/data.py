"""`tooldistill data` commands: generate, import, export, validate, catalog show/set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import JsonOpt, err, info, out, print_json, progress_bar, state

app = typer.Typer(no_args_is_help=True, help="Queries and labels: generate, import, export, revalidate; the catalogue.")
catalog_app = typer.Typer(no_args_is_help=True, help="The workspace's tool catalogue: show it, or replace it.")
app.add_typer(catalog_app, name="catalog")

SHOWN_PROBLEMS = 5
SHOWN_MISFITS = 50


def _counts_table(title: str, column: str, counts: dict[str, int]) -> Table:
    table = Table(column, "queries", title=title)
    for key, n in counts.items():
        table.add_row(escape(key), f"{n:,}")
    return table


@app.command("generate")
def generate_cmd(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("--n", "-n", min=0, help="How many distinct queries to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same queries.")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Generate template queries with gold labels for the default catalogue.

    Categories: single-tool, multi-tool, no-tool, ambiguous and edge cases; each query records its template id.

    Example: tooldistill data generate --n 5000 --seed 1
    """
    from ..data import generate

    db = state(ctx).open_db()
    with progress_bar(ctx, transient=True) as callback:
        report = generate(db, n, seed=seed, progress=callback)
    if json_:
        print_json(report.to_dict())
        return
    out.print(f"generated {report.generated:,} distinct queries (seed {report.seed}): {report.added:,} added, "
              f"{report.already_present:,} already in the database; {report.dropped_duplicates:,} repeated "
              "drafts skipped")
    out.print(_counts_table("categories", "category", report.by_category))
    out.print(_counts_table("tools (queries calling each; <none> = no tool)", "tool", report.by_tool))
    multi = {k: v for k, v in report.by_class.items() if "+" in k}
    out.print(f"{len(report.by_class)} label classes, {len(multi)} of them multi-tool "
              f"({sum(multi.values()):,} queries); source '{report.source}', gold_source 'template'")


@app.command("import")
def import_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="JSONL/JSON/CSV/TSV file, a datasets save_to_disk folder, or a "
                                               "Hugging Face Hub dataset id.")],
    text_column: Annotated[str | None, typer.Option(help="Column with the query text (default: text, query, "
                                                          "question, ...).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Column with the label: a tool-call list or a class "
                                                           "name (default: label, calls, tool_calls, ...).")] = None,
    none_label: Annotated[str | None, typer.Option(help="The class that means 'no tool' (e.g. oos); mapped to [].")] = None,
    split: Annotated[str | None, typer.Option(help="Split of a dataset dict, or 'all'.")] = None,
    subset: Annotated[str | None, typer.Option(help="Config name of a Hub dataset.")] = None,
    catalog: Annotated[Path | None, typer.Option(help="Catalogue file for the labels (default: derived from "
                                                       "class names, else the workspace's).")] = None,
    gold: Annotated[bool, typer.Option("--gold", help="The labels are verified: store them as gold.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Abort on the first bad row, importing nothing (exit 2).")] = False,
    no_labels: Annotated[bool, typer.Option("--no-labels", help="Import the queries only.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Import queries, and their labels if the source has them.

    Bad rows are skipped and reported (file:line and why) unless --strict. Re-importing adds nothing.

    Example: tooldistill data import train.jsonl --label-column label --none-label oos
    """
    from ..data import import_queries

    db = state(ctx).open_db()
    with progress_bar(ctx, transient=True) as callback:
        report = import_queries(db, source, text_column=text_column, label_column=label_column,
                                none_label=none_label, split=split, subset=subset, catalog=catalog, gold=gold,
                                strict=strict, labels=not no_labels, progress=callback)
    if json_:
        print_json(report.to_dict())
    else:
        _render_import(report)
    for problem in report.problems[:SHOWN_PROBLEMS]:
        err.print(f"[yellow]skipped[/yellow] {escape(problem)}", highlight=False)
    if report.skipped > SHOWN_PROBLEMS:
        info(f"... and {report.skipped - SHOWN_PROBLEMS:,} more skipped rows (the first {len(report.problems)} "
             "are in --json's 'problems')", ctx)


def _render_import(r) -> None:
    kind = "gold labels" if r.gold else "labels (source 'import')"
    out.print(f"imported {escape(r.source)}: {r.rows:,} rows read, {r.added:,} new queries, {r.duplicates:,} "
              f"already present; {r.labels_added:,} {kind} added, {r.labels_present:,} already stored"
              + (f", {r.label_conflicts:,} differing from a label already stored" if r.label_conflicts else "")
              + f"; {r.skipped:,} bad rows skipped")
    out.print(f"columns: text={r.text_column!r}, label={r.label_column!r} ({r.label_mode or 'no labels'}); "
              f"query source {', '.join(map(repr, r.query_sources))}")
    action = {"stored": "now the workspace's current catalogue", "extended": "extended with new classes, now current",
              "unchanged": "the workspace's current catalogue"}[r.catalog_action]
    out.print(f"catalogue '{escape(r.catalog_name)}' ({r.catalog_hash}, {r.catalog_tools} tools): {action}")


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    json_: JsonOpt = False,
) -> None:
    """Export queries with their current labels to JSONL (the gold-file format 'eval score --gold' reads).

    Each line: {"id", "text", "label": [{"tool", "args"}], "label_source", "category", "template_id"}.

    Example: tooldistill data export --out gold.jsonl
    """
    from ..data import export_jsonl

    db = state(ctx).open_db(create=False)
    with progress_bar(ctx, transient=True) as callback:
        report = export_jsonl(db, out_path, progress=callback)
    if json_:
        print_json(report.to_dict())
        return
    sources = ", ".join(f"{k} {v:,}" for k, v in report.by_label_source.items()) or "none"
    out.print(f"wrote {report.written:,} labelled queries to {escape(report.path)} (label sources: {sources}); "
              f"{report.unlabeled:,} queries without a label left out")


def _render_misfits(report, ctx: typer.Context) -> None:
    checked = sum(report.checked.values())
    if report.misfits:
        table = Table(title="labels that no longer fit", expand=True)
        table.add_column("kind", width=12, no_wrap=True)
        table.add_column("query", width=7, no_wrap=True)
        for name, ratio in (("text", 3), ("label", 1), ("why", 4)):
            table.add_column(name, ratio=ratio, no_wrap=True, overflow="ellipsis")
        for m in report.misfits[:SHOWN_MISFITS]:
            label = ", ".join(c.get("tool", "?") for c in m.label) or "[]"
            table.add_row(m.kind, str(m.query_id), escape(m.text), escape(label), escape("; ".join(m.errors)))
        out.print(table)
        if report.count > SHOWN_MISFITS:
            info(f"... {report.count - SHOWN_MISFITS:,} more; --json lists them all", ctx)
    per_kind = ", ".join(f"{k} {v:,}" for k, v in report.checked.items())
    out.print(f"{report.count:,} of {checked:,} labels do not fit catalogue '{escape(report.catalog_name)}' "
              f"({report.catalog_hash}); checked: {per_kind}")


@app.command("validate")
def validate_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Revalidate every stored label against the current catalogue and list those that no longer fit.

    Checks valid teacher and imported labels, gold labels, reviews and adjudications; changes nothing.

    Example: tooldistill data validate --json
    """
    from ..data import validate_labels

    report = validate_labels(state(ctx).open_db(create=False))
    if json_:
        print_json(report.to_dict())
        return
    _render_misfits(report, ctx)


@catalog_app.command("show")
def catalog_show_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the workspace's current catalogue: its tools, their arguments, and its hash.

    Example: tooldistill data catalog show --json
    """
    from ..db import get_catalog

    catalog = get_catalog(state(ctx).open_db())
    if json_:
        print_json({"hash": catalog.hash, **catalog.to_dict()})
        return
    table = Table("tool", "arguments (* required)", "description",
                  title=f"catalogue '{escape(catalog.name)}' ({catalog.hash}, {len(catalog.tools)} tools)")
    for tool in catalog.tools:
        args = ", ".join(f"{k}{'*' if k in tool.required else ''}: {v.get('type', 'enum')}"
                         for k, v in tool.properties.items())
        table.add_row(escape(tool.name), escape(args) or "-", escape(tool.description))
    out.print(table)
    if catalog.none_label is not None:
        out.print(f"class '{escape(catalog.none_label)}' means no tool ([])")


@catalog_app.command("set")
def catalog_set_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Catalogue file (YAML or JSON).")],
    json_: JsonOpt = False,
) -> None:
    """Validate a catalogue file, make it the workspace's current catalogue, and report labels that no longer fit.

    Example: tooldistill data catalog set catalog.yaml
    """
    from ..data import set_catalog

    catalog, previous, report = set_catalog(state(ctx).open_db(), file)
    if json_:
        print_json({"hash": catalog.hash, "previous_hash": previous, "name": catalog.name,
                    "tools": len(catalog.tools), "misfits": report.count, "checked": report.checked})
        return
    same = " (unchanged)" if previous == catalog.hash else f" (was {previous})"
    out.print(f"catalogue '{escape(catalog.name)}' ({catalog.hash}, {len(catalog.tools)} tools) is now current{same}")
    checked = sum(report.checked.values())
    hint = "; list them with 'tooldistill data validate'" if report.count else ""
    out.print(f"{report.count:,} of {checked:,} stored labels no longer fit{hint}")
