"""Reading a generateContent request as the real API does: camelCase and snake_case field names both accepted.

Only field *names* of the protocol are re-cased; user content (schemas, property names, args) is kept as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MODES = {"AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"}


class BadRequest(ValueError):
    """The request is not valid for the API (answered 400 INVALID_ARGUMENT)."""


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def pick(obj: Any, camel: str, default: Any = None) -> Any:
    """``obj[camel]`` or ``obj[snake_case(camel)]`` (proto-JSON accepts both), else ``default``."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    return obj.get(_snake(camel), default)


@dataclass
class GenerateRequest:
    """The parts of a generateContent request the fake answers from."""

    contents: list[dict]
    system_text: str = ""
    declarations: dict[str, dict] = field(default_factory=dict)
    """Function name -> its parameters schema (JSON Schema or the API's Schema form)."""
    mode: str = "AUTO"
    allowed: list[str] = field(default_factory=list)
    generation: dict = field(default_factory=dict)
    body: dict = field(default_factory=dict)

    @property
    def callable_names(self) -> list[str]:
        """Names the model may call: the allowed ones if given, else every declared one."""
        if self.mode == "NONE":
            return []
        return [n for n in self.allowed if n in self.declarations] or list(self.declarations)

    @property
    def last_user_text(self) -> str:
        """The text of the last user turn (its text parts joined)."""
        for content in reversed(self.contents):
            if content.get("role", "user") == "user":
                texts = [p.get("text") for p in content.get("parts") or [] if isinstance(p.get("text"), str)]
                if texts:
                    return "\n".join(texts)
        return ""

    @property
    def response_schema(self) -> Any:
        """The structured-output schema when JSON output is asked for, else None."""
        mime = pick(self.generation, "responseMimeType")
        schema = pick(self.generation, "responseJsonSchema", None) or pick(self.generation, "responseSchema")
        return schema if mime == "application/json" and schema else None

    @property
    def thinking_budget(self) -> int | None:
        return pick(pick(self.generation, "thinkingConfig", {}), "thinkingBudget")


def parse_generate_request(body: Any) -> GenerateRequest:
    """Validate and read a generateContent body; raises :class:`BadRequest` where the real API answers 400."""
    if not isinstance(body, dict):
        raise BadRequest("body is not a JSON object")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("contents must be a non-empty list")
    for content in contents:
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            raise BadRequest("content role must be user or model")
        if not isinstance(content.get("parts", []), list):
            raise BadRequest("parts must be a list")
    system = pick(body, "systemInstruction") or {}
    system_text = "\n".join(p.get("text", "") for p in (system.get("parts") or []) if isinstance(p, dict)) \
        if isinstance(system, dict) else ""
    declarations: dict[str, dict] = {}
    for tool in body.get("tools") or []:
        for decl in pick(tool, "functionDeclarations") or []:
            name = decl.get("name") if isinstance(decl, dict) else None
            if not isinstance(name, str) or not name:
                raise BadRequest("function declaration without a name")
            declarations[name] = (pick(decl, "parametersJsonSchema") or decl.get("parameters")
                                  or {"type": "object", "properties": {}})
    calling = pick(pick(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = str(calling.get("mode") or "AUTO").upper()
    if mode not in MODES:
        raise BadRequest(f"unknown function calling mode {mode}")
    allowed = list(pick(calling, "allowedFunctionNames") or [])
    generation = pick(body, "generationConfig") or {}
    return GenerateRequest(contents=contents, system_text=system_text, declarations=declarations,
                           mode=mode if declarations else "NONE", allowed=allowed,
                           generation=generation if isinstance(generation, dict) else {}, body=body)
