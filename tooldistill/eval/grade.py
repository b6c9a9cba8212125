"""Grading one prediction against its label, BFCL-style: typed errors, normalised values, acceptable answers.

Calls compare as a multiset. Predicted calls are paired with label calls of the same tool first (several calls
of one tool are paired to maximise matching arguments); the calls left over are paired in order as wrong-tool
pairs; what remains is a missed or an extra call. Each paired call with the right tool is checked argument by
argument against the tool's schema and the label, and every problem gets one of :data:`ERROR_TYPES`.

Values are compared after normalisation (see :func:`values_match`): strings ignore case, Unicode form,
whitespace and punctuation (not digits' decimal points or operators), numbers compare by value whatever
their form (``15``, ``15.0``, ``"15"``, ``"1,500"``), lists item by item and objects key by key. A label may allow
several answers (:class:`Acceptable`): whole alternative labels, or per-argument lists of values in which ``""``
means "may be left out" (BFCL's convention).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog, Label, ToolCall, parse_label, schema_errors
from .parse import Parsed, parse_output

ERROR_TYPES = (
    "invalid_output",    # nothing readable as a label
    "wrong_tool",        # a call names another tool than the label's call it stands for (or an unknown tool)
    "missed_call",       # a label call with no predicted counterpart (e.g. no tool predicted)
    "extra_call",        # a predicted call with no label counterpart (e.g. a tool called where none fits)
    "missing_required",  # a required argument left out
    "missing_arg",       # an optional argument the label sets, left out
    "unexpected_arg",    # an argument the tool does not define, or the label does not set
    "type_error",        # an argument of the wrong JSON type for its schema
    "value_error",       # an argument with another value than the label's
)


@dataclass(frozen=True)
class Acceptable:
    """The answers a label allows besides itself.

    ``labels``: whole alternative labels, each fully correct. ``args``: acceptable values per argument, keyed
    ``"tool.arg"`` or ``"arg"`` (any tool); ``""`` among the values means the argument may be left out.
    """

    labels: tuple[Label, ...] = ()
    args: dict[str, tuple] = field(default_factory=dict)

    def values_for(self, tool: str, arg: str) -> tuple | None:
        return self.args.get(f"{tool}.{arg}", self.args.get(arg))


def acceptable_from_meta(meta: Any) -> Acceptable | None:
    """Read the acceptable answers a query's ``meta`` declares, or ``None`` when it declares none.

    Understood keys: ``acceptable`` (a list of alternative labels, or an object of per-argument value lists),
    ``acceptable_labels`` and ``acceptable_args``. ``meta`` may be a dict or its JSON text.

    Raises: ValueError when the declaration is malformed.
    """
    if isinstance(meta, str):
        meta = json.loads(meta) if meta.strip() else {}
    if not isinstance(meta, dict):
        return None
    labels, args = list(meta.get("acceptable_labels") or []), dict(meta.get("acceptable_args") or {})
    acc = meta.get("acceptable")
    if isinstance(acc, list):
        labels.extend(acc)
    elif isinstance(acc, dict):
        args.update(acc)
    elif acc is not None:
        raise ValueError(f"'acceptable' must be a list of labels or an object of values, got {type(acc).__name__}")
    if not labels and not args:
        return None
    bad = [k for k, v in args.items() if not isinstance(v, list)]
    if bad:
        raise ValueError(f"acceptable values of {bad[0]!r} must be a list")
    return Acceptable(labels=tuple(parse_label(x) for x in labels), args={k: tuple(v) for k, v in args.items()})


@dataclass(frozen=True)
class Grade:
    """One prediction graded against one label."""

    gold: Label
    """The label it was graded against (an acceptable alternative when that one matched better)."""
    pred: Label | None
    """The predicted label, ``None`` when the output was unreadable."""
    valid_json: bool
    extracted: bool
    schema_valid: bool
    tool_correct: bool
    """The same multiset of tools as the label (no tool counts: ``[]`` vs ``[]`` is right)."""
    args_correct: bool
    """Every paired call's arguments match (only meaningful when ``tool_correct``)."""
    errors: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    arg_tp: int = 0
    arg_fp: int = 0
    arg_fn: int = 0
    used_alternative: bool = False

    @property
    def fully_correct(self) -> bool:
        return self.tool_correct and self.args_correct

    @property
    def pred_key(self) -> str:
        """The predicted tool set (``"<none>"`` for no tool, ``"<invalid>"`` when unreadable)."""
        return self.pred.tool_set_key if self.pred is not None else "<invalid>"


def grade(pred: Parsed | Label | Any, gold: Label, catalog: Catalog, *, acceptable: Acceptable | None = None) -> Grade:
    """Grade a prediction against a label (and its acceptable alternatives), BFCL-style.

    Args:
        pred: a :class:`Parsed` output, a :class:`Label`, or a raw output (read with :func:`parse_output`).
        gold: the label.
        catalog: the catalogue the calls are validated against (schema validity, types, required args).
        acceptable: what else the label allows.

    Returns: the :class:`Grade` against the label or the alternative it matches best (the label wins ties).
    """
    parsed = pred if isinstance(pred, Parsed) else parse_output(pred)
    candidates = [gold, *(acceptable.labels if acceptable else ())]
    grades = [_grade_against(parsed, cand, catalog, acceptable, alt=i > 0) for i, cand in enumerate(candidates)]
    return max(grades, key=lambda g: (g.fully_correct, g.tool_correct, g.arg_tp - g.arg_fp - g.arg_fn))


def _grade_against(parsed: Parsed, gold: Label, catalog: Catalog, acceptable: Acceptable | None, *, alt: bool) -> Grade:
    gold = Label(calls=[catalog.normalize_call(c) for c in gold.calls])
    gold_args = sum(len(c.args) for c in gold.calls)
    if parsed.label is None:
        return Grade(gold, None, parsed.valid_json, parsed.extracted, False, False, False,
                     ("invalid_output",), (parsed.error or "unreadable",), arg_fn=gold_args, used_alternative=alt)
    pred = Label(calls=[catalog.normalize_call(c) for c in parsed.label.calls], reason=parsed.label.reason)
    schema_valid = not catalog.label_errors(pred)
    pairs, missed, extra = _pair_calls(gold.calls, pred.calls, catalog, acceptable)
    errors: list[str] = []
    details: list[str] = []
    tp = fp = fn = 0
    for g, p in pairs:
        if g.tool != p.tool:
            errors.append("wrong_tool")
            details.append(f"called {p.tool} for {g.tool}")
            fp, fn = fp + len(p.args), fn + len(g.args)
            continue
        check = _compare_args(g, p, catalog, acceptable)
        tp, fp, fn = tp + check.tp, fp + check.fp, fn + check.fn
        errors.extend(check.errors)
        details.extend(check.details)
    for g in missed:
        errors.append("missed_call")
        details.append(f"no call of {g.tool}")
        fn += len(g.args)
    for p in extra:
        errors.append("extra_call")
        details.append(f"extra call of {p.tool}")
        fp += len(p.args)
    tool_correct = sorted(gold.tools) == sorted(pred.tools)
    args_correct = tool_correct and not errors
    return Grade(gold, pred, parsed.valid_json, parsed.extracted, schema_valid, tool_correct, args_correct,
                 tuple(errors), tuple(details), tp, fp, fn, alt)


# ---------------------------------------------------------------- pairing calls


def _pair_calls(gold: list[ToolCall], pred: list[ToolCall], catalog: Catalog, acceptable: Acceptable | None):
    """Pair calls: same tool first (best argument overlap), then leftovers in order; return pairs, missed, extra."""
    pairs: list[tuple[ToolCall, ToolCall]] = []
    left_gold: list[ToolCall] = []
    left_pred = list(pred)
    for tool in dict.fromkeys(c.tool for c in gold):
        g_calls = [c for c in gold if c.tool == tool]
        p_calls = [c for c in left_pred if c.tool == tool]
        matched = _best_assignment(g_calls, p_calls, catalog, acceptable)
        for gi, pi in matched:
            pairs.append((g_calls[gi], p_calls[pi]))
        used_p = {id(p_calls[pi]) for _, pi in matched}
        left_pred = [c for c in left_pred if id(c) not in used_p]
        used_g = {gi for gi, _ in matched}
        left_gold.extend(c for i, c in enumerate(g_calls) if i not in used_g)
    n = min(len(left_gold), len(left_pred))
    pairs.extend(zip(left_gold[:n], left_pred[:n]))
    return pairs, left_gold[n:], left_pred[n:]


def _best_assignment(g_calls, p_calls, catalog, acceptable) -> list[tuple[int, int]]:
    k = min(len(g_calls), len(p_calls))
    if k == 0:
        return []
    if k == 1 and len(g_calls) == 1 and len(p_calls) == 1:
        return [(0, 0)]

    def score(gi: int, pi: int) -> int:
        c = _compare_args(g_calls[gi], p_calls[pi], catalog, acceptable)
        return c.tp - c.fp - c.fn

    if max(len(g_calls), len(p_calls)) <= 6:
        perms = itertools.permutations(range(max(len(g_calls), len(p_calls))), k)
        if len(g_calls) <= len(p_calls):  # each label call gets a distinct predicted call
            options = ([(gi, pi) for gi, pi in enumerate(perm)] for perm in perms)
        else:  # each predicted call gets a distinct label call
            options = ([(gi, pi) for pi, gi in enumerate(perm)] for perm in perms)
        return max(options, key=lambda pairing: sum(score(gi, pi) for gi, pi in pairing))
    # many calls of one tool: greedy by score (rare; exact search would be factorial)
    cells = sorted(((score(gi, pi), gi, pi) for gi in range(len(g_calls)) for pi in range(len(p_calls))), reverse=True)
    used_g, used_p, out = set(), set(), []
    for _, gi, pi in cells:
        if gi not in used_g and pi not in used_p:
            used_g.add(gi), used_p.add(pi), out.append((gi, pi))
    return out


# ---------------------------------------------------------------- arguments


@dataclass
class _ArgCheck:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    errors: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def fail(self, kind: str, detail: str, *, fp: int = 0, fn: int = 0) -> None:
        self.errors.append(kind)
        self.details.append(detail)
        self.fp += fp
        self.fn += fn


def _compare_args(gold: ToolCall, pred: ToolCall, catalog: Catalog, acceptable: Acceptable | None) -> _ArgCheck:
    tool = catalog.by_name.get(gold.tool)
    props = tool.properties if tool else {}
    required = set(tool.required) if tool else set()
    check = _ArgCheck()
    # a null optional argument is the same as a left-out one
    g_args = {k: v for k, v in gold.args.items() if v is not None}
    p_args = {k: v for k, v in pred.args.items() if v is not None}
    for name in sorted(set(g_args) | set(p_args)):
        accepted = acceptable.values_for(gold.tool, name) if acceptable else None
        where = f"{gold.tool}.{name}"
        if name not in p_args:
            if accepted is not None and "" in accepted:
                continue
            kind = "missing_required" if name in required else "missing_arg"
            check.fail(kind, f"{where}: missing (label: {g_args[name]!r})", fn=1)
        elif name not in g_args:
            if name in props and accepted is not None and _matches_any(p_args[name], accepted):
                check.tp += 1
                continue
            why = "not an argument of the tool" if name not in props else "not set by the label"
            check.fail("unexpected_arg", f"{where}: {why} (got {p_args[name]!r})", fp=1)
        elif name in props and schema_errors(p_args[name], _type_only(props[name]), where):
            check.fail("type_error", f"{where}: expected {props[name].get('type')}, got {p_args[name]!r}", fp=1, fn=1)
        elif values_match(g_args[name], p_args[name]) or (
            accepted is not None and _matches_any(p_args[name], accepted)
        ):
            check.tp += 1
        else:
            check.fail("value_error", f"{where}: {p_args[name]!r} != {g_args[name]!r}", fp=1, fn=1)
    return check


def _type_only(schema: dict) -> dict:
    """The schema's type (and item types), not its enums: a wrong enum value is a value error, not a type error."""
    out = {k: v for k, v in schema.items() if k in ("type", "items", "properties", "additionalProperties")}
    if "items" in out and isinstance(out["items"], dict):
        out["items"] = _type_only(out["items"])
    out["additionalProperties"] = True
    return out


def _matches_any(value: Any, accepted: tuple) -> bool:
    return any(a != "" and values_match(a, value) for a in accepted)


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LONE_DOT = re.compile(r"(?<!\d)\.|\.(?!\d)")
_IGNORED = re.compile(r"[\s,!?;:'\"`\-_/()\[\]]+")


def normalize_string(text: str) -> str:
    """A string in comparison form: NFKC, case-folded, whitespace and punctuation removed.

    Decimal points between digits and operators (``* + ^ % =``) are kept, so ``1.5`` stays apart from ``15`` and
    ``2*3`` from ``23``; thousands separators go (``1,500`` equals ``1500``).
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _THOUSANDS.sub("", text)
    text = _LONE_DOT.sub("", text)
    return _IGNORED.sub("", text)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        s = _THOUSANDS.sub("", value.strip())
        try:
            return float(s)
        except ValueError:
            return None
    return None


def values_match(gold: Any, pred: Any) -> bool:
    """Whether two argument values are the same answer after normalisation (see the module docstring)."""
    if isinstance(gold, bool) or isinstance(pred, bool):
        if isinstance(gold, str) or isinstance(pred, str):
            return str(gold).strip().casefold() == str(pred).strip().casefold()
        return gold == pred
    g_num, p_num = _as_number(gold), _as_number(pred)
    if g_num is not None and p_num is not None:
        return math.isclose(g_num, p_num, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(gold, str) and isinstance(pred, str):
        return normalize_string(gold) == normalize_string(pred)
    if isinstance(gold, list) and isinstance(pred, list):
        if len(gold) != len(pred):
            return False
        if all(values_match(a, b) for a, b in zip(gold, pred)):
            return True
        remaining = list(pred)  # same items in another order
        for a in gold:
            hit = next((i for i, b in enumerate(remaining) if values_match(a, b)), None)
            if hit is None:
                return False
            remaining.pop(hit)
        return True
    if isinstance(gold, dict) and isinstance(pred, dict):
        return set(gold) == set(pred) and all(values_match(gold[k], pred[k]) for k in gold)
    return gold == pred
