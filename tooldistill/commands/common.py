"""What every command shares: the workspace from the context, consoles, ``--json`` output, progress drawing."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

from ..progress import ProgressEvent

if TYPE_CHECKING:  # config imports pydantic, which `tooldistill --help` does not need
    from ..config import Workspace

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
ArgsRunOpt = Annotated[Optional[str], typer.Option("--args-run", help="With --run ENCODER_RUN: an LLM (sft) run that "
                                                   "fills in the arguments of the tools the encoder picks (the hybrid "
                                                   "router).")]


@dataclass
class AppState:
    db: Path | None = None
    verbose: int = 0
    quiet: bool = False
    _workspace: Workspace | None = None

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from ..config import load_workspace

            self._workspace = load_workspace(db=self.db)
        return self._workspace

    def open_db(self, *, create: bool = True):
        from ..db import open_db

        return open_db(self.workspace.db_path, create=create)


def state(ctx: typer.Context) -> AppState:
    """The AppState of the root command (a default one when a command runs standalone)."""
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (plain, so pipes get exactly the JSON)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def info(message: str, ctx: typer.Context | None = None) -> None:
    """A diagnostic line on stderr (hidden with --quiet)."""
    if ctx is not None and state(ctx).quiet:
        return
    err.print(message)


@contextlib.contextmanager
def progress_bar(ctx: typer.Context | None = None, *, transient: bool = False) -> Iterator:
    """Yield a progress callback drawn as rich bars on a TTY, and as nothing otherwise (or with --quiet)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    quiet = ctx is not None and state(ctx).quiet
    if quiet or not err.is_terminal:
        yield lambda event: None
        return
    tasks: dict[str, Any] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=transient) as bar:
        def callback(event: ProgressEvent) -> None:
            if event.task not in tasks:
                tasks[event.task] = bar.add_task(event.task, total=event.total)
            bar.update(tasks[event.task], completed=event.done, total=event.total,
                       description=event.message or event.task)

        yield callback
