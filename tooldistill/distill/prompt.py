"""The teacher prompt: system instruction and function declarations, with a version that names both.

The version is the content hash of the system text and the declarations (canonical JSON, see
:func:`tooldistill.catalog.content_hash`); every label records it, so a changed prompt or catalogue is a new
version and old labels are not mistaken for answers to the new question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..catalog import NO_TOOL, Catalog, Label, content_hash, parse_label

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
    import json

    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
