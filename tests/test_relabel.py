"""curate relabel + adjudicate: flags -> relabel jobs in the queue -> votes from the fake Gemini server (real HTTP,
real distill runner) -> adjudicated labels with their votes recorded; ties, waiting votes, and the CLI."""

import json

import pytest

from tooldistill.catalog import parse_label
from tooldistill.curate import StudentPrediction, adjudicate, enqueue_relabels, run_audit, AuditConfig
from tooldistill.curate.adjudicate import decide
from tooldistill.db import NewQuery, current_labels, insert_queries
from tooldistill.distill import DistillSettings, parse_keys, run_distill
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec, Oracle
from tooldistill.errors import InputError
from tooldistill.textnorm import normalize_text

KEY = "AIzaSyRelabel-test-key-5d1c0e"
CHEAP, STRONG = "gemini-2.5-flash", "gemini-2.5-pro"
CITIES = ["Oslo", "Lima", "Rome", "Bern", "Kyiv", "Doha", "Riga", "Baku", "Lagos", "Quito", "Hanoi", "Perth",
          "Dakar", "Tunis", "Sofia", "Minsk", "Accra", "Seoul", "Cairo", "Delhi"]


def truth(text: str):
    city = text.rsplit(" ", 1)[-1]
    return parse_label([{"tool": "weather", "args": {"location": city}}])


@pytest.fixture
def labeled(db, catalog):
    """20 weather queries labeled through the fake server by a cheap model that flips 30% of its answers (seeded);
    the database has no gold, only the server knows the answers. Yields (db, server, noised query ids)."""
    texts = [f"what is the weather in {c}" for c in CITIES]
    ids = dict(zip(texts, insert_queries(db, [NewQuery(t, "t") for t in texts]).ids))
    oracle = Oracle()
    for t in texts:
        oracle.add(t, json.loads(truth(t).to_json()))
    config = FakeGeminiConfig(keys={KEY: "p1"}, models={CHEAP: ModelSpec(noise_rate=0.3), STRONG: ModelSpec()})
    with FakeGemini(config, oracle=oracle) as server:
        run_distill(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(server))
        by_norm = {normalize_text(t): q for t, q in ids.items()}
        noised = {by_norm[e["query"]] for e in server.log if e.get("noised")}
        assert 2 <= len(noised) <= 12
        yield db, server, noised, ids


def settings(server):
    return DistillSettings(models=[CHEAP], base_url=server.base_url, rpm=0, rpd=0, concurrency=4,
                           backoff_base_s=0.01, backoff_max_s=0.05)


def fake_student(db, ids):
    """A stand-in for a trained student that knows the answers (the hook under test is the audit's)."""
    return {q: StudentPrediction(truth(t), 0.99) for t, q in ids.items()}


def test_flags_become_relabel_jobs_and_the_stronger_models_votes_settle_them_with_lineage(labeled, catalog):
    db, server, noised, ids = labeled
    report = run_audit(db, config=AuditConfig(signals=("student",)), student=fake_student(db, ids))
    assert {f.query_id for f in report.flags} == noised
    queued = enqueue_relabels(db, top=len(noised), model=STRONG)
    assert (queued.flags, queued.jobs_added, queued.jobs_existing) == (len(noised), len(noised), 0)
    jobs = db.execute("SELECT query_id, purpose, model, params, state FROM jobs WHERE purpose = 'relabel'").fetchall()
    assert {(q, p, m, json.loads(pa)["vote"], s) for q, p, m, pa, s in jobs} == \
        {(q, "relabel", STRONG, 0, "pending") for q in noised}
    again = enqueue_relabels(db, top=len(noised), model=STRONG)  # flags already sent are not sent twice
    assert (again.flags, again.jobs_added) == (0, 0)
    waiting = adjudicate(db)
    assert sorted(waiting.waiting) == sorted(noised) and not waiting.settled

    run_distill(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(server))
    assert {e["model"] for e in server.log[-len(noised):]} == {STRONG}
    result = adjudicate(db, models=[STRONG, CHEAP])
    assert {a.query_id for a in result.settled} == noised and not result.to_review
    now = current_labels(db)
    text_of = {q: t for t, q in ids.items()}
    for q in noised:
        assert now[q].source == "adjudicated" and now[q].label == truth(text_of[q])
    # lineage: the teacher's vote and the stronger model's, with their label rows
    row = db.execute("SELECT method, votes FROM adjudications WHERE query_id = ?", [min(noised)]).fetchone()
    votes = json.loads(row[1])
    assert row[0] == f"tie 1/2 to the stronger model {STRONG}"
    assert [(v["source"], v["model"]) for v in votes] == [("teacher", CHEAP), ("relabel", STRONG)]
    label_rows = {lid: (purpose, model) for lid, purpose, model in db.execute("SELECT id, purpose, model FROM labels")}
    assert [label_rows[v["label_id"]] for v in votes] == [("label", CHEAP), ("relabel", STRONG)]
    assert {s for (s,) in db.execute("SELECT status FROM audit_flags")} == {"adjudicated"}
    again = adjudicate(db, models=[STRONG, CHEAP])
    assert (len(again.settled), again.unchanged) == (0, len(noised))


def test_k_votes_of_one_model_are_separate_jobs_and_a_majority_outvotes_the_teacher(labeled, catalog):
    db, server, noised, ids = labeled
    run_audit(db, config=AuditConfig(signals=("student",)), student=fake_student(db, ids))
    queued = enqueue_relabels(db, min_score=0.5, model=STRONG, votes=3)
    assert queued.jobs_added == 3 * len(noised)
    run_distill(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(server))
    result = adjudicate(db)  # no model order needed: 3 votes to 1
    assert {a.method for a in result.settled} == {"majority 3/4"}
    assert len(json.loads(db.execute("SELECT votes FROM adjudications LIMIT 1").fetchone()[0])) == 4


def test_a_tie_goes_to_review_when_asked_and_review_shows_the_flag_again(labeled, catalog):
    from tooldistill.curate import pending_flags

    db, server, noised, ids = labeled
    run_audit(db, config=AuditConfig(signals=("student",)), student=fake_student(db, ids))
    enqueue_relabels(db, top=1, model=STRONG)
    run_distill(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(server))
    result = adjudicate(db, tie="review")
    assert len(result.to_review) == 1 and not result.settled
    assert result.to_review[0].method.startswith("tie 1/2 between")
    assert db.execute("SELECT count(*) FROM adjudications").fetchone()[0] == 0
    assert [f.query_id for f in pending_flags(db)][0] == result.to_review[0].query_id


def vote(model, label, source="relabel", valid=True, lid=0):
    return {"label_id": lid, "source": source, "model": model, "vote": 0, "valid": valid,
            "calls": json.loads(label.to_json()) if label else None}


def test_decide_majority_first_then_the_stronger_model_then_review():
    w = parse_label([{"tool": "weather", "args": {"location": "Oslo"}}])
    w2 = parse_label([{"tool": "weather", "args": {"location": "oslo, norway"}}])
    s = parse_label([{"tool": "web_search", "args": {"query": "oslo"}}])
    # tools decide first: two weather votes with different wording beat one search
    label, how = decide([vote("a", w, lid=1), vote("b", w2, lid=2), vote("c", s, lid=3)], models=["b"], tie="stronger")
    assert how == "majority 2/3" and label == w2  # inside the winning tools, ties go to the stronger model
    label, how = decide([vote("t", s, "teacher", lid=1), vote("pro", w, lid=2)], models=[], tie="stronger")
    assert label == w  # an unlisted relabel model still outranks the label in doubt
    label, how = decide([vote("x", s, lid=1), vote("y", w, lid=2)], models=[], tie="stronger")
    assert label is None and "equal rank" in how
    label, how = decide([vote("x", s, lid=1), vote("y", w, lid=2), vote("z", None, valid=False, lid=3)],
                        models=["x", "y"], tie="stronger")
    assert label == s and how == "tie 1/2 to the stronger model x"


def test_relabel_needs_a_selection_and_sane_numbers(db):
    with pytest.raises(InputError, match="choose the flags to relabel with --top N or --min-score S"):
        enqueue_relabels(db)
    with pytest.raises(InputError, match="--votes must be at least 1"):
        enqueue_relabels(db, top=3, votes=0)


def test_relabel_and_adjudicate_through_the_cli(labeled, catalog, cli, tmp_path):
    db, server, noised, ids = labeled
    path = db.execute("PRAGMA database_list").fetchone()[2]
    student = tmp_path / "student.jsonl"
    student.write_text("".join(json.dumps({"query_id": q, "label": json.loads(truth(t).to_json()),
                                           "confidence": 0.99}) + "\n" for t, q in ids.items()))
    cli("--db", path, "curate", "audit", "--signals", "student", "--student", student)
    out = cli("--db", path, "curate", "relabel", "--top", "100", "--model", STRONG)
    assert out.exit_code == 0
    assert out.stdout.startswith(f"queued {len(noised)} relabel jobs for {len(noised)} flags of audit run 1 "
                                 f"(1 vote(s) each, model {STRONG})")
    run_distill(db, catalog=catalog, keys=parse_keys(f"{KEY}@p1"), settings=settings(server))
    result = cli("--db", path, "curate", "adjudicate", "--models", f"{STRONG},{CHEAP}", "--json")
    data = json.loads(result.stdout)
    assert data["settled"] == len(noised) and data["waiting"] == 0
    assert all(a["votes"][1]["model"] == STRONG for a in data["adjudications"])
    table = cli("--db", path, "curate", "adjudicate")
    assert table.stdout.strip().endswith(f"0 settled, 0 ties sent to review, 0 waiting for votes, {len(noised)} "
                                         "unchanged")
    bad = cli("--db", path, "curate", "adjudicate", "--tie", "coin")
    assert bad.exit_code == 2 and "--tie must be one of stronger, review" in bad.stderr
