"""Gemini Batch Mode: submit, poll, ingest and requeue through the real google-genai client against the fake
server's batch routes; kills with SIGKILL between create and record and while polling; paid-tier refusal."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, get_catalog, insert_queries, open_db
from tooldistill.distill.batch import (
    BatchModeUnavailable, BatchSettings, batch_report, cost_usd, run_batches,
)
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig
from tooldistill.distill.keys import parse_keys
from tooldistill.distill.runner import run_distill
from tooldistill.distill.settings import DistillSettings

ROOT = Path(__file__).resolve().parents[1]
KEY, FREE_KEY = "AIzaSyFAKE-batch-paid-1", "AIzaSyFAKE-batch-free-2"
FLASH = "gemini-2.5-flash"


def add_queries(db, n: int) -> None:
    insert_queries(db, [NewQuery(f"weather in hamlet {i}", "t", gold=parse_label(
        [{"tool": "weather", "args": {"location": f"hamlet {i}"}}])) for i in range(n)])


def fake(oracle_db, **batch) -> FakeGemini:
    return FakeGemini(FakeGeminiConfig(keys={KEY: "paid-proj", FREE_KEY: "free-proj"}, paid_projects=["paid-proj"],
                                       oracle_db=oracle_db, seed=5, batch=batch))


def settings(server, **kw) -> DistillSettings:
    return DistillSettings(base_url=server.base_url, models=[FLASH], rpm=0, rpd=0, **kw)


def labels_per_query(db) -> set[int]:
    return {n for (n,) in db.execute("SELECT count(l.id) FROM queries q LEFT JOIN labels l ON l.query_id = q.id"
                                     " GROUP BY q.id")}


@pytest.fixture
def labeled_db(tmp_path):
    db = open_db(tmp_path / "batch.db")
    get_catalog(db)
    add_queries(db, 120)
    yield db
    db.close()


def test_every_job_is_labeled_once_through_failed_lines_and_an_expired_batch(labeled_db, catalog, tmp_path):
    db = labeled_db
    with fake(tmp_path / "batch.db", line_error_rate=0.05, line_error_codes=[500, 503, 429], fates={"#2": "expired"},
              pending_polls=1) as server:
        summary = run_batches(db, catalog=catalog, keys=parse_keys(f"{KEY}@paid-proj"), settings=settings(server),
                              batch=BatchSettings(max_requests=35, poll_s=0))
        server_batches = server.batches()
    assert summary.stopped == "done" and summary.pending == 0 and summary.live == 0
    assert labels_per_query(db) == {1} and summary.labels == 120
    assert dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall()) == {"done": 120}
    # every label equals the gold the oracle answered, validated as an online answer would be
    assert db.execute("SELECT count(*) FROM labels l JOIN queries q ON q.id = l.query_id WHERE l.valid = 1"
                      " AND l.label_hash = q.gold_hash AND l.purpose = 'label'").fetchone()[0] == 120
    report = batch_report(db)
    states = [b["state"] for b in report["batches"]]
    assert states[1] == "expired" and report["batches"][1]["requeued"] == 35 and states.count("expired") == 1
    assert set(states) == {"succeeded", "expired"} and len(states) == len(server_batches) == summary.submitted
    line_errors = sum(b["line_errors"] for b in server_batches)
    assert line_errors > 0 and report["totals"]["line_errors"] == line_errors == summary.line_errors
    assert report["totals"]["requeued"] == 35 + line_errors and report["totals"]["labels"] == 120
    assert report["members"] == {"labeled": 120, "requeued": 35 + line_errors}
    # a 500/503 line counted an attempt; a 429 line did not (quota is not the job's fault)
    attempts = dict(db.execute("SELECT outcome, count(*) FROM attempts WHERE error_kind = 'batch' GROUP BY 1"))
    assert attempts["ok"] == 120 and sum(v for k, v in attempts.items() if k != "ok") == line_errors
    # cost at half the standard price, from the usage the lines reported
    t = report["totals"]
    assert t["cost_usd"] == pytest.approx(t["standard_cost_usd"] / 2) and t["cost_usd"] == pytest.approx(
        cost_usd(FLASH, t["prompt_tokens"], t["output_tokens"], batch=True), rel=1e-6) and t["cost_usd"] > 0


def test_batches_are_split_under_the_inline_size_limit(labeled_db, catalog, tmp_path):
    limit = 60_000
    with fake(tmp_path / "batch.db", inline_limit_bytes=limit) as server:
        summary = run_batches(labeled_db, catalog=catalog, keys=parse_keys(f"{KEY}@paid-proj"),
                              settings=settings(server), batch=BatchSettings(inline_limit_bytes=limit, poll_s=0))
        sizes = [b["body_bytes"] for b in server.batches()]
    assert summary.labels == 120 and len(sizes) >= 10 and max(sizes) <= limit
    recorded = [b["request_count"] for b in batch_report(labeled_db)["batches"]]
    assert sum(recorded) == 120 and max(recorded) < 120


def test_a_free_tier_key_is_told_batch_mode_is_a_paid_feature_and_its_jobs_go_back(labeled_db, catalog, tmp_path):
    with fake(tmp_path / "batch.db") as server:
        with pytest.raises(BatchModeUnavailable) as exc:
            run_batches(labeled_db, catalog=catalog, keys=parse_keys(f"{FREE_KEY}@free-proj"),
                        settings=settings(server), batch=BatchSettings(poll_s=0))
    assert str(exc.value).startswith("Batch Mode is a paid-tier feature: the API refused it for project free-proj")
    assert "label online with: tooldistill distill run" in str(exc.value)
    assert dict(labeled_db.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall()) == {"pending": 120}
    assert [b["state"] for b in batch_report(labeled_db)["batches"]] == ["refused"]


def test_a_batch_whose_lease_ran_out_never_labels_a_job_twice(labeled_db, catalog, tmp_path):
    db, keys = labeled_db, parse_keys(f"{KEY}@paid-proj")
    with fake(tmp_path / "batch.db", running_polls=5) as server:
        first = run_batches(db, catalog=catalog, keys=keys, settings=settings(server), wait=False,
                            batch=BatchSettings(lease_s=0.05, poll_s=0))
        assert first.stopped == "submitted" and first.live == 1
        time.sleep(0.1)
        online = run_distill(db, catalog=catalog, keys=keys, settings=settings(server))  # reclaims, labels all
        assert online.labels == 120
        server.end_batch(batch_report(db)["batches"][0]["id"], "succeeded")
        later = run_batches(db, catalog=catalog, keys=keys, settings=settings(server), submit=False,
                            batch=BatchSettings(poll_s=0))
    assert later.lost == 120 and later.labels == 0 and labels_per_query(db) == {1}
    assert batch_report(db)["members"] == {"lost": 120}


def test_a_failed_batch_counts_an_attempt_and_a_cancelled_one_does_not(labeled_db, catalog, tmp_path):
    db, keys = labeled_db, parse_keys(f"{KEY}@paid-proj")
    with fake(tmp_path / "batch.db", running_polls=50) as server:
        run_batches(db, catalog=catalog, keys=keys, settings=settings(server), wait=False,
                    batch=BatchSettings(max_requests=60, poll_s=0))
        first, second = [b["id"] for b in batch_report(db)["batches"]]
        server.end_batch(first, "failed")
        server.end_batch(second, "cancelled")
        run_batches(db, catalog=catalog, keys=keys, settings=settings(server), submit=False, wait=False,
                    batch=BatchSettings(poll_s=0))
    attempts = dict(db.execute("SELECT m.batch_id, max(j.attempts) FROM batch_members m JOIN jobs j"
                               " ON j.id = m.job_id GROUP BY 1").fetchall())
    assert attempts == {first: 1, second: 0}
    assert dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall()) == {"pending": 120}
    assert [b["state"] for b in batch_report(db)["batches"]] == ["failed", "cancelled"]


# ---------------------------------------------------------------- the real CLI, killed


def make_ws(tmp_path, n: int) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "tooldistill.toml").write_text('[distill]\nmodels = ["gemini-2.5-flash"]\n')
    db = open_db(ws / "tooldistill.db")
    get_catalog(db)
    add_queries(db, n)
    db.close()
    return ws


def batch_cli(ws, server, key=KEY, project="paid-proj", *extra):
    env = {**os.environ, "GEMINI_API_KEYS": f"{key}@{project}", "GEMINI_BASE_URL": server.base_url,
           "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tooldistill", "distill", "run", "--batch", "--batch-size", "25",
                             "--poll-every", "0.05", "--json", *extra], cwd=ws, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def db_rows(ws, sql):
    conn = sqlite3.connect(ws / "tooldistill.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_sigkill_between_create_and_record_finds_the_batch_again_by_display_name(tmp_path):
    ws = make_ws(tmp_path, 40)
    with fake(ws / "tooldistill.db", create_delay_s=30.0) as server:
        proc = batch_cli(ws, server)
        wait_for(lambda: server.batches())  # created at the API, the answer not yet sent
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert db_rows(ws, "SELECT state, name FROM batches") == [("preparing", None)]
        server.set(batch={"create_delay_s": 0.0})
        resumed = batch_cli(ws, server)
        stdout, stderr = resumed.communicate(timeout=60)
        made = server.batches()
    assert resumed.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["adopted"] == 1 and summary["recreated"] == 0 and summary["http"]["list"] >= 1
    names = [b["display_name"] for b in made]
    assert len(names) == len(set(names)) == 2 and summary["submitted"] == 1  # 25 adopted + 15 newly submitted
    assert db_rows(ws, "SELECT count(*), count(DISTINCT query_id) FROM labels") == [(40, 40)]


def test_sigkill_while_polling_resumes_polling_instead_of_resubmitting(tmp_path, cli, monkeypatch):
    ws = make_ws(tmp_path, 40)
    with fake(ws / "tooldistill.db", running_polls=10_000) as server:
        proc = batch_cli(ws, server)
        wait_for(lambda: db_rows(ws, "SELECT count(*) FROM batches WHERE state IN ('pending', 'running')")[0][0] == 2)
        wait_for(lambda: all(b["polls"] >= 2 for b in server.batches()))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        creates = server.stats()["batch_creates"]
        for b in server.batches():
            server.end_batch(b["name"], "succeeded")
        resumed = batch_cli(ws, server)
        stdout, stderr = resumed.communicate(timeout=60)
        after = server.stats()["batch_creates"]
        monkeypatch.chdir(ws)
        monkeypatch.setenv("GEMINI_API_KEYS", f"{KEY}@paid-proj")
        monkeypatch.setenv("GEMINI_BASE_URL", server.base_url)
        table = cli("distill", "batches")
        report = json.loads(cli("distill", "batches", "--json").stdout)
    assert resumed.returncode == 0, stderr
    summary = json.loads(stdout)
    assert creates == after == 2 and summary["submitted"] == 0 and summary["ingested"] == 2
    assert summary["labels"] == 40 and db_rows(ws, "SELECT count(*), count(DISTINCT query_id) FROM labels") == \
        [(40, 40)]
    assert report["totals"]["by_state"] == {"succeeded": 2} and report["totals"]["labels"] == 40
    assert table.exit_code == 0 and "2 batch(es) (succeeded 2); 40 labels" in table.stdout


def test_cli_free_tier_refusal_is_one_line_and_exit_1(tmp_path, cli, monkeypatch):
    ws = make_ws(tmp_path, 5)
    with fake(ws / "tooldistill.db") as server:
        monkeypatch.chdir(ws)
        monkeypatch.setenv("GEMINI_API_KEYS", f"{FREE_KEY}@free-proj")
        result = cli("distill", "run", "--batch", "--base-url", server.base_url, "--poll-every", "0")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Batch Mode is a paid-tier feature: the API refused it for project "
                                    "free-proj")
    assert FREE_KEY not in result.stderr + result.stdout


def test_a_create_that_fails_transiently_is_looked_for_then_made_once(labeled_db, catalog, tmp_path):
    with FakeGemini(FakeGeminiConfig(keys={KEY: "paid-proj"}, paid_projects=["paid-proj"], seed=2,
                                     oracle_db=tmp_path / "batch.db",
                                     faults={"unavailable_503": 0.4, "internal_500": 0.2})) as server:
        summary = run_batches(labeled_db, catalog=catalog, keys=parse_keys(f"{KEY}@paid-proj"),
                              settings=settings(server), batch=BatchSettings(max_requests=20, poll_s=0))
        names = [b["display_name"] for b in server.batches()]
        refused = sum(e["status"] in (500, 503) for e in server.log if e["path"].endswith(":batchGenerateContent"))
    assert refused > 0 and summary.recreated > 0 and summary.http["list"] >= 1  # looked for before made again
    assert len(names) == len(set(names)) == summary.submitted and labels_per_query(labeled_db) == {1}


def test_fake_batch_routes_page_cancel_delete_and_keep_projects_apart(tmp_path):
    from google.genai import errors, types

    from tooldistill.distill.teacher import make_client

    other = "AIzaSyFAKE-batch-other-3"
    config = FakeGeminiConfig(keys={KEY: "paid-proj", other: "other-proj"}, tier="paid", batch={"running_polls": 9})
    with FakeGemini(config) as server:
        client, stranger = make_client(KEY, base_url=server.base_url), make_client(other, base_url=server.base_url)
        made = [client.batches.create(model=FLASH, src=[types.InlinedRequest(contents=f"hi {i}")],
                                      config={"display_name": f"shown-{i}"}) for i in range(3)]
        pager = client.batches.list(config={"page_size": 2})
        first = [j.display_name for j in pager.page]
        assert first == ["shown-2", "shown-1"] and [j.display_name for j in pager.next_page()] == ["shown-0"]
        assert list(stranger.batches.list()) == []
        with pytest.raises(errors.ClientError) as exc:
            stranger.batches.get(name=made[0].name)
        assert exc.value.code == 404
        client.batches.cancel(name=made[0].name)
        assert client.batches.get(name=made[0].name).state.name == "JOB_STATE_CANCELLED"
        client.batches.delete(name=made[1].name)
        assert [j.display_name for j in client.batches.list()] == ["shown-2", "shown-0"]
        job = client.batches.get(name=made[2].name)
        assert job.state.name == "JOB_STATE_RUNNING" and job.dest is None and job.create_time is not None
        with pytest.raises(errors.ClientError):
            client.batches.list(config={"page_size": 2, "page_token": "not-a-token"})
