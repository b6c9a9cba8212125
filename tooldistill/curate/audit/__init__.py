"""``curate audit``: ranked flags of suspected teacher mislabels, each with a score, a suggestion and evidence.

Signals (each switchable): ``confident`` (cleanlab on out-of-sample probabilities of fast text classifiers),
``gold``, ``votes``, ``duplicates``, ``arguments`` and ``student``. See :mod:`.core` for how they combine.
"""

from .base import SIGNAL_NAMES, AuditConfig, AuditContext, AuditItem, Hit, Signal, SignalOutput, suggest_label
from .core import AuditReport, build_signals, combine, load_items, run_audit
from .oof import Encoder, known_models, register_encoder
from .store import FLAG_STATUSES, Flag, get_flags, get_run, latest_run_id, set_flag_status
from .student import StudentPrediction, load_student_predictions, student_predictions_from_run
from .votes import label_votes

__all__ = [
    "SIGNAL_NAMES", "AuditConfig", "AuditContext", "AuditItem", "AuditReport", "Hit", "Signal", "SignalOutput",
    "run_audit", "load_items", "build_signals", "combine", "suggest_label",
    "Encoder", "register_encoder", "known_models",
    "FLAG_STATUSES", "Flag", "get_flags", "get_run", "latest_run_id", "set_flag_status",
    "StudentPrediction", "load_student_predictions", "student_predictions_from_run", "label_votes",
]
