"""The job queue: idempotent enqueue, exclusive leases, fenced completion, retries, dead jobs, reclaim."""

import subprocess
import sys
import threading
import time

import pytest

from tooldistill.catalog import parse_label
from tooldistill.db import NewQuery, add_label, insert_queries, open_db
from tooldistill.db import queue

WEATHER = parse_label([{"tool": "weather", "args": {"location": "Oslo"}}])


@pytest.fixture
def qids(db):
    return insert_queries(db, [NewQuery(f"query number {i}", "test") for i in range(6)]).ids


def lease(db, n=1, *, worker="w1", lease_s=60.0, model="m1", **kw):
    return queue.claim(db, worker=worker, lease_s=lease_s, model=model, limit=n, **kw)


def states(db):
    return dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY 1").fetchall())


def test_enqueue_is_idempotent_per_purpose_model_and_params(db, qids):
    assert queue.enqueue(db, qids, prompt_version="p", catalog_hash="c") == 6
    assert queue.enqueue(db, qids, prompt_version="p", catalog_hash="c") == 0
    assert queue.enqueue(db, qids[:2], purpose="relabel", model="m2", params={"vote": 0}) == 2
    assert queue.enqueue(db, qids[:2], purpose="relabel", model="m2", params={"vote": 1}) == 2
    assert queue.enqueue(db, qids[:2], purpose="relabel", model="m2", params={"vote": 1}) == 0
    assert queue.queue_counts(db)["relabel"]["pending"] == 4
    with pytest.raises(ValueError, match="unknown job purpose"):
        queue.enqueue(db, qids, purpose="paint")


def test_a_failed_job_does_not_block_a_fresh_enqueue_but_a_done_one_does(db, qids):
    queue.enqueue(db, qids[:2], prompt_version="p", catalog_hash="c")
    first, second = lease(db, 2)
    queue.fail(db, first, error="bad request", max_attempts=3, retry=False)
    queue.complete(db, second, label=WEATHER, model="m1")
    assert queue.enqueue(db, qids[:2], prompt_version="p", catalog_hash="c") == 1


def test_missing_labels_are_enqueued_once_and_rejected_answers_are_not_repaid(db, qids):
    add_label(db, qids[0], WEATHER, prompt_version="p", catalog_hash="c")
    assert queue.enqueue_missing_labels(db, prompt_version="p", catalog_hash="c") == 5
    assert queue.enqueue_missing_labels(db, prompt_version="p", catalog_hash="c") == 0
    job = lease(db)[0]
    queue.complete(db, job, label=None, model="m1", reject_reason="finish reason MALFORMED_FUNCTION_CALL")
    assert queue.enqueue_missing_labels(db, prompt_version="p", catalog_hash="c") == 0
    # a new prompt version is a new question: every query needs an answer to it
    assert queue.enqueue_missing_labels(db, prompt_version="p2", catalog_hash="c") == 6
    assert queue.supersede_stale(db, prompt_version="p2", catalog_hash="c") == 4


def test_claim_leases_oldest_first_and_never_twice(db, qids):
    queue.enqueue(db, qids)
    a = lease(db, 4, worker="a")
    b = lease(db, 4, worker="b")
    assert [j.query_id for j in a] == qids[:4] and [j.query_id for j in b] == qids[4:]
    assert a[0].text == "query number 0" and a[0].lease_token != b[0].lease_token
    assert lease(db, 4, worker="c") == []
    assert states(db) == {"leased": 6}


def test_pinned_jobs_go_only_to_their_model_and_stale_prompt_versions_are_not_claimed(db, qids):
    queue.enqueue(db, qids[:1], purpose="relabel", model="pro", params={"vote": 0})
    queue.enqueue(db, qids[1:2], prompt_version="old", catalog_hash="c")
    queue.enqueue(db, qids[2:3], prompt_version="new", catalog_hash="c")
    assert lease(db, 5, model="flash", serve_unpinned=False) == []
    got = lease(db, 5, model="flash", prompt_version="new", catalog_hash="c")
    assert [j.query_id for j in got] == [qids[2]]
    pinned = lease(db, 5, model="pro", serve_unpinned=False, prompt_version="new", catalog_hash="c")
    assert [(j.query_id, j.purpose, j.params) for j in pinned] == [(qids[0], "relabel", {"vote": 0})]


def test_complete_writes_the_label_and_finishes_the_job_together(db, qids):
    queue.enqueue(db, qids[:1], purpose="relabel", model="m9", params={"vote": 2}, prompt_version="p",
                  catalog_hash="c")
    job = lease(db, model="m9")[0]
    label_id = queue.complete(db, job, label=WEATHER, model="m9", raw={"candidates": []})
    row = db.execute("SELECT query_id, job_id, purpose, model, prompt_version, catalog_hash, valid, raw"
                     " FROM labels WHERE id = ?", [label_id]).fetchone()
    assert row == (qids[0], job.id, "relabel", "m9", "p", "c", 1, '{"candidates": []}')
    assert queue.get_job(db, job.id).state == "done" and queue.get_job(db, job.id).attempts == 1


def test_a_failure_inside_the_transaction_leaves_neither_label_nor_done_job(db, qids):
    queue.enqueue(db, qids[:1])
    job = lease(db)[0]
    with pytest.raises(RuntimeError):
        with queue.immediate(db):
            queue.complete(db, job, label=WEATHER, model="m1")
            raise RuntimeError("crash between the two writes")
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    assert queue.get_job(db, job.id).state == "leased"


def test_completion_is_fenced_against_a_lost_lease(db, qids):
    queue.enqueue(db, qids[:1])
    slow = lease(db, worker="slow", lease_s=0.01)[0]
    time.sleep(0.02)
    assert queue.reclaim_expired(db, max_attempts=5) == 1
    fast = lease(db, worker="fast")[0]
    assert queue.complete(db, slow, label=WEATHER, model="m1") is None
    assert not queue.release(db, slow) and queue.fail(db, slow, error="x", max_attempts=5) is None
    assert queue.complete(db, fast, label=WEATHER, model="m1") is not None
    assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 1
    assert queue.get_job(db, fast.id).attempts == 2  # the expired lease counted one


def test_release_counts_no_attempt_and_fail_goes_dead_after_max_attempts(db, qids):
    queue.enqueue(db, qids[:2])
    job = lease(db)[0]
    assert queue.release(db, job, error="daily quota")
    job = lease(db)[0]
    assert job.attempts == 0 and job.last_error == "daily quota"
    for n in range(1, 3):
        assert queue.fail(db, job, error=f"503 overloaded #{n}", max_attempts=3) == "pending"
        job = lease(db)[0]
    assert queue.fail(db, job, error="503 overloaded #3", max_attempts=3) == "dead"
    dead = queue.get_job(db, job.id)
    assert (dead.state, dead.attempts, dead.last_error) == ("dead", 3, "503 overloaded #3")
    other = lease(db)[0]
    assert queue.fail(db, other, error="400 bad request", max_attempts=3, retry=False) == "failed"
    assert queue.retry_jobs(db) == 2 and states(db) == {"pending": 2}


def test_a_retry_delay_keeps_the_job_from_being_claimed(db, qids):
    queue.enqueue(db, qids[:1])
    queue.fail(db, lease(db)[0], error="503", max_attempts=5, delay_s=30)
    assert lease(db) == []
    work = queue.pending_work(db, prompt_version=None, catalog_hash=None)
    assert work.now == 0 and work.next_at > time.time() + 25


def test_leases_of_a_dead_process_are_reclaimed_at_once(db, qids):
    queue.enqueue(db, qids[:2])
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_worker = queue.worker_id().rsplit(":", 2)[0] + f":{proc.stdout.strip()}:abc123"
    lease(db, worker=dead_worker, lease_s=3600)
    lease(db, worker=queue.worker_id(), lease_s=3600)  # alive (this process): kept
    assert queue.reclaim_expired(db, max_attempts=5) == 1
    assert states(db) == {"pending": 1, "leased": 1}


def test_expired_leases_go_dead_at_the_attempt_limit(db, qids):
    queue.enqueue(db, qids[:1])
    for _ in range(2):
        lease(db, lease_s=-1)
        queue.reclaim_expired(db, max_attempts=2)
    job = queue.get_job(db, 1)
    assert job.state == "dead" and "expired" in job.last_error


def test_concurrent_claimers_on_separate_connections_never_share_a_job(db, tmp_path):
    ids = insert_queries(db, [NewQuery(f"parallel query {i}", "t") for i in range(200)]).ids
    queue.enqueue(db, ids)
    got: list[list[int]] = []

    def worker(name):
        conn = open_db(tmp_path / "test.db")
        mine = []
        while jobs := queue.claim(conn, worker=name, lease_s=60, model="m", limit=3):
            mine += [j.id for j in jobs]
        got.append(mine)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [j for mine in got for j in mine]
    assert len(flat) == len(set(flat)) == 200
