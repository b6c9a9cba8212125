"""`tooldistill route`: answer a query with a trained run or a baseline."""

from __future__ import annotations
