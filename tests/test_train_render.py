"""Rendering router examples with the student's own template, parsing outputs back, and the loss mask."""

from __future__ import annotations

import pytest

from test_train_support import set_offline, tiny_model
from tooldistill.catalog import Label, ToolCall, load_catalog
from tooldistill.errors import InputError
from tooldistill.train import detect_format, format_output, parse_output, render_prompt
from tooldistill.train.render import render_example, set_render_options

CATALOG = load_catalog()
TWO_CALLS = Label(calls=[ToolCall(tool="weather", args={"location": "Oslo"}),
                         ToolCall(tool="calculator", args={"expression": "2 * 21"})])
# A template with no tools support and no system role (like Mistral v0.1/Gemma): it raises on a system message.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.fixture
def tok(monkeypatch):
    from transformers import AutoTokenizer

    set_offline(monkeypatch)
    return AutoTokenizer.from_pretrained(tiny_model())


def test_qwen_output_is_byte_identical_to_the_templates_own_tool_calls(tok):
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    structured = [{"type": "function", "function": {"name": c.tool, "arguments": c.args}} for c in TWO_CALLS.calls]
    native = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "", "tool_calls": structured}],
                                     tokenize=False)
    ours = tok.apply_chat_template(msgs + [{"role": "assistant", "content": format_output(TWO_CALLS, "qwen")}],
                                   tokenize=False)
    assert ours == native


def test_the_prompt_holds_system_prompt_catalogue_query_and_generation_prompt(tok):
    fmt = detect_format(tok)
    assert (fmt.tool_format, fmt.tools_in_template, fmt.system_role, fmt.end_of_turn) == ("qwen", True, True,
                                                                                          "<|im_end|>")
    prompt = render_prompt(tok, CATALOG, "weather in Oslo")
    assert prompt.startswith("<|im_start|>system\nYou are a tool router.")
    assert all(f'"name": "{t.name}"' in prompt for t in CATALOG.tools)
    assert prompt.endswith("<|im_start|>user\nweather in Oslo<|im_end|>\n<|im_start|>assistant\n")


def test_no_tool_is_the_empty_list_and_the_completion_ends_the_turn(tok):
    ex = render_example(tok, CATALOG, "hello", Label(calls=[]), fmt=detect_format(tok))
    assert ex["completion"] == "[]<|im_end|>"


def test_render_options_travel_with_the_saved_tokenizer(tok, tmp_path):
    from transformers import AutoTokenizer

    set_render_options(tok, system_prompt="Route it.", catalog_in_prompt=False)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    prompt = render_prompt(again, CATALOG, "weather in Oslo")
    assert prompt.startswith("<|im_start|>system\nRoute it.<|im_end|>") and "weather" not in prompt.split("user")[0]


def test_a_template_without_tools_or_system_role_gets_both_in_the_user_turn_and_a_json_list(tok):
    tok.chat_template = PLAIN_TEMPLATE
    fmt = detect_format(tok)
    assert (fmt.tool_format, fmt.tools_in_template, fmt.system_role) == ("json", False, False)
    prompt = render_prompt(tok, CATALOG, "weather in Oslo", fmt=fmt)
    assert prompt.startswith("<|im_start|>user\nYou are a tool router.") and '"name": "weather"' in prompt
    assert format_output(TWO_CALLS, fmt.tool_format) == (
        '[{"name": "weather", "arguments": {"location": "Oslo"}}, '
        '{"name": "calculator", "arguments": {"expression": "2 * 21"}}]')


def test_a_template_that_renders_the_prompt_differently_in_the_full_chat_is_refused(tok):
    tok.chat_template = ("{% for m in messages %}{{ m['content'] }}{% endfor %}"
                         "{% if add_generation_prompt %}GEN:{% endif %}")
    with pytest.raises(InputError, match="renders the prompt differently alone and in the full chat"):
        detect_format(tok)


@pytest.mark.parametrize("form", ["qwen", "mistral", "json"])
def test_parse_output_reads_every_format_back(form):
    assert parse_output(format_output(TWO_CALLS, form)) == TWO_CALLS
    assert parse_output(format_output(Label(calls=[]), form)) == Label(calls=[])


def test_parse_output_reads_a_cut_off_last_block_and_rejects_garbage():
    cut = '<tool_call>\n{"name": "weather", "arguments": {"location": "Oslo"}}'
    assert parse_output(cut).tools == ["weather"]
    with pytest.raises(ValueError, match="tool_call block 0 is not valid JSON"):
        parse_output('<tool_call>\n{"name": "weather", "argu')
    with pytest.raises(ValueError):
        parse_output("the weather tool")


def _trainer(tok, examples, out_dir, **overrides):
    """The production trainer (tiny model, CPU precision) on ``examples``, without training it."""
    from tooldistill.train import load_config, select_precision
    from tooldistill.train.load import load_base_model
    from tooldistill.train.sft import build_trainer, prepare_rows

    config = load_config(None, {"quant.mode": "none", "eval.strategy": "no", "eval.load_best": False,
                                "eval.early_stopping_patience": None, "optim.batch_size": 2, **overrides})
    precision = select_precision(cuda=False)
    fmt = detect_format(tok)
    set_render_options(tok, catalog_in_prompt=config.data.catalog_in_prompt)
    rows, report = prepare_rows(tok, CATALOG, examples, config, fmt, split="train")
    model = load_base_model(tiny_model(), precision=precision)
    trainer = build_trainer(model, tok, rows, [], config, precision, output_dir=out_dir,
                            eos_token=fmt.end_of_turn)
    return trainer, rows, report


def _examples():
    from tooldistill.db import SplitExample

    labels = [TWO_CALLS, Label(calls=[]), Label(calls=[ToolCall(tool="weather", args={"location": "Lima"})])]
    texts = ["weather in Oslo and 2 times 21", "hello there", "will it rain in Lima?"]
    return [SplitExample(i, t, lab, "gold", "train") for i, (t, lab) in enumerate(zip(texts, labels))]


def test_the_loss_mask_covers_exactly_the_assistant_output(tok, tmp_path):
    trainer, rows, _ = _trainer(tok, _examples(), tmp_path)
    for row, processed in zip(rows, trainer.train_dataset):
        prompt_ids = tok(row["prompt"], add_special_tokens=False)["input_ids"]
        ids, labels = processed["input_ids"], processed["labels"]
        n_prompt = len(prompt_ids)
        assert ids[:n_prompt] == prompt_ids  # the prompt is exactly what inference feeds the model
        assert labels == [-100] * n_prompt + ids[n_prompt:]  # no prompt token is trained, every output token is
        assert tok.decode(ids[n_prompt:]) == row["completion"]
        assert row["completion"].endswith("<|im_end|>") and "<|im_start|>assistant" in tok.decode(ids[:n_prompt])
    # what the loss sees: the collated labels are the masked tokens, everything else -100
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for b, row in enumerate(rows):
        labelled = [t for t in batch["labels"][b].tolist() if t != -100]
        assert tok.decode(labelled) == row["completion"]


def test_examples_over_max_length_are_counted_not_silently_dropped(tok, tmp_path):
    from tooldistill.train import load_config
    from tooldistill.train.sft import prepare_rows

    fmt = detect_format(tok)
    exs = _examples()
    lengths = [len(tok(r["prompt"] + r["completion"], add_special_tokens=False)["input_ids"])
               for r in (render_example(tok, CATALOG, e.text, e.label, fmt=fmt) for e in exs)]
    limit = sorted(lengths)[1]  # the longest example is over it
    rows, report = prepare_rows(tok, CATALOG, exs, load_config(None, {"data.max_length": limit}), fmt, split="train")
    assert (report["examples"], report["kept"], report["too_long"], report["max_tokens"]) == (3, 2, 1, max(lengths))
    with pytest.raises(InputError, match=rf"train example \(query 0\) has {max(lengths)} tokens > data.max_length "
                                         rf"{limit} \(1 such\); raise data.max_length or set data.too_long=drop"):
        prepare_rows(tok, CATALOG, exs, load_config(None, {"data.max_length": limit, "data.too_long": "error"}), fmt,
                     split="train")

