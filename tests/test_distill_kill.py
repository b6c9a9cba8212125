"""Real processes: SIGKILL at random moments and resume (the fault soak at small scale), two runs on one database,
and a clean stop on SIGINT. The labeler is the real ``tooldistill distill run`` subprocess."""

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, get_catalog, insert_queries, open_db
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"proc-key-1": "p1", "proc-key-2": "p2"}
MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")


def load_soak():
    spec = importlib.util.spec_from_file_location("fault_soak", ROOT / "benchmarks" / "fault_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fault_soak_small_scale_loses_nothing_and_pays_within_bound(tmp_path):
    fig = load_soak().soak(150, kills=2, concurrency=4, seed=3, workdir=tmp_path / "soak")
    assert fig["SIGKILLs"] == 2 and fig["runs"][-1]["rc"] == 0
    assert fig["queries with exactly one label or reasoned rejection"] == 150
    assert fig["queries with none"] == fig["queries with more than one"] == 0
    assert fig["jobs by state"] == {"done": 150}
    assert fig["labels accepted"] + fig["labels rejected with a reason"] == 150
    assert fig["labels rejected with a reason"] > 0 and fig["accepted labels equal to gold"] == fig["labels accepted"]
    assert fig["paid requests"] <= fig["paid bound (queries + kills x concurrency)"]
    assert fig["leases reclaimed from killed runs"] >= 1  # the kills landed with requests in flight
    assert fig["requests by outcome"].get("transient", 0) > 0 and fig["daily 429s"] >= 1
    assert fig["requests to a bucket after it answered a daily 429 that day (server log)"] == 0
    assert fig["requests sent to a bucket after the client received its daily 429 (attempts)"] == 0
    assert fig["integrity_check"] == "ok"


def make_workspace(tmp_path, n, *, concurrency=2):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "tooldistill.toml").write_text(
        f'[distill]\nrpm = 0\nrpd = 0\nconcurrency = {concurrency}\nbackoff_base_s = 0.05\n')
    db = open_db(ws / "tooldistill.db")
    get_catalog(db)
    insert_queries(db, [NewQuery(f"weather in place {i}", "t", gold=parse_label(
        [{"tool": "weather", "args": {"location": f"place {i}"}}])) for i in range(n)])
    db.close()
    return ws


def env_for(server):
    return {**os.environ, "GEMINI_API_KEYS": ",".join(f"{k}@{p}" for k, p in KEYS.items()),
            "GEMINI_BASE_URL": server.base_url, "PYTHONPATH": str(ROOT)}


def run_cmd(ws, server, *args):
    return subprocess.Popen([sys.executable, "-m", "tooldistill", "distill", "run", *args], cwd=ws,
                            env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def label_counts(ws):
    conn = sqlite3.connect(ws / "tooldistill.db")
    per_query = conn.execute("SELECT q.id, count(l.id) FROM queries q LEFT JOIN labels l ON l.query_id = q.id"
                             " GROUP BY q.id").fetchall()
    jobs = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall())
    workers = conn.execute("SELECT count(DISTINCT worker) FROM attempts").fetchone()[0]
    conn.close()
    return sorted({c for _, c in per_query}), jobs, workers


def test_two_runs_on_one_database_label_each_query_once(tmp_path):
    ws = make_workspace(tmp_path, 120)
    config = FakeGeminiConfig(keys=KEYS, oracle_db=ws / "tooldistill.db", latency_s=(0.1, 0.2),
                              models={m: ModelSpec() for m in MODELS})
    with FakeGemini(config) as server:
        procs = [run_cmd(ws, server), run_cmd(ws, server)]
        outs = [p.communicate(timeout=240) for p in procs]
        paid = server.stats()["paid"]
    assert [p.returncode for p in procs] == [0, 0], outs
    counts, jobs, workers = label_counts(ws)
    assert (counts, jobs) == ([1], {"done": 120})
    assert paid == 120, outs  # nobody paid for a query the other process was answering
    assert workers == 2, outs  # both processes really worked the queue


def test_sigint_stops_cleanly_and_a_resume_finishes_without_paying_twice(tmp_path):
    ws = make_workspace(tmp_path, 80)
    config = FakeGeminiConfig(keys=KEYS, oracle_db=ws / "tooldistill.db", latency_s=(0.2, 0.3),
                              models={m: ModelSpec() for m in MODELS})
    with FakeGemini(config) as server:
        proc = run_cmd(ws, server)
        deadline = time.time() + 120
        while time.time() < deadline and label_counts(ws)[1].get("done", 0) < 10:
            time.sleep(0.05)
        status = subprocess.run([sys.executable, "-m", "tooldistill", "distill", "status", "--json"], cwd=ws,
                                env=env_for(server), capture_output=True, text=True, timeout=60)
        mid = json.loads(status.stdout)  # read while the run writes
        assert 10 <= mid["queue"]["label"]["done"] < 80 and mid["requests"]["by_outcome"]["ok"] >= 10
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "resume with: tooldistill distill run" in err
        counts, jobs, _ = label_counts(ws)
        assert "leased" not in jobs and 0 < jobs["done"] < 80
        again = run_cmd(ws, server)
        again.communicate(timeout=240)
        assert again.returncode == 0
        paid = server.stats()["paid"]
    counts, jobs, _ = label_counts(ws)
    assert counts == [1] and jobs == {"done": 80} and paid == 80
