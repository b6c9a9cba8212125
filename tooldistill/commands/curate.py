"""`tooldistill curate` commands: dedup, dups, split, versions, export (audit & co. register from curate_audit)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import JsonOpt, err, info, out, print_json, progress_bar, state

app = typer.Typer(no_args_is_help=True,
                  help="Curate the data: dedup, audit, review, relabel; leak-free splits; export to the Hub.")

SHOWN_CLUSTERS = 20
SHOWN_MEMBERS = 12


def _label(label) -> str:
    if label is None:
        return "-"
    return label.tool_set_key if not label.calls or not any(c.args for c in label.calls) else label.to_json()


@app.command("dedup")
def dedup_cmd(
    ctx: typer.Context,
    method: Annotated[str, typer.Option(help="minhash (exact + near-duplicates) or semantic (exact + embedding "
                                             "cosine; needs the encoder extra).")] = "minhash",
    threshold: Annotated[float | None, typer.Option(help="Pair similarity that makes a duplicate (default 0.8 "
                                                         "Jaccard for minhash, 0.92 cosine for semantic).")] = None,
    max_cluster_size: Annotated[int, typer.Option(help="Larger clusters are reported as oversized and kept whole, "
                                                       "none of their members marked duplicate.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the MinHash permutations.")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Cluster duplicate queries by text (nothing is deleted; splits keep a cluster together).

    Example: tooldistill curate dedup --threshold 0.8 && tooldistill curate dups --conflicts
    """
    from ..curate.dedup import dedup

    db = state(ctx).open_db()
    with progress_bar(ctx, transient=True) as callback:
        report = dedup(db, method=method, threshold=threshold, max_cluster_size=max_cluster_size, seed=seed,
                       progress=callback)
    if json_:
        print_json(report.to_dict())
    else:
        out.print(f"dedup run {report.run_id} ({report.method}, threshold {report.params['threshold']}): "
                  f"{report.n_queries:,} queries, {report.n_clusters:,} clusters ({report.n_exact_clusters:,} exact) "
                  f"holding {report.n_clustered:,} queries; {report.n_duplicates:,} marked duplicate; "
                  f"{report.n_conflicts:,} clusters with conflicting labels; {len(report.oversized)} oversized; "
                  f"{report.seconds:.1f} s")
        if report.largest:
            table = Table("cluster", "size", "kind", "min sim", "representative", title="largest clusters")
            for c in report.largest:
                table.add_row(str(c["cluster_id"]), str(c["size"]), c["kind"], f"{c['min_similarity']:.2f}",
                              escape(c["representative"][:70]))
            out.print(table)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    info("next: 'tooldistill curate dups' to inspect, 'tooldistill curate split' to make a dataset version", ctx)


@app.command("dups")
def dups_cmd(
    ctx: typer.Context,
    cluster: Annotated[int | None, typer.Option("--cluster", help="Show one cluster with all its members.")] = None,
    run: Annotated[int | None, typer.Option("--run", help="Dedup run id (default: the latest).")] = None,
    conflicts: Annotated[bool, typer.Option("--conflicts", help="Only clusters whose labels conflict.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Clusters to list.")] = SHOWN_CLUSTERS,
    runs: Annotated[bool, typer.Option("--runs", help="List the dedup runs instead.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List duplicate clusters (largest first) or show one, with each member's current label.

    Example: tooldistill curate dups --conflicts --json
    """
    from ..curate.dedup import get_clusters, list_dedup_runs

    if runs:
        _render_runs(list_dedup_runs(state(ctx).open_db()), json_)
        return
    clusters = get_clusters(state(ctx).open_db(), run_id=run, cluster_id=cluster, conflicts_only=conflicts)
    shown = clusters if cluster is not None else clusters[:limit]
    if json_:
        print_json({"clusters": [c.to_dict() for c in shown], "total": len(clusters)})
        return
    for c in shown:
        flags = ", ".join(f for f, on in (("oversized", c.oversized), ("label conflict", c.label_conflict)) if on)
        table = Table("query", "rep", "dup", "sim", "text", "label", "source",
                      title=f"cluster {c.id} ({c.kind}, {c.size} members{', ' + flags if flags else ''})")
        members = c.members if cluster is not None else c.members[:SHOWN_MEMBERS]
        for m in members:
            table.add_row(str(m.query_id), "*" if m.is_representative else "", "y" if m.duplicate else "",
                          f"{m.similarity:.2f}", escape(m.text[:70]), escape(_label(m.label)[:50]),
                          m.label_source or "-")
        out.print(table)
        if len(members) < len(c.members):
            out.print(f"... {len(c.members) - len(members)} more: tooldistill curate dups --cluster {c.id}")
    info(f"{len(shown)} of {len(clusters)} clusters shown", ctx)


def _render_runs(runs, json_: bool) -> None:
    if json_:
        print_json([{k: v for k, v in vars(r).items() if k != "report"} for r in runs])
        return
    table = Table("run", "method", "threshold", "created", "queries", "clusters", "duplicates", "oversized", "seconds",
                  title="dedup runs")
    for r in runs:
        table.add_row(str(r.id), r.method, f"{r.threshold:g}", r.created_at[:19], f"{r.n_queries:,}",
                      f"{r.n_clusters:,}", f"{r.n_duplicates:,}", str(r.n_oversized), f"{r.seconds:.1f}")
    out.print(table)


@app.command("split")
def split_cmd(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Seed: the same inputs and seed give the same version id.")] = 0,
    train: Annotated[float, typer.Option(help="Train share.")] = 0.8,
    val: Annotated[float, typer.Option(help="Validation share.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test share (the hard split is carved from it).")] = 0.1,
    hard: Annotated[bool, typer.Option("--hard/--no-hard", help="Move multi-tool, ambiguous and relabeled test "
                                                                "examples to a 'hard' split.")] = True,
    drop_duplicates: Annotated[bool, typer.Option("--drop-duplicates", help="Leave out cluster members marked "
                                                  "duplicate that carry their representative's label.")] = False,
    name: Annotated[str | None, typer.Option(help="A name for the version.")] = None,
    dedup_run: Annotated[int | None, typer.Option("--dedup-run", help="Dedup run to group by (default: the latest "
                                                  "covering the current queries; one is run if none).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Make a leak-free, stratified train/val/test(/hard) split: a content-hashed dataset version.

    Example: tooldistill curate split --seed 0 --name v1 && tooldistill curate export v1 --format hf --out data/
    """
    from ..curate.split import split

    db = state(ctx).open_db()
    with progress_bar(ctx, transient=True) as callback:
        report = split(db, seed=seed, fractions=(train, val, test), hard=hard, drop_duplicates=drop_duplicates,
                       name=name, dedup_run=dedup_run, progress=callback)
    if json_:
        print_json(report.to_dict())
    else:
        _render_split(report)
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


def _render_split(r) -> None:
    status = "new" if r.created else "already existed (same inputs)"
    out.print(f"dataset version [bold]{r.version_id}[/bold]{f' ({r.name})' if r.name else ''}: {status}")
    splits = list(r.counts)
    table = Table("label", *splits, title="examples per split and label")
    labels = sorted({lab for c in r.counts.values() for lab in c["labels"]},
                    key=lambda lab: -sum(c["labels"].get(lab, 0) for c in r.counts.values()))
    for lab in labels[:30]:
        table.add_row(escape(lab), *(f"{r.counts[s]['labels'].get(lab, 0):,}" for s in splits))
    if len(labels) > 30:
        table.add_row(f"... {len(labels) - 30} more", *("" for _ in splits))
    table.add_row("[bold]total[/bold]", *(f"[bold]{r.counts[s]['total']:,}[/bold]" for s in splits))
    out.print(table)
    leak = r.leakage
    out.print(f"leakage check (independent MinHash LSH, Jaccard >= {leak.threshold}): train vs test/hard "
              f"[bold]{leak.train_test}[/bold] near-duplicate pairs; all cross-split pairs "
              f"{dict(leak.pairs) or 0}; templates across splits {leak.templates_across}; clusters across "
              f"splits {leak.clusters_across}"
              + (f"; {leak.regrouped} pairs the dedup run missed were grouped first" if leak.regrouped else ""))
    out.print(f"{r.n_groups:,} groups (largest {r.largest_group:,}); hard: {r.hard_reasons or 'none'}; "
              f"labels from {r.lineage['label_sources']}; dedup run {r.lineage['dedup_run']['id']}; "
              f"{r.n_dropped_duplicates:,} duplicates dropped; {r.n_unlabeled:,} unlabeled queries left out")


@app.command("versions")
def versions_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List dataset versions, newest first.

    Example: tooldistill curate versions --json
    """
    from ..curate.split import list_versions

    versions = list_versions(state(ctx).open_db())
    if json_:
        print_json(versions)
        return
    table = Table("id", "name", "created", "splits", "seed", "fractions", "train-test leaks", title="dataset versions")
    for v in versions:
        table.add_row(v["id"][:12], escape(v["name"] or ""), v["created_at"][:19],
                      ", ".join(f"{k} {n:,}" for k, n in v["splits"].items()), str(v["seed"]),
                      "/".join(f"{f:g}" for f in v["fractions"] or []), str(v["leakage_train_test"]))
    out.print(table)
    if not versions:
        info("no dataset version yet: run 'tooldistill curate split'", ctx)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version id, unique id prefix, name, or 'latest'.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, parquet, or hf (datasets save_to_disk).")] = "jsonl",
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder to write (empty or absent).")] = None,
    push_to_hub: Annotated[str | None, typer.Option("--push-to-hub", help="Also push to this Hub dataset repo "
                                                    "(OWNER/NAME); the token comes from HF_TOKEN.")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the Hub repo private.")] = False,
    tool_format: Annotated[str, typer.Option(help="openai or gemini: the tools column and the call shape.")] = "openai",
    license: Annotated[str, typer.Option(help="License id for the dataset card.")] = "other",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous export in --out.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Export a dataset version in chat-messages form with a dataset card; optionally push it to the Hub.

    Example: tooldistill curate export latest --format parquet --out export/ --push-to-hub me/router --private
    """
    from ..curate.export import export, push_to_hub as push
    from ..errors import InputError

    if out_dir is None and push_to_hub is None:
        raise InputError("nothing to do: pass --out DIR, --push-to-hub OWNER/NAME, or both")
    st = state(ctx)
    db = st.open_db(create=False)
    result = {}
    if out_dir is not None:
        with progress_bar(ctx, transient=True) as callback:
            report = export(db, version, out_dir, fmt=fmt, tool_format=tool_format, license=license,
                            overwrite=overwrite, progress=callback)
        result["export"] = report.to_dict()
        if not json_:
            out.print(f"wrote {report.fmt} export of version {report.version_id[:12]} to {escape(report.out)}: "
                      + ", ".join(f"{k} {n:,}" for k, n in report.counts.items()) + " + README.md (dataset card)")
    if push_to_hub is not None:
        pushed = push(db, version, push_to_hub, token=st.workspace.getenv("HF_TOKEN"), private=private,
                      tool_format=tool_format, license=license)
        result["push"] = pushed.to_dict()
        if not json_:
            out.print(f"pushed version {pushed.version_id[:12]} to https://huggingface.co/datasets/{pushed.repo}"
                      f" ({'private' if private else 'public'}) with its dataset card")
    if json_:
        print_json(result)
