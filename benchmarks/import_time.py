"""Start-up cost of tooldistill: `import tooldistill`, `import tooldistill.cli` and `tooldistill --help`.

Each figure is the median wall time of N fresh interpreters (subprocess), so the interpreter's own start-up is
included; ``python -c pass`` is measured the same way as the floor nothing of ours can go below. The table is the
top modules by cumulative import time from one ``python -X importtime`` run (which itself slows imports, so its
numbers are larger than the wall times; read them as shares).

Usage: python benchmarks/import_time.py [--runs 10] [--top 15] [--json]
Takes about runs x 4 x 0.2 s. Timings on a shared, loaded machine are noisy: compare medians taken together.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import bench_parser, print_figures  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

PY = sys.executable
_SCRIPT = Path(PY).parent / "tooldistill"  # the console script users run; python -m where it is not installed
CASES = {
    "python -c pass": [PY, "-c", "pass"],
    "import tooldistill": [PY, "-c", "import tooldistill"],
    "import tooldistill.cli": [PY, "-c", "import tooldistill.cli"],
    "tooldistill --help": [str(_SCRIPT), "--help"] if _SCRIPT.exists() else [PY, "-m", "tooldistill", "--help"],
}


def median_wall(cmd: list[str], runs: int) -> float:
    """Median wall seconds of ``runs`` runs of ``cmd`` (one untimed warm-up run fills the OS file cache)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # with cwd=ROOT: this checkout, not an installed copy
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def top_imports(module: str, top: int) -> list[tuple[str, float, float]]:
    """The ``top`` modules by cumulative import time (ms) in one ``-X importtime`` run: (name, self, cumulative)."""
    proc = subprocess.run([PY, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True,
                          check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        rows.append((parts[2].rstrip(), int(parts[0]) / 1000, int(parts[1]) / 1000))
    return sorted(rows, key=lambda r: r[2], reverse=True)[:top]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=10, help="Runs per command (median taken).")
    parser.add_argument("--top", type=int, default=15, help="Modules to list by cumulative import time.")
    parser.add_argument("--module", default="tooldistill.cli", help="Module whose import is broken down.")
    args = parser.parse_args()
    fig = {f"{name} (median of {args.runs}, s)": round(median_wall(cmd, args.runs), 3)
           for name, cmd in CASES.items()}
    rows = top_imports(args.module, args.top)
    table = "\n".join([f"top {args.top} by cumulative import time in `import {args.module}` (-X importtime, ms):",
                       f"{'cumulative':>10} {'self':>8}  module"]
                      + [f"{cum:10.1f} {own:8.1f}  {name}" for name, own, cum in rows])
    print_figures(fig, as_json=args.json, table=table,
                  json_obj={**fig, "top_imports": [{"module": n.strip(), "self_ms": s, "cumulative_ms": c}
                                                   for n, s, c in rows]})


if __name__ == "__main__":
    main()
