"""The fake teacher's knowledge: gold answers by normalised query, and seeded label noise.

Noise is a pure function of (seed, model, normalised query): the same query gets the same wrong answer on every
retry and resume, and a model with a lower noise rate (or none) answers it right, so a relabel can fix it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...catalog import NO_TOOL, parse_label
from ...errors import InputError
from ...textnorm import normalize_text

UNKNOWN_REASON = "unknown"


@dataclass(frozen=True)
class Answer:
    """What the fake teacher answers: calls as ``{"name", "args"}``, and the no-tool reason."""

    calls: tuple[tuple[str, dict], ...]
    reason: str | None = None
    known: bool = True
    noised: bool = False

    def parts(self) -> list[tuple[str, dict]]:
        """The function calls to send: the calls, or ``no_tool(reason)`` when there are none."""
        return list(self.calls) if self.calls else [(NO_TOOL, {"reason": self.reason or "no function fits"})]


class Oracle:
    """Gold answers keyed by :func:`~tooldistill.textnorm.normalize_text` of the query."""

    def __init__(self, answers: dict[str, Answer] | None = None):
        self.answers = dict(answers or {})

    def __len__(self) -> int:
        return len(self.answers)

    def add(self, query: str, calls: Any, reason: str | None = None) -> None:
        label = parse_label(calls)
        self.answers[normalize_text(query)] = Answer(
            calls=tuple((c.tool, dict(c.args)) for c in label.calls), reason=reason or label.reason)

    def script(self, query: str, calls: list[tuple[str, dict]]) -> None:
        """Answer ``query`` with exactly these function calls (``no_tool`` included as given): for testing how
        a client reads answers no valid label has, such as ``no_tool`` beside a real call."""
        self.answers[normalize_text(query)] = Answer(calls=tuple((name, dict(args)) for name, args in calls))

    def lookup(self, query: str) -> Answer:
        """The gold answer of ``query``, or ``no_tool(reason="unknown")`` marked ``known=False``."""
        return self.answers.get(normalize_text(query)) or Answer(calls=(), reason=UNKNOWN_REASON, known=False)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> "Oracle":
        """Read ``{"query", "calls"}`` lines (``text``/``label`` accepted too, so a `data export` file works).

        Raises: InputError naming the file and line.
        """
        oracle = cls()
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read oracle: {exc.strerror}", path=str(path)) from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                calls = row["calls"] if "calls" in row else row["label"]
                text = row["text"] if "query" not in row and "text" in row else row["query"]
                oracle.add(text, calls, row.get("reason"))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
                raise InputError(f"not an oracle line ({what}); expected {{\"query\": ..., \"calls\": [...]}}",
                                 path=str(path), line=n) from None
        return oracle

    @classmethod
    def from_db(cls, path: str | Path) -> "Oracle":
        """Use a workspace database's gold labels (``queries.gold_calls``)."""
        from ...db import iter_queries, open_db

        if not Path(path).exists():
            raise InputError("no such database for the oracle", path=str(path))
        db = open_db(path, migrate=False, create=False)
        try:
            oracle = cls()
            for row in iter_queries(db, where="gold_calls IS NOT NULL"):
                oracle.add(row["text"], row["gold_calls"])
            return oracle
        finally:
            db.close()


# ---------------------------------------------------------------- noise


def noise_draw(seed: int, model: str, norm_query: str) -> float:
    """A uniform [0, 1) number fixed by (seed, model, normalised query)."""
    digest = hashlib.sha256(f"{seed}|{model}|{norm_query}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def add_noise(answer: Answer, *, query: str, declarations: dict[str, dict], seed: int, model: str,
              rate: float) -> Answer:
    """With probability ``rate`` (fixed per query), flip the first call's tool to another declared one and refit
    its arguments from the query; otherwise return ``answer`` unchanged."""
    norm = normalize_text(query)
    if rate <= 0 or noise_draw(seed, model, norm) >= rate:
        return answer
    current = {name for name, _ in answer.calls} or {NO_TOOL}
    targets = sorted(n for n in declarations if n not in current)
    if not targets:
        return answer
    rng = random.Random(f"{seed}|{model}|{norm}|flip")
    target = rng.choice(targets)
    rest = list(answer.calls[1:])
    if target == NO_TOOL:
        if rest:  # dropping one call of a multi-tool answer is the no-tool flip's analogue
            return Answer(calls=tuple(rest), noised=True, known=answer.known)
        return Answer(calls=(), reason="no function fits", noised=True, known=answer.known)
    call = (target, refit_args(declarations[target], query, rng))
    return Answer(calls=(call, *rest), noised=True, known=answer.known)


def refit_args(schema: Any, query: str, rng: random.Random) -> dict:
    """Arguments for a tool that fit its schema, taken from the query (required properties only)."""
    schema = schema if isinstance(schema, dict) else {}
    props = schema.get("properties") or {}
    return {name: _value_for(props.get(name) or {}, query, rng) for name in schema.get("required") or []}


def _value_for(schema: dict, query: str, rng: random.Random) -> Any:
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    typ = schema.get("type") or "string"
    typ = (typ[0] if isinstance(typ, list) else typ).lower()
    if typ in ("number", "integer"):
        match = re.search(r"-?\d+(?:\.\d+)?", query)
        value = float(match.group()) if match else 1.0
        return int(value) if typ == "integer" or value.is_integer() else value
    if typ == "boolean":
        return True
    if typ == "array":
        return [_value_for(schema.get("items") or {}, query, rng)]
    if typ == "object":
        return refit_args(schema, query, rng)
    return query.strip() or "?"
