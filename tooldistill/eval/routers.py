"""The Router protocol and :func:`get_router`: any router (baseline, trained run, model folder, teacher) by spec.

A router answers a batch of queries with one raw output per query: a string (model text or label JSON), a
decoded JSON value, or a :class:`~tooldistill.catalog.Label`. Eval parses every raw output the same way
(:mod:`tooldistill.eval.parse`), so a router never grades itself, and the raw output is stored as it came.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from sqlite_utils import Database

from ..catalog import Catalog, Label
from ..errors import InputError, ToolDistillError


@runtime_checkable
class Router(Protocol):
    """What eval and ``tooldistill route`` need of a router."""

    name: str
    """A short display name (``keyword``, ``run:abc123``, ...)."""

    # Optional: ``predicts_arguments = False`` on a router that only picks tools (eval then marks the argument
    # metrics not applicable instead of counting every argument as missing).
    # Optional: ``route_scored(texts) -> list[tuple[raw, float | None]]``, each raw output with the router's
    # confidence in it (a probability in [0, 1]; None when unknown): eval then routes with it and stores the
    # confidence in ``predictions.confidence`` (the curate audit's student signal reads it back).

    def route(self, texts: Sequence[str]) -> list[Any]:
        """One raw output per text, in order (str, JSON value or Label)."""
        ...


@dataclass(frozen=True)
class RouterSpec:
    """Which router to build: ``kind`` is ``baseline``, ``run``, ``hybrid``, ``model`` or ``teacher``."""

    kind: str
    name: str | None = None
    """Baseline name, run id (a hybrid's encoder run), or teacher model."""
    model: str | None = None
    adapter: str | None = None
    merged: bool = False
    prompt: str | None = None
    """A live teacher's prompt: a prompt file or a recorded prompt version (default: the workspace's active one)."""
    args_run: str | None = None
    """A hybrid's LLM (sft) run, which fills in the arguments of the tools its encoder run picks."""

    def describe(self) -> str:
        if self.kind == "model":
            return f"model:{self.model}" + (f"+adapter:{self.adapter}" if self.adapter else "")
        suffix = ":merged" if self.merged else ""
        if self.kind == "hybrid":
            return f"hybrid:{self.name}+{self.args_run}{suffix}"
        return f"{self.kind}:{self.name}{suffix}" if self.name else self.kind

    @classmethod
    def trained(cls, run: str | None, *, args_run: str | None = None, merged: bool = False) -> "RouterSpec | None":
        """A train run's router (``--run``), or the hybrid when ``args_run`` names the LLM run that fills in the
        arguments of the tools the ``run`` (an encoder) picks; None without a run.

        Raises: InputError for ``args_run`` without ``run``.
        """
        if args_run and not run:
            raise InputError("--args-run goes with --run ENCODER_RUN (the encoder run that picks the tools)")
        if not run:
            return None
        return cls("hybrid", run, args_run=args_run, merged=merged) if args_run else cls("run", run, merged=merged)

    @classmethod
    def parse(cls, text: str) -> "RouterSpec":
        """Read ``keyword``, ``baseline:majority``, ``run:ID[:merged]``, ``hybrid:ENC_RUN+LLM_RUN[:merged]``,
        ``model:PATH`` or ``teacher[:MODEL]``."""
        from .baselines import BASELINES

        kind, _, rest = text.partition(":")
        if kind in (*BASELINES, "regex") and not rest:
            return cls("baseline", kind)
        if kind == "baseline" and rest:
            return cls("baseline", rest)
        if kind == "run" and rest:
            run, _, flag = rest.partition(":")
            return cls("run", run, merged=flag == "merged")
        if kind == "hybrid" and "+" in rest:
            runs, _, flag = rest.partition(":")
            enc, _, llm = runs.partition("+")
            if enc and llm:
                return cls("hybrid", enc, args_run=llm, merged=flag == "merged")
        if kind == "model" and rest:
            return cls("model", model=rest)
        if kind == "teacher":
            return cls("teacher", rest or None)
        raise InputError(f"unknown router {text!r}: use keyword, majority, run:ID, "
                         "hybrid:ENC_RUN+LLM_RUN, model:PATH or teacher")


def get_run(db: Database, ref: str, *, kind: str | None = None) -> dict:
    """The ``runs`` row of a run id, unique id prefix or ``latest``, with ``config`` and ``metrics`` decoded.

    Raises: ToolDistillError naming recent runs when nothing (or several) match, or the kind differs.
    """
    from ..train import get_run as get_any_run

    row = get_any_run(db, ref)
    for key in ("config", "metrics"):
        row[key] = row.get(key) or {}
    if kind is not None and row["kind"] != kind:
        raise ToolDistillError(f"run {row['id']} is a {row['kind']} run, not a {kind} run")
    return row


def student_kind(run: dict) -> str:
    """The student kind a train run's config names (``sft`` or ``encoder``; ``sft`` when unsaid)."""
    config = run.get("config") or {}
    return str(config.get("student") or (config.get("train") or {}).get("student") or "sft")


def get_router(
    db: Database | None,
    spec: RouterSpec | str,
    *,
    catalog: Catalog | None = None,
    examples: Sequence[tuple[str, Label]] | None = None,
    max_new_tokens: int = 128,
) -> Router:
    """Build the router a spec names.

    Args:
        db: the workspace database (runs, training labels for the baselines, the teacher's settings).
        spec: a :class:`RouterSpec` or its text form (see :meth:`RouterSpec.parse`).
        catalog: the catalogue to route over (default: the workspace's current one).
        examples: (text, label) training pairs for the baselines (default: the latest dataset version's train
            split, else every query's current label).
        max_new_tokens: generation budget of an LLM student.

    Returns: an object with the :class:`Router` protocol.

    Raises: ToolDistillError/InputError for unknown runs, baselines, or a run whose kind cannot route.
    """
    spec = RouterSpec.parse(spec) if isinstance(spec, str) else spec
    if catalog is None and db is not None:
        from ..db import get_catalog

        catalog = get_catalog(db)
    if spec.kind == "baseline":
        from .baselines import make_baseline

        if examples is None and db is not None:
            examples = training_examples(db)
        try:
            return make_baseline(spec.name or "keyword", catalog, examples=examples)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if spec.kind == "model":
        from .generate import load_model_router

        return load_model_router(spec.model, catalog, adapter=spec.adapter, max_new_tokens=max_new_tokens)
    if spec.kind == "run":
        if db is None:
            raise ToolDistillError("routing with a run needs the workspace database (--db)")
        run = get_run(db, spec.name, kind="train")
        student = student_kind(run)
        if student == "encoder":
            from ..train import EncoderRouter

            return EncoderRouter.from_run(run["id"], db=db)
        from .generate import load_run_router

        return load_run_router(db, run["id"], merged=spec.merged, max_new_tokens=max_new_tokens)
    if spec.kind == "hybrid":
        from .hybrid import load_hybrid_router

        return load_hybrid_router(db, spec.name, spec.args_run, merged=spec.merged, max_new_tokens=max_new_tokens)
    if spec.kind == "teacher":
        from .teacher import make_teacher_router

        return make_teacher_router(db, catalog, model=spec.name, prompt=spec.prompt)
    raise InputError(f"unknown router kind {spec.kind!r}")


def training_examples(db: Database, *, version: str | None = None) -> list[tuple[str, Label]]:
    """(text, label) pairs a baseline may learn from: a dataset version's train split, else current labels.

    Args:
        version: a dataset version (default: the latest, when one exists).
    """
    from ..db import current_labels, load_split

    try:
        return [(e.text, e.label) for e in load_split(db, version or "latest", "train")]
    except ToolDistillError:
        if version is not None:
            raise
    labels = current_labels(db)
    texts = dict(db.execute("SELECT id, text FROM queries").fetchall())
    return [(texts[q], c.label) for q, c in sorted(labels.items()) if q in texts and c.label is not None]


def route_queries(router: Router, texts: Sequence[str], catalog: Catalog, *, batch_size: int = 32) -> list[dict]:
    """Answer queries with a router: one ``{"query", "calls", "valid", "raw", "error", "latency_ms"}`` per text.

    ``calls`` is the parsed label (``[]`` for no tool, ``None`` when the output was unreadable), ``valid`` says
    whether it fits the catalogue, ``latency_ms`` is the wall time of the query's batch. A router that picks tools
    only (``predicts_arguments = False``, the encoder student) is checked for known tool names, not arguments,
    and its rows say ``"arguments": "not predicted"``.
    """
    from .generate import timed_batches
    from .parse import parse_output, raw_text

    tools_only = getattr(router, "predicts_arguments", True) is False
    known = set(catalog.names)
    out: list[dict] = []
    for start, raws, latency_ms in timed_batches(router.route, texts, batch_size=batch_size):
        for text, raw in zip(texts[start:start + len(raws)], raws):
            parsed = parse_output(raw)
            if parsed.label is None:
                errors = []
            elif tools_only:
                errors = [f"unknown tool {c.tool!r}" for c in parsed.label.calls if c.tool not in known]
            else:
                errors = catalog.label_errors(parsed.label)
            calls = [{"tool": c.tool, "args": c.args} for c in parsed.label.calls] if parsed.label is not None else None
            row = {"query": text, "calls": calls, "valid": parsed.label is not None and not errors,
                   "raw": raw_text(raw), "error": parsed.error or ("; ".join(errors) or None),
                   "latency_ms": round(latency_ms, 3)}
            if tools_only:
                row["arguments"] = "not predicted"
            out.append(row)
    return out
