"""`tooldistill route`: answer a query with a trained run or a baseline (JSON out)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from ..errors import InputError
from .common import ArgsRunOpt, print_json, state


def route(
    ctx: typer.Context,
    query: Annotated[Optional[str], typer.Argument(help="The request to route; '-' or nothing reads one request "
                                                   "per line from stdin and prints one JSON line each.")] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="A train run id (SFT or encoder student).")] = None,
    args_run: ArgsRunOpt = None,
    merged: Annotated[bool, typer.Option("--merged", help="With --run: use the merged model.")] = False,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="majority or keyword (alias regex).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Requests per batch (stdin mode).")] = 32,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="LLM generation budget.")] = 128,
) -> None:
    """Route a request with a trained run or a baseline and print the tool calls as JSON.

    Example: tooldistill route "weather in Oslo tomorrow?" --baseline keyword
    """
    from ..eval.routers import RouterSpec, get_router, route_queries

    if (run is None) == (baseline is None):
        raise InputError("choose one router: --run RUN or --baseline NAME")
    spec = RouterSpec.trained(run, args_run=args_run, merged=merged) or RouterSpec("baseline", baseline)
    db = state(ctx).open_db(create=False)
    router = get_router(db, spec, max_new_tokens=max_new_tokens)
    catalog = getattr(router, "catalog", None)
    if catalog is None:
        from ..db import get_catalog

        catalog = get_catalog(db)
    if query is not None and query != "-":
        print_json(route_queries(router, [query], catalog)[0])
        return
    texts = [line.strip() for line in sys.stdin if line.strip()]
    for row in route_queries(router, texts, catalog, batch_size=batch_size):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    sys.stdout.flush()
