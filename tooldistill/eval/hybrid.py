"""The hybrid router: the encoder student picks the tools, the LLM student fills in their arguments.

The encoder is fast and, on tool choice, usually the better student; the LLM student is the one that writes
arguments. :class:`HybridRouter` asks the encoder for each query's tool set, answers ``[]`` for no tool without
touching the LLM, and otherwise lets the LLM student generate its answer with the output *forced to start with*
the chosen tool: its rendered prompt gets the answer's first bytes up to where that tool's arguments begin
(:func:`tooldistill.train.render.output_prefix`, cut from the very function that wrote the training answers), so
the LLM continues a sequence it was trained on and only has the arguments left to write. Generation is the LLM
student's own (greedy, batched, left-padded, the train stage's stop tokens).

The answer always names exactly the encoder's tools, in the encoder's (sorted) order. A multi-tool set is written
one call at a time: after the LLM filled the first tool's arguments, the next prompt holds the first call as
written and forces the second tool, and so on, so each tool's arguments come from a forced position of the same
answer the student was trained to write. A forced call whose continuation does not start with a JSON object gets
empty arguments (and the prediction says why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from ..catalog import Catalog, Label, ToolCall
from ..errors import InputError, ToolDistillError
from .parse import parse_output

_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class HybridPrediction:
    """One routed query: the answer, what the encoder chose, and what the LLM wrote (None when not asked)."""

    label: Label
    tools: tuple[str, ...]
    confidence: float | None
    llm_output: str | None
    """The answer as the LLM last continued it: the calls so far, the last forced tool, and what the LLM wrote
    after it (None for a no-tool query)."""
    llm_error: str | None = None
    """Why a forced call got empty arguments (the LLM's continuation did not start with a JSON object)."""


def _first_arguments(continuation: str) -> dict | None:
    """The JSON object the continuation starts with (the forced call's arguments), or None."""
    try:
        value, _ = _DECODER.raw_decode(continuation.lstrip())
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _short(name: str) -> str:
    return name[len("run:"):] if name.startswith("run:") else name


class HybridRouter:
    """Tools from one router (the encoder student), arguments from an LLM student forced onto those tools.

    Args:
        tools_router: any router whose answers name the tools (an
            :class:`~tooldistill.train.encoder.EncoderRouter`); its arguments are ignored. When it has
            ``route_scored`` (the encoder does), its confidence in the tool set is the hybrid's.
        args_router: the LLM student as a :class:`~tooldistill.eval.generate.LMRouter` (model, tokenizer,
            catalogue and generation budget are taken from it).
        name: display name (default ``hybrid:<tools>+<args>`` from the two routers' names).
        tool_format: the answer format the LLM was trained to write (its run config's ``data.tool_format``);
            ``auto`` reads it from the chat template, as training does.

    ``route`` returns one :class:`~tooldistill.catalog.Label` per query (see the module docstring for how the two
    students' answers combine); :meth:`predict` also returns what the LLM wrote.
    """

    predicts_arguments = True

    def __init__(self, tools_router: Any, args_router: Any, *, name: str | None = None, tool_format: str = "auto"):
        self.tools_router, self.args_router = tools_router, args_router
        self.catalog: Catalog = getattr(tools_router, "catalog", None) or args_router.catalog
        self.name = name or f"hybrid:{_short(tools_router.name)}+{_short(args_router.name)}"
        self.metadata = {"tools_router": tools_router.name, "args_router": args_router.name,
                         "forced": "every tool of the encoder's set, one call position at a time"}
        self._format_setting, self._format = tool_format, None

    @property
    def tool_format(self) -> str:
        """The LLM student's answer format (``qwen``, ``mistral`` or ``json``), read from its chat template."""
        if self._format is None:
            from ..train import detect_format

            self._format = detect_format(self.args_router.tokenizer, tool_format=self._format_setting).tool_format
        return self._format

    def forced_prompts(self, texts: Sequence[str], tools: Sequence[str],
                       before: Sequence[Sequence[tuple[str, dict]]] | None = None) -> list[str]:
        """The LLM's prompt for each query with its answer forced up to the arguments of ``tools[i]``.

        ``before[i]`` holds the calls already written for query ``i`` (``(tool, arguments)``; none by default).
        Each prompt is the student's own rendered prompt followed by
        :func:`~tooldistill.train.render.output_prefix`: byte for byte the start of the training text of an
        example whose answer begins with those calls.
        """
        from ..train import output_prefix

        from .generate import render_prompts

        prompts = render_prompts(self.args_router.tokenizer, self.args_router.catalog, texts)
        before = before or [()] * len(prompts)
        return [p + output_prefix(tool, self.tool_format, before=done) for p, tool, done in zip(prompts, tools, before)]

    def _tool_sets(self, texts: Sequence[str]) -> list[tuple[tuple[str, ...], float | None]]:
        scored = getattr(self.tools_router, "route_scored", None)
        answers = scored(texts) if scored is not None else [(raw, None) for raw in self.tools_router.route(texts)]
        out = []
        for raw, confidence in answers:
            label = parse_output(raw).label
            tools = tuple(sorted(label.tools)) if label is not None else ()
            out.append((tools, confidence))
        return out

    def predict(self, texts: Sequence[str]) -> list[HybridPrediction]:
        """Route ``texts``: the encoder's tool sets, then one LLM generation batch per call position.

        Queries the encoder sends to no tool get ``[]`` and never reach the LLM; the k-th batch holds the queries
        whose set has more than k tools.
        """
        from ..train import output_prefix

        from .generate import generate_batch

        texts = list(texts)
        chosen = self._tool_sets(texts)
        written: dict[int, list[tuple[str, dict]]] = {i: [] for i, (tools, _) in enumerate(chosen) if tools}
        answers: dict[int, str] = {}
        errors: dict[int, str] = {}
        args = self.args_router
        for k in range(max((len(tools) for tools, _ in chosen), default=0)):
            rows = [i for i in written if len(chosen[i][0]) > k]
            prompts = self.forced_prompts([texts[i] for i in rows], [chosen[i][0][k] for i in rows],
                                          [written[i] for i in rows])
            continuations = generate_batch(args.model, args.tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                           batch_size=max(1, len(prompts)))
            for i, cont in zip(rows, continuations):
                tool = chosen[i][0][k]
                found = _first_arguments(cont)
                if found is None:
                    errors.setdefault(i, f"the LLM wrote no arguments object for {tool}")
                # the answer as the LLM saw and continued it: the calls so far, the forced tool, what it wrote
                answers[i] = output_prefix(tool, self.tool_format, before=written[i]) + cont
                written[i].append((tool, found or {}))
        out: list[HybridPrediction] = []
        for i, (tools, confidence) in enumerate(chosen):
            if not tools:
                out.append(HybridPrediction(Label(calls=[]), tools, confidence, None))
                continue
            label = Label(calls=[ToolCall(tool=t, args=a) for t, a in written[i]])
            out.append(HybridPrediction(label, tools, confidence, answers[i], errors.get(i)))
        return out

    def route(self, texts: Sequence[str]) -> list[Label]:
        """One label per text: the encoder's tools with the LLM's arguments (``[]`` = no tool)."""
        return [p.label for p in self.predict(texts)]

    def route_scored(self, texts: Sequence[str]) -> list[tuple[Label, float | None]]:
        """Each text's label with the encoder's confidence in its tool set (None when it gives none)."""
        return [(p.label, p.confidence) for p in self.predict(texts)]


def load_hybrid_router(db: Any, tools_run: str, args_run: str, *, merged: bool = False,
                       max_new_tokens: int = 128) -> HybridRouter:
    """The hybrid of an encoder train run (tools) and an LLM (sft) train run (arguments).

    Args:
        db: the workspace database.
        tools_run: the encoder run's id or unique prefix.
        args_run: the LLM run's id or unique prefix.
        merged: load the LLM run's merged model instead of base + adapter.
        max_new_tokens: the LLM's generation budget (the forced prefix is not counted).

    Raises: ToolDistillError for an unknown run; InputError when ``tools_run`` is not an encoder run or
    ``args_run`` is one, or when the encoder can choose a tool the LLM's catalogue lacks.
    """
    from ..train import EncoderRouter, key_set

    from .generate import load_run_router
    from .routers import get_run, student_kind

    if db is None:
        raise ToolDistillError("routing with runs needs the workspace database (--db)")
    tools, args = get_run(db, tools_run, kind="train"), get_run(db, args_run, kind="train")
    if student_kind(tools) != "encoder":
        raise InputError(f"run {tools['id']} is an {student_kind(tools)} (LLM) run; with --args-run, --run names the "
                         "encoder run that picks the tools (see 'tooldistill train runs')")
    if student_kind(args) == "encoder":
        raise InputError(f"run {args['id']} is an encoder run; --args-run names the LLM (sft) run that fills in "
                         "the arguments (see 'tooldistill train runs')")
    encoder = EncoderRouter.from_run(tools["id"], db=db)
    llm = load_run_router(db, args["id"], merged=merged, max_new_tokens=max_new_tokens)
    unknown = sorted({t for key in encoder.labels for t in key_set(key)} - set(llm.catalog.names))
    if unknown:
        raise InputError(f"encoder run {tools['id']} can choose {', '.join(unknown)}, which LLM run {args['id']}'s "
                         "catalogue lacks; pair runs trained on the same catalogue")
    name = f"hybrid:{tools['id']}+{args['id']}" + (":merged" if merged else "")
    tool_format = str(((args.get("config") or {}).get("data") or {}).get("tool_format") or "auto")
    return HybridRouter(encoder, llm, name=name, tool_format=tool_format)
