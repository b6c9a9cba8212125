"""Fault soak: label N queries through the fake Gemini server while it misbehaves, killing the labeler with SIGKILL
at random moments and resuming it each time, then check that nothing was lost, nothing paid twice beyond the
in-flight bound, and no exhausted bucket was asked again.

Faults: 10% 503, 3% 500, 5% MALFORMED_FUNCTION_CALL answers (paid, rejected), per-minute 429s (the client paces
flash-lite above the server's RPM until a 429's quotaValue corrects it), and one project's daily quota used up
mid-run.
The labeler is the real ``tooldistill distill run`` in a subprocess; the server runs in this process and its own
request log is the evidence.

Usage: python benchmarks/fault_soak.py [--queries 3000] [--kills 5] [--concurrency 8] [--seed 0] [--json]
Prints one figure per line. Timings depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tooldistill.catalog import parse_label  # noqa: E402
from tooldistill.db import NewQuery, get_catalog, insert_queries, open_db  # noqa: E402
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, FaultRates, ModelSpec  # noqa: E402

MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")
KEYS = {"soak-key-1-AAAA": "proj-a", "soak-key-2-BBBB": "proj-a", "soak-key-3-CCCC": "proj-b",
        "soak-key-4-DDDD": "proj-c"}
EXHAUSTED_PROJECT = "proj-a"

TOML = """\
db = "soak.db"

[distill]
models = {models}
rpm = {client_rpm}
rpd = 0
concurrency = {concurrency}
timeout_s = 10
lease_s = 60
max_attempts = 12
backoff_base_s = 0.2
backoff_max_s = 3
minute_floor_s = 0.5
grace_s = 5
"""


def make_queries(n: int, seed: int) -> list[NewQuery]:
    """``n`` distinct queries with gold labels: the data stage's template generator when present."""
    try:
        from tooldistill.catalog import load_catalog
        from tooldistill.data import generate_queries
    except ImportError:
        generate_queries = None
    if generate_queries is not None:
        return generate_queries(load_catalog(), n, seed=seed)
    rng = random.Random(seed)
    cities = ["Oslo", "Lima", "Kyoto", "Perth", "Accra", "Quito", "Hanoi", "Turin", "Leeds", "Omaha"]
    out = []
    for i in range(n):
        city = f"{rng.choice(cities)} {i}"
        if i % 5 == 4:
            out.append(NewQuery(f"hello there, friend number {i}", "soak", gold=parse_label([])))
        else:
            out.append(NewQuery(f"what is the weather in {city}", "soak",
                                gold=parse_label([{"tool": "weather", "args": {"location": city}}])))
    return out


def setup(workdir: Path, n: int, *, seed: int, concurrency: int, client_rpm: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "soak.db").exists():
        raise SystemExit(f"{workdir} already holds a soak database; give a fresh --workdir")
    (workdir / "tooldistill.toml").write_text(TOML.format(models=json.dumps(list(MODELS)), client_rpm=client_rpm,
                                                          concurrency=concurrency))
    db = open_db(workdir / "soak.db")
    get_catalog(db)
    insert_queries(db, make_queries(n, seed))
    db.close()
    return workdir / "soak.db"


def _count(db_path: Path, sql: str) -> int:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _labels(db_path: Path) -> int:
    return _count(db_path, "SELECT count(*) FROM labels WHERE purpose = 'label'")


def supervise(cmd: list[str], env: dict, workdir: Path, run_no: int, *, db_path: Path, kill_at: int | None,
              rng: random.Random, exhaust: dict) -> dict:
    """Run one ``distill run``; SIGKILL it once ``kill_at`` labels exist and a request is in flight (a leased
    job: the hard case, an answer may be paid and lost), after a random few ms; use up the exhausted project's
    daily quota when ``exhaust["at"]`` labels exist."""
    with open(workdir / f"run{run_no}.out", "w") as out, open(workdir / f"run{run_no}.err", "w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out, stderr=err)
        killed = False
        while proc.poll() is None:
            done = _labels(db_path)
            if not exhaust["done"] and done >= exhaust["at"]:
                for model in MODELS:
                    exhaust["server"].exhaust(EXHAUSTED_PROJECT, model)
                exhaust.update(done=True, labels=done, time=time.time())
            if kill_at is not None and done >= kill_at and (
                    _count(db_path, "SELECT count(*) FROM jobs WHERE state = 'leased'") or done >= kill_at + 50):
                time.sleep(rng.uniform(0, 0.03))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed = True
                break
            time.sleep(0.01 if kill_at is not None and done >= kill_at else 0.05)
    return {"run": run_no, "rc": proc.returncode, "killed": killed, "labels_after": _labels(db_path)}


def figures(db_path: Path, log: list[dict], *, n: int, kills: int, concurrency: int) -> dict:
    """Everything the soak must show, from the database and the server's own log."""
    conn = sqlite3.connect(db_path)
    per_query = Counter(dict(conn.execute(
        "SELECT q.id, count(l.id) FROM queries q LEFT JOIN labels l ON l.query_id = q.id AND l.purpose = 'label'"
        " AND (l.valid = 1 OR l.reject_reason IS NOT NULL) GROUP BY q.id").fetchall()))
    accepted = conn.execute("SELECT count(*) FROM labels WHERE valid = 1").fetchone()[0]
    rejected = conn.execute("SELECT count(*) FROM labels WHERE valid = 0 AND reject_reason IS NOT NULL").fetchone()[0]
    reasons = Counter(r for (r,) in conn.execute("SELECT reject_reason FROM labels WHERE valid = 0"))
    correct = conn.execute("SELECT count(*) FROM labels l JOIN queries q ON q.id = l.query_id WHERE l.valid = 1"
                           " AND l.calls = q.gold_calls").fetchone()[0]
    jobs = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall())
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    # A lease reclaimed from a killed run counts an attempt that has no attempts row of its own.
    reclaimed = conn.execute(
        "SELECT coalesce(sum(j.attempts - (SELECT count(*) FROM attempts a WHERE a.job_id = j.id AND a.outcome"
        " IN ('ok', 'rejected', 'transient', 'bad_request'))), 0) FROM jobs j").fetchone()[0]
    attempts = conn.execute("SELECT project, model, day, sent_at, latency_ms, outcome FROM attempts"
                            " WHERE sent_at IS NOT NULL").fetchall()
    conn.close()

    generate = [e for e in log if e["path"].endswith(":generateContent")]
    paid = sum(e["status"] == 200 for e in generate)
    outcomes = Counter(e["outcome"] for e in generate)
    first_daily: dict[tuple, float] = {}
    for e in sorted(generate, key=lambda e: e["t"]):
        if e["outcome"] == "daily_quota":
            first_daily.setdefault((e["project"], e["model"], e["quota_day"]), e["t"])
    after_daily = sum(1 for e in generate if (e["project"], e["model"], e["quota_day"]) in first_daily
                      and e["t"] > first_daily[(e["project"], e["model"], e["quota_day"])])
    known: dict[tuple, float] = {}
    for project, model, day, sent, latency, outcome in sorted(attempts, key=lambda a: a[3]):
        if outcome == "daily_quota":
            known.setdefault((project, model, day), sent + (latency or 0) / 1000)
    sent_after_known = sum(1 for project, model, day, sent, _, _ in attempts
                           if (project, model, day) in known and sent > known[(project, model, day)])
    return {
        "queries": n,
        "queries with exactly one label or reasoned rejection": sum(1 for c in per_query.values() if c == 1),
        "queries with none": sum(1 for c in per_query.values() if c == 0),
        "queries with more than one": sum(1 for c in per_query.values() if c > 1),
        "labels accepted": accepted,
        "labels rejected with a reason": rejected,
        "rejection reasons": dict(reasons),
        "accepted labels equal to gold": correct,
        "jobs by state": jobs,
        "requests to the server": len(generate),
        "requests by outcome": dict(outcomes),
        "paid requests": paid,
        "paid bound (queries + kills x concurrency)": n + kills * concurrency,
        "paid requests beyond one per query": paid - n,
        "leases reclaimed from killed runs": reclaimed,
        "per-minute 429s": outcomes.get("minute_quota", 0),
        "daily 429s": outcomes.get("daily_quota", 0),
        "requests to a bucket after it answered a daily 429 that day (server log)": after_daily,
        "requests sent to a bucket after the client received its daily 429 (attempts)": sent_after_known,
        "integrity_check": integrity,
    }


def soak(n: int = 3000, *, kills: int = 5, concurrency: int = 8, seed: int = 0, workdir: Path | None = None,
         server_rpm: tuple[int, int] = (240, 20), client_rpm: int = 300) -> dict:
    """Run the soak and return its figures (see :func:`figures`) plus ``runs`` and ``elapsed_s``."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="fault-soak-"))
    rng = random.Random(seed)
    db_path = setup(workdir, n, seed=seed, concurrency=concurrency, client_rpm=client_rpm)
    # The client paces every bucket at client_rpm; flash-lite's server RPM is below it, so its buckets answer
    # per-minute 429s until their quotaValue corrects the client's pace.
    models = {m: ModelSpec(rpm=rpm) for m, rpm in zip(MODELS, server_rpm)}
    config = FakeGeminiConfig(
        keys=KEYS, oracle_db=db_path, models=models, seed=seed, latency_s=(0.05, 0.15),
        faults=FaultRates(unavailable_503=0.10, internal_500=0.03, malformed=0.05),
        log_path=workdir / "server.jsonl")
    kill_points = sorted(rng.sample(range(max(1, n // 20), max(2, int(n * 0.85))), kills))
    start = time.time()
    with FakeGemini(config) as server:
        env = {**os.environ, "GEMINI_API_KEYS": ",".join(f"{k}@{p}" for k, p in KEYS.items()),
               "GEMINI_BASE_URL": server.base_url, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "tooldistill", "distill", "run"]
        exhaust = {"at": int(n * rng.uniform(0.3, 0.6)), "done": False, "server": server}
        runs = []
        for i, point in enumerate(kill_points):
            runs.append(supervise(cmd, env, workdir, i, db_path=db_path, kill_at=point, rng=rng, exhaust=exhaust))
        for extra in range(3):
            run = supervise(cmd, env, workdir, len(runs), db_path=db_path, kill_at=None, rng=rng, exhaust=exhaust)
            runs.append(run)
            if run["rc"] == 0:
                break
        log = server.log
    result = figures(db_path, log, n=n, kills=sum(r["killed"] for r in runs), concurrency=concurrency)
    result.update({
        "SIGKILLs": sum(r["killed"] for r in runs),
        "runs": runs,
        "daily quota of proj-a used up at label": exhaust.get("labels"),
        "elapsed_s": round(time.time() - start, 1),
        "workdir": str(workdir),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = soak(args.queries, kills=args.kills, concurrency=args.concurrency, seed=args.seed, workdir=args.workdir)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, value in result.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
