"""Baseline routers: the keyword/regex router (hand rules, derived keywords) and the majority label."""

import pytest

from tooldistill.catalog import Catalog, Tool, parse_label
from tooldistill.eval import KeywordRouter, MajorityRouter, RouterSpec, get_router, grade, make_baseline, parse_output
from tooldistill.errors import InputError


@pytest.mark.parametrize("query, expected", [
    ("What's the weather in Paris tomorrow?", [{"tool": "weather", "args": {"location": "Paris"}}]),
    ("convert 5 km to miles", [{"tool": "unit_converter", "args": {"value": 5, "from": "km", "to": "miles"}}]),
    ("calculate 17 * 23", [{"tool": "calculator", "args": {"expression": "17 * 23"}}]),
    ("translate 'good morning' into Japanese", [{"tool": "translate",
                                                  "args": {"text": "good morning", "to_lang": "Japanese"}}]),
    ("who was Ada Lovelace", [{"tool": "wikipedia", "args": {"query": "Ada Lovelace"}}]),
    ("define serendipity", [{"tool": "dictionary", "args": {"word": "serendipity"}}]),
    ("summarise https://example.com/a.html", [{"tool": "web_reader", "args": {"url": "https://example.com/a.html"}}]),
    ("what time is it in Tokyo", [{"tool": "datetime", "args": {"action": "current_time", "timezone": "Tokyo"}}]),
    ("how many days until Christmas", [{"tool": "datetime", "args": {"action": "days_until", "date": "Christmas"}}]),
    ("latest news on the election", [{"tool": "web_search", "args": {"query": "latest news on the election"}}]),
    ("hi there, how are you?", []),
])
def test_keyword_router_hand_rules_on_the_default_catalogue(catalog, query, expected):
    router = make_baseline("keyword", catalog)
    raw = router.route([query])[0]
    assert grade(parse_output(raw), parse_label(expected), catalog).fully_correct, raw


def test_keyword_router_splits_clauses_into_a_multi_tool_call(catalog):
    label = KeywordRouter.for_catalog(catalog).predict("weather in Oslo and convert 3 kg to pounds")
    assert sorted(label.tools) == ["unit_converter", "weather"]
    assert KeywordRouter.for_catalog(catalog).predict("weather in Oslo and Rome").tools == ["weather"]


def test_regex_is_an_alias_and_unknown_baselines_are_named(catalog):
    assert make_baseline("regex", catalog).name == "keyword"
    with pytest.raises(ValueError, match="unknown baseline 'oracle' \\(known: majority, keyword"):
        make_baseline("oracle", catalog)


def test_class_catalogue_routes_by_class_name_tokens():
    cat = Catalog.from_class_names(["pay_bill", "transfer", "book_flight", "oos"], none_label="oos")
    router = KeywordRouter.for_catalog(cat)
    assert router.predict("I need to pay my electricity bill").tools == ["pay_bill"]
    assert router.predict("can you book a flight to Rome").tools == ["book_flight"]
    assert router.predict("tell me a joke").is_no_tool


def test_derived_keywords_are_mined_from_training_examples():
    cat = Catalog.from_class_names(["freeze_account", "oos"], none_label="oos")
    examples = [(f"please lock my card number {i}", cat.class_label("freeze_account")) for i in range(5)]
    examples += [(f"tell me about card games {i}", cat.class_label("oos")) for i in range(20)]
    plain = KeywordRouter.for_catalog(cat)
    mined = KeywordRouter.for_catalog(cat, examples=examples)
    assert plain.predict("lock it now").is_no_tool
    assert mined.predict("lock it now").tools == ["freeze_account"]       # "lock" is 5/5 freeze_account
    assert mined.predict("card games are fun").is_no_tool                  # "card" is mostly oos: not a keyword


def test_hand_rules_apply_only_to_the_default_catalogues_own_tools():
    # a tool named "weather" without the default's arguments gets a derived, argument-free rule
    cat = Catalog(tools=(Tool(name="weather", description="weather intent"), Tool(name="alarm", description="alarm")))
    label = KeywordRouter.for_catalog(cat).predict("what's the weather like")
    assert label.tools == ["weather"] and label.calls[0].args == {}


def test_majority_router_answers_the_most_frequent_tool_set(catalog):
    labels = [parse_label([{"tool": "weather", "args": {"location": "x"}}])] * 3 + [parse_label([])] * 2
    router = MajorityRouter.fit(catalog, labels)
    label = parse_output(router.route(["is it cold in Lima"])[0]).label
    assert label.tools == ["weather"] and label.calls[0].args == {"location": "is it cold in Lima"}
    assert MajorityRouter.fit(catalog, [parse_label([])] * 2 + labels[:1]).predict("x").is_no_tool
    with pytest.raises(ValueError, match="needs at least one training label"):
        MajorityRouter.fit(catalog, [])


def test_get_router_builds_baselines_from_a_spec(catalog):
    router = get_router(None, "keyword", catalog=catalog)
    assert router.route(["define laconic"]) == ['[{"tool": "dictionary", "args": {"word": "laconic"}}]']
    with pytest.raises(InputError, match="majority baseline needs at least one training label"):
        get_router(None, RouterSpec("baseline", "majority"), catalog=catalog, examples=[])
    with pytest.raises(InputError, match="unknown router 'gpt'"):
        RouterSpec.parse("gpt")
