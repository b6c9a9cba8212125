"""curate split: seeded, stratified, group-aware splits stored as content-hashed dataset versions that train and
eval read through tooldistill.db.load_split; the leakage check; lineage; the CLI."""

import json
from collections import Counter, defaultdict

import pytest

from tooldistill.catalog import load_catalog, parse_label
from tooldistill.curate import check_leakage, dedup, list_versions, split
from tooldistill.curate.neardup import dedup_key
from tooldistill.data import generate_queries
from tooldistill.db import (NewQuery, add_label, add_review, get_catalog, insert_queries, load_split, open_db,
                            version_info)
from tooldistill.errors import InputError, ToolDistillError

N = 1500


@pytest.fixture(scope="module")
def generated():
    return generate_queries(load_catalog(), N, seed=5)


@pytest.fixture
def gen_db(db, generated):
    insert_queries(db, generated)
    return db


def _members(db, version_id):
    return db.execute("SELECT m.query_id, m.split, q.template_id, m.group_id FROM split_members m "
                      "JOIN queries q ON q.id = m.query_id WHERE version_id = ?", [version_id]).fetchall()


def _side(split_name):
    return "held-out" if split_name in ("test", "hard") else split_name


def test_the_same_inputs_give_the_same_version_id_without_a_new_row(gen_db, generated, tmp_path):
    first = split(gen_db, seed=3)
    again = split(gen_db, seed=3)
    assert first.created and not again.created
    assert again.version_id == first.version_id
    assert gen_db.execute("SELECT count(*) FROM dataset_versions").fetchone()[0] == 1
    other = open_db(tmp_path / "other.db")  # another workspace fed the same queries
    get_catalog(other)
    insert_queries(other, generated)
    assert split(other, seed=3).version_id == first.version_id
    assert split(gen_db, seed=4).version_id != first.version_id
    assert split(gen_db, seed=3, fractions=(0.7, 0.15, 0.15)).version_id != first.version_id


def test_no_duplicate_cluster_and_no_template_straddles_splits(gen_db):
    report = split(gen_db)
    run_id = report.lineage["dedup_run"]["id"]
    cluster_of = dict(gen_db.execute("SELECT query_id, cluster_id FROM dedup_members WHERE run_id = ?", [run_id]))
    sides = defaultdict(set)
    for qid, name, template, group in _members(gen_db, report.version_id):
        sides["t", template].add(_side(name))
        sides["g", group].add(_side(name))
        if qid in cluster_of:
            sides["c", cluster_of[qid]].add(_side(name))
    assert sum(k[0] == "c" for k in sides) > 20  # the data has duplicate clusters to keep together
    assert all(len(v) == 1 for v in sides.values())
    assert report.leakage.train_test == 0 and report.leakage.pairs == {}
    assert report.leakage.templates_across == report.leakage.clusters_across == 0


def test_splits_are_stratified_by_label(gen_db):
    report = split(gen_db, seed=1)
    totals = Counter()
    for c in report.counts.values():
        totals.update(c["labels"])
    big = [lab for lab, n in totals.items() if n >= 90]
    assert len(big) >= 8
    for lab in big:
        share = {s: report.counts[s]["labels"].get(lab, 0) / totals[lab] for s in report.counts}
        held_out = share.get("test", 0) + share.get("hard", 0)
        assert abs(share["train"] - 0.8) <= 0.05 and abs(share["val"] - 0.1) <= 0.04 and abs(held_out - 0.1) <= 0.04
    assert sum(c["total"] for c in report.counts.values()) == N


def test_hard_split_holds_the_multi_tool_ambiguous_and_relabeled_test_examples(gen_db):
    singles = [q for q, c in gen_db.execute("SELECT id, category FROM queries WHERE category = 'single'")]
    for qid in singles[::10]:
        add_review(gen_db, qid, "fix", parse_label([{"tool": "web_search", "args": {"query": "reviewed"}}]))
    report = split(gen_db)
    category = dict(gen_db.execute("SELECT id, category FROM queries"))
    reviewed = set(singles[::10])
    for name in ("test", "hard"):
        for ex in load_split(gen_db, report.version_id, name):
            is_hard = ex.label.is_multi or category[ex.query_id] == "ambiguous" or ex.query_id in reviewed
            assert is_hard == (name == "hard")
            if ex.query_id in reviewed:
                assert ex.label_source == "review"
    assert set(report.hard_reasons) == {"multi_tool", "ambiguous", "relabeled"}
    assert report.counts["hard"]["total"] == len(load_split(gen_db, report.version_id, "hard"))
    assert not split(gen_db, hard=False).counts.get("hard")


def test_the_leakage_check_counts_near_duplicates_across_splits():
    texts = ["what's the weather going to be like in Lisbon this weekend", "what's the wether going to be like "
             "in Lisbon this weekend", "convert 12 kilometers into miles", "Convert 12 kilometers into miles!",
             "translate good night into French", "who painted the Mona Lisa"]
    report = check_leakage(texts, ["train", "test", "train", "hard", "val", "test"],
                           templates=["a", "a", "b", "c", None, None])
    assert report.pairs == {"train-test": 1, "train-hard": 1} and report.train_test == 2
    assert report.exact == {"train-hard": 1}
    assert {tuple(e["splits"]) for e in report.examples} == {("train", "test"), ("train", "hard")}
    assert report.templates_across == 1
    clean = check_leakage(texts, ["train", "train", "val", "val", "test", "test"])
    assert clean.train_test == 0 and clean.pairs == {}


def test_members_carry_the_current_label_and_source_that_load_split_reads(db):
    weather = parse_label([{"tool": "weather", "args": {"location": "Oslo"}}])
    search = parse_label([{"tool": "web_search", "args": {"query": "Oslo events"}}])
    ids = insert_queries(db, [NewQuery(f"question number {i} about {city}", "t")
                              for i, city in enumerate(["Oslo", "Rome", "Lima", "Kyiv", "Baku", "Riga"] * 5)]).ids
    for qid in ids:
        add_label(db, qid, weather)
    add_review(db, ids[0], "fix", search)
    add_review(db, ids[1], "reject")
    report = split(db, hard=False)
    rows = {r[0]: r for r in db.execute("SELECT query_id, calls, label_hash, label_source, group_id FROM split_members "
                                        "WHERE version_id = ?", [report.version_id])}
    assert ids[1] not in rows and len(rows) == len(ids) - 1
    assert (report.lineage["queries"]["rejected"], report.n_unlabeled) == (1, 0)
    assert rows[ids[0]][1:4] == (search.canonical_json(), search.hash, "review")
    assert rows[ids[2]][1:4] == (weather.canonical_json(), weather.hash, "teacher")
    assert all(r[4] for r in rows.values())
    read = {ex.query_id: ex for name, c in report.counts.items() if c["total"]
            for ex in load_split(db, report.version_id, name)}
    assert read[ids[0]].label == search and read[ids[0]].label_source == "review"
    assert set(read) == set(rows)


def test_lineage_records_precedence_sources_catalogue_dedup_run_and_reviews(gen_db):
    some = [q for (q,) in gen_db.execute("SELECT id FROM queries ORDER BY id LIMIT 3")]
    review_id = add_review(gen_db, some[0], "keep")
    insert_queries(gen_db, [NewQuery("a query nobody labeled yet", "t")])
    report = split(gen_db, name="v1")
    info = version_info(gen_db, "v1")
    assert info["id"] == report.version_id and info["lineage"] == report.lineage
    lineage = report.lineage
    assert lineage["label_precedence"] == ["review", "gold", "adjudicated", "teacher"]
    assert lineage["label_sources"] == {"gold": N - 1, "review": 1}
    assert lineage["catalog_hash"] == get_catalog(gen_db).hash == info["catalog_hash"]
    assert lineage["dedup_run"]["created_for_this_split"] and lineage["dedup_run"]["method"] == "minhash"
    assert lineage["reviews"] == {"rows": 1, "max_id": review_id, "members": 1}
    assert report.n_unlabeled == 1 and any("1 queries have no current label" in w for w in report.warnings)
    assert info["params"]["seed"] == 0 and info["report"]["leakage"]["train_test"] == 0


def test_drop_duplicates_leaves_out_members_that_repeat_their_representative(db):
    city = lambda c: [{"tool": "weather", "args": {"location": c}}]  # noqa: E731
    texts = ["What's the weather in Oslo?", "whats the weather in oslo", "hey what's the weather in Oslo",
             "what's the weather in Oslo please", "translate good night into French"]
    ids = insert_queries(db, [NewQuery(t, "t", gold=parse_label(lab), gold_source="t") for t, lab in zip(
        texts, [city("Oslo"), city("Oslo"), city("Oslo"), city("oslo, norway"),
                [{"tool": "translate", "args": {"text": "good night", "to_lang": "French"}}]])]).ids
    dedup(db)
    kept = split(db, drop_duplicates=True, fractions=(1, 0, 0))
    members = {q for q, *_ in _members(db, kept.version_id)}
    assert kept.n_dropped_duplicates == 2
    assert ids[3] in members and ids[4] in members  # a different label is a different example
    assert len(members & set(ids[:3])) == 1
    assert split(db, fractions=(1, 0, 0)).n_dropped_duplicates == 0


def test_bad_fractions_name_clash_and_nothing_labeled_are_refused(db):
    with pytest.raises(ToolDistillError, match="no labeled queries to split"):
        split(db)
    insert_queries(db, [NewQuery(f"what is {i} plus {i}", "t", gold=parse_label(
        [{"tool": "calculator", "args": {"expression": f"{i}+{i}"}}]), gold_source="t") for i in range(40)])
    with pytest.raises(InputError, match=r"sum to 1 .*got 0.8, 0.3, 0.1 \(sum 1.2\)"):
        split(db, fractions=(0.8, 0.3, 0.1))
    split(db, name="v1")
    with pytest.raises(InputError, match="the name 'v1' already names dataset version"):
        split(db, name="v1", seed=9)


def test_cli_split_and_versions(gen_db, cli, tmp_path):
    res = cli("--db", tmp_path / "test.db", "curate", "split", "--seed", "2", "--name", "first", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["created"] and report["leakage"]["train_test"] == 0
    res = cli("--db", tmp_path / "test.db", "curate", "split", "--seed", "2")
    assert res.exit_code == 0 and "already existed (same inputs)" in res.stdout
    assert "train vs test/hard 0 near-duplicate pairs" in res.stdout
    versions = json.loads(cli("--db", tmp_path / "test.db", "curate", "versions", "--json").stdout)
    assert [v["id"] for v in versions] == [report["version_id"]] == [v["id"] for v in list_versions(gen_db)]
    assert versions[0]["name"] == "first" and versions[0]["splits"]["train"] == report["counts"]["train"]["total"]
    res = cli("--db", tmp_path / "test.db", "curate", "split", "--train", "0.9")
    assert res.exit_code == 2
    assert res.stderr.strip() == ("Error: field 'fractions': train/val/test fractions must be >= 0, sum to 1 and "
                                  "give train a share; got 0.9, 0.1, 0.1 (sum 1.1)")


def test_pairs_the_dedup_run_missed_are_grouped_before_the_final_check(gen_db, generated):
    stale = dedup(gen_db).run_id
    variants = []
    for q in generated[:300:5]:  # word-swapped copies added after the dedup run: it never clustered them
        words = q.text.split()
        if len(words) >= 3:
            words[0], words[1] = words[1], words[0]
            variants.append(NewQuery(" ".join(words), "t", gold=q.gold, gold_source="t"))
    insert_queries(gen_db, variants)
    report = split(gen_db, dedup_run=stale)
    assert report.leakage.regrouped > 0 and report.leakage.train_test == 0
    assert any("had not clustered" in w for w in report.warnings)
    assert any("predates the current queries" in w for w in report.warnings)
    text_of = dict(gen_db.execute("SELECT id, text FROM queries"))
    by_words = defaultdict(set)  # a word-swapped copy has its source's words: Jaccard 1 on our shingles
    for qid, name, *_ in _members(gen_db, report.version_id):
        by_words[frozenset(dedup_key(text_of[qid]).split())].add(_side(name))
    assert all(len(s) == 1 for s in by_words.values())
