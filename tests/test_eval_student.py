"""Evaluating LLM students: a model folder, and a train run (the tiny offline student), through the real stack."""

import json

import pytest

from tooldistill.db import NewQuery, add_label, get_catalog, insert_queries, now_iso, open_db
from tooldistill.eval import get_run, run_eval
from tooldistill.eval.generate import load_model_router

QUERIES = ["weather in Oslo", "define laconic", "calculate 17 * 23", "hello there", "who was Ada Lovelace",
           "convert 5 km to miles", "latest news on solar panels", "what time is it in Tokyo"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tooldistill.train import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def ws(tmp_path):
    from tooldistill.eval.baselines import KeywordRouter

    db = open_db(tmp_path / "ws.db")
    cat = get_catalog(db)
    ids = insert_queries(db, [NewQuery(q, "test") for q in QUERIES]).ids
    router = KeywordRouter.for_catalog(cat)
    db["dataset_versions"].insert({"id": "v1" + "0" * 14, "name": "v1", "created_at": now_iso(),
                                   "catalog_hash": cat.hash})
    for i, (qid, text) in enumerate(zip(ids, QUERIES)):
        label = router.predict(text)
        add_label(db, qid, label)
        db["split_members"].insert({"version_id": "v1" + "0" * 14, "query_id": qid, "split": "test" if i < 4 else
                                    "train", "calls": label.canonical_json(), "label_hash": label.hash,
                                    "label_source": "teacher"})
    return {"db": db, "path": tmp_path / "ws.db", "runs": tmp_path / "runs", "root": tmp_path}


def test_batched_routing_equals_one_at_a_time(tiny, catalog):
    router = load_model_router(tiny, catalog, max_new_tokens=10)
    batched = router.route(QUERIES[:4])  # prompts of different lengths: left padding must not change answers
    single = [router.route([q])[0] for q in QUERIES[:4]]
    assert batched == single and len(set(batched)) > 1


def test_cli_eval_run_of_a_model_folder_stores_raw_outputs(ws, tiny, cli):
    res = cli("--db", ws["path"], "eval", "run", "--split", "v1:test", "--model", tiny, "--max-new-tokens", "8",
              "--batch-size", "3", "--runs-dir", ws["runs"], "--resamples", "20", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    run = get_run(ws["db"], report["run_id"])
    assert run["base_model"] == str(tiny) and run["config"]["target"] == f"model:{tiny}"
    rows = list(ws["db"].query("SELECT raw, latency_ms, valid_json FROM predictions WHERE run_id = ?", [run["id"]]))
    assert len(rows) == 4 and all(isinstance(r["raw"], str) and r["latency_ms"] > 0 for r in rows)
    # an untrained random model writes no JSON: every output is graded unreadable, none crash the eval
    assert report["metrics"]["rates"]["valid_json"]["num"] == sum(r["valid_json"] for r in rows)
    assert report["metrics"]["latency"]["throughput_qps"] > 0


def test_eval_of_a_train_run_records_its_lineage(ws, tiny):
    from tooldistill.train import start_run

    overrides = {"model.base_model": str(tiny), "optim.max_steps": 2, "optim.batch_size": 2, "optim.grad_accum": 1,
                 "eval.strategy": "no", "eval.early_stopping_patience": None, "eval.load_best": False,
                 "eval.score_examples": 0}
    trained = start_run(ws["db"], root=ws["root"], dataset="v1", overrides=overrides)
    report = run_eval(ws["db"], "v1:test", f"run:{trained.run_id}", runs_dir=ws["runs"], max_new_tokens=8,
                      resamples=0, write_report=False)
    run = get_run(ws["db"], report["run_id"])
    assert (run["parent_run_id"], run["status"], run["config"]["target"]) == (
        trained.run_id, "done", f"run:{trained.run_id}")
    stored = [r[0] for r in ws["db"].execute("SELECT raw FROM predictions WHERE run_id = ? ORDER BY query_id",
                                             [run["id"]])]
    assert len(stored) == 4
    # the same adapter given as --model BASE --adapter DIR routes exactly like --run
    by_folder = load_model_router(tiny, get_catalog(ws["db"]), adapter=trained.run_dir / "adapter", max_new_tokens=8)
    assert by_folder.route(QUERIES[:4]) == stored
