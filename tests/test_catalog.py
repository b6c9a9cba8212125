"""The catalogue and the label: validation, canonical form, conversions."""

import json

import pytest

from tooldistill.catalog import Catalog, Label, ToolCall, catalog_from_text, label_hash, load_catalog, parse_label
from tooldistill.errors import CatalogError, LabelError


def test_default_catalogue_has_the_nine_tools(catalog):
    assert catalog.names == ["web_search", "calculator", "weather", "wikipedia", "datetime", "dictionary",
                             "translate", "unit_converter", "web_reader"]


def test_duplicate_tool_names_are_a_clear_error():
    text = "tools:\n- {name: a, description: x}\n- {name: a, description: y}\n"
    with pytest.raises(CatalogError, match="duplicate tool name"):
        catalog_from_text(text, source="cat.yaml")


def test_no_tool_is_reserved():
    with pytest.raises(CatalogError, match="reserved"):
        catalog_from_text("tools:\n- {name: no_tool, description: x}\n", source="cat.yaml")


def test_unknown_schema_type_names_the_tool_and_field():
    text = "tools:\n- name: a\n  description: x\n  parameters: {type: object, properties: {q: {type: strng}}}\n"
    with pytest.raises(CatalogError) as exc:
        catalog_from_text(text, source="cat.yaml")
    assert "cat.yaml" in str(exc.value) and "strng" in str(exc.value)


def test_numbers_normalise_so_equal_labels_hash_equal(catalog):
    a = catalog.validate_label([{"tool": "unit_converter", "args": {"value": 15, "from": "km", "to": "mi"}}])
    b = catalog.validate_label([{"tool": "unit_converter", "args": {"value": "15", "from": "km", "to": "mi"}}])
    c = catalog.validate_label([{"tool": "unit_converter", "args": {"value": 15.0, "from": "km", "to": "mi"}}])
    assert a == b == c and a.hash == b.hash == c.hash


def test_calls_compare_as_a_multiset():
    x = {"tool": "weather", "args": {"location": "Tokyo"}}
    y = {"tool": "calculator", "args": {"expression": "1+1"}}
    assert parse_label([x, y]) == parse_label([y, x])
    assert parse_label([x, x]) != parse_label([x])
    assert label_hash([x, y]) == label_hash([y, x])


def test_label_shapes_are_understood():
    ours = [{"tool": "weather", "args": {"location": "Paris"}}]
    openai = {"tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": '{"location": "Paris"}'}}]}
    named = [{"name": "weather", "arguments": {"location": "Paris"}}]
    gemini = [{"functionCall": {"name": "weather", "args": {"location": "Paris"}}}]
    assert parse_label(ours) == parse_label(openai) == parse_label(named) == parse_label(gemini)
    no = parse_label({"tool": "no_tool", "reason": "greeting"})
    assert no.is_no_tool and no.reason == "greeting" and no == parse_label([])


def test_unknown_tool_and_bad_args_are_label_errors(catalog):
    with pytest.raises(LabelError, match="unknown tool 'teleport'"):
        catalog.validate_label([{"tool": "teleport", "args": {}}], source="q.jsonl", line=3)
    with pytest.raises(LabelError, match=r"q.jsonl:4.*weather: args.location: expected string"):
        catalog.validate_label([{"tool": "weather", "args": {"location": 5}}], source="q.jsonl", line=4)
    with pytest.raises(LabelError, match="missing required"):
        catalog.validate_label([{"tool": "translate", "args": {"text": "hi"}}])
    with pytest.raises(LabelError, match="unexpected argument"):
        catalog.validate_label([{"tool": "weather", "args": {"location": "x", "when": "now"}}])


def test_gemini_declarations_include_no_tool(catalog):
    decls = catalog.to_gemini_declarations()
    assert decls[-1]["name"] == "no_tool" and len(decls) == len(catalog.tools) + 1
    assert catalog.to_openai_tools()[0]["function"]["name"] == "web_search"


def test_class_catalogue_maps_none_class_to_empty_label():
    cat = Catalog.from_class_names(["book_flight", "oos", "play music"], none_label="oos")
    assert cat.names == ["book_flight", "play_music"]
    assert cat.class_label("oos") == Label(calls=[])
    assert cat.class_label("play music") == Label(calls=[ToolCall(tool="play_music")])
    assert cat.is_class_catalog


def test_catalogue_hash_ignores_the_file_name(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.json"
    data = load_catalog().to_dict()
    a.write_text(json.dumps(data)), b.write_text(json.dumps(data))
    assert load_catalog(a).hash == load_catalog(b).hash == load_catalog().hash
