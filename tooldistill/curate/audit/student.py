"""The hook for a trained student's confident disagreement.

A student trained on the teacher's labels that still, confidently, predicts another tool set for a query is
evidence the teacher's label is wrong (it had to overrule what it was taught). Any model can feed it: pass
``{query_id: StudentPrediction(label, confidence)}`` to :func:`~tooldistill.curate.audit.run_audit`, or a JSONL
file of ``{"query_id", "label", "confidence"}`` to ``curate audit --student FILE``. Predictions on queries the
student trained on are weaker evidence than out-of-sample ones; producing them out-of-sample (k-fold or a held-out
split) is the caller's choice.

The signal fires when the predicted tool set differs from the audited label's and the confidence reaches
``AuditConfig.student_min_confidence``; its strength is the confidence, and it suggests the predicted label.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ...catalog import Catalog, Label
from ...errors import InputError
from .base import AuditContext, Hit, SignalOutput


@dataclass(frozen=True)
class StudentPrediction:
    """What a student predicts for one query, with its confidence in [0, 1]."""

    label: Label
    confidence: float


def load_student_predictions(path: str | Path, catalog: Catalog) -> dict[int, StudentPrediction]:
    """Read ``{"query_id", "label", "confidence"}`` lines; labels are validated against ``catalog``.

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
        if not isinstance(conf, (int, float)) or isinstance(conf, bool) or not 0 <= conf <= 1 or math.isnan(conf):
            raise InputError(f"expected a number in [0, 1], got {conf!r}", path=str(path), line=n,
                             field="confidence")
        label = catalog.validate_label(row["label"], source=str(path), line=n)
        out[qid] = StudentPrediction(label, float(conf))
    return out


class StudentSignal:
    """A student's confident disagreement with the audited label."""

    name = "student"
    description = "a trained student's confident disagreement"

    def __init__(self, predictions: Mapping[int, StudentPrediction] | None = None):
        self.predictions = dict(predictions or {})

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        if not self.predictions:
            out.skipped = "no student predictions (pass --student FILE)"
            return out
        threshold = ctx.config.student_min_confidence
        for it in ctx.targets:
            pred = self.predictions.get(it.query_id)
            if pred is None:
                continue
            out.checked += 1
            if pred.label.tool_set_key == it.cls or pred.confidence < threshold:
                continue
            suggested = None if ctx.catalog.label_errors(pred.label) else pred.label
            out.hits[it.query_id] = Hit(pred.confidence, {"predicted": pred.label.to_json(),
                                                          "confidence": round(pred.confidence, 4)},
                                        suggested=suggested, suggested_class=pred.label.tool_set_key)
        out.info = {"predictions": len(self.predictions), "min_confidence": threshold}
        return out
