"""Rendering router examples with the student's own chat template, and parsing the student's output back.

One example is a chat: a system prompt, the catalogue as ``tools``, the user query, and the assistant's answer.
The answer is written in the student's native tool-call form where its template has one:

- ``qwen``: Qwen2.5's ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks, which the vLLM
  and TGI Hermes/Qwen tool parsers read;
- ``mistral``: ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}]`` (Mistral v0.3 templates);
- ``json``: a JSON list of ``{"name", "arguments"}`` (name first, so the model picks the tool before its
  arguments) for every other template.

No tool is ``[]`` in every form. The answer is plain string content, never a structured ``tool_calls`` field:
datasets turns per-row ``arguments`` dicts into one struct of every key set to null (notes/training-on-cpu.md
section 9), and string content renders identically through any template.

Training and inference share :func:`render_prompt`: the training example is ``prompt`` + ``completion`` where
``prompt`` is exactly the string inference feeds the model, so the loss mask can be checked token by token.
The router's render options travel with the tokenizer (``tokenizer_config.json`` keys
``tooldistill_system_prompt`` and ``tooldistill_catalog_in_prompt``), so a saved adapter or merged model renders
its prompts the way it was trained. Leaving the catalogue out of the prompt (the student learns it) cuts a
9-tool prompt from about 1000 tokens to about 60: the tiny CPU config does it; real configs keep it in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from ..catalog import Catalog, Label, parse_label
from ..errors import InputError

DEFAULT_SYSTEM_PROMPT = (
    "You are a tool router. Answer the user's request with the tool calls that serve it, with their arguments "
    "taken from the request. If no tool fits, answer []."
)
SYSTEM_PROMPT_KEY = "tooldistill_system_prompt"
CATALOG_IN_PROMPT_KEY = "tooldistill_catalog_in_prompt"
TOOL_FORMATS = ("qwen", "mistral", "json")
_SENTINEL = "@@TOOLDISTILL_OUTPUT@@"
_PROBE_TOOL = "tooldistill_probe_tool"


@dataclass(frozen=True)
class ChatFormat:
    """How a tokenizer's chat template takes a router example.

    Attributes:
        tool_format: ``qwen``, ``mistral`` or ``json`` (see the module docstring).
        tools_in_template: the template renders ``tools=``; when False the catalogue goes into the system prompt.
        system_role: the template accepts a system message; when False the system prompt leads the user turn.
        lead: text the template puts between the generation prompt and the assistant output (usually empty).
        end_of_turn: the text that closes the assistant turn (``<|im_end|>`` for Qwen, ``</s>`` for Mistral),
            trained as the last completion token and used as a stop token.
    """

    tool_format: str
    tools_in_template: bool
    system_role: bool
    lead: str
    end_of_turn: str


def render_options(tokenizer: Any) -> tuple[str, bool]:
    """The ``(system_prompt, catalog_in_prompt)`` stored with ``tokenizer`` (defaults when none are stored)."""
    kwargs = getattr(tokenizer, "init_kwargs", {}) or {}
    return kwargs.get(SYSTEM_PROMPT_KEY) or DEFAULT_SYSTEM_PROMPT, bool(kwargs.get(CATALOG_IN_PROMPT_KEY, True))


def set_render_options(tokenizer: Any, *, system_prompt: str | None = None, catalog_in_prompt: bool = True) -> None:
    """Store the render options with ``tokenizer``; ``save_pretrained`` writes them to tokenizer_config.json."""
    tokenizer.init_kwargs[SYSTEM_PROMPT_KEY] = system_prompt or DEFAULT_SYSTEM_PROMPT
    tokenizer.init_kwargs[CATALOG_IN_PROMPT_KEY] = bool(catalog_in_prompt)


def _apply(tokenizer: Any, messages: list[dict], tools: list[dict] | None, generation: bool) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=generation)


def detect_format(tokenizer: Any, *, tool_format: str = "auto") -> ChatFormat:
    """Work out how the tokenizer's chat template takes a router example, by rendering probes through it.

    Args:
        tokenizer: a tokenizer with a ``chat_template``.
        tool_format: ``auto`` (from the template's text) or one of ``qwen``, ``mistral``, ``json``.

    Raises: InputError when the tokenizer has no chat template, or the template renders the prompt differently
    alone and inside the full chat (then no completion-only loss mask can be cut at the prompt's end).
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise InputError("the base model's tokenizer has no chat template; use an instruct/chat model or set "
                         "one (tokenizer.chat_template) before training", field="model.base_model")
    template = template if isinstance(template, str) else json.dumps(template)
    if tool_format == "auto":
        tool_format = "qwen" if "<tool_call>" in template else "mistral" if "[TOOL_CALLS]" in template else "json"
    elif tool_format not in TOOL_FORMATS:
        raise InputError(f"unknown tool format {tool_format!r}; use auto, {', '.join(TOOL_FORMATS)}",
                         field="data.tool_format")
    system_role = True
    try:
        _apply(tokenizer, [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], None, True)
    except Exception:  # noqa: BLE001 - jinja raises its own TemplateError subclasses ("roles must alternate")
        system_role = False
    probe = [{"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe",
                                               "parameters": {"type": "object", "properties": {}}}}]
    try:
        tools_in_template = _PROBE_TOOL in _apply(tokenizer, [{"role": "user", "content": "u"}], probe, True)
    except Exception:  # noqa: BLE001 - a template that rejects tools= simply has no tools support
        tools_in_template = False
    base = ChatFormat(tool_format, tools_in_template, system_role, "", "")
    msgs = _messages(base, "system", "query", [])
    prompt = _apply(tokenizer, msgs, None, True)
    full = _apply(tokenizer, msgs + [{"role": "assistant", "content": _SENTINEL}], None, False)
    if not full.startswith(prompt) or _SENTINEL not in full[len(prompt):]:
        raise InputError("the chat template renders the prompt differently alone and in the full chat, so the "
                         "assistant output cannot be masked for the loss; use a prefix-preserving template",
                         field="model.base_model")
    rest = full[len(prompt):]
    lead, _, tail = rest.partition(_SENTINEL)
    end_of_turn = tail.strip() or (tokenizer.eos_token or "")
    return ChatFormat(tool_format, tools_in_template, system_role, lead, end_of_turn)


def _messages(fmt: ChatFormat, system: str, query: str, tools_text: list[dict]) -> list[dict]:
    if tools_text:
        system = f"{system}\n\nTools (JSON Schema):\n" + "\n".join(json.dumps(t, ensure_ascii=False)
                                                                   for t in tools_text)
    if fmt.system_role:
        return [{"role": "system", "content": system}, {"role": "user", "content": query}]
    return [{"role": "user", "content": f"{system}\n\n{query}"}]


def render_prompt(tokenizer: Any, catalog: Catalog, query: str, *, fmt: ChatFormat | None = None) -> str:
    """Return the exact prompt the student was trained on: chat template, catalogue as tools, generation prompt.

    Args:
        tokenizer: the student's tokenizer (the one saved with a run: its render options travel with it).
        catalog: the catalogue the student routes between.
        query: the user's request.
        fmt: a :func:`detect_format` result to reuse (computed when omitted).

    Returns: the prompt string; feed it with ``add_special_tokens=False`` (the template already holds any BOS).
    """
    fmt = fmt or detect_format(tokenizer)
    system, with_catalog = render_options(tokenizer)
    tools = catalog.to_openai_tools() if with_catalog else []
    if fmt.tools_in_template or not tools:
        return _apply(tokenizer, _messages(fmt, system, query, []), tools or None, True) + fmt.lead
    return _apply(tokenizer, _messages(fmt, system, query, [t["function"] for t in tools]), None, True) + fmt.lead


def format_output(label: Label, tool_format: str) -> str:
    """Write ``label`` as the assistant output in ``tool_format`` (``[]`` for no tool in every format)."""
    if label.is_no_tool:
        return "[]"
    return _format_calls([{"name": c.tool, "arguments": c.args} for c in label.calls], tool_format)


def _format_calls(calls: list[dict], tool_format: str) -> str:
    if tool_format == "qwen":
        # The same bytes Qwen2.5's template writes for structured tool_calls (its tojson is json.dumps).
        return "\n".join(f"<tool_call>\n{json.dumps(c, ensure_ascii=False)}\n</tool_call>" for c in calls)
    if tool_format == "mistral":
        return "[TOOL_CALLS] " + json.dumps(calls, ensure_ascii=False)
    return json.dumps(calls, ensure_ascii=False)


def output_prefix(tool: str, tool_format: str, *, before: Sequence[tuple[str, dict]] = ()) -> str:
    """The start of the trained answer whose next call is ``tool``, up to (not including) its arguments.

    ``before`` holds the calls already written, as ``(tool, arguments)``. Cut from :func:`format_output`'s own
    bytes, so ``render_prompt(...) + output_prefix(...)`` is exactly a prefix of the training text ``prompt +
    completion`` of any example whose calls begin with ``before`` and then ``tool``. Whitespace before the
    arguments stays out: in training it is one token with the ``{`` after it (`` {"``), and a prompt that ends in
    a lone space would be a token sequence the student never saw. Forcing this prefix makes a student fill in
    that tool's arguments (the hybrid router: an encoder picks the tools, the LLM writes the arguments).
    """
    calls = [{"name": t, "arguments": a} for t, a in before] + [{"name": tool, "arguments": _SENTINEL}]
    text = _format_calls(calls, tool_format)
    return text[:text.index(json.dumps(_SENTINEL))].rstrip()


def render_example(tokenizer: Any, catalog: Catalog, query: str, label: Label, *, fmt: ChatFormat) -> dict[str, str]:
    """Return ``{"prompt", "completion"}``: the inference prompt and the trained output ending in end-of-turn."""
    prompt = render_prompt(tokenizer, catalog, query, fmt=fmt)
    return {"prompt": prompt, "completion": format_output(label, fmt.tool_format) + fmt.end_of_turn}


_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def parse_output(text: str) -> Label:
    """Parse a student's output (any of the three tool formats, ``[]`` for no tool) into a :class:`Label`.

    Understands ``<tool_call>`` blocks (an unclosed last block too, for outputs cut by ``max_new_tokens``),
    ``[TOOL_CALLS] [...]``, a JSON list of ``{"name", "arguments"}`` and any shape :func:`parse_label` reads.
    Does not validate against a catalogue.

    Raises: ValueError when the text is none of these (the eval counts it as invalid output).
    """
    text = text.strip()
    if "<tool_call>" in text:
        blocks = _TOOL_CALL_RE.findall(text)
        calls = []
        for i, block in enumerate(blocks):
            try:
                calls.append(json.loads(block))
            except json.JSONDecodeError as exc:
                raise ValueError(f"tool_call block {i} is not valid JSON ({exc.msg} at char {exc.pos})") from None
        return parse_label(calls)
    if text.startswith("[TOOL_CALLS]"):
        text = text[len("[TOOL_CALLS]"):].strip()
    if not text:
        raise ValueError("empty output")
    return parse_label(text)
