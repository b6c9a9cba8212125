"""`tooldistill distill fake-server` (registered on the distill sub-app)."""

from __future__ import annotations

from .distill import app  # noqa: F401  (commands register on the distill sub-app)
