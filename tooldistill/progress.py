"""Progress events: long work reports through a callback, the CLI draws them (nothing below the CLI prints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class ProgressEvent:
    """``done`` of ``total`` units of ``task`` are finished; ``info`` carries stage-specific figures."""

    task: str
    done: int = 0
    total: int | None = None
    message: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


def noop(_: ProgressEvent) -> None:
    """The default callback: ignore progress."""
