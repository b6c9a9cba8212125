"""Template generation: distinct, valid, grounded queries covering every class, reproducible from a seed."""

import json
import re
from collections import Counter

import pytest

from tooldistill.catalog import Catalog, load_catalog
from tooldistill.data import generate, generate_queries
from tooldistill.errors import ToolDistillError
from tooldistill.textnorm import normalize_text


@pytest.fixture(scope="module")
def five_k():
    return generate_queries(load_catalog(), 5000, seed=7)


def test_5000_queries_are_distinct_after_normalisation(five_k):
    assert len(five_k) == 5000
    assert len({normalize_text(q.text) for q in five_k}) == 5000


def test_every_gold_label_fits_the_catalogue(five_k, catalog):
    for q in five_k:
        assert catalog.label_errors(q.gold) == [], q.text
        assert q.gold_source == "template" and q.catalog_hash == catalog.hash
        for alternative in q.meta.get("acceptable", []):
            assert catalog.label_errors(catalog.validate_label(alternative)) == []


def test_every_tool_no_tool_and_multi_tool_class_is_present(five_k, catalog):
    tools = Counter(t for q in five_k for t in set(q.gold.tools))
    assert set(tools) == set(catalog.names)
    assert min(tools.values()) >= 300
    no_tool_share = sum(q.gold.is_no_tool for q in five_k) / len(five_k)
    assert 0.10 <= no_tool_share <= 0.20
    multi = [q for q in five_k if q.gold.is_multi]
    assert len(multi) >= 500 and len({q.gold.tool_set_key for q in multi}) >= 30
    assert any(len(set(q.gold.tools)) == 1 for q in multi), "the same tool twice is a multi-tool label too"
    assert set(Counter(q.category for q in five_k)) == {"single", "multi", "no_tool", "ambiguous", "edge"}


def test_phrasing_uses_many_frames_per_tool_and_noise(five_k):
    frames_per_tool: dict[str, set] = {}
    for q in five_k:
        if q.category == "single":
            frames_per_tool.setdefault(q.gold.tools[0], set()).add(q.template_id)
    assert all(len(frames) >= 12 for frames in frames_per_tool.values()), {
        t: len(f) for t, f in frames_per_tool.items()}
    noise = Counter(kind for q in five_k for kind in q.meta.get("noise", []))
    for kind in ("typo", "prefix", "suffix", "lower", "no_apostrophe", "punct"):
        assert noise[kind] >= 100, (kind, noise)
    assert sum(q.text != q.text.lower() for q in five_k) > 1000 > sum(q.text.isupper() for q in five_k)


def test_string_arguments_appear_in_the_query_as_written(five_k):
    derived = {("calculator", "expression"), ("datetime", "action")}
    for q in five_k:
        for call in q.gold.calls:
            for name, value in call.args.items():
                if (call.tool, name) in derived:
                    continue
                shown = value if isinstance(value, str) else format(value, "g")
                assert shown in q.text, (q.text, call.tool, name, value)


def test_calculator_expressions_use_the_numbers_of_the_query(five_k):
    for q in five_k:
        for call in q.gold.calls:
            if call.tool == "calculator":
                numbers = re.findall(r"\d+(?:\.\d+)?", call.args["expression"])
                assert numbers and any(n in q.text for n in numbers), q.text


def test_the_seeds_edge_and_ambiguous_examples_have_their_labels(five_k):
    by_family = {}
    for q in five_k:
        by_family.setdefault(q.template_id.split(".")[0], []).append(q)
    say = by_family["edge_say"][0]  # "say hello in Japanese" -> translate
    assert say.gold.tools == ["translate"] and say.gold.calls[0].args["to_lang"] in say.text
    for q in by_family["edge_pct"]:  # "what's 15% of 2850" -> calculator 0.15 * 2850
        m = re.search(r"(\d+(?:\.\d+)?)% of (\d+(?:\.\d+)?)", q.text)
        if m:
            p, n = m.groups()
            assert float(q.gold.calls[0].args["expression"].split(" * ")[0]) == pytest.approx(float(p) / 100)
            assert q.gold.calls[0].args["expression"].endswith(f" * {n}")
    assert all(q.gold.calls[0].args["expression"].startswith("sqrt(") for q in by_family["edge_sqrt"])
    assert any(q.gold.is_no_tool for q in by_family["edge_trap"])
    ambiguous = by_family["amb_topic"]  # "tell me about Python" -> wikipedia, web_search acceptable
    for q in ambiguous:
        acceptable = q.meta["acceptable"]
        assert acceptable[0] == q.gold.canonical() and len(acceptable) >= 2
        assert {a[0]["tool"] for a in acceptable} == {"wikipedia", "web_search"}


def test_the_same_seed_gives_the_same_queries_and_another_seed_others(catalog):
    a = generate_queries(catalog, 300, seed=3)
    b = generate_queries(catalog, 300, seed=3)
    c = generate_queries(catalog, 300, seed=4)
    assert [(q.text, q.gold, q.template_id) for q in a] == [(q.text, q.gold, q.template_id) for q in b]
    assert len({q.text for q in a} & {q.text for q in c}) < 30


def test_templates_refuse_another_catalogue():
    classes = Catalog.from_class_names(["greet", "weather"])
    with pytest.raises(ToolDistillError, match="cover only the default catalogue.*lacks web_search"):
        generate_queries(classes, 10, seed=0)


def test_generate_writes_gold_queries_and_a_rerun_adds_nothing(db):
    report = generate(db, 400, seed=1)
    assert (report.generated, report.added, report.already_present) == (400, 400, 0)
    rows = list(db.query("SELECT * FROM queries"))
    assert len(rows) == 400
    assert {r["gold_source"] for r in rows} == {"template"} and all(r["template_id"] and r["category"] for r in rows)
    assert {r["source"] for r in rows} == {"template:seed=1"}
    assert sum(report.by_category.values()) == 400 and "<none>" in report.by_tool
    again = generate(db, 400, seed=1)
    assert (again.added, again.already_present) == (0, 400)


def test_cli_generate_prints_counts_per_category_and_tool(cli, tmp_path):
    result = cli("--db", tmp_path / "w.db", "data", "generate", "--n", "250", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "generated 250 distinct queries (seed 2): 250 added, 0 already in the database" in result.stdout
    for word in ("single", "multi", "no_tool", "edge", "unit_converter", "<none>"):
        assert word in result.stdout
    as_json = json.loads(cli("--db", tmp_path / "w.db", "data", "generate", "--n", "250", "--seed", "2",
                             "--json").stdout)
    assert as_json["already_present"] == 250 and as_json["added"] == 0


def test_cli_generate_with_another_catalogue_is_one_clear_line(cli, tmp_path):
    cat = tmp_path / "cat.yaml"
    cat.write_text("tools:\n- {name: greet, description: Say hi}\n")
    assert cli("--db", tmp_path / "w.db", "data", "catalog", "set", cat).exit_code == 0
    result = cli("--db", tmp_path / "w.db", "data", "generate", "--n", "10")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the query templates cover only the default catalogue")
    assert len(result.stderr.strip().splitlines()) == 1
