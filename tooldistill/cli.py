"""The ``tooldistill`` command: one sub-app per area, each thin over the library.

Errors the user can act on (:class:`~tooldistill.errors.ToolDistillError`) become one red line on stderr and
the exit code of ARCHITECTURE section 2; anything else is a bug and keeps its traceback. Set
``TOOLDISTILL_RAISE_ERRORS=1`` to get tracebacks for user errors too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from .commands import common
from .commands import curate as curate_cmd
from .commands import curate_audit as _curate_audit  # noqa: F401  (registers on curate)
from .commands import route as route_cmd
from .commands import data as data_cmd
from .commands import db as db_cmd
from .commands import distill as distill_cmd
from .commands import distill_fake as _distill_fake  # noqa: F401  (registers on distill)
from .commands import distill_scale as _distill_scale  # noqa: F401  (registers on distill)
from .commands import eval as eval_cmd
from .commands import train as train_cmd
from .errors import ToolDistillError


class _Group(TyperGroup):
    """Translate user errors into one red stderr line and the documented exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ToolDistillError as exc:
            if os.environ.get("TOOLDISTILL_RAISE_ERRORS"):
                raise
            from rich.markup import escape

            common.err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Group,
    name="tooldistill",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    help="Distill a Gemini teacher into a small, fast tool-calling router, and keep the data honest on the way.\n\n"
    "Pipeline: data -> distill -> curate -> train -> eval. One SQLite file (--db) holds every stage's state.",
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(distill_cmd.app, name="distill")
app.add_typer(curate_cmd.app, name="curate")
app.add_typer(train_cmd.app, name="train")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(db_cmd.app, name="db")
app.command("route")(route_cmd.route)


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[Path | None, typer.Option("--db", help="Workspace database file (env: TOOLDISTILL_DB; "
                                            "default: tooldistill.db beside tooldistill.toml).")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only results and errors.")] = False,
) -> None:
    ctx.obj = common.AppState(db=db, verbose=verbose, quiet=quiet)
    level = logging.WARNING - 10 * verbose if not quiet else logging.ERROR
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to make a workspace of.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Create a workspace: tooldistill.toml, .env.example, catalog.yaml and an empty database.

    Example: tooldistill init my-router && cd my-router && tooldistill data generate --n 5000
    """
    from .catalog import load_catalog
    from .config import init_workspace, load_workspace
    from .db import open_db, store_catalog

    written = init_workspace(folder, force=force)
    ws = load_workspace(folder)
    db = open_db(ws.db_path)
    store_catalog(db, load_catalog(ws.catalog_path))
    for path in written:
        common.out.print(f"wrote {path}")
    common.out.print(f"database {ws.db_path}")
    common.info("next: copy .env.example to .env and add GEMINI_API_KEYS, then 'tooldistill data generate'")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
