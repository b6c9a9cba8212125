"""The hook for a trained student's confident disagreement.

A student trained on the teacher's labels that still, confidently, predicts another tool set for a query is
evidence the teacher's label is wrong (it had to overrule what it was taught). Any model can feed it: pass
``{query_id: StudentPrediction(label, confidence)}`` to :func:`~tooldistill.curate.audit.run_audit`; read a JSONL
file of ``{"query_id", "label", "confidence"}`` (``curate audit --student FILE``) with
:func:`load_student_predictions`; or read an eval run's stored predictions (``curate audit --student-run RUN``)
with :func:`student_predictions_from_run`. Predictions on queries the student trained on are weaker evidence than
out-of-sample ones; an eval run covers the split it scored (normally test, out-of-sample), so only those queries
are checked.

The signal fires when the predicted tool set differs from the audited label's and the confidence reaches
``AuditConfig.student_min_confidence``; its strength is the confidence, and it suggests the predicted label.

Unknown confidence (``None``: a JSON ``null``, or an eval run of a router that reports none: the baselines, an LLM
student, the teacher; the encoder student stores its probability of the chosen tool set) cannot be shown to reach
a threshold, so by default such predictions are left out of the signal (its info counts them as ``unscored``).
With ``student_min_confidence = 0`` (any confidence will do) each of their disagreements counts, at strength
:data:`UNSCORED_STRENGTH` (0.5): enough to flag a row alone, ranked below rows other evidence also suspects.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sqlite_utils import Database

from ...catalog import Catalog, Label, parse_label
from ...errors import InputError, ToolDistillError
from .base import AuditContext, Hit, SignalOutput

UNSCORED_STRENGTH = 0.5
"""A disagreement of unknown confidence, counted when ``student_min_confidence`` is 0: as likely wrong as right."""


@dataclass(frozen=True)
class StudentPrediction:
    """What a student predicts for one query, with its confidence in [0, 1] (None: unknown)."""

    label: Label
    confidence: float | None


def load_student_predictions(path: str | Path, catalog: Catalog) -> dict[int, StudentPrediction]:
    """Read ``{"query_id", "label", "confidence"}`` lines; labels are validated against ``catalog``.

    ``"confidence": null`` means unknown (see the module docstring for how the signal counts it).

    Raises: InputError naming the file, line and field.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read student predictions: {exc.strerror}", path=str(path)) from None
    out: dict[int, StudentPrediction] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg})", path=str(path), line=n) from None
        if not isinstance(row, dict):
            raise InputError("expected an object {\"query_id\", \"label\", \"confidence\"}", path=str(path), line=n)
        for key in ("query_id", "label", "confidence"):
            if key not in row:
                raise InputError("missing", path=str(path), line=n, field=key)
        qid, conf = row["query_id"], row["confidence"]
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise InputError(f"expected an integer query id, got {qid!r}", path=str(path), line=n, field="query_id")
        if conf is not None and (not isinstance(conf, (int, float)) or isinstance(conf, bool)
                                 or not 0 <= conf <= 1 or math.isnan(conf)):
            raise InputError(f"expected a number in [0, 1] or null, got {conf!r}", path=str(path), line=n,
                             field="confidence")
        label = catalog.validate_label(row["label"], source=str(path), line=n)
        out[qid] = StudentPrediction(label, None if conf is None else float(conf))
    return out


def student_predictions_from_run(db: Database, run_ref: str, catalog: Catalog) -> dict[int, StudentPrediction]:
    """The predictions an eval run stored, as the student signal's input: ``{query_id: StudentPrediction}``.

    Args:
        db: the workspace database.
        run_ref: the eval run's id, a unique prefix, or ``latest`` (the newest eval run).
        catalog: the audit's catalogue: predictions calling a tool it does not have are left out.

    Returns: one prediction per query the run routed (its split only, normally test) whose output parsed to
    calls; the confidence is the stored ``predictions.confidence`` (None where the router reported none). The
    labels are as predicted: an encoder's calls have no arguments (the signal then suggests the tool set only).

    Raises: ToolDistillError naming the run when it does not exist, is ambiguous, is not an eval run, or stored
    no usable predictions.
    """
    run_id = resolve_eval_run(db, run_ref)
    rows = db.execute("SELECT query_id, calls, confidence FROM predictions WHERE run_id = ? ORDER BY id",
                      [run_id]).fetchall()
    if not rows:
        raise ToolDistillError(f"eval run {run_id} stored no predictions (it failed or was stopped before its first "
                               "batch); evaluate again with 'tooldistill eval run'")
    tools = set(catalog.names)
    out: dict[int, StudentPrediction] = {}
    for qid, calls, conf in rows:
        if calls is None:
            continue  # the output did not parse to calls: no prediction to disagree with
        label = parse_label(json.loads(calls))
        if not set(label.tools) <= tools:
            continue
        out[qid] = StudentPrediction(label, None if conf is None else float(conf))
    if not out:
        raise ToolDistillError(f"eval run {run_id}: none of its {len(rows):,} predictions parsed to calls of this "
                               "catalogue's tools; nothing for the student signal to use")
    return out


def resolve_eval_run(db: Database, run_ref: str) -> str:
    """An eval run's full id from its id, a unique prefix or ``latest``.

    Raises: ToolDistillError naming the reference when no run (or several) match, or the run is not an eval run.
    """
    from ...train import resolve_run

    if run_ref == "latest" and not db.execute("SELECT 1 FROM runs WHERE kind = 'eval' LIMIT 1").fetchone():
        raise ToolDistillError("no eval run yet; evaluate a student first: tooldistill eval run --split latest:test "
                               "--run TRAIN_RUN")
    run_id = resolve_run(db, run_ref, kind="eval" if run_ref == "latest" else None)
    kind = db.execute("SELECT kind FROM runs WHERE id = ?", [run_id]).fetchone()[0]
    if kind != "eval":
        hint = (f"; evaluate it first (tooldistill eval run --split latest:test --run {run_id}) and pass the eval "
                "run's id" if kind == "train" else "; pass an eval run (tooldistill eval list)")
        raise ToolDistillError(f"run {run_id} is a {kind} run, not an eval run{hint}")
    return run_id


class StudentSignal:
    """A student's confident disagreement with the audited label."""

    name = "student"
    description = "a trained student's confident disagreement"

    def __init__(self, predictions: Mapping[int, StudentPrediction] | None = None):
        self.predictions = dict(predictions or {})

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        if not self.predictions:
            out.skipped = "no student predictions (pass --student FILE or --student-run EVAL_RUN)"
            return out
        threshold = ctx.config.student_min_confidence
        unscored = 0
        for it in ctx.targets:
            pred = self.predictions.get(it.query_id)
            if pred is None:
                continue
            if pred.confidence is None and threshold > 0:
                unscored += 1  # unknown confidence cannot be shown to reach the threshold
                continue
            out.checked += 1
            conf = pred.confidence
            if pred.label.tool_set_key == it.cls or (conf is not None and conf < threshold):
                continue
            suggested = None if ctx.catalog.label_errors(pred.label) else pred.label
            out.hits[it.query_id] = Hit(UNSCORED_STRENGTH if conf is None else conf,
                                        {"predicted": pred.label.to_json(),
                                         "confidence": None if conf is None else round(conf, 4)},
                                        suggested=suggested, suggested_class=pred.label.tool_set_key)
        out.info = {"predictions": len(self.predictions), "covered": out.checked + unscored,
                    "audited": len(ctx.targets), "unscored": unscored, "min_confidence": threshold}
        if unscored and not out.checked:
            out.skipped = (f"the student's {unscored:,} predictions on audited queries have no confidence; "
                           "--student-min-confidence 0 counts each disagreement")
        return out
