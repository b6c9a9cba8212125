"""Reading raw router outputs and grading them BFCL-style: typed errors, normalised values, acceptable answers."""

import json

import pytest

from tooldistill.catalog import Catalog, parse_label
from tooldistill.eval import Acceptable, acceptable_from_meta, grade, parse_output, values_match
from tooldistill.eval.grade import normalize_string

WEATHER_TOKYO = [{"tool": "weather", "args": {"location": "Tokyo"}}]


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("raw", [
    '[{"tool": "weather", "args": {"location": "Tokyo"}}]',                         # ours
    '[{"name": "weather", "arguments": {"location": "Tokyo"}}]',                     # OpenAI-style list
    '{"name": "weather", "arguments": "{\\"location\\": \\"Tokyo\\"}"}',             # arguments as a JSON string
    '{"tool": "weather", "arguments": {"location": "Tokyo"}}',                       # the lesson's shape
    '[{"functionCall": {"name": "weather", "args": {"location": "Tokyo"}}}]',        # Gemini parts
    '[{"type": "function", "function": {"name": "weather", "arguments": {"location": "Tokyo"}}}]',
    '<tool_call>\n{"name": "weather", "arguments": {"location": "Tokyo"}}\n</tool_call>',  # Qwen native
    '[TOOL_CALLS] [{"name": "weather", "arguments": {"location": "Tokyo"}}]',        # Mistral native
    WEATHER_TOKYO,                                                                   # already-decoded JSON
])
def test_every_common_shape_is_strict_valid_json(raw):
    parsed = parse_output(raw)
    assert parsed.label == parse_label(WEATHER_TOKYO)
    assert parsed.valid_json and not parsed.extracted and parsed.error is None


@pytest.mark.parametrize("raw", ["[]", '{"tool": "no_tool", "reason": "chit-chat"}', [], None])
def test_no_tool_shapes_read_as_the_empty_label(raw):
    parsed = parse_output(raw)
    assert parsed.label is not None and parsed.label.is_no_tool and parsed.valid_json


def test_no_tool_keeps_its_reason_beside_the_label():
    assert parse_output('{"tool": "no_tool", "args": {"reason": "greeting"}}').label.reason == "greeting"


@pytest.mark.parametrize("raw", [
    'Sure! Here is the call: {"name": "weather", "arguments": {"location": "Tokyo"}} Hope it helps.',
    '```json\n[{"tool": "weather", "args": {"location": "Tokyo"}}]\n```',
    'thinking... <tool_call>{"name": "weather", "arguments": {"location": "Tokyo"}}</tool_call>',
])
def test_json_inside_text_is_extracted_and_reported_as_such(raw):
    parsed = parse_output(raw)
    assert parsed.label == parse_label(WEATHER_TOKYO)
    assert parsed.extracted and not parsed.valid_json


@pytest.mark.parametrize("raw, reason", [
    ("", "empty output"),
    ("I cannot help with that.", "no JSON label found"),
    ('{"location": "Tokyo"}', "no tool name"),
    ("<tool_call>{not json}</tool_call>", "<tool_call> block 0: invalid JSON"),
])
def test_unreadable_outputs_say_why(raw, reason):
    parsed = parse_output(raw)
    assert parsed.label is None and not parsed.valid_json
    assert reason in parsed.error


# ---------------------------------------------------------------- grading


def g(pred, gold, catalog, **kw):
    return grade(parse_output(json.dumps(pred) if not isinstance(pred, str) else pred), parse_label(gold), catalog, **kw)


def test_a_right_call_with_differently_written_values_is_fully_correct(catalog):
    r = g([{"tool": "weather", "args": {"location": "  tokyo "}}], WEATHER_TOKYO, catalog)
    assert r.fully_correct and r.errors == () and (r.arg_tp, r.arg_fp, r.arg_fn) == (1, 0, 0)


def test_numbers_compare_by_value_whatever_their_form(catalog):
    gold = [{"tool": "unit_converter", "args": {"value": 1500, "from": "km", "to": "miles"}}]
    for value in (1500, 1500.0, "1500", "1,500"):
        pred = [{"tool": "unit_converter", "args": {"value": value, "from": "KM", "to": "Miles"}}]
        assert g(pred, gold, catalog).fully_correct, value


def test_wrong_tool_is_typed_and_costs_every_argument(catalog):
    r = g([{"tool": "web_search", "args": {"query": "weather tokyo"}}], WEATHER_TOKYO, catalog)
    assert (r.tool_correct, r.errors) == (False, ("wrong_tool",))
    assert (r.arg_tp, r.arg_fp, r.arg_fn) == (0, 1, 1)


def test_argument_errors_are_typed_bfcl_style(catalog):
    gold = [{"tool": "datetime", "args": {"action": "convert_timezone", "timezone": "Tokyo", "target_timezone": "UTC"}}]
    pred = [{"tool": "datetime", "args": {"timezone": 9, "target_timezone": "Paris", "lang": "en"}}]
    r = g(pred, gold, catalog)
    assert r.tool_correct and not r.fully_correct
    assert sorted(r.errors) == ["missing_required", "type_error", "unexpected_arg", "value_error"]
    assert (r.arg_tp, r.arg_fp, r.arg_fn) == (0, 3, 3)


def test_an_optional_argument_the_label_sets_but_the_prediction_omits_is_missing_arg(catalog):
    gold = [{"tool": "datetime", "args": {"action": "current_time", "timezone": "Tokyo"}}]
    r = g([{"tool": "datetime", "args": {"action": "current_time"}}], gold, catalog)
    assert r.errors == ("missing_arg",) and (r.arg_tp, r.arg_fn) == (1, 1)


def test_an_optional_argument_the_label_does_not_set_is_unexpected(catalog):
    gold = [{"tool": "datetime", "args": {"action": "current_time"}}]
    r = g([{"tool": "datetime", "args": {"action": "current_time", "timezone": "UTC"}}], gold, catalog)
    assert r.errors == ("unexpected_arg",) and "not set by the label" in r.details[0]


def test_a_wrong_enum_value_is_a_value_error_not_a_type_error(catalog):
    gold = [{"tool": "datetime", "args": {"action": "current_time"}}]
    r = g([{"tool": "datetime", "args": {"action": "now"}}], gold, catalog)
    assert r.errors == ("value_error",) and not r.schema_valid


def test_no_tool_cases(catalog):
    right = g([], [], catalog)
    assert right.tool_correct and right.fully_correct and right.pred_key == "<none>"
    false_call = g(WEATHER_TOKYO, [], catalog)
    assert false_call.errors == ("extra_call",) and not false_call.tool_correct and false_call.arg_fp == 1
    missed = g([], WEATHER_TOKYO, catalog)
    assert missed.errors == ("missed_call",) and missed.arg_fn == 1


def test_multi_tool_calls_compare_as_a_multiset(catalog):
    gold = [{"tool": "weather", "args": {"location": "Oslo"}}, {"tool": "weather", "args": {"location": "Rome"}},
            {"tool": "calculator", "args": {"expression": "2*3"}}]
    shuffled = [gold[2], gold[1], gold[0]]
    assert g(shuffled, gold, catalog).fully_correct
    one_missing = g(shuffled[:2], gold, catalog)
    assert one_missing.errors == ("missed_call",) and not one_missing.tool_correct
    assert (one_missing.arg_tp, one_missing.arg_fn) == (2, 1)
    # the two weather calls pair by their values, so only Rome's value is wrong
    swapped = g([gold[2], gold[0], {"tool": "weather", "args": {"location": "Milan"}}], gold, catalog)
    assert swapped.tool_correct and swapped.errors == ("value_error",) and "Milan" in swapped.details[0]


def test_unreadable_prediction_grades_as_invalid_output(catalog):
    r = grade(parse_output("no idea"), parse_label(WEATHER_TOKYO), catalog)
    assert r.errors == ("invalid_output",) and r.pred is None and r.pred_key == "<invalid>" and r.arg_fn == 1


def test_unknown_tool_is_schema_invalid_and_a_wrong_tool(catalog):
    r = g([{"tool": "stock_price", "args": {"ticker": "GOOG"}}], WEATHER_TOKYO, catalog)
    assert not r.schema_valid and r.errors == ("wrong_tool",)


def test_acceptable_values_per_argument_and_optional_marker(catalog):
    gold = parse_label([{"tool": "weather", "args": {"location": "New York City"}}])
    acc = Acceptable(args={"weather.location": ("NYC", "New York")})
    assert grade(parse_output('[{"tool": "weather", "args": {"location": "nyc"}}]'), gold, catalog,
                 acceptable=acc).fully_correct
    assert not grade(parse_output('[{"tool": "weather", "args": {"location": "Boston"}}]'), gold, catalog,
                     acceptable=acc).fully_correct
    optional = parse_label([{"tool": "datetime", "args": {"action": "current_time", "timezone": "UTC"}}])
    acc = Acceptable(args={"timezone": ("UTC", "")})
    assert grade(parse_output('[{"tool": "datetime", "args": {"action": "current_time"}}]'), optional, catalog,
                 acceptable=acc).fully_correct


def test_acceptable_alternative_labels_from_query_meta(catalog):
    meta = json.dumps({"acceptable": [[{"tool": "web_search", "args": {"query": "weather in Tokyo"}}]]})
    acc = acceptable_from_meta(meta)
    r = grade(parse_output('[{"tool": "web_search", "args": {"query": "Weather in Tokyo"}}]'),
              parse_label(WEATHER_TOKYO), catalog, acceptable=acc)
    assert r.fully_correct and r.used_alternative and r.gold.tools == ["web_search"]
    # the label itself still wins when the prediction matches it
    assert not grade(parse_output(json.dumps(WEATHER_TOKYO)), parse_label(WEATHER_TOKYO), catalog,
                     acceptable=acc).used_alternative


def test_acceptable_meta_shapes():
    assert acceptable_from_meta(None) is None and acceptable_from_meta('{"other": 1}') is None
    assert acceptable_from_meta({"acceptable": {"location": ["NYC"]}}).args == {"location": ("NYC",)}
    with pytest.raises(ValueError, match="must be a list"):
        acceptable_from_meta({"acceptable_args": {"location": "NYC"}})


@pytest.mark.parametrize("a, b, same", [
    ("New York", "new-york", True), ("Hello, World!", "hello world", True), ("1.5 km", "15 km", False),
    ("2*3", "23", False), ("0.15 * 2850", "0.15*2850", True), (15, "15.0", True), (True, "true", True),
    ([1, 2], [2, 1], True), ([1, 2], [1, 2, 3], False), ({"a": "X"}, {"a": "x"}, True), (None, "", False),
])
def test_values_match_normalisation(a, b, same):
    assert values_match(a, b) is same


def test_normalize_string_keeps_decimals_and_drops_thousands_separators():
    assert normalize_string("Price: 1,500.25 USD") == "price1500.25usd"


def test_class_catalogue_calls_have_no_arguments_to_grade():
    cat = Catalog.from_class_names(["book_flight", "weather", "oos"], none_label="oos")
    r = grade(parse_output('[{"tool": "weather", "args": {}}]'), cat.class_label("weather"), cat)
    assert r.fully_correct and (r.arg_tp, r.arg_fp, r.arg_fn) == (0, 0, 0)
    assert grade(parse_output("[]"), cat.class_label("oos"), cat).fully_correct
