"""Batch soak: label N template queries with ``tooldistill distill run --batch`` against the fake Gemini server,
with 2% failed lines, one batch that expires, and a SIGKILL of the polling process; then resume it.

Shows that every job ends labeled exactly once, what the batch table says happened, and that the resumed run
polled the batches the killed one had submitted instead of submitting them again (the server's own log of
creates is the evidence). The labeler is the real CLI in a subprocess; the server runs in this process.

Usage: python benchmarks/batch_soak.py [--jobs 5000] [--batch-size 1000] [--seed 0] [--json]
Prints one figure per line, then the batch table. Timings depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import bench_parser, in_temp_folder, print_figures  # noqa: E402  (benchmarks/ is on sys.path as a script)

from tooldistill.data import generate  # noqa: E402
from tooldistill.db import open_db  # noqa: E402
from tooldistill.distill.batch import batch_report  # noqa: E402
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig  # noqa: E402

KEY, PROJECT = "batch-soak-key-PAID", "billing-on"


def _rows(path: Path, sql: str) -> list:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def soak(jobs: int, *, batch_size: int, seed: int, workdir: Path) -> dict:
    ws = workdir / "ws"
    ws.mkdir()
    (ws / "tooldistill.toml").write_text('[distill]\nmodels = ["gemini-2.5-flash"]\n')
    dbp = ws / "tooldistill.db"
    db = open_db(dbp)
    generate(db, jobs, seed=seed)
    db.close()
    n_batches = -(-jobs // batch_size)
    expired = min(3, n_batches)
    config = FakeGeminiConfig(keys={KEY: PROJECT}, paid_projects=[PROJECT], oracle_db=dbp, seed=seed,
                              batch={"line_error_rate": 0.02, "line_error_codes": [500, 503, 429],
                                     "fates": {f"#{expired}": "expired"}, "pending_polls": 1, "running_s": 4.0})
    cmd = [sys.executable, "-m", "tooldistill", "distill", "run", "--batch", "--batch-size", str(batch_size),
           "--poll-every", "0.5", "--json"]
    with FakeGemini(config) as server:
        env = {**os.environ, "GEMINI_API_KEYS": f"{KEY}@{PROJECT}", "GEMINI_BASE_URL": server.base_url,
               "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        first = subprocess.Popen(cmd, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait(lambda: _rows(dbp, "SELECT count(*) FROM batches WHERE state IN ('pending', 'running')")[0][0]
              == n_batches, 600, "every batch to be submitted")
        _wait(lambda: all(b["polls"] >= 1 for b in server.batches()), 120, "a poll of every batch")
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.perf_counter() - started
        creates_before = server.stats()["batch_creates"]
        log_at_kill = len(server.log)
        states_at_kill = dict(_rows(dbp, "SELECT state, count(*) FROM batches GROUP BY 1"))
        labels_at_kill = _rows(dbp, "SELECT count(*) FROM labels")[0][0]
        resumed = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=1800)
        total_s = time.perf_counter() - started
        made = server.batches()
        log = server.log
    if resumed.returncode != 0:
        raise SystemExit(f"resumed run failed ({resumed.returncode}): {resumed.stderr[-2000:]}")
    summary = json.loads(resumed.stdout)
    per_query = dict(_rows(dbp, "SELECT n, count(*) FROM (SELECT q.id, count(l.id) AS n FROM queries q"
                                " LEFT JOIN labels l ON l.query_id = q.id GROUP BY q.id) GROUP BY n"))
    names = [b["display_name"] for b in made]
    before = {b["name"]: b["display_name"] for b in made[:creates_before]}
    after = log[log_at_kill:]
    polled_again = {e["batch"] for e in after if e["method"] == "GET" and e.get("batch") in before}
    recreated = [e for e in after if e.get("display_name") in set(before.values())]
    db = open_db(dbp)
    report = batch_report(db)
    gold_equal = db.execute("SELECT count(*) FROM labels l JOIN queries q ON q.id = l.query_id WHERE l.valid = 1"
                            " AND l.label_hash = q.gold_hash").fetchone()[0]
    jobs_by_state = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall())
    db.close()
    fig = {
        "jobs": jobs, "batch size": batch_size,
        "SIGKILL of the polling process after s": round(killed_at, 1),
        "batches at the kill (DB)": states_at_kill, "labels at the kill": labels_at_kill,
        "batch creates the server saw before the kill": creates_before,
        "resumed run: pre-kill batches polled again (server log)": len(polled_again),
        "resumed run: creates of pre-kill batches (server log)": len(recreated),
        "resumed run: new batches (requeued jobs: failed lines, expired batch)": summary["submitted"],
        "resumed run: API calls": summary["http"],
        "batch creates at the server in all / batch rows in the DB": f"{len(made)} / {len(report['batches'])}",
        "display names created twice": len(names) - len(set(names)),
        "queries with exactly one label": per_query.get(1, 0),
        "queries with no label / more than one": f"{per_query.get(0, 0)} / "
                                                 f"{sum(v for k, v in per_query.items() if k > 1)}",
        "labels equal to gold": gold_equal,
        "jobs by state": jobs_by_state,
        "batches by state": report["totals"]["by_state"],
        "failed lines (2% planted)": report["totals"]["line_errors"],
        "jobs sent back to the queue (failed lines + expired batch)": report["totals"]["requeued"],
        "lines answered in all": report["totals"]["answered"],
        "cost at the batch price USD": report["totals"]["cost_usd"],
        "same tokens at the standard price USD": report["totals"]["standard_cost_usd"],
        "elapsed s (both runs, incl. startup; fake batches run 4 s)": round(total_s, 1),
    }
    return {"figures": fig, "batches": report["batches"]}


def batch_table(batches: list[dict]) -> str:
    lines = [f"{'batch':<18}{'state':<11}{'requests':>9}{'labels':>8}{'failed':>8}{'requeued':>9}{'polls':>7}"
             f"{'cost USD':>11}"]
    lines += [f"{b['id']:<18}{b['state']:<11}{b['request_count']:>9}{b['labels']:>8}{b['line_errors']:>8}"
              f"{b['requeued']:>9}{b['polls']:>7}{(b['cost_usd'] or 0):>11.4f}" for b in batches]
    return "\n".join(lines)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    result = in_temp_folder(soak, args.jobs, batch_size=args.batch_size, seed=args.seed)
    print_figures(result["figures"], as_json=args.json, json_obj=result, table=batch_table(result["batches"]))


if __name__ == "__main__":
    main()
