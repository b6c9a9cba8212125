"""`tooldistill curate audit|review|relabel|adjudicate` commands (registered on the curate sub-app)."""

from __future__ import annotations

from .curate import app  # noqa: F401  (commands register on the curate sub-app)
