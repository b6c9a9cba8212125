"""Encoder student decisions: the no-tool rule, multi-tool sets, threshold calibration, config validation.

Numpy only (no model): these pin the decision rule that ``router.json`` documents for users.
"""

from __future__ import annotations

import numpy as np
import pytest

from tooldistill.catalog import Label, ToolCall
from tooldistill.errors import InputError
from tooldistill.train.encoder_router import (calibrate_thresholds, decide, set_key, tool_set,
                                              tool_set_metrics)

TOOLS = ["calculator", "weather", "web_search"]


def test_no_tool_when_the_best_tool_is_under_the_threshold():
    probs = np.array([[0.90, 0.05, 0.01],   # confident calculator
                      [0.30, 0.20, 0.10],   # nothing is sure: no tool
                      [0.10, 0.55, 0.02]])  # weather, just over
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=0.5) == [("calculator",), (), ("weather",)]
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=0.0) == [("calculator",), ("calculator",),
                                                                            ("weather",)]


def test_sigmoid_head_adds_other_tools_over_the_tool_threshold_up_to_max_tools():
    probs = np.array([[0.95, 0.80, 0.70], [0.95, 0.10, 0.05]])
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=0.5, tool_threshold=0.75, max_tools=3) == [
        ("calculator", "weather"), ("calculator",)]
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=0.5, tool_threshold=0.6, max_tools=3)[0] == (
        "calculator", "weather", "web_search")
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=0.5, tool_threshold=0.6, max_tools=2)[0] == (
        "calculator", "weather")
    # With single-tool training data (max_tools 1) a second tool never joins, whatever its probability.
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=0.5, tool_threshold=0.6, max_tools=1)[0] == (
        "calculator",)


def test_softmax_head_says_no_tool_for_the_none_class_or_a_weak_winner():
    classes = ["<none>", "calculator", "calculator+weather"]
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.45, 0.35]])
    assert decide(probs, classes, head="softmax", no_tool_threshold=0.0) == [(), ("calculator", "weather"),
                                                                              ("calculator",)]
    assert decide(probs, classes, head="softmax", no_tool_threshold=0.5)[2] == ()


def test_tool_sets_ignore_order_but_keep_repeated_calls():
    label = Label(calls=[ToolCall(tool="weather", args={"location": "Oslo"}), ToolCall(tool="calculator"),
                         ToolCall(tool="weather", args={"location": "Rome"})])
    assert tool_set(label) == ("calculator", "weather", "weather")
    assert set_key(tool_set(label)) == "calculator+weather+weather" and set_key(()) == "<none>"
    classes = ["<none>", "weather", "weather+weather"]
    assert decide(np.array([[0.1, 0.2, 0.7]]), classes, head="softmax", no_tool_threshold=0.5) == [
        ("weather", "weather")]
    assert tool_set_metrics([("weather",)], [("weather", "weather")])["accuracy"] == 0.0


def test_metrics_split_in_scope_accuracy_from_no_tool_recall():
    gold = [("calculator",), ("weather",), (), ()]
    pred = [("calculator",), (), (), ("weather",)]
    m = tool_set_metrics(pred, gold)
    assert m["accuracy"] == 0.5 and m["in_scope_accuracy"] == 0.5 and m["no_tool_recall"] == 0.5
    assert m["no_tool_precision"] == 0.5 and m["balanced"] == 0.5


def _separable(n_tool: int, n_none: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    probs, gold = [], []
    for i in range(n_tool):
        j = i % 3
        row = rng.uniform(0.0, 0.2, 3)
        row[j] = rng.uniform(0.6, 0.99)
        probs.append(row)
        gold.append((TOOLS[j],))
    for _ in range(n_none):
        probs.append(rng.uniform(0.0, 0.4, 3))
        gold.append(())
    return np.array(probs), gold


def test_calibration_finds_a_threshold_between_the_no_tool_and_tool_scores():
    probs, gold = _separable(60, 20)
    th = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", objective="balanced")
    assert 0.4 <= th.no_tool <= 0.6
    assert th.score == 1.0 and th.metrics["no_tool_recall"] == 1.0 and th.metrics["in_scope_accuracy"] == 1.0
    top_none = max(p.max() for p, g in zip(probs, gold) if not g)
    low_tool = min(p.max() for p, g in zip(probs, gold) if g)
    assert top_none < th.no_tool < low_tool  # strictly between the two groups: no val row sits on it
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=th.no_tool) == gold


def _overlapping() -> tuple[np.ndarray, list]:
    """Overlapping scores: 100 tool rows spread over [0.3, 1], 10 no-tool rows over [0.2, 0.6]."""
    probs = np.zeros((110, 3))
    probs[:100, 0] = np.linspace(0.3, 1.0, 100)
    probs[100:, 1] = np.linspace(0.2, 0.6, 10)
    return probs, [("calculator",)] * 100 + [()] * 10


def test_calibration_trades_in_scope_accuracy_for_no_tool_recall_by_objective():
    probs, gold = _overlapping()
    balanced = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", objective="balanced")
    accuracy = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", objective="accuracy")
    # Balanced weighs the 10 no-tool rows like the 100 tool rows, so it rejects more.
    assert balanced.no_tool > accuracy.no_tool
    assert balanced.metrics["no_tool_recall"] > accuracy.metrics["no_tool_recall"]
    assert accuracy.metrics["accuracy"] >= balanced.metrics["accuracy"]


def test_calibration_without_no_tool_rows_never_rejects_and_fixed_values_are_kept():
    probs, gold = _separable(30, 0)
    assert calibrate_thresholds(probs, TOOLS, gold, head="sigmoid").no_tool == 0.0
    fixed = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", no_tool_threshold=0.7)
    assert fixed.no_tool == 0.7 and fixed.metrics["in_scope_accuracy"] < 1.0


def test_calibration_picks_the_tool_threshold_for_multi_tool_sets():
    probs = np.array([[0.9, 0.7, 0.1], [0.9, 0.3, 0.1], [0.2, 0.95, 0.65], [0.1, 0.9, 0.2]])
    gold = [("calculator", "weather"), ("calculator",), ("weather", "web_search"), ("weather",)]
    th = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", max_tools=2)
    assert 0.3 < th.tool <= 0.65 and th.metrics["accuracy"] == 1.0


def test_encoder_config_rejects_unknown_keys_and_impossible_combinations(tmp_path):
    from tooldistill.train.config import load_student_config

    good = tmp_path / "enc.yaml"
    good.write_text("student: encoder\nhead: {kind: softmax}\noptim: {epochs: 2}\n")
    cfg = load_student_config(good, {"data.max_length": 32})
    assert cfg.student == "encoder" and cfg.head.kind == "softmax" and cfg.data.max_length == 32
    bad = tmp_path / "bad.yaml"
    bad.write_text("student: encoder\noptim:\n  epochs: 2\n  warmup_steps: 10\n")
    with pytest.raises(InputError) as exc:
        load_student_config(bad)
    assert "bad.yaml" in str(exc.value) and "warmup_steps" in str(exc.value)
    with pytest.raises(InputError, match="tool_threshold"):
        load_student_config(good, {"eval.tool_threshold": 0.5})


def test_retain_objective_spends_at_most_its_in_scope_budget_on_no_tool_recall():
    probs, gold = _overlapping()
    recalls = []
    for budget in (0.0, 0.1, 0.5):
        th = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", objective="retain", in_scope_budget=budget)
        assert th.metrics["in_scope_accuracy"] >= 1.0 - budget - 1e-9
        recalls.append(th.metrics["no_tool_recall"])
    assert recalls[0] == 0.3 < recalls[1] < recalls[2] == 1.0  # the three lowest no-tool rows are free


def test_similarity_gate_rejects_far_queries_the_probabilities_missed():
    # The no-tool rows look confident (p = 0.9) but are far from every training query (cosine 0.2).
    probs = np.array([[0.9, 0.05, 0.05]] * 20)
    sims = np.array([0.8] * 15 + [0.2] * 5)
    gold = [("calculator",)] * 15 + [()] * 5
    without = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", objective="balanced")
    with_gate = calibrate_thresholds(probs, TOOLS, gold, head="sigmoid", objective="balanced", similarity=sims)
    assert without.metrics["no_tool_recall"] == 0.0 and without.similarity is None
    assert 0.2 < with_gate.similarity < 0.8 and with_gate.score == 1.0
    assert decide(probs, TOOLS, head="sigmoid", no_tool_threshold=with_gate.no_tool, similarity=sims,
                  similarity_threshold=with_gate.similarity) == gold


def test_nearest_similarity_is_the_best_cosine_whether_torch_or_numpy_computes_it(monkeypatch):
    import sys

    import torch  # noqa: F401 - loaded: the torch path runs

    from tooldistill.train.encoder_router import nearest_similarity

    rng = np.random.default_rng(0)
    ex = rng.standard_normal((9000, 16)).astype(np.float32)
    ex /= np.linalg.norm(ex, axis=1, keepdims=True)
    queries = np.vstack([ex[8500] * 1.0, ex[3] * 1.0, -ex[0]])  # exact matches in two chunks, then a far query
    expected = (queries @ ex.T).max(axis=1)
    with_torch = nearest_similarity(queries, ex, chunk=4096)
    assert with_torch[:2] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert with_torch == pytest.approx(expected, abs=1e-5)
    monkeypatch.delitem(sys.modules, "torch")
    assert nearest_similarity(queries, ex, chunk=4096) == pytest.approx(expected, abs=1e-5)
