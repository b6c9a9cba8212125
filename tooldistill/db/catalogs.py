"""The workspace's current catalogue, stored in the database with its content hash."""

from __future__ import annotations

import json

from sqlite_utils import Database

from ..catalog import Catalog, catalog_from_data, load_catalog
from ..errors import ToolDistillError
from .connection import get_setting, now_iso, set_setting

CURRENT_CATALOG_KEY = "current_catalog_hash"


def store_catalog(db: Database, catalog: Catalog, *, make_current: bool = True) -> str:
    """Store ``catalog`` (idempotent) and by default make it the workspace's current one; return its hash."""
    with db.atomic():
        if not db.execute("SELECT 1 FROM catalogs WHERE hash = ?", [catalog.hash]).fetchone():
            db["catalogs"].insert(
                {"hash": catalog.hash, "name": catalog.name, "body": json.dumps(catalog.to_dict()), "created_at": now_iso()}
            )
        if make_current:
            set_setting(db, CURRENT_CATALOG_KEY, catalog.hash)
    return catalog.hash


def get_catalog_by_hash(db: Database, catalog_hash: str) -> Catalog:
    """Return the stored catalogue with this hash or raise ToolDistillError."""
    row = db.execute("SELECT body FROM catalogs WHERE hash = ?", [catalog_hash]).fetchone()
    if row is None:
        raise ToolDistillError(f"catalogue {catalog_hash} is not in the database")
    return catalog_from_data(json.loads(row[0]), source=f"<catalogue {catalog_hash}>")


def get_catalog(db: Database, *, default: bool = True) -> Catalog:
    """Return the workspace's current catalogue.

    With ``default`` (the default) a database with no catalogue gets the packaged default stored as current;
    otherwise that is an error.
    """
    current = get_setting(db, CURRENT_CATALOG_KEY)
    if current is None:
        if not default:
            raise ToolDistillError("the database has no catalogue yet; run 'tooldistill data catalog set FILE'")
        catalog = load_catalog()
        store_catalog(db, catalog)
        return catalog
    return get_catalog_by_hash(db, current)
