"""The teacher prompt: system instruction and function declarations, with a version that names both.

The version is the content hash of the system text and the declarations (canonical JSON, see
:func:`tooldistill.catalog.content_hash`); every label records it, so a changed prompt or catalogue is a new
version and old labels are not mistaken for answers to the new question.

A workspace overrides the default with a prompt file (``prompt.yaml`` beside ``tooldistill.toml``, or the file
``[distill] prompt`` names): its own ``instructions``, few-shot ``examples``, and ``examples_from_gold: N`` to
take N examples from gold-labeled queries. Every change is a new version: the next ``distill run`` enqueues every
query again under it (labels and cache entries of older versions stay stored), and ``prompt_versions`` keeps the
exact text of each version used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..catalog import NO_TOOL, Catalog, Label, content_hash, parse_label
from ..errors import InputError

DEFAULT_INSTRUCTIONS = """\
You are the router of an assistant. For the user's message, call the function or functions that serve it.
- Call exactly the functions the request needs: one for a single request, one call per action when the user
  asks for several things at once, and nothing the user did not ask for.
- Fill the arguments from the user's own words; do not invent values the user did not give, except where a
  parameter's description says how to infer it.
- If no function fits (greetings, chit-chat, opinions, requests the functions cannot serve, requests too vague
  to act on), call no_tool with a short reason, and call nothing else."""


@dataclass(frozen=True)
class TeacherPrompt:
    """What the teacher is told besides the query: the system text and the function declarations."""

    system_instruction: str
    declarations: list[dict] = field(hash=False)
    """Gemini ``functionDeclarations`` (``parameters_json_schema`` form), ``no_tool(reason)`` last."""
    version: str = ""

    @property
    def allowed_names(self) -> list[str]:
        return [d["name"] for d in self.declarations]


def build_prompt(catalog: Catalog, *, instructions: str | None = None,
                 examples: Iterable[tuple[str, object]] | None = None) -> TeacherPrompt:
    """Build the teacher prompt for ``catalog``.

    Args:
        catalog: the tools; they become function declarations, plus the ``no_tool(reason)`` pseudo-function.
        instructions: replaces :data:`DEFAULT_INSTRUCTIONS`.
        examples: few-shot ``(query, label)`` pairs (a label in any shape :func:`parse_label` reads), appended
            to the system text.

    Returns: the prompt; its ``version`` is the hash of the system text and the declarations.
    """
    text = (instructions if instructions is not None else DEFAULT_INSTRUCTIONS).strip()
    shots = [_render_example(q, lab) for q, lab in (examples or [])]
    if shots:
        text += "\n\nExamples (user message -> calls):\n" + "\n".join(shots)
    decls = catalog.to_gemini_declarations(include_no_tool=True)
    version = content_hash({"system": text, "declarations": decls})
    return TeacherPrompt(system_instruction=text, declarations=decls, version=version)


def _render_example(query: str, label: object) -> str:
    parsed: Label = parse_label(label)
    if parsed.is_no_tool:
        calls = f'{NO_TOOL}(reason="{parsed.reason or "no function fits"}")'
    else:
        calls = "; ".join(f"{c.tool}({_args(c.args)})" for c in parsed.calls)
    return f"- {query!r} -> {calls}"


def _args(args: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())


# ---------------------------------------------------------------- the workspace's prompt file

PROMPT_FILE = "prompt.yaml"


class PromptExample(BaseModel):
    """One few-shot example: a user message and the calls that serve it (``[]`` plus ``reason`` for none)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    calls: list = Field(default_factory=list, description="[{tool, args}], empty for no tool.")
    reason: str | None = Field(default=None, description="Why no tool fits (with empty calls).")


class PromptFile(BaseModel):
    """``prompt.yaml``: the teacher's instructions and few-shot examples, overriding the defaults."""

    model_config = ConfigDict(extra="forbid")

    instructions: str | None = Field(default=None, description="Replaces the default instructions.")
    examples: list[PromptExample] = Field(default_factory=list, description="Few-shot examples, in order.")
    examples_from_gold: int = Field(default=0, ge=0, le=200, description="Also take this many examples from "
                                    "gold-labeled queries of the workspace (spread over tools, stable).")


def read_prompt_file(path: str | Path) -> PromptFile:
    """Read and validate a prompt file (YAML or JSON).

    Raises: InputError naming the file (and the field) when it cannot be read or is not a valid prompt file.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError(f"cannot read the prompt file: {exc.strerror}", path=str(path)) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", path=str(path),
                         line=line + 1 if line is not None else None) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping with instructions and/or examples", path=str(path))
    try:
        spec = PromptFile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field_ = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise InputError(f"field {field_!r}: {err['msg']}", path=str(path)) from None
    for i, ex in enumerate(spec.examples):
        try:
            parse_label(ex.calls)
        except (ValueError, TypeError) as exc:
            raise InputError(f"field 'examples.{i}.calls': not a label: {str(exc).splitlines()[0]}",
                             path=str(path)) from None
    return spec


def gold_examples(db, n: int) -> list[tuple[str, object]]:
    """``n`` gold-labeled queries as ``(query, label)``, round-robin over their tool sets in a stable order.

    Stable: the same database gives the same examples (and so the same prompt version) on every run.
    """
    if n <= 0:
        return []
    from ..catalog import parse_label as _parse
    from ..textnorm import text_hash

    groups: dict[str, list[tuple[str, str, object]]] = {}
    for text, calls in db.execute("SELECT text, gold_calls FROM queries WHERE gold_calls IS NOT NULL"):
        label = _parse(json.loads(calls))
        key = ",".join(sorted(c.tool for c in label.calls)) or "no_tool"
        groups.setdefault(key, []).append((text_hash(text), text, label))
    for rows in groups.values():
        rows.sort(key=lambda r: r[0])
    out: list[tuple[str, object]] = []
    depth = 0
    while len(out) < n and any(len(rows) > depth for rows in groups.values()):
        for key in sorted(groups):
            if len(groups[key]) > depth and len(out) < n:
                out.append(groups[key][depth][1:])
        depth += 1
    return out


def load_prompt(catalog: Catalog, *, workspace=None, db=None, path: str | Path | None = None,
                examples_from_gold: int | None = None) -> tuple[TeacherPrompt, str]:
    """The teacher prompt of a workspace: its prompt file if there is one, else the defaults.

    Args:
        catalog: the current catalogue.
        workspace: a :class:`tooldistill.config.Workspace` (its ``prompt.yaml``, or ``[distill] prompt``).
        db: the workspace database (gold examples; the version is recorded in ``prompt_versions``).
        path: a prompt file to use instead of the workspace's.
        examples_from_gold: overrides the file's ``examples_from_gold``.

    Returns: ``(prompt, source)``; ``source`` names the file (or ``default``) and the gold examples taken.
    Side effect: records the version in ``prompt_versions`` when ``db`` is given. Raises: InputError for a bad file.
    """
    if path is None and workspace is not None:
        configured = (workspace.section("distill") or {}).get("prompt")
        candidate = Path(workspace.root) / (configured or PROMPT_FILE)
        if configured and not candidate.exists():
            raise InputError("the prompt file named by [distill] prompt does not exist", path=str(candidate))
        path = candidate if candidate.exists() else None
    spec = read_prompt_file(path) if path is not None else PromptFile()
    n_gold = spec.examples_from_gold if examples_from_gold is None else examples_from_gold
    examples: list[tuple[str, object]] = [(e.query, {"calls": e.calls, "reason": e.reason}) for e in spec.examples]
    if n_gold and db is not None:
        examples += gold_examples(db, n_gold)
    prompt = build_prompt(catalog, instructions=spec.instructions, examples=examples or None)
    source = str(path) if path is not None else "default"
    if n_gold:
        source += f" + {min(n_gold, len(examples) - len(spec.examples))} gold example(s)"
    if db is not None:
        record_prompt(db, prompt, source=source, catalog_hash=catalog.hash, examples=len(examples))
    return prompt, source


def record_prompt(db, prompt: TeacherPrompt, *, source: str, catalog_hash: str, examples: int = 0) -> None:
    """Remember a prompt version (its exact text and declarations) so labels made under it can be traced."""
    from ..db import now_iso

    now = now_iso()
    db.execute("INSERT INTO prompt_versions (version, system_instruction, declarations, source, examples,"
               " catalog_hash, created_at, last_used_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(version) DO UPDATE"
               " SET last_used_at = excluded.last_used_at, source = excluded.source",
               [prompt.version, prompt.system_instruction, json.dumps(prompt.declarations, ensure_ascii=False),
                source, examples, catalog_hash, now, now])
    db.conn.commit()


def prompt_versions(db) -> list[dict]:
    """Every recorded prompt version, newest first, with its teacher labels (accepted and rejected)."""
    counts = {(pv, valid): n for pv, valid, n in db.execute(
        "SELECT prompt_version, valid, count(*) FROM labels WHERE source = 'teacher' GROUP BY 1, 2")}
    rows = []
    for r in db.query("SELECT version, source, examples, catalog_hash, created_at, last_used_at FROM prompt_versions"
                      " ORDER BY last_used_at DESC"):
        rows.append({**r, "labels": counts.get((r["version"], 1), 0), "rejected": counts.get((r["version"], 0), 0)})
    return rows


def get_prompt_version(db, version: str) -> TeacherPrompt:
    """A recorded prompt version (exactly what was sent). Raises: InputError when none has that version."""
    row = db.execute("SELECT system_instruction, declarations FROM prompt_versions WHERE version = ?",
                     [version]).fetchone()
    if row is None:
        raise InputError(f"no recorded prompt version {version!r}; see: tooldistill distill prompt versions",
                         field="version")
    return TeacherPrompt(system_instruction=row[0], declarations=json.loads(row[1]), version=version)
