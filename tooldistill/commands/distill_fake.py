"""`tooldistill distill fake-server` (registered on the distill sub-app)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .common import err
from .distill import app


@app.command("fake-server")
def fake_server_cmd(
    config: Annotated[Path | None, typer.Option("--config", help="YAML/JSON FakeGeminiConfig file.")] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free port).")] = 0,
    port_file: Annotated[Path | None, typer.Option("--port-file", help="Write the port here once listening.")] = None,
    oracle: Annotated[Path | None, typer.Option("--oracle", help="JSONL of {query, calls} to answer from.")] = None,
    oracle_db: Annotated[Path | None, typer.Option("--oracle-db", help="Answer from this database's gold labels.")]
    = None,
    day_seconds: Annotated[float | None, typer.Option("--day-seconds", help="Length of a fake quota day.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of faults and label noise.")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="Append every request to this JSONL file.")] = None,
    keys_from_env: Annotated[bool, typer.Option("--keys-from-env", help="Accept the keys of GEMINI_API_KEYS "
                                                "(KEY\\[@PROJECT],...) with their projects.")] = False,
    open_keys: Annotated[bool, typer.Option("--open-keys", help="Accept any key, each its own project.")] = False,
) -> None:
    """Serve a fake Gemini API on 127.0.0.1 (quotas, faults, oracle, label noise) until Ctrl-C.

    Example: tooldistill distill fake-server --oracle-db tooldistill.db --day-seconds 60 --port-file .fake-port
    """
    from ..distill.fake_gemini import keys_from_spec, load_fake_config, serve

    cfg = load_fake_config(config, oracle=oracle, oracle_db=oracle_db, day_seconds=day_seconds, seed=seed,
                           log_path=log, open_keys=open_keys or None)
    if keys_from_env:
        env_keys = keys_from_spec(os.environ.get("GEMINI_API_KEYS", ""))
        cfg = cfg.model_copy(update={"keys": {**cfg.keys, **env_keys}})
    serve(cfg, port, port_file, on_ready=lambda url: err.print(
        f"fake Gemini listening on {url} ({len(cfg.keys)} key(s), models: {', '.join(cfg.models)}); Ctrl-C stops"))
