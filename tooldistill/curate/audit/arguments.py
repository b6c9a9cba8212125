"""Argument checks: labels that break the current catalogue's schema, and argument values not found in the query.

*Schema*: a label validated against an older catalogue may no longer fit (a removed tool, a new required
argument, a narrowed enum): strength 0.95, the errors as evidence.

*Grounding*: which arguments must be copied from the request (a ``location``, a ``word``) and which are written by
the teacher (a search ``query``, a calculator ``expression``) is learned from the data: an argument whose values
are found in their query at least ``extractive_rate`` of the time (over ``extractive_min_count`` values or more)
is *extractive*. An extractive value not found in its query (fuzzy, case- and accent-insensitive match below
``grounding_threshold``) is flagged with strength ``rate * (1 - match / 2)``: how reliably that argument is copied
says most, how far the value is from anything in the query the rest. So is a value of three words or more that
copies the whole request where that argument normally holds a short span (median coverage of its query at most
0.4; strength 0.6): the typical mistake of a teacher that fills a tool it should not have called. Enums, booleans
and objects are not checked.
"""

from __future__ import annotations

import re
import statistics
import unicodedata

from .base import AuditContext, Hit, SignalOutput

SCHEMA_STRENGTH = 0.95
WHOLE_QUERY_STRENGTH = 0.6
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", str(text).lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).replace("'", "").replace("\u2019", "")
    return _NON_WORD.sub(" ", text).strip()


def similarity(a: str, b: str) -> float:
    """``1 - d / max(len)``, ``d`` the optimal-string-alignment distance (a swap of two letters is one edit)."""
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    prev2, prev = [0] * (lb + 1), list(range(lb + 1))
    for i in range(1, la + 1):
        cur = [i] + [0] * lb
        for j in range(1, lb + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return 1.0 - prev[lb] / max(la, lb)


def grounding(value, query: str) -> float:
    """How well ``value`` appears in ``query``, 0-1 (1 = found verbatim after normalisation).

    Strings: the value's words are matched one by one to their most similar word of the query
    (:func:`similarity`), weighted by length. Numbers: 1 when the query holds that number (``15``, ``15.0``,
    ``15,000`` all read as numbers), else 0.
    """
    if isinstance(value, bool):
        return 1.0
    if isinstance(value, (int, float)):
        numbers = {float(m.replace(",", "")) for m in _NUMBER.findall(query) if m.replace(",", "").strip("-")}
        return 1.0 if float(value) in numbers else 0.0
    v, q = _norm(value), _norm(query)
    if not v or f" {v} " in f" {q} ":
        return 1.0
    words = q.split()
    if not words:
        return 0.0
    total = weight = 0.0
    for token in v.split():
        if len(token) >= 2 and any(token in w for w in words):  # "mph" in "98mph"
            total += len(token)
            weight += len(token)
            continue
        best = 0.0
        for w in words:
            if 1.0 - abs(len(w) - len(token)) / max(len(w), len(token)) > best:  # an upper bound: skip hopeless
                best = max(best, similarity(token, w))
                if best == 1.0:
                    break
        total += best * len(token)
        weight += len(token)
    return total / weight if weight else 1.0


def _checkable(schema: dict) -> bool:
    typ = schema.get("type")
    types = typ if isinstance(typ, list) else [typ]
    return "enum" not in schema and any(t in ("string", "number", "integer") for t in types)


class ArgumentsSignal:
    """Schema violations and argument values not grounded in the query."""

    name = "arguments"
    description = "schema violations and argument values not found in the query"

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        cfg = ctx.config
        targets = ctx.targets
        with_args = [it for it in targets if any(c.args for c in it.label.calls)]
        out.checked = len(targets)
        for it in targets:
            errors = ctx.catalog.label_errors(it.label)
            if errors:
                out.hits[it.query_id] = Hit(SCHEMA_STRENGTH, {"schema": errors})
        # grounding statistics per (tool, argument), learned from every audited row with that argument
        values: dict[tuple[str, str], list[tuple[int, object, float, float]]] = {}
        for it in ctx.items:
            for call in it.label.calls:
                tool = ctx.catalog.by_name.get(call.tool)
                if tool is None:
                    continue
                for name, value in call.args.items():
                    if value is None or not _checkable(tool.properties.get(name, {})):
                        continue
                    coverage = len(_norm(value)) / max(len(_norm(it.text)), 1) if isinstance(value, str) else 0.0
                    values.setdefault((call.tool, name), []).append(
                        (it.query_id, value, grounding(value, it.text), coverage))
        extractive: dict[str, dict] = {}
        target_ids = {it.query_id for it in targets}
        for (tool, name), rows in sorted(values.items()):
            rate = sum(s >= cfg.grounding_threshold for _, _, s, _ in rows) / len(rows)
            if len(rows) < cfg.extractive_min_count or rate < cfg.extractive_rate:
                continue
            typical = statistics.median(c for _, _, s, c in rows if s >= cfg.grounding_threshold)
            extractive[f"{tool}.{name}"] = {"values": len(rows), "grounded_rate": round(rate, 3),
                                            "median_coverage": round(typical, 3)}
            for qid, value, score, coverage in rows:
                if qid not in target_ids or qid in out.hits:
                    continue
                if score < cfg.grounding_threshold:
                    evidence = {"argument": f"{tool}.{name}", "value": value, "match": round(score, 3),
                                "grounded_rate": round(rate, 3), "problem": "not found in the query"}
                    out.hits[qid] = Hit(rate * (1.0 - score / 2), evidence)
                elif coverage >= 0.9 and typical <= 0.4 and len(_norm(value).split()) >= 3:
                    evidence = {"argument": f"{tool}.{name}", "value": value, "coverage": round(coverage, 3),
                                "median_coverage": round(typical, 3), "problem": "copies the whole request"}
                    out.hits[qid] = Hit(WHOLE_QUERY_STRENGTH, evidence)
        out.info = {"rows_with_args": len(with_args), "extractive": extractive,
                    "schema_violations": sum("schema" in h.evidence for h in out.hits.values())}
        return out
