"""The tool catalogue and the label: the one source of truth for tools.

A catalogue lists tools (name, description, JSON-Schema parameters). A label is a list of calls
``[{"tool": ..., "args": {...}}]``; ``[]`` means no tool fits, two or more calls make a multi-tool label.
Calls compare as a multiset. :func:`canonical_json` gives every label one stable form and :func:`label_hash`
a stable id; numbers are normalised so ``15``, ``15.0`` and ``"15"`` for a number-typed argument are one value.

Conversions to and from the teacher's and the students' formats live here too, next to the model.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import CatalogError, InputError, LabelError

NO_TOOL = "no_tool"
"""The pseudo-function the teacher calls when no tool fits; reserved, a catalogue may not define it."""

JSON_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_SCHEMA_KEYS = {
    "type", "description", "enum", "items", "properties", "required", "default", "minimum", "maximum",
    "minLength", "maxLength", "pattern", "format", "examples", "title", "minItems", "maxItems", "nullable",
    "additionalProperties",
}


def canonical_dumps(value: Any) -> str:
    """Dump ``value`` as canonical JSON: sorted keys, compact separators, UTF-8 kept (a documented contract)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any, *, length: int = 16) -> str:
    """Return the first ``length`` hex chars of the SHA-256 of ``value``'s canonical JSON (str values as-is)."""
    data = value if isinstance(value, str) else canonical_dumps(value)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:length]


# ---------------------------------------------------------------- schema checks


def _check_schema(schema: Any, where: str) -> None:
    """Raise CatalogError if ``schema`` is not a JSON Schema fragment we can validate against."""
    if not isinstance(schema, dict):
        raise CatalogError(f"schema must be an object, got {type(schema).__name__}", field=where)
    unknown = set(schema) - _SCHEMA_KEYS
    if unknown:
        raise CatalogError(f"unsupported schema keyword(s) {sorted(unknown)}", field=where)
    typ = schema.get("type")
    types = typ if isinstance(typ, list) else [typ]
    if typ is None and "enum" not in schema:
        raise CatalogError("schema needs a 'type' (or an 'enum')", field=where)
    for t in types:
        if t is not None and t not in JSON_TYPES:
            raise CatalogError(f"unknown type {t!r}; use one of {sorted(JSON_TYPES)}", field=where)
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise CatalogError("'enum' must be a non-empty list", field=where)
    if "object" in types:
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise CatalogError("'properties' must be an object", field=where)
        for name, sub in props.items():
            _check_schema(sub, f"{where}.{name}")
        required = schema.get("required", [])
        if not isinstance(required, list) or any(r not in props for r in required):
            missing = [r for r in required if r not in props] if isinstance(required, list) else required
            raise CatalogError(f"'required' names properties that are not defined: {missing}", field=where)
    if "array" in types and "items" in schema:
        _check_schema(schema["items"], f"{where}[]")


def _type_ok(value: Any, typ: str) -> bool:
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if typ == "array":
        return isinstance(value, list)
    if typ == "object":
        return isinstance(value, dict)
    return value is None  # "null"


def _coerce_number(value: Any, integer: bool) -> Any:
    """Normalise a number-typed value: "15", 15.0 and 15 become 15; returns the value unchanged if not numeric."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "")) if value.strip() else value
        except ValueError:
            return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if integer and isinstance(value, float):
        return value  # 2.5 for an integer stays a float and fails the type check
    return value


def normalize_value(value: Any, schema: dict) -> Any:
    """Return ``value`` in canonical form for ``schema`` (numbers normalised, nested objects and arrays too)."""
    typ = schema.get("type")
    types = typ if isinstance(typ, list) else [typ]
    if ("number" in types or "integer" in types) and "string" not in types:
        return _coerce_number(value, "number" not in types)
    if isinstance(value, dict) and "object" in types:
        props = schema.get("properties", {})
        return {k: normalize_value(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list) and "array" in types:
        return [normalize_value(v, schema.get("items", {})) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def schema_errors(value: Any, schema: dict, where: str = "args") -> list[str]:
    """Return the ways ``value`` fails ``schema`` (empty when it fits), each as ``"path: reason"``."""
    errors: list[str] = []
    typ = schema.get("type")
    types = [t for t in (typ if isinstance(typ, list) else [typ]) if t]
    if types and not any(_type_ok(value, t) for t in types):
        got = "null" if value is None else type(value).__name__
        errors.append(f"{where}: expected {'/'.join(types)}, got {got} {value!r}")
        return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict) and "object" in types:
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value or value[req] is None:
                errors.append(f"{where}.{req}: missing required argument")
        for key, sub in value.items():
            if key not in props:
                if schema.get("additionalProperties", False) is False:
                    errors.append(f"{where}.{key}: unexpected argument")
                continue
            if sub is None and key not in schema.get("required", []):
                continue
            errors.extend(schema_errors(sub, props[key], f"{where}.{key}"))
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{where}[{i}]"))
    if isinstance(value, str) and value.strip() == "" and "string" in types and schema.get("minLength", 1) > 0:
        errors.append(f"{where}: empty string")
    return errors


# ---------------------------------------------------------------- models


class Tool(BaseModel):
    """One tool: a name, what it is for, and its arguments as a JSON Schema object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Function name: letters, digits, _ . -; at most 64 chars.")
    description: str = Field(description="What the tool does; the teacher and the student read it.")
    parameters: dict = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []},
        description="JSON Schema of the arguments (type object).",
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"invalid tool name {v!r}: use letters, digits, '_', '.', '-' (max 64, not a digit first)")
        if v == NO_TOOL:
            raise ValueError(f"'{NO_TOOL}' is reserved for 'no tool fits'; rename the tool")
        return v

    @field_validator("parameters")
    @classmethod
    def _parameters_ok(cls, v: dict) -> dict:
        if v.get("type", "object") != "object":
            raise ValueError("parameters must be a JSON Schema of type 'object'")
        v = {"type": "object", "properties": {}, **v}
        _check_schema(v, "parameters")
        return v

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    @property
    def properties(self) -> dict:
        return dict(self.parameters.get("properties", {}))


class ToolCall(BaseModel):
    """One call of a tool with its arguments."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    args: dict = Field(default_factory=dict)


class Catalog(BaseModel):
    """A set of tools with unique names, validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "catalog"
    tools: tuple[Tool, ...]
    none_label: str | None = Field(
        default=None, description="For class-derived catalogues: the class name that maps to no tool ([])."
    )

    @model_validator(mode="after")
    def _unique(self) -> "Catalog":
        dupes = [n for n, c in Counter(t.name for t in self.tools).items() if c > 1]
        if dupes:
            raise ValueError(f"duplicate tool name(s): {', '.join(sorted(dupes))}")
        if not self.tools:
            raise ValueError("a catalogue needs at least one tool")
        return self

    @cached_property
    def by_name(self) -> dict[str, Tool]:
        return {t.name: t for t in self.tools}

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    def get(self, name: str) -> Tool:
        """Return the tool called ``name`` or raise LabelError naming the known tools."""
        try:
            return self.by_name[name]
        except KeyError:
            raise LabelError(f"unknown tool {name!r} (known: {', '.join(self.names)})", field="tool") from None

    @property
    def is_class_catalog(self) -> bool:
        """True when no tool takes arguments: the tool choice is the whole decision."""
        return all(not t.properties for t in self.tools)

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)

    @cached_property
    def hash(self) -> str:
        """Content hash of the catalogue (name excluded: renaming a file does not invalidate labels)."""
        return content_hash({"tools": [t.model_dump(mode="json") for t in self.tools], "none": self.none_label})

    # ------------------------------------------------------------ labels

    def normalize_call(self, call: ToolCall | dict) -> ToolCall:
        """Return ``call`` with its arguments in canonical form (no validation)."""
        call = call if isinstance(call, ToolCall) else ToolCall.model_validate(call)
        tool = self.by_name.get(call.tool)
        if tool is None:
            return call
        return ToolCall(tool=call.tool, args=normalize_value(call.args, tool.parameters))

    def call_errors(self, call: ToolCall | dict) -> list[str]:
        """Return why ``call`` does not fit the catalogue (empty when it does)."""
        call = self.normalize_call(call)
        if call.tool not in self.by_name:
            return [f"unknown tool {call.tool!r}"]
        return [f"{call.tool}: {e}" for e in schema_errors(call.args, self.by_name[call.tool].parameters)]

    def validate_label(self, label: Any, *, source: str | None = None, line: int | None = None) -> "Label":
        """Parse and validate ``label`` against the catalogue.

        Args:
            label: a list of calls (any shape :func:`parse_label` understands) or a :class:`Label`.
            source, line: where it came from, for the error message.

        Returns: the normalised :class:`Label`.

        Raises: LabelError naming the file, line and field.
        """
        try:
            parsed = label if isinstance(label, Label) else parse_label(label)
        except (ValueError, ValidationError) as exc:
            raise LabelError(f"not a label: {_short(exc)}", path=source, line=line, field="label") from None
        calls = [self.normalize_call(c) for c in parsed.calls]
        for i, call in enumerate(calls):
            errors = self.call_errors(call)
            if errors:
                raise LabelError("; ".join(errors), path=source, line=line, field=f"label[{i}]")
        return Label(calls=calls, reason=parsed.reason)

    def label_errors(self, label: "Label") -> list[str]:
        """Return every reason ``label`` does not fit the catalogue (empty when it fits)."""
        return [e for call in label.calls for e in self.call_errors(call)]

    # ------------------------------------------------------------ conversions

    def to_gemini_declarations(self, *, include_no_tool: bool = True) -> list[dict]:
        """Return Gemini ``functionDeclarations`` (with the ``no_tool(reason)`` pseudo-function by default)."""
        decls = [
            {"name": t.name, "description": t.description, "parameters_json_schema": _strip_nullable(t.parameters)}
            for t in self.tools
        ]
        if include_no_tool:
            decls.append(
                {
                    "name": NO_TOOL,
                    "description": "Call this when no other function fits the request: greetings, chit-chat, "
                    "requests the tools cannot serve, or requests too vague to act on.",
                    "parameters_json_schema": {
                        "type": "object",
                        "properties": {"reason": {"type": "string", "description": "Why no tool fits."}},
                        "required": ["reason"],
                    },
                }
            )
        return decls

    def to_openai_tools(self) -> list[dict]:
        """Return the catalogue as OpenAI ``tools`` (``{"type": "function", "function": {...}}``)."""
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in self.tools
        ]

    # ------------------------------------------------------------ construction

    @classmethod
    def from_class_names(cls, names: Iterable[str], *, none_label: str | None = None, name: str = "classes") -> "Catalog":
        """Derive a catalogue of parameterless tools from class labels; ``none_label`` maps to ``[]``."""
        tools, seen = [], set()
        for raw in sorted(set(names)):
            if raw == none_label:
                continue
            tname = class_tool_name(raw)
            if tname in seen:
                raise CatalogError(f"class names collide after sanitising: {raw!r} -> {tname!r}")
            seen.add(tname)
            tools.append(Tool(name=tname, description=f"Intent: {raw.replace('_', ' ')}"))
        return cls(name=name, tools=tuple(tools), none_label=none_label)

    def class_label(self, class_name: str) -> "Label":
        """Return the label of a class name: ``[]`` for the none class, else one parameterless call."""
        if self.none_label is not None and class_name == self.none_label:
            return Label(calls=[])
        tname = class_tool_name(class_name)
        self.get(tname)
        return Label(calls=[ToolCall(tool=tname)])


def class_tool_name(class_name: str) -> str:
    """Map a class name to a valid tool name (spaces and odd characters become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(class_name).strip())[:64] or "_"
    if name[0].isdigit() or name[0] in ".-":
        name = "c_" + name[:62]
    return "no_tool_" if name == NO_TOOL else name


def _strip_nullable(schema: dict) -> dict:
    return {k: (_strip_nullable(v) if isinstance(v, dict) else v) for k, v in schema.items() if k != "nullable"}


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e.get("loc", ()))
        return f"{loc}: {e['msg']}" if loc else e["msg"]
    return str(exc)


class Label(BaseModel):
    """A label: an ordered list of calls (``[]`` = no tool) and, beside it, the teacher's reason for no tool."""

    model_config = ConfigDict(extra="forbid")

    calls: list[ToolCall] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="Why no tool fits; not part of the label's identity.")

    @property
    def is_no_tool(self) -> bool:
        return not self.calls

    @property
    def is_multi(self) -> bool:
        return len(self.calls) >= 2

    @property
    def tools(self) -> list[str]:
        return [c.tool for c in self.calls]

    def canonical(self) -> list[dict]:
        """The calls as plain dicts, sorted so that two labels with the same multiset of calls are equal."""
        calls = [{"tool": c.tool, "args": c.args} for c in self.calls]
        return sorted(calls, key=canonical_dumps)

    def canonical_json(self) -> str:
        return canonical_dumps(self.canonical())

    @property
    def hash(self) -> str:
        return content_hash(self.canonical_json())

    @property
    def tool_set_key(self) -> str:
        """The tools called, sorted and joined with ``+`` (``"<none>"`` for no tool): the class of the label."""
        return "+".join(sorted(self.tools)) or "<none>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Label):
            return self.canonical_json() == other.canonical_json()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.canonical_json())

    def to_json(self) -> str:
        """The label as the JSON list users see (calls in their display order)."""
        return json.dumps([{"tool": c.tool, "args": c.args} for c in self.calls], ensure_ascii=False)


def canonical_json(label: Any) -> str:
    """Canonical JSON of any label shape (see :func:`parse_label`)."""
    return (label if isinstance(label, Label) else parse_label(label)).canonical_json()


def label_hash(label: Any) -> str:
    """Stable content hash of any label shape."""
    return content_hash(canonical_json(label))


def parse_label(value: Any) -> Label:
    """Parse a label from the shapes users and models write.

    Understood: ``[]``; our calls ``[{"tool", "args"}]``; ``[{"name", "arguments"}]`` (arguments as an object or a
    JSON string); OpenAI ``tool_calls`` ``[{"type": "function", "function": {...}}]``; Gemini ``functionCall``
    parts ``[{"name", "args"}]`` or ``[{"functionCall": {...}}]``; a single call object of any of those shapes;
    ``{"tool": "no_tool", ...}`` / a ``no_tool`` call, which mean no tool (its ``reason`` kept); a JSON string of
    any of these.

    Raises: ValueError when the value is none of these.
    """
    if isinstance(value, Label):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(value, dict):
        if "calls" in value and isinstance(value["calls"], list):
            inner = parse_label(value["calls"])
            return Label(calls=inner.calls, reason=value.get("reason") or inner.reason)
        if "tool_calls" in value:
            return parse_label(value["tool_calls"] or [])
        value = [value]
    if value is None:
        value = []
    if not isinstance(value, list):
        raise ValueError(f"expected a list of calls, got {type(value).__name__}")
    calls, reason = [], None
    for i, item in enumerate(value):
        name, args = _call_parts(item, i)
        if name == NO_TOOL:
            reason = (args or {}).get("reason") if isinstance(args, dict) else None
            continue
        calls.append(ToolCall(tool=name, args=args))
    return Label(calls=calls, reason=reason)


def _call_parts(item: Any, index: int) -> tuple[str, dict]:
    if not isinstance(item, dict):
        raise ValueError(f"call {index} is a {type(item).__name__}, not an object")
    if "functionCall" in item or "function_call" in item:
        item = item.get("functionCall") or item.get("function_call")
    elif "function" in item and isinstance(item["function"], dict):
        item = item["function"]
    name = item.get("tool", item.get("name"))
    if not isinstance(name, str) or not name:
        raise ValueError(f"call {index} has no tool name (expected 'tool' or 'name')")
    args = next((item[k] for k in ("args", "arguments", "parameters") if k in item), {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"call {index}: arguments are not valid JSON") from None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f"call {index}: arguments must be an object, got {type(args).__name__}")
    if name == NO_TOOL and "reason" in item and "reason" not in args:
        args = {**args, "reason": item["reason"]}
    return name, args


# ---------------------------------------------------------------- loading


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a catalogue from a YAML or JSON file, or the default one shipped in the package.

    Raises: CatalogError naming the file and the field at fault.
    """
    if path is None:
        from importlib import resources  # only here: it costs start-up time every command would pay

        text = resources.files("tooldistill").joinpath("default_catalog.yaml").read_text(encoding="utf-8")
        return catalog_from_text(text, source="<default catalogue>", default_name="default")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read catalogue: {exc.strerror}", path=str(path)) from None
    return catalog_from_text(text, source=str(path), default_name=path.stem)


def catalog_from_text(text: str, *, source: str, default_name: str = "catalog") -> Catalog:
    """Parse a catalogue from YAML/JSON text (a list of tools, or ``{name, tools}``)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CatalogError(f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}", path=source,
                           line=(mark.line + 1) if mark else None) from None
    return catalog_from_data(data, source=source, default_name=default_name)


def catalog_from_data(data: Any, *, source: str = "<catalogue>", default_name: str = "catalog") -> Catalog:
    """Build a catalogue from parsed data, turning pydantic errors into one CatalogError line."""
    if isinstance(data, list):
        data = {"tools": data}
    if not isinstance(data, dict) or "tools" not in data:
        raise CatalogError("expected a list of tools or an object with 'tools'", path=source)
    data = {"name": default_name, **data}
    tools = data.get("tools") or []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and "function" in tool and "name" not in tool:  # OpenAI tools format
            tools[i] = {k: v for k, v in tool["function"].items() if k in ("name", "description", "parameters")}
    try:
        return Catalog.model_validate(data)
    except CatalogError as exc:
        raise CatalogError(exc.reason, path=source, field=exc.field) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err.get("loc", ()))
        field = None
        if len(loc) >= 2 and loc[0] == "tools" and isinstance(loc[1], int):
            name = tools[loc[1]].get("name", "?") if isinstance(tools[loc[1]], dict) else "?"
            field = f"tools[{loc[1]}] ({name})" + ("." + ".".join(map(str, loc[2:])) if loc[2:] else "")
        elif loc:
            field = ".".join(map(str, loc))
        msg = err["msg"].removeprefix("Value error, ")
        raise CatalogError(msg, path=source, field=field) from None


def dump_catalog(catalog: Catalog) -> str:
    """Return the catalogue as YAML text, in the format :func:`load_catalog` reads."""
    import yaml

    return yaml.safe_dump(catalog.to_dict(), sort_keys=False, allow_unicode=True)


__all__ = [
    "NO_TOOL", "Catalog", "Label", "Tool", "ToolCall", "InputError", "canonical_dumps", "canonical_json",
    "content_hash", "label_hash", "load_catalog", "parse_label", "dump_catalog", "class_tool_name",
    "schema_errors", "normalize_value",
]
