"""Eval runs: route a split with any router, store every prediction, score it noise-aware, write the report.

An eval run is a ``runs`` row (``kind="eval"``, ``parent_run_id`` = the train run it evaluates) whose predictions
(raw output, parsed calls, latency, the router's confidence where it reports one) are rows of
``predictions``, and whose report lies in ``runs/<id>/``.
Scoring reads the stored predictions, so a run can be rescored after labels were corrected
(:func:`score_run`) without routing again.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from sqlite_utils import Database

from ..catalog import Catalog, Label
from ..db import (SplitExample, get_catalog, get_catalog_by_hash, load_split, now_iso, parse_split_ref,
                  resolve_version, version_info)
from ..errors import Interrupted, ToolDistillError
from ..progress import ProgressCallback, noop
from .generate import timed_batches
from .grade import Acceptable, Grade, acceptable_from_meta, grade
from .metrics import HEADLINE, compute_metrics
from .noise import VIEWS, audit_suggestions, disagreements_with_support, label_error_estimate, label_views
from .parse import Parsed, parse_output, raw_text
from .routers import Router, RouterSpec, get_router, get_run, student_kind, training_examples

log = logging.getLogger(__name__)


def new_run_id(prefix: str = "eval") -> str:
    """A sortable, unique run id: ``eval-20261122-153012-9f3a``."""
    return f"{prefix}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _split_catalog(db: Database, version_id: str) -> Catalog:
    info = version_info(db, version_id)
    if info.get("catalog_hash"):
        try:
            return get_catalog_by_hash(db, info["catalog_hash"])
        except ToolDistillError:
            log.warning("dataset version %s names catalogue %s, which is not stored; using the current one",
                        version_id[:12], info["catalog_hash"])
    return get_catalog(db)


def _baseline_examples(db: Database, version_id: str, held_out: set[int]) -> list[tuple[str, Label]]:
    """What a baseline may learn from: the version's train split, else current labels outside the eval split."""
    try:
        return training_examples(db, version=version_id)
    except ToolDistillError:
        texts = dict(db.execute("SELECT id, text FROM queries").fetchall())
        from ..db import current_labels

        return [(texts[q], c.label) for q, c in sorted(current_labels(db).items())
                if q not in held_out and q in texts and c.label is not None]


def run_eval(
    db: Database,
    split_ref: str,
    spec: RouterSpec | str | None = None,
    *,
    router: Router | None = None,
    runs_dir: str | Path = "runs",
    batch_size: int = 16,
    max_new_tokens: int = 128,
    limit: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    write_report: bool = True,
    on_progress: ProgressCallback = noop,
) -> dict:
    """Evaluate a router on a split: route every query, store the predictions, score, write the report.

    Args:
        db: the workspace database.
        split_ref: ``VERSION:SPLIT`` (``VERSION`` alone means its test split; ``latest`` works).
        spec: which router (:class:`RouterSpec` or text such as ``keyword``, ``run:ID``); or pass ``router``.
        router: an already built router (anything with the Router protocol) instead of ``spec``.
        runs_dir: where the run's folder (``<runs_dir>/<eval id>/``) is written.
        batch_size: queries per routing batch (one generation batch for an LLM).
        max_new_tokens: generation budget of an LLM student.
        limit: evaluate only the first ``limit`` queries of the split (smoke runs).
        resamples, seed: the bootstrap of every interval.
        write_report: write report.md/json and the charts.
        on_progress: called after every batch.

    Returns: the report (see :func:`score_run`).

    Side effects: a ``runs`` row (kind ``eval``) and one ``predictions`` row per query, committed per batch.

    Raises: ToolDistillError for unknown versions/runs/baselines; Interrupted on Ctrl-C (the run is marked so).
    """
    if (spec is None) == (router is None):
        raise ValueError("pass exactly one of spec or router")
    version, split = parse_split_ref(split_ref)
    version_id = resolve_version(db, version)
    examples = load_split(db, version_id, split)
    examples = examples[:limit] if limit else examples
    catalog = _split_catalog(db, version_id)
    spec = RouterSpec.parse(spec) if isinstance(spec, str) else spec
    if router is None:
        train = _baseline_examples(db, version_id, {e.query_id for e in examples}) if spec.kind == "baseline" else None
        router = get_router(db, spec, catalog=catalog, examples=train, max_new_tokens=max_new_tokens)
    target = spec.describe() if spec else getattr(router, "name", type(router).__name__)
    # a hybrid's parent is its tool-picking (encoder) run; the arguments run is named in its config
    parent = (get_run(db, spec.name, kind="train")["id"] if spec is not None and spec.kind in ("run", "hybrid")
              else None)
    run_id = new_run_id()
    folder = Path(runs_dir) / run_id
    predicts_arguments = bool(getattr(router, "predicts_arguments", True))
    if spec is not None and spec.kind == "run" and student_kind(get_run(db, spec.name)) == "encoder":
        predicts_arguments = False  # an encoder picks tools; argument metrics do not apply to it
    config = {"target": target, "router": getattr(router, "name", target), "split": split, "split_ref": split_ref,
              "predicts_arguments": predicts_arguments,
              "batch_size": batch_size, "max_new_tokens": max_new_tokens, "limit": limit, "resamples": resamples,
              "seed": seed, "catalog_hash": catalog.hash,
              "router_metadata": getattr(router, "metadata", None) or {}}  # e.g. the teacher's prompt version
    db["runs"].insert({"id": run_id, "kind": "eval", "status": "running", "created_at": now_iso(),
                       "config": json.dumps(config), "dataset_version": version_id, "parent_run_id": parent,
                       "base_model": spec.model if spec is not None and spec.kind == "model" else None,
                       "artifact_path": str(folder)})
    try:
        wall_s = _route_and_store(db, run_id, router, examples, catalog, batch_size=batch_size, on_progress=on_progress)
        _update_metrics(db, run_id, {"generation": {"wall_s": wall_s, "n": len(examples), "batch_size": batch_size}})
        report = score_run(db, run_id, runs_dir=runs_dir, resamples=resamples, seed=seed, write_report=write_report)
    except KeyboardInterrupt:
        db["runs"].update(run_id, {"status": "interrupted", "finished_at": now_iso()})
        raise Interrupted(f"eval run {run_id} stopped; its predictions so far are stored; start a new run to "
                          "evaluate again") from None
    except BaseException:
        db["runs"].update(run_id, {"status": "failed", "finished_at": now_iso()})
        raise
    db["runs"].update(run_id, {"status": "done", "finished_at": now_iso()})
    return report


def _route_and_store(db: Database, run_id: str, router: Router, examples: Sequence[SplitExample], catalog: Catalog,
                     *, batch_size: int, on_progress: ProgressCallback) -> float:
    texts = [e.text for e in examples]
    # a router that knows how sure it is answers with (raw, confidence) pairs (see the Router protocol)
    scored = getattr(router, "route_scored", None)
    route = scored if scored is not None else (lambda chunk: [(raw, None) for raw in router.route(chunk)])
    t0 = time.perf_counter()
    for start, answers, latency_ms in timed_batches(route, texts, batch_size=batch_size, on_progress=on_progress):
        rows = []
        for example, (raw, confidence) in zip(examples[start:start + len(answers)], answers):
            parsed = parse_output(raw)
            g = grade(parsed, example.label, catalog)
            rows.append({
                "run_id": run_id, "query_id": example.query_id, "split": example.split, "raw": raw_text(raw),
                "calls": parsed.label.canonical_json() if parsed.label is not None else None,
                "valid": int(g.schema_valid), "error": parsed.error or (
                    "; ".join(catalog.label_errors(parsed.label)) or None if parsed.label is not None else None),
                "latency_ms": latency_ms, "valid_json": int(parsed.valid_json), "extracted": int(parsed.extracted),
                "tool_correct": int(g.tool_correct), "correct": int(g.fully_correct), "created_at": now_iso(),
                "confidence": confidence,
            })
        with db.atomic():
            db["predictions"].insert_all(rows)
    return time.perf_counter() - t0


def _update_metrics(db: Database, run_id: str, patch: dict) -> None:
    row = db.execute("SELECT metrics FROM runs WHERE id = ?", [run_id]).fetchone()
    metrics = json.loads(row[0]) if row and row[0] else {}
    metrics.update(patch)
    db["runs"].update(run_id, {"metrics": json.dumps(metrics)})


def load_predictions(db: Database, run_id: str) -> dict[int, dict]:
    """The stored predictions of an eval run: ``{query_id: {"raw", "latency_ms", "parsed"}}`` in id order."""
    rows = db.execute("SELECT query_id, raw, latency_ms FROM predictions WHERE run_id = ? ORDER BY id", [run_id])
    return {qid: {"raw": raw, "latency_ms": lat, "parsed": parse_output(raw)} for qid, raw, lat in rows}


def _acceptables(db: Database, qids: Sequence[int]) -> dict[int, Acceptable]:
    out = {}
    for qid, meta in db.execute(
        f"SELECT id, meta FROM queries WHERE meta IS NOT NULL AND id IN ({','.join('?' * len(qids))})", list(qids)
    ) if qids else []:
        try:
            acc = acceptable_from_meta(meta)
        except ValueError as exc:
            log.warning("query %s: ignoring its acceptable answers: %s", qid, exc)
            continue
        if acc is not None:
            out[qid] = acc
    return out


def grade_view(parsed: dict[int, Parsed], labels: dict[int, Label], catalog: Catalog,
               acceptables: dict[int, Acceptable] | None = None) -> dict[int, Grade]:
    """Grade every prediction that has a label in ``labels``: ``{query_id: Grade}``."""
    acceptables = acceptables or {}
    return {q: grade(p, labels[q], catalog, acceptable=acceptables.get(q)) for q, p in parsed.items() if q in labels}


def score_run(db: Database, run_ref: str, *, runs_dir: str | Path | None = None, resamples: int | None = None,
              seed: int | None = None, write_report: bool = True, failures: int = 50) -> dict:
    """Score a stored eval run against every label view (split, teacher, corrected, clean), noise-aware.

    Args:
        db: the workspace database.
        run_ref: the eval run id (or a unique prefix).
        runs_dir: where its folder is (default: the run's stored artifact path).
        resamples, seed: the bootstrap (default: what the run was started with).
        write_report: (re)write report.md/json and the charts.
        failures: how many wrong predictions the report lists.

    Returns: the report dict: run, target, dataset_version, split, n, ``views`` (view -> metrics, see
    :func:`~tooldistill.eval.metrics.compute_metrics`), ``metrics`` (the split view), ``label_error``,
    ``disagreements``, ``failures``.

    Side effects: updates the run's ``metrics`` summary; writes the report files.
    """
    run = get_run(db, run_ref, kind="eval")
    cfg = run["config"]
    resamples = cfg.get("resamples", 1000) if resamples is None else resamples
    seed = cfg.get("seed", 0) if seed is None else seed
    examples = load_split(db, run["dataset_version"], cfg["split"])
    preds = load_predictions(db, run["id"])
    examples = [e for e in examples if e.query_id in preds]
    catalog = (get_catalog_by_hash(db, cfg["catalog_hash"]) if cfg.get("catalog_hash")
               else _split_catalog(db, run["dataset_version"]))
    parsed = {q: p["parsed"] for q, p in preds.items()}
    acceptables = _acceptables(db, list(parsed))
    lv = label_views(db, examples)
    generation = (run.get("metrics") or {}).get("generation", {})
    views = {}
    split_grades: dict[int, Grade] = {}
    for view in VIEWS:
        grades = grade_view(parsed, lv.views[view], catalog, acceptables)
        latencies = [preds[q]["latency_ms"] for q in grades] if view == "split" else None
        views[view] = compute_metrics(list(grades.values()), catalog=catalog, latencies_ms=latencies,
                                      wall_s=generation.get("wall_s") if view == "split" else None,
                                      resamples=resamples, seed=seed)
        if not cfg.get("predicts_arguments", True):
            _not_applicable(views[view], ARGUMENT_RATES)
        if view == "split":
            split_grades = grades
    texts = {e.query_id: e.text for e in examples}
    report = {
        "run_id": run["id"], "target": cfg.get("target"), "dataset_version": run["dataset_version"],
        "split": cfg["split"], "parent_run_id": run.get("parent_run_id"), "catalog": catalog.name,
        "catalog_hash": catalog.hash, "n": len(examples), "created_at": run["created_at"], "scored_at": now_iso(),
        "metrics": views["split"], "views": views,
        "label_error": label_error_estimate(lv),
        "disagreements": disagreements_with_support(lv, {q: p.label for q, p in parsed.items()}, texts, catalog,
                                                    flags=audit_suggestions(db)),
        "failures": _failures(split_grades, texts, preds, limit=failures,
                              tools_only=not cfg.get("predicts_arguments", True)),
    }
    folder = Path(runs_dir) / run["id"] if runs_dir is not None else Path(run.get("artifact_path") or run["id"])
    if write_report:
        from .report import write_eval_report

        report["files"] = [str(p) for p in write_eval_report(report, folder)]
    _update_metrics(db, run["id"], {"summary": summarize(report), "report": str(folder / "report.json")})
    return report


ARGUMENT_RATES = ("args_exact", "arg_precision", "arg_recall", "arg_f1", "fully_correct", "multi_tool_exact")
"""Rates that grade arguments: not applicable to a router that only picks tools (an encoder student)."""


def _not_applicable(metrics: dict, names: Sequence[str]) -> None:
    for name in names:
        metrics["rates"][name] = {"value": None, "lo": None, "hi": None, "num": 0.0, "den": 0.0,
                                  "not_applicable": "the router picks tools only"}


def _failures(grades: dict[int, Grade], texts: dict[int, str], preds: dict[int, dict], *, limit: int,
              tools_only: bool = False) -> list[dict]:
    out = []
    for qid, g in grades.items():
        if g.tool_correct if tools_only else g.fully_correct:
            continue
        out.append({"query_id": qid, "text": texts.get(qid, ""), "gold": g.gold.canonical(),
                    "pred": g.pred.canonical() if g.pred is not None else None,
                    "raw": (preds[qid]["raw"] or "")[:300], "errors": list(g.errors), "details": list(g.details)})
        if len(out) >= limit:
            break
    return out


def summarize(report: dict) -> dict:
    """The compact summary stored in ``runs.metrics``: per view, n and the headline rates with intervals."""
    return {
        "n": report["n"],
        "views": {view: {"n": m["n"], "rates": {k: m["rates"][k] for k in HEADLINE}}
                  for view, m in report["views"].items()},
        "latency": report["metrics"]["latency"],
        "label_error": report["label_error"]["estimate"] | {"method": report["label_error"]["method"]},
        "disagreements": len(report["disagreements"]),
    }


def list_eval_runs(db: Database, *, limit: int = 50) -> list[dict]:
    """Recent eval runs, newest first: id, status, target, split, dataset version, parent, summary."""
    rows = db.execute("SELECT id FROM runs WHERE kind = 'eval' ORDER BY created_at DESC LIMIT ?", [limit]).fetchall()
    return [get_run(db, r[0]) for r in rows]


def leaderboard(db: Database, run_refs: Sequence[str], *, rescore: bool = False) -> dict:
    """Several eval runs side by side: each run's headline rates against every label view.

    Args:
        db: the workspace database.
        run_refs: eval run ids (or unique prefixes), e.g. the baselines, the teacher and the student.
        rescore: score each run again against the labels as they are now (see :func:`score_run`).

    Returns: ``{"runs": [{"run_id", "target", "split", "dataset_version", "views": {view: {"n", "rates"}}}]}``
    in the order given.

    Raises: ToolDistillError for unknown runs, or runs not scored yet.
    """
    rows = []
    for ref in run_refs:
        run = get_run(db, ref, kind="eval")
        if rescore:
            score_run(db, run["id"], write_report=False)
            run = get_run(db, run["id"])
        summary = (run.get("metrics") or {}).get("summary")
        if summary is None:
            raise ToolDistillError(f"eval run {run['id']} has no scores ({run['status']}); run "
                                   f"'tooldistill eval show {run['id']} --rescore'")
        rows.append({"run_id": run["id"], "target": run["config"].get("target"), "split": run["config"].get("split"),
                     "dataset_version": run["dataset_version"], "views": summary["views"],
                     "latency": summary.get("latency")})
    return {"runs": rows}
