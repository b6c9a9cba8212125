"""Every metric pinned on a small hand-computed set (single, multi-tool, no-tool, unreadable), plus the intervals."""

import json

import numpy as np
import pytest

from tooldistill.catalog import parse_label
from tooldistill.eval import compare_grades, compute_metrics, grade, mcnemar, parse_output, ratio_intervals
from tooldistill.eval import wilson_interval


def W(loc):
    return {"tool": "weather", "args": {"location": loc}}


CALC = {"tool": "calculator", "args": {"expression": "2*3"}}
# (prediction raw output, label): the comments give each item's contribution, which the test sums by hand
CASES = [
    (json.dumps([W("tokyo")]), [W("Tokyo")]),                                        # 1 right (args tp 1)
    (json.dumps([{"tool": "web_search", "args": {"query": "paris weather"}}]), [W("Paris")]),  # 2 wrong tool (fp1 fn1)
    ("[]", []),                                                                      # 3 right no-tool
    (json.dumps([CALC]), []),                                                        # 4 false tool call (fp1)
    (json.dumps([CALC, W("Oslo")]), [W("Oslo"), CALC]),                              # 5 multi, right (tp2)
    (json.dumps([W("Rome")]),                                                        # 6 multi, one call missed
     [W("Rome"), {"tool": "unit_converter", "args": {"value": 5, "from": "km", "to": "miles"}}]),  # (tp1 fn3)
    ("I don't know", [{"tool": "calculator", "args": {"expression": "2+2"}}]),        # 7 unreadable (fn1)
    ('Answer: {"name": "dictionary", "arguments": {"word": "serendipity"}}',         # 8 right, extracted (tp1)
     [{"tool": "dictionary", "args": {"word": "serendipity"}}]),
]


@pytest.fixture
def grades(catalog):
    return [grade(parse_output(raw), parse_label(gold), catalog) for raw, gold in CASES]


@pytest.fixture
def metrics(grades, catalog):
    return compute_metrics(grades, catalog=catalog, latencies_ms=[10, 20, 30, 40, 50, 60, 70, 80], wall_s=2.0,
                           resamples=300, seed=1)


def frac(rate):
    return (rate["num"], rate["den"])


def test_rates_match_the_hand_computed_counts(metrics):
    r = metrics["rates"]
    expected = {
        "valid_json": (6, 8), "parsed": (7, 8), "extracted": (1, 8), "schema_valid": (7, 8),
        "tool_accuracy": (4, 8), "fully_correct": (4, 8),
        "args_exact": (3, 3),            # items 1, 5, 8 (item 3 has no arguments to get right)
        "arg_precision": (5, 7), "arg_recall": (5, 10), "arg_f1": (10, 17),
        "false_tool_call": (1, 2), "no_tool_recall": (1, 2), "no_tool_precision": (1, 1),
        "multi_tool_exact": (1, 2), "multi_tool_tools": (1, 2),
    }
    assert {k: frac(r[k]) for k in expected} == expected
    assert r["arg_f1"]["value"] == pytest.approx(10 / 17)


def test_per_tool_precision_recall_f1(metrics):
    t = metrics["per_tool"]
    assert (t["weather"]["support"], t["weather"]["predicted"]) == (4, 3)
    assert frac(t["weather"]["precision"]) == (3, 3) and frac(t["weather"]["recall"]) == (3, 4)
    assert t["weather"]["f1"]["value"] == pytest.approx(6 / 7)
    assert frac(t["calculator"]["precision"]) == (1, 2) and frac(t["calculator"]["recall"]) == (1, 2)
    assert t["web_search"]["recall"]["value"] is None and t["web_search"]["f1"]["value"] == 0
    assert t["unit_converter"]["precision"]["value"] is None and frac(t["unit_converter"]["recall"]) == (0, 1)
    # no tool is a class of its own: right on item 3, missed on item 4
    assert frac(t["<none>"]["precision"]) == (1, 1) and frac(t["<none>"]["recall"]) == (1, 2)
    assert "wikipedia" not in t  # tools that never occur are left out


def test_typed_error_counts_and_confusion(metrics):
    assert {k: v for k, v in metrics["errors"].items() if v} == {
        "wrong_tool": 1, "extra_call": 1, "missed_call": 1, "invalid_output": 1}
    conf = metrics["confusion"]
    cells = {(r, c): v for r, row in zip(conf["rows"], conf["matrix"]) for c, v in zip(conf["cols"], row)}
    assert cells[("weather", "weather")] == 1 and cells[("weather", "web_search")] == 1
    assert cells[("<none>", "calculator")] == 1 and cells[("calculator", "<invalid>")] == 1
    assert cells[("unit_converter+weather", "weather")] == 1
    assert sum(map(sum, conf["matrix"])) == 8 and len(conf["top_confusions"]) == 4


def test_latency_percentiles_and_throughput(metrics):
    lat = metrics["latency"]
    assert (lat["p50_ms"], lat["p95_ms"], lat["mean_ms"]) == (45.0, pytest.approx(76.5), 45.0)
    assert lat["throughput_qps"] == 4.0


def test_every_rate_has_an_interval_around_its_value(metrics):
    for name, rate in metrics["rates"].items():
        assert rate["lo"] <= rate["value"] <= rate["hi"], name
    assert metrics["rates"]["tool_accuracy"]["lo"] < 0.5 < metrics["rates"]["tool_accuracy"]["hi"]
    assert metrics["bootstrap"] == {"resamples": 300, "seed": 1, "confidence": 0.95}


def test_intervals_are_seeded(grades, catalog):
    a = compute_metrics(grades, catalog=catalog, resamples=200, seed=7)["rates"]["tool_accuracy"]
    b = compute_metrics(grades, catalog=catalog, resamples=200, seed=7)["rates"]["tool_accuracy"]
    c = compute_metrics(grades, catalog=catalog, resamples=200, seed=8)["rates"]["arg_f1"]
    d = compute_metrics(grades, catalog=catalog, resamples=200, seed=7)["rates"]["arg_f1"]
    assert a == b and (c["lo"], c["hi"]) != (d["lo"], d["hi"])


def test_bootstrap_interval_has_the_width_theory_predicts():
    rng = np.random.default_rng(0)
    hits = (rng.random(400) < 0.3).astype(float)
    rate = ratio_intervals({"r": (hits, np.ones(400))}, resamples=2000, seed=0)["r"]
    p = rate["value"]
    expected = 2 * 1.96 * np.sqrt(p * (1 - p) / 400)
    assert rate["hi"] - rate["lo"] == pytest.approx(expected, rel=0.15)


def test_no_resamples_means_no_intervals_and_empty_denominators_mean_not_applicable(catalog):
    gs = [grade(parse_output("[]"), parse_label([]), catalog)]
    m = compute_metrics(gs, catalog=catalog, resamples=0)
    assert m["rates"]["no_tool_recall"] == {"value": 1.0, "lo": None, "hi": None, "num": 1.0, "den": 1.0}
    assert m["rates"]["multi_tool_exact"]["value"] is None and m["rates"]["arg_f1"]["value"] is None
    assert compute_metrics([], catalog=catalog)["n"] == 0


@pytest.mark.parametrize("a_only, b_only, p", [
    (0, 10, 2 / 1024), (3, 7, 2 * (1 + 10 + 45 + 120) / 1024), (5, 5, 1.0), (0, 0, 1.0)])
def test_mcnemar_exact_p_values(a_only, b_only, p):
    assert mcnemar(a_only, b_only)["p_value"] == pytest.approx(p)


def test_mcnemar_stays_exact_for_large_counts():
    # 2 * P(X <= 450) for X ~ Binomial(1000, 0.5): normal approximation with continuity gives ~0.00171
    assert mcnemar(450, 550)["p_value"] == pytest.approx(0.00171, rel=0.05)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 0) == (None, None)


def test_paired_comparison_counts_discordant_items(grades, catalog):
    # B is A with items 2 and 7 fixed and item 1 broken
    fixed = [grade(parse_output(json.dumps(gold)), parse_label(gold), catalog) for _, gold in CASES]
    grades_b = {i: g for i, g in enumerate(grades)}
    grades_b[1], grades_b[6] = fixed[1], fixed[6]
    grades_b[0] = grade(parse_output("[]"), parse_label(CASES[0][1]), catalog)
    result = compare_grades({i: g for i, g in enumerate(grades)}, grades_b, resamples=300, seed=0)
    full = result["metrics"]["fully_correct"]
    assert (full["mcnemar"]["a_only"], full["mcnemar"]["b_only"]) == (1, 2)
    assert full["diff"]["value"] == pytest.approx(1 / 8)
    assert full["diff"]["lo"] < 1 / 8 < full["diff"]["hi"]
    assert result["n"] == 8 and frac(full["a"]) == (4, 8) and frac(full["b"]) == (5, 8)
