"""One SQLite file holds the state of every stage: connection, migrations, queries, labels, status."""

from .catalogs import get_catalog, get_catalog_by_hash, store_catalog
from .datasets import SplitExample, load_split, parse_split_ref, resolve_version, version_info
from .connection import backup, get_setting, now_iso, open_db, pending_migrations, set_setting
from .labels import PRECEDENCE, CurrentLabel, add_label, add_review, current_labels, teacher_labels
from .queries import InsertResult, NewQuery, count_queries, insert_queries, iter_queries
from .status import db_status

__all__ = [
    "open_db", "backup", "pending_migrations", "get_setting", "set_setting", "now_iso",
    "get_catalog", "get_catalog_by_hash", "store_catalog",
    "NewQuery", "InsertResult", "insert_queries", "iter_queries", "count_queries",
    "PRECEDENCE", "CurrentLabel", "add_label", "add_review", "current_labels", "teacher_labels",
    "db_status", "SplitExample", "load_split", "parse_split_ref", "resolve_version", "version_info",
]
