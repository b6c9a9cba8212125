"""curate stage."""

# audit, review, relabel, adjudicate (curate part 2)
from .adjudicate import Adjudication, AdjudicationReport, adjudicate
from .audit import (
    SIGNAL_NAMES, AuditConfig, AuditReport, Flag, StudentPrediction, get_flags, get_run, latest_run_id,
    load_student_predictions, register_encoder, run_audit,
)
from .relabel import RelabelReport, enqueue_relabels
from .review import ApplyReport, Decision, apply_decisions, pending_flags, record_decision, write_template

__all__ = [*globals().get("__all__", []),  # extend, whoever writes first
    "SIGNAL_NAMES", "AuditConfig", "AuditReport", "Flag", "StudentPrediction", "run_audit", "get_flags", "get_run",
    "latest_run_id", "load_student_predictions", "register_encoder",
    "Decision", "ApplyReport", "pending_flags", "record_decision", "apply_decisions", "write_template",
    "RelabelReport", "enqueue_relabels", "Adjudication", "AdjudicationReport", "adjudicate",
]

# dedup, split, export (curate part 1)
from .dedup import (
    Cluster, ClusterMember, DedupReport, DedupRun, dedup, ensure_dedup_run, get_clusters, get_dedup_run,
    list_dedup_runs,
)
from .export import ExportReport, PushReport, build_rows, export, push_to_hub
from .split import LeakageReport, SplitReport, check_leakage, list_versions, split

__all__ = [*globals().get("__all__", []),  # extend, whoever writes first
    "dedup", "DedupReport", "DedupRun", "Cluster", "ClusterMember", "get_clusters", "get_dedup_run",
    "list_dedup_runs", "ensure_dedup_run",
    "split", "SplitReport", "LeakageReport", "check_leakage", "list_versions",
    "export", "push_to_hub", "build_rows", "ExportReport", "PushReport",
]
