"""`tooldistill db` commands: status, migrate, backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOpt, out, print_json, state

app = typer.Typer(no_args_is_help=True, help="The workspace database: status, migrations, backups.")


@app.command("status")
def status_cmd(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Print row counts per table and per stage.

    Example: tooldistill db status --json
    """
    from ..db import db_status

    st = state(ctx)
    db = st.open_db(create=False)
    report = {"path": str(st.workspace.db_path), **db_status(db)}
    if json_:
        print_json(report)
        return
    out.print(f"[bold]{report['path']}[/bold]")
    table = Table("table", "rows", title="tables")
    for name, n in report["tables"].items():
        table.add_row(name, f"{n:,}")
    out.print(table)
    stages = Table("stage", "what", "count", title="stages")
    for stage, counts in report["stages"].items():
        if isinstance(counts, dict):
            for k, v in counts.items():
                stages.add_row(stage, k, f"{v:,}")
        else:
            stages.add_row(stage, "", f"{counts:,}")
    out.print(stages)


@app.command("migrate")
def migrate_cmd(ctx: typer.Context) -> None:
    """Apply pending schema migrations (idempotent; every command also does this on open)."""
    from ..db import open_db, pending_migrations

    path = state(ctx).workspace.db_path
    before = pending_migrations(open_db(path, migrate=False)) if path.exists() else ["(new database)"]
    open_db(path)
    out.print(f"applied {len(before)} migration(s)" if before else "database is up to date")


@app.command("backup")
def backup_cmd(ctx: typer.Context, dest: Annotated[Path, typer.Argument(help="Where to write the copy.")]) -> None:
    """Write a consistent copy of the database (VACUUM INTO), safe while a run is writing.

    Example: tooldistill db backup backups/2026-11-22.db
    """
    from ..db import backup

    path = backup(state(ctx).open_db(create=False), dest)
    out.print(f"backup written to {path} ({path.stat().st_size:,} bytes)")
