"""What several benchmarks share: the fake Gemini server in its own process, and printing the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

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


def print_figures(fig: dict, *, as_json: bool) -> None:
    """Print one figure per line, or the whole dict as JSON."""
    if as_json:
        print(json.dumps(fig, indent=2))
    else:
        for k, v in fig.items():
            print(f"{k}: {v}")
