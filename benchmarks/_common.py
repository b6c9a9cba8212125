"""What several benchmarks share: the argument parser's common options, a run in a temporary folder, the fake
Gemini server in its own process, and printing the figures."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


def start_fake_server(workdir: Path, config: dict) -> tuple[subprocess.Popen, str]:
    """Start `tooldistill distill fake-server` with ``config`` in a process of its own; return it and its URL.

    Its own process, so the server's work does not share the benchmarked client's interpreter.
    """
    (workdir / "fake.json").write_text(json.dumps(config))
    port_file = workdir / "port"
    proc = subprocess.Popen([sys.executable, "-m", "tooldistill", "distill", "fake-server", "--config",
                             str(workdir / "fake.json"), "--port-file", str(port_file)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (port_file.exists() and port_file.read_text().strip()):
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit("the fake server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}"


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the first line of ``doc``, with ``--seed`` (default 0) and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    return parser


def in_temp_folder(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Return ``run(*args, **kwargs, workdir=folder)`` for a fresh temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        return run(*args, **kwargs, workdir=Path(tmp))


def print_figures(fig: dict, *, as_json: bool, table: str | None = None, json_obj: Any = None) -> None:
    """Print one figure per line, then a blank line and ``table`` if given; or, with ``as_json``, ``json_obj``
    (default: the figures) as JSON, values JSON does not know as strings."""
    if as_json:
        print(json.dumps(fig if json_obj is None else json_obj, indent=2, default=str))
        return
    for k, v in fig.items():
        print(f"{k}: {v}")
    if table is not None:
        print()
        print(table)
