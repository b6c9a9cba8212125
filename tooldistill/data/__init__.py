"""data stage: template generation of queries with gold labels, import and export of queries and labels,
revalidation of labels against the catalogue."""

from .export import EXPORT_KEYS, ExportReport, export_jsonl
from .generate import GenerateReport, check_catalog, generate, generate_queries
from .importers import ImportReport, count_labels, import_queries
from .validate import Misfit, ValidationReport, set_catalog, validate_labels

__all__ = [
    "generate", "generate_queries", "GenerateReport", "check_catalog",
    "import_queries", "ImportReport", "count_labels",
    "export_jsonl", "ExportReport", "EXPORT_KEYS",
    "validate_labels", "set_catalog", "ValidationReport", "Misfit",
]
