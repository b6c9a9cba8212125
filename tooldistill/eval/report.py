"""Eval reports on disk: Markdown for people, JSON for machines, PNG charts (matplotlib, headless).

An eval run's folder gets ``report.md``, ``report.json``, ``confusion.png`` (gold x predicted tool set, row
normalised), ``per_tool.png`` (F1 per tool with its interval) and ``views.png`` (headline rates against each
label view); a comparison gets ``compare-<A>.md/.json/.png`` (A vs B per metric, with intervals) in B's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .metrics import HEADLINE, format_rate
from .noise import VIEWS

VIEW_TITLES = {"split": "split", "teacher": "teacher", "corrected": "corrected", "clean": "verified"}
"""Column titles of the label views (:data:`tooldistill.eval.noise.VIEWS`)."""


def _label_text(calls) -> str:
    if calls is None:
        return "(unreadable)"
    if not calls:
        return "[] (no tool)"
    return "; ".join(f"{c['tool']}({', '.join(f'{k}={v!r}' for k, v in c.get('args', {}).items())})" for c in calls)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: Iterable[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict, *, charts: bool = True) -> str:
    """The eval report as Markdown (headline, noise-aware views, label error, per tool, errors, lists)."""
    m = report["metrics"]
    boot = m["bootstrap"]
    out = [f"# Eval report: {report['target']}", "",
           f"Run `{report['run_id']}` · dataset version `{str(report['dataset_version'])[:12]}` split "
           f"`{report['split']}` · n = {report['n']} · catalogue `{report['catalog']}`"
           + (f" · evaluates train run `{report['parent_run_id']}`" if report.get("parent_run_id") else ""),
           "", f"Intervals: {100 * boot['confidence']:.0f}% bootstrap percentile intervals "
           f"({boot['resamples']} resamples, seed {boot['seed']}); label-error intervals are Wilson intervals.", ""]
    out += ["## Noise-aware view", "",
            "The same predictions scored against the labels the split froze, the teacher's labels, the labels "
            "after audit/review/relabel, and the verified-clean subset (gold or human-reviewed).", ""]
    views = {v: report["views"][v] for v in (*VIEWS, *report["views"]) if v in report["views"]}
    header = ["metric"] + [f"{VIEW_TITLES.get(v, v)} (n={views[v]['n']})" for v in views]
    out += _table(header, ([name] + [format_rate(views[v]["rates"][name]) for v in views] for name in HEADLINE))
    if report.get("missing") or report.get("unmatched"):
        out += ["", f"{report.get('missing', 0)} gold rows had no prediction (graded as unreadable); "
                f"{report.get('unmatched', 0)} predictions matched no gold row."]
    le = report.get("label_error")
    if le:
        est = le["estimate"]
        out += ["", "## Test-label error estimate", ""]
        if est["value"] is None:
            out.append("No verified or corrected labels in this split yet: nothing to estimate from.")
        else:
            out.append(f"**{format_rate(est)}** of the split's labels are wrong ({est['num']:.0f} of "
                       f"{est['den']:.0f}; method: {le['method']}).")
        notes = {"gold": "on gold items", "verified": "on reviewed or gold items (reviews follow audit flags, "
                 "so this is closer to the audit's precision than to the error rate)",
                 "corrected_lower_bound": "corrections made so far, over all items (a lower bound)"}
        out += ["", *(f"- {k}: {format_rate(le[k])} ({le[k]['num']:.0f}/{le[k]['den']:.0f}), {notes[k]}"
                      for k in ("gold", "verified", "corrected_lower_bound"))]
    out += ["", "## All metrics (split labels)", ""]
    out += _table(["metric", "value [CI]", "num/den"],
                  ([k, format_rate(r), f"{r['num']:.0f}/{r['den']:.0f}"] for k, r in m["rates"].items()))
    out += ["", "## Per tool (split labels)", ""]
    out += _table(["tool", "support", "predicted", "precision", "recall", "F1"],
                  ([t, v["support"], v["predicted"], format_rate(v["precision"]), format_rate(v["recall"]),
                    format_rate(v["f1"])] for t, v in m["per_tool"].items()))
    out += ["", "## Typed errors (predictions with each)", ""]
    out += _table(["error", "count"], ([k, v] for k, v in m["errors"].items() if v))
    out += ["", "## Most frequent confusions", ""]
    out += _table(["gold", "predicted", "count"],
                  ([c["gold"], c["pred"], c["count"]] for c in m["confusion"]["top_confusions"]))
    lat = m["latency"]
    out += ["", "## Latency", ""]
    if lat.get("p50_ms") is not None:
        qps = f"{lat['throughput_qps']:.1f}/s" if lat.get("throughput_qps") else "n/a"
        out.append(f"p50 {lat['p50_ms']:.1f} ms · p95 {lat['p95_ms']:.1f} ms per query (wall time of its batch) · "
                   f"throughput {qps}")
    else:
        out.append("not measured (scored from a file)")
    dis = report.get("disagreements")
    if dis is not None:
        out += ["", f"## Where the audit sides with the model ({len(dis)})", ""]
        out += _table(["id", "query", "teacher", "model", "evidence"],
                      ([d["query_id"], d["text"][:80], _label_text(d["teacher"]), _label_text(d["model"]),
                        d["evidence"]] for d in dis[:50]))
    fails = report.get("failures", [])
    out += ["", f"## Wrong predictions (first {len(fails)})", ""]
    out += _table(["id", "query", "label", "prediction", "errors"],
                  ([f["query_id"], f["text"][:80], _label_text(f["gold"]), _label_text(f["pred"]),
                    "; ".join(f["details"]) or ", ".join(f["errors"])] for f in fails))
    if charts:
        out += ["", "## Charts", "", "![confusion matrix](confusion.png)", "", "![per-tool F1](per_tool.png)", "",
                "![label views](views.png)"]
    return "\n".join(out) + "\n"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: dict, path: Path, *, top: int = 20) -> Path:
    """Row-normalised confusion heatmap of the ``top`` most frequent gold tool sets."""
    import numpy as np

    plt = _plt()
    rows = confusion["rows"][:top]
    cols = [c for c in confusion["cols"] if c in rows or c == "<invalid>"]
    full = {r: dict(zip(confusion["cols"], vals)) for r, vals in zip(confusion["rows"], confusion["matrix"])}
    mat = np.array([[full[r].get(c, 0) for c in cols] for r in rows], dtype=float)
    norm = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.4 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, max(4.0, 0.4 * len(rows) + 2)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    if len(rows) <= 25:
        for i in range(len(rows)):
            for j in range(len(cols)):
                if mat[i, j]:
                    ax.text(j, i, int(mat[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("label")
    ax.set_title("confusion (row-normalised)" + (f", top {top} labels" if len(confusion["rows"]) > top else ""))
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax, names: list[str], rates: list[dict], *, offset: float = 0.0, width: float = 0.8, label=None,
          horizontal: bool = False) -> None:
    vals = [r["value"] or 0.0 for r in rates]
    lo = [max(0.0, (r["value"] or 0) - (r["lo"] if r.get("lo") is not None else r["value"] or 0)) for r in rates]
    hi = [max(0.0, (r["hi"] if r.get("hi") is not None else r["value"] or 0) - (r["value"] or 0)) for r in rates]
    pos = [i + offset for i in range(len(names))]
    if horizontal:
        ax.barh(pos, vals, height=width, xerr=[lo, hi], capsize=2, label=label)
    else:
        ax.bar(pos, vals, width=width, yerr=[lo, hi], capsize=2, label=label)


def plot_per_tool(per_tool: dict, path: Path, *, top: int = 30) -> Path:
    """F1 per tool with interval bars (the ``top`` worst when there are many tools)."""
    plt = _plt()
    items = [(t, v["f1"]) for t, v in per_tool.items() if v["f1"]["value"] is not None]
    if len(items) > top:
        items = sorted(items, key=lambda x: x[1]["value"])[:top]
    names = [t for t, _ in items]
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.3 * len(names) + 1.5)))
    _bars(ax, names, [r for _, r in items], horizontal=True)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("F1 (95% interval)")
    ax.set_title("per-tool F1" + (f" ({top} lowest)" if len(per_tool) > top else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_groups(groups: dict[str, dict[str, dict]], metrics: list[str], path: Path, *, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per series (views, or runs A and B), with intervals."""
    plt = _plt()
    names = list(groups)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(metrics) + 2), 4))
    for i, name in enumerate(names):
        rates = [groups[name].get(m) or {"value": None} for m in metrics]
        _bars(ax, metrics, rates, offset=(i - (len(names) - 1) / 2) * width, width=width, label=name)
    ax.set_xticks(range(len(metrics)), metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_eval_report(report: dict, folder: str | Path, *, charts: bool = True) -> list[Path]:
    """Write report.md, report.json and (with ``charts``) the PNG charts into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "report.json", folder / "report.md"]
    paths[0].write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    paths[1].write_text(render_markdown(report, charts=charts), encoding="utf-8")
    if charts:
        m = report["metrics"]
        paths.append(plot_confusion(m["confusion"], folder / "confusion.png"))
        paths.append(plot_per_tool(m["per_tool"], folder / "per_tool.png"))
        series = {VIEW_TITLES.get(v, v): m["rates"] for v, m in report["views"].items() if m["n"]}
        paths.append(plot_groups(series, ["tool_accuracy", "fully_correct", "args_exact", "false_tool_call",
                                          "no_tool_recall"], folder / "views.png", title="rates by label view"))
    return paths


def render_compare_markdown(comparison: dict) -> str:
    """A paired comparison as Markdown: A, B, B - A with its interval, McNemar's test."""
    a, b = comparison["a"], comparison["b"]
    out = [f"# {b['target']} vs {a['target']}", "",
           f"Paired on {comparison['n']} queries of `{comparison['split']}`, against the `{comparison['view']}` "
           "labels. Difference = B - A with a paired bootstrap interval; McNemar's test on the discordant pairs.", "",
           f"A = `{a['run_id']}` ({a['target']}), B = `{b['run_id']}` ({b['target']})", ""]
    rows = []
    for name, r in comparison["metrics"].items():
        mc = r["mcnemar"]
        d = r["diff"]
        diff = "n/a" if d["value"] is None else (f"{100 * d['value']:+.1f} pts" + (
            f" [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]" if d.get("lo") is not None else ""))
        rows.append([name, format_rate(r["a"]), format_rate(r["b"]), diff, mc["a_only"], mc["b_only"],
                     f"{mc['p_value']:.3g}" if mc["p_value"] is not None else "n/a", mc["method"]])
    out += _table(["metric", "A", "B", "B - A", "A right only", "B right only", "p", "test"], rows)
    return "\n".join(out) + "\n"


def write_compare_report(comparison: dict, folder: str | Path) -> list[Path]:
    """Write ``compare-<A>.md/.json/.png`` into ``folder`` (B's run folder); return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"compare-{comparison['a']['run_id']}"
    md, js, png = folder / f"{stem}.md", folder / f"{stem}.json", folder / f"{stem}.png"
    js.write_text(json.dumps(comparison, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    md.write_text(render_compare_markdown(comparison) + f"\n![A vs B]({png.name})\n", encoding="utf-8")
    groups = {f"A: {comparison['a']['target']}": {k: v["a"] for k, v in comparison["metrics"].items()},
              f"B: {comparison['b']['target']}": {k: v["b"] for k, v in comparison["metrics"].items()}}
    plot_groups(groups, list(comparison["metrics"]), png, title=f"A vs B ({comparison['view']} labels)")
    return [md, js, png]


def render_board_markdown(board: dict, *, metrics: tuple[str, ...] = ("tool_accuracy", "fully_correct",
                                                                      "false_tool_call", "no_tool_recall")) -> str:
    """Routers (rows) x label views (column groups) for a few headline metrics, as Markdown tables."""
    runs = board["runs"]
    views = [v for v in VIEWS if any(v in r["views"] for r in runs)]
    out = ["# Routers side by side", "",
           "Each router scored against the split's frozen labels, the teacher's, the corrected labels (after audit,"
           " review and relabel) and the verified-clean subset; 95% bootstrap intervals.", ""]
    for metric in metrics:
        out += [f"## {metric}", ""]
        header = ["router"] + [f"{VIEW_TITLES.get(v, v)} (n={runs[0]['views'].get(v, {}).get('n', 0)})" for v in views]
        out += _table(header, ([f"{r['target']} (`{r['run_id']}`)"]
                               + [format_rate(r["views"].get(v, {}).get("rates", {}).get(metric)) for v in views]
                               for r in runs))
        out.append("")
    return "\n".join(out)


def write_board(board: dict, folder: str | Path) -> list[Path]:
    """Write ``board.md``, ``board.json`` and ``board.png`` (fully correct per router and view) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js, png = folder / "board.md", folder / "board.json", folder / "board.png"
    js.write_text(json.dumps(board, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    md.write_text(render_board_markdown(board) + "\n![fully correct by label view](board.png)\n", encoding="utf-8")
    views = [v for v in VIEWS if any(v in r["views"] for r in board["runs"])]
    groups = {r["target"]: {VIEW_TITLES.get(v, v): r["views"].get(v, {}).get("rates", {}).get("fully_correct")
                            for v in views} for r in board["runs"]}
    plot_groups(groups, [VIEW_TITLES.get(v, v) for v in views], png, title="fully correct, by label view")
    return [md, js, png]
