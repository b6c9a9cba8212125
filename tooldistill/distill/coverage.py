"""Coverage plans for teacher-written queries: cells of (tool or class, category, style), targets, and the report.

A plan names its cells and how many queries each should get. ``single``, ``multi``, ``ambiguous`` and ``edge``
cells exist per tool (a multi-tool chain starting with that tool, an ambiguous request that could be that tool or
another, an edge case of that tool); ``no_tool`` cells have the tool ``no_tool``. Every cell is crossed with each
style. The counters of a cell (requests, queries received, accepted, exact and near duplicates, invalid ones)
are written by :mod:`.synthesize` in the transaction that stores the queries, so the report is exact at any
moment, even during a run. Duplicates are counted and linked to the stored query they repeat
(``synth_repeats``), never stored as queries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlite_utils import Database

from ..catalog import NO_TOOL, Catalog
from ..db import now_iso
from ..errors import InputError

CATEGORIES = ("single", "multi", "no_tool", "ambiguous", "edge")
CATEGORY_TEXT = {
    "single": "one request that this tool alone serves",
    "multi": "a request that needs this tool and then one or two other tools, in one message",
    "no_tool": "a message that none of the tools can serve: chit-chat, opinions, requests outside their reach",
    "ambiguous": "a vague or underspecified request where this tool is one plausible reading among others",
    "edge": "an unusual but valid request for this tool: odd values, extreme numbers, mixed languages, very long "
            "or very short phrasing",
}
STYLES = ("terse", "chatty", "typos", "non_native", "specifics")
STYLE_TEXT = {
    "terse": "very short, a few words, no greeting or punctuation to speak of",
    "chatty": "conversational, with a greeting, context and politeness around the request",
    "typos": "hurried typing: a few misspellings, missing apostrophes, odd casing",
    "non_native": "written by a non-native English speaker: unusual word order and grammar, still clear",
    "specifics": "full of concrete details: numbers with units, dates, times, URLs, names",
}
OPEN, FULL, SATURATED = "open", "full", "saturated"


@dataclass
class Cell:
    """One cell of a coverage plan and what synthesis has brought it so far."""

    id: str
    plan: str
    tool: str
    category: str
    style: str
    target: int
    requests: int = 0
    received: int = 0
    accepted: int = 0
    exact_dups: int = 0
    near_dups: int = 0
    invalid: int = 0
    rounds: int = 0
    stale_rounds: int = 0
    state: str = OPEN
    updated_at: str | None = None

    @property
    def duplicates(self) -> int:
        return self.exact_dups + self.near_dups

    @property
    def dup_rate(self) -> float:
        """Share of the received queries that were duplicates (0 when nothing arrived yet)."""
        return self.duplicates / self.received if self.received else 0.0

    @property
    def missing(self) -> int:
        return max(0, self.target - self.accepted)

    def to_dict(self) -> dict:
        return {**asdict(self), "duplicates": self.duplicates, "dup_rate": round(self.dup_rate, 4),
                "missing": self.missing}


def cell_id(plan: str, tool: str, category: str, style: str) -> str:
    """The id of a cell (``plan:tool|category|style``), also the ``template_id`` of the queries it brings."""
    return f"{plan}:{tool}|{category}|{style}"


def plan_cells(catalog: Catalog, *, categories: tuple[str, ...] = CATEGORIES, styles: tuple[str, ...] = STYLES,
               tools: list[str] | None = None) -> list[tuple[str, str, str]]:
    """The (tool, category, style) cells of a plan over ``catalog``.

    Raises: InputError naming an unknown category, style or tool.
    """
    for c in categories:
        if c not in CATEGORIES:
            raise InputError(f"unknown category {c!r}; use some of {', '.join(CATEGORIES)}", field="categories")
    for s in styles:
        if s not in STYLE_TEXT:
            raise InputError(f"unknown style {s!r}; use some of {', '.join(STYLES)}", field="styles")
    names = catalog.names
    chosen = list(tools) if tools else names
    unknown = [t for t in chosen if t not in names]
    if unknown:
        raise InputError(f"tool {unknown[0]!r} is not in the catalogue ({len(names)} tools: "
                         f"{', '.join(names[:8])}{', ...' if len(names) > 8 else ''})", field="tools")
    cells = []
    for category in categories:
        if category == "no_tool":
            cells += [(NO_TOOL, category, style) for style in styles]
        elif category == "multi" and len(names) < 2:
            continue
        else:
            cells += [(tool, category, style) for tool in chosen for style in styles]
    if not cells:
        raise InputError("the plan has no cells; give at least one category and one style", field="categories")
    return cells


def make_plan(db: Database, catalog: Catalog, *, name: str = "default", total: int | None = None,
              per_cell: int | None = None, categories: tuple[str, ...] = CATEGORIES,
              styles: tuple[str, ...] = STYLES, tools: list[str] | None = None) -> list[Cell]:
    """Create a coverage plan, or raise the targets of an existing one (counts are kept; targets never shrink).

    Args:
        db: the workspace database.
        catalog: the current catalogue (the plan's tools).
        name: the plan's name (also the ``source`` of its queries: ``synth:<name>``).
        total: queries wanted over all cells, spread evenly (the first cells get the remainder).
        per_cell: queries wanted per cell (instead of ``total``).
        categories, styles, tools: which cells; ``tools`` defaults to every tool of the catalogue.

    Returns: the plan's cells. Side effect: one transaction writing ``synth_plans`` and ``synth_cells``.

    Raises: InputError for a bad name, no or both of total/per_cell, or unknown categories, styles or tools.
    """
    if not name or any(ch in name for ch in ":|") or len(name) > 64:
        raise InputError(f"plan name {name!r} must be 1-64 characters without ':' or '|'", field="plan")
    if (total is None) == (per_cell is None):
        raise InputError("give the number of queries wanted: total (--n) or per cell (--per-cell)", field="n")
    if (total is not None and total < 1) or (per_cell is not None and per_cell < 1):
        raise InputError("the number of queries wanted must be at least 1", field="n")
    cells = plan_cells(catalog, categories=categories, styles=styles, tools=tools)
    targets = [per_cell] * len(cells) if per_cell is not None else \
        [total // len(cells) + (1 if i < total % len(cells) else 0) for i in range(len(cells))]
    now = now_iso()
    params = {"categories": list(categories), "styles": list(styles), "tools": tools}
    with db.atomic():
        if db["synth_plans"].count_where("name = ?", [name]):
            db.execute("UPDATE synth_plans SET updated_at = ?, params = ? WHERE name = ?",
                       [now, json.dumps(params), name])
        else:
            db["synth_plans"].insert({"name": name, "catalog_hash": catalog.hash, "params": json.dumps(params),
                                      "created_at": now, "updated_at": now})
        for (tool, category, style), target in zip(cells, targets):
            cid = cell_id(name, tool, category, style)
            db.execute(
                "INSERT INTO synth_cells (id, plan, tool, category, style, target, requests, received, accepted,"
                " exact_dups, near_dups, invalid, rounds, stale_rounds, state, updated_at)"
                " VALUES (?,?,?,?,?,?,0,0,0,0,0,0,0,0,'open',?) ON CONFLICT(id) DO UPDATE SET"
                " target = max(target, excluded.target), updated_at = excluded.updated_at,"
                " state = CASE WHEN accepted >= max(target, excluded.target) THEN 'full'"
                "   WHEN excluded.target > target AND state = 'full' THEN 'open' ELSE state END",
                [cid, name, tool, category, style, target, now])
    return get_cells(db, name)


def get_cells(db: Database, plan: str) -> list[Cell]:
    """The cells of ``plan`` in plan order (an empty list when there is no such plan)."""
    return [Cell(**row) for row in db.query("SELECT * FROM synth_cells WHERE plan = ? ORDER BY rowid", [plan])]


def plans(db: Database) -> list[str]:
    """The names of the synthesis plans in ``db``, oldest first."""
    return [r[0] for r in db.execute("SELECT name FROM synth_plans ORDER BY created_at")]


def _marginal(cells: list[Cell], attr: str) -> list[dict]:
    out: dict[str, dict] = {}
    for c in cells:
        row = out.setdefault(getattr(c, attr), {attr: getattr(c, attr), "target": 0, "accepted": 0, "received": 0,
                                                 "duplicates": 0})
        row["target"] += c.target
        row["accepted"] += c.accepted
        row["received"] += c.received
        row["duplicates"] += c.duplicates
    for row in out.values():
        row["dup_rate"] = round(row["duplicates"] / row["received"], 4) if row["received"] else 0.0
    return list(out.values())


def coverage_report(db: Database, *, plan: str | None = None, top: int = 10) -> dict:
    """Counts per cell against the plan's targets, marginals, and where the teacher keeps repeating itself.

    Args:
        db: the workspace database.
        plan: the plan (default: the only one, or ``default``).
        top: how many of the most repetitive cells and most repeated queries to list.

    Returns: a JSON-able dict: ``plan``, ``totals``, ``cells`` (each :meth:`Cell.to_dict`), ``by_category``,
    ``by_style``, ``by_tool``, ``repetitive_cells`` (highest duplicate rate first, cells with at least one
    request), ``repeated_queries`` (stored queries the teacher sent again most often, with how often).

    Raises: InputError when there is no plan to report on.
    """
    names = plans(db)
    if plan is None:
        plan = names[0] if len(names) == 1 else ("default" if "default" in names else None)
    if plan is None or plan not in names:
        what = f"no synthesis plan {plan!r} (plans: {', '.join(names)})" if plan is not None and names else \
            "no synthesis plan yet"
        raise InputError(f"{what}; start one with 'tooldistill distill synthesize --n 2000'", field="plan")
    cells = get_cells(db, plan)
    totals = {k: sum(getattr(c, k) for c in cells) for k in
              ("target", "requests", "received", "accepted", "exact_dups", "near_dups", "invalid")}
    totals["duplicates"] = totals["exact_dups"] + totals["near_dups"]
    totals["dup_rate"] = round(totals["duplicates"] / totals["received"], 4) if totals["received"] else 0.0
    totals["missing"] = sum(c.missing for c in cells)
    totals["cells"] = len(cells)
    for state in (OPEN, FULL, SATURATED):
        totals[f"cells_{state}"] = sum(c.state == state for c in cells)
    repetitive = sorted((c for c in cells if c.requests), key=lambda c: (-c.dup_rate, c.id))[:top]
    repeated = [{"query_id": qid, "text": text, "times": n, "cells": ncells} for qid, text, n, ncells in db.execute(
        "SELECT r.query_id, q.text, sum(r.count), count(DISTINCT r.cell_id) FROM synth_repeats r"
        " JOIN queries q ON q.id = r.query_id WHERE r.cell_id LIKE ? GROUP BY r.query_id"
        " ORDER BY 3 DESC, 1 LIMIT ?", [f"{plan}:%", top])]
    return {
        "plan": plan, "totals": totals, "cells": [c.to_dict() for c in cells],
        "by_category": _marginal(cells, "category"), "by_style": _marginal(cells, "style"),
        "by_tool": _marginal(cells, "tool"),
        "repetitive_cells": [{"cell": c.id.split(":", 1)[1], "dup_rate": round(c.dup_rate, 4),
                              "received": c.received, "duplicates": c.duplicates, "state": c.state}
                             for c in repetitive],
        "repeated_queries": repeated,
    }
