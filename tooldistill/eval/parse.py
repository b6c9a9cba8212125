"""Raw router output -> Label, tolerantly, saying how tolerant it had to be.

A router's raw output is read in three steps, and the result records which one succeeded, so a report can say
"98% valid JSON, 1.5% more only after extraction":

1. strict: the whole output is JSON in a label shape (our ``[{"tool", "args"}]``, OpenAI ``{name, arguments}``,
   ``{tool, arguments}``, ``{"tool": "no_tool"}``, Gemini ``functionCall`` parts, ``[]``; see
   :func:`tooldistill.catalog.parse_label`), or nothing but a student's native tool-call form: Qwen-style
   ``<tool_call>...</tool_call>`` blocks, or Mistral's ``[TOOL_CALLS] [...]``;
2. extracted: JSON (or ``<tool_call>`` blocks) found inside surrounding text or a Markdown code fence;
3. otherwise the output is unparseable and its label is ``None``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..catalog import Label, parse_label

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_DECODER = json.JSONDecoder()
_MISTRAL = "[TOOL_CALLS]"


@dataclass(frozen=True)
class Parsed:
    """What a raw output says: its label (``None`` when unparseable) and how it was read."""

    label: Label | None
    valid_json: bool
    """The whole output was JSON in a label shape (or only ``<tool_call>`` blocks): no tolerance needed."""
    extracted: bool = False
    """The label was found only by extracting JSON from surrounding text."""
    error: str | None = None
    """Why the output could not be read (``None`` when it could)."""

    @property
    def ok(self) -> bool:
        return self.label is not None


def parse_output(raw: Any) -> Parsed:
    """Read a router's raw output into a label, strictly first and then tolerantly.

    Args:
        raw: a string (model text, JSON text) or an already-decoded JSON value (list, dict, ``None``).

    Returns: a :class:`Parsed`; never raises on bad output (the reason is in ``error``).
    """
    if isinstance(raw, Label):
        return Parsed(raw, valid_json=True)
    if not isinstance(raw, str):
        return _from_value(raw, valid_json=True)
    text = raw.strip()
    if text.startswith(_MISTRAL):
        text = text[len(_MISTRAL):].strip()
    if not text:
        return Parsed(None, valid_json=False, error="empty output")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        return _from_value(value, valid_json=True)
    blocks = _TOOL_CALL.findall(text)
    if blocks:
        only_blocks = not _TOOL_CALL.sub("", text).strip()
        parsed = _from_blocks(blocks)
        if parsed.label is not None:
            return Parsed(parsed.label, valid_json=only_blocks, extracted=not only_blocks)
        return parsed
    return _extract(text)


def _from_value(value: Any, *, valid_json: bool, extracted: bool = False) -> Parsed:
    try:
        return Parsed(parse_label(value), valid_json=valid_json, extracted=extracted)
    except (ValueError, TypeError) as exc:
        return Parsed(None, valid_json=False, error=f"not a label: {exc}")


def _from_blocks(blocks: list[str]) -> Parsed:
    calls: list[Any] = []
    for i, block in enumerate(blocks):
        try:
            value = json.loads(block)
        except json.JSONDecodeError as exc:
            return Parsed(None, valid_json=False, error=f"<tool_call> block {i}: invalid JSON ({exc.msg})")
        calls.extend(value if isinstance(value, list) else [value])
    return _from_value(calls, valid_json=True)


def _extract(text: str) -> Parsed:
    """Find the first JSON value in ``text`` that reads as a label (code fences first)."""
    for fenced in _FENCE.findall(text):
        try:
            return _from_value(json.loads(fenced.strip()), valid_json=False, extracted=True)
        except json.JSONDecodeError:
            continue
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = _DECODER.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        parsed = _from_value(value, valid_json=False, extracted=True)
        if parsed.label is not None:
            return parsed
    return Parsed(None, valid_json=False, error="no JSON label found in the output")


def raw_text(raw: Any) -> str:
    """The raw output as the string stored in ``predictions.raw`` (JSON values dumped)."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Label):
        return raw.to_json()
    return json.dumps(raw, ensure_ascii=False)
