"""Seeded template generation of queries with gold labels for the default catalogue.

How a query is made: pick a cell of the plan (a category, and for single-tool queries a tool), a family and a
frame of :mod:`templates`; fill its slots (:mod:`slots`); add noise to the frame's own words (typos, dropped
apostrophes, greetings and politeness around it, casing, end punctuation) but never to the slot values, so every
string argument appears in the query as written; build the gold label from the final slot texts and validate it
against the catalogue. A query whose normalised text was already made is dropped and another one drawn, so the
set holds exactly ``n`` distinct queries. Everything flows from one ``random.Random(seed)``: the same seed gives
the same queries in the same order.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlite_utils import Database

from ..catalog import Catalog, Label, load_catalog
from ..db import NewQuery, get_catalog, insert_queries
from ..errors import ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from ..textnorm import normalize_text
from . import templates as T
from .slots import fill

GOLD_SOURCE = "template"
_SLOT_RE = re.compile(r"\{(\w+)\}")
_WORD_RE = re.compile(r"[A-Za-z]{4,}")
_CONTRACTION_RE = re.compile(r"(\w)'(\w)")
_KEYS = "qwertyuiop asdfghjkl zxcvbnm"


@dataclass(frozen=True)
class _Frame:
    template_id: str
    family: T.Family
    pieces: tuple[tuple[str, str | None], ...]
    """(literal text, None) or ("", slot name), in order."""

    @property
    def slots(self) -> list[str]:
        return [slot for _, slot in self.pieces if slot]


def _compile(family: T.Family) -> list[_Frame]:
    frames = []
    for i, pattern in enumerate(family.patterns):
        pieces: list[tuple[str, str | None]] = []
        pos = 0
        for m in _SLOT_RE.finditer(pattern):
            if m.start() > pos:
                pieces.append((pattern[pos:m.start()], None))
            pieces.append(("", m.group(1)))
            pos = m.end()
        if pos < len(pattern):
            pieces.append((pattern[pos:], None))
        frames.append(_Frame(f"{family.name}.{i:02d}", family, tuple(pieces)))
    return frames


def _families_by_tool() -> dict[str, list[list[_Frame]]]:
    by_tool: dict[str, list[list[_Frame]]] = {tool: [] for tool in T.TOOLS}
    for family in T.SINGLE:
        tool = family.calls(_Probe())[0]["tool"]
        by_tool[tool].append(_compile(family))
    return by_tool


class _Probe:
    """Answers any slot lookup, so a label rule can be run once to learn which tool it calls."""

    def __getitem__(self, name: str) -> str:
        return "x"

    def alts(self, name: str) -> tuple:
        return ()


# ---------------------------------------------------------------- noise on the frame's own words


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    r = rng.random()
    if r < 0.3:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if r < 0.55:
        return word[:i] + word[i + 1:]
    if r < 0.8:
        return word[:i] + word[i] + word[i:]
    row = next((row for row in _KEYS.split() if word[i].lower() in row), None)
    if row is None:
        return word
    j = row.index(word[i].lower())
    near = row[max(j - 1, 0):j] + row[j + 1:j + 2]
    return word[:i] + rng.choice(near) + word[i + 1:]


def _noise(pieces: list[list], rng: random.Random, *, opener: str = "") -> list[str]:
    """Add noise in place to ``pieces`` ([text, key]); slot pieces only change case. Returns what was applied."""
    applied = []
    if rng.random() < 0.12:
        spots = [(i, m) for i, (text, key) in enumerate(pieces) if key is None for m in _WORD_RE.finditer(text)]
        if spots:
            i, m = rng.choice(spots)
            text = pieces[i][0]
            pieces[i][0] = text[:m.start()] + _typo(m.group(), rng) + text[m.end():]
            applied.append("typo")
    if rng.random() < 0.25:
        dropped = False
        for piece in pieces:
            if piece[1] is None and "'" in piece[0]:
                piece[0], n = _CONTRACTION_RE.subn(r"\1\2", piece[0])
                dropped = dropped or n > 0
        if dropped:
            applied.append("no_apostrophe")
    if opener:
        pieces.insert(0, [opener, None])
    if rng.random() < 0.28:
        pieces.insert(0, [rng.choice(T.PREFIXES), None])
        applied.append("prefix")
    ends_with_url = pieces[-1][1] is not None and pieces[-1][1][1].startswith("url")
    if rng.random() < 0.22 and not ends_with_url:
        pieces.append([rng.choice(T.SUFFIXES), None])
        applied.append("suffix")
    has_url = any(key is not None and key[1].startswith("url") for _, key in pieces)
    r = rng.random()
    if r < 0.25:
        for piece in pieces:
            piece[0] = piece[0].lower()
        applied.append("lower")
    elif r < 0.33:
        first = next(p for p in pieces if p[0])
        first[0] = first[0][0].upper() + first[0][1:]
        applied.append("capitalized")
    elif r < 0.35 and not has_url:
        for piece in pieces:
            piece[0] = piece[0].upper()
        applied.append("upper")
    if not ends_with_url:
        _punctuate(pieces, rng, applied)
    return applied


def _punctuate(pieces: list[list], rng: random.Random, applied: list[str]) -> None:
    r = rng.random()
    last = pieces[-1]
    if r < 0.2 and last[1] is None:
        stripped = last[0].rstrip("?.! ")
        if stripped != last[0] and stripped:
            last[0] = stripped
            applied.append("no_punct")
    elif r < 0.5:
        mark = rng.choice(("?", "?", "!", "??", "...", ".", "?!"))
        if not (last[0] or " ")[-1] in "?.!":
            pieces.append([mark, None])
            applied.append("punct")


# ---------------------------------------------------------------- the plan and the loop


@dataclass
class _Cell:
    category: str
    kind: str  # "families" or "multi"
    frames: list[list[_Frame]]
    target: int = 0


@dataclass
class _Made:
    text: str
    calls: list[dict]
    template_id: str
    category: str
    acceptable: list[list[dict]] | None
    noise: list[str]


def _plan(n: int) -> list[_Cell]:
    by_tool = _families_by_tool()
    cells = [_Cell("single", "families", frames) for frames in by_tool.values()]
    cells += [
        _Cell("multi", "multi", [_compile(f) for f in T.MULTI]),
        _Cell("no_tool", "families", [_compile(f) for f in T.NO_TOOL]),
        _Cell("ambiguous", "families", [_compile(f) for f in T.AMBIGUOUS]),
        _Cell("edge", "families", [_compile(f) for f in T.EDGE]),
    ]
    n_single = len(by_tool)
    budget = {c: round(n * w) for c, w in T.CATEGORY_WEIGHTS.items()}
    budget["single"] = n - sum(v for c, v in budget.items() if c != "single")
    for i, cell in enumerate(cells):
        if cell.category == "single":
            cell.target = budget["single"] // n_single + (1 if i < budget["single"] % n_single else 0)
        else:
            cell.target = budget[cell.category]
    return cells


_CLAUSES = [_compile(f) for f in T.CLAUSES]


def _draw(cell: _Cell, rng: random.Random) -> _Made:
    if cell.kind == "multi" and rng.random() >= 0.2:
        k = 3 if rng.random() < 0.15 else 2
        parts = [rng.choice(rng.choice(_CLAUSES)) for _ in range(k)]
        opener = rng.choice(T.MULTI_OPENERS)
        template_id = "multi:" + "+".join(f.template_id for f in parts)
    else:
        parts = [rng.choice(rng.choice(cell.frames))]
        opener, template_id = "", parts[0].template_id
    pieces: list[list] = []
    filled = []
    for i, frame in enumerate(parts):
        if i:
            pieces.append([rng.choice(T.JOINERS), None])
        values = fill(frame.slots, rng)
        filled.append(values)
        pieces.extend([text, None] if slot is None else [values[slot].text, (i, slot)] for text, slot in frame.pieces)
    noise = _noise(pieces, rng, opener=opener)
    texts: list[dict[str, str]] = [{} for _ in parts]
    for text, key in pieces:
        if key is not None:
            texts[key[0]][key[1]] = text
    calls, acceptable = [], None
    for i, frame in enumerate(parts):
        view = T.Slots(filled[i], texts[i])
        calls.extend(frame.family.calls(view))
        if frame.family.acceptable is not None and len(parts) == 1:
            acceptable = frame.family.acceptable(view)
    text = re.sub(r"\s+", " ", "".join(p[0] for p in pieces)).strip()
    return _Made(text, calls, template_id, cell.category, acceptable, noise)


def check_catalog(catalog: Catalog) -> None:
    """Raise ToolDistillError unless ``catalog`` has exactly the default tools with the default argument schemas."""
    default = load_catalog()
    missing = [t for t in T.TOOLS if t not in catalog.by_name]
    changed = [t for t in T.TOOLS if t in catalog.by_name
               and catalog.by_name[t].parameters != default.by_name[t].parameters]
    extra = [t for t in catalog.names if t not in T.TOOLS]
    if missing or changed or extra:
        what = "; ".join(f"{label} {', '.join(names)}" for label, names in
                         (("lacks", missing), ("changes the arguments of", changed), ("adds", extra)) if names)
        raise ToolDistillError(
            f"the query templates cover only the default catalogue, and the workspace catalogue "
            f"'{catalog.name}' ({catalog.hash}) {what}; bring your own queries with 'tooldistill data import', "
            "or generate into a fresh database (--db new.db)"
        )


@dataclass
class GenerateReport:
    """What :func:`generate` did; ``dropped_duplicates`` counts drawn queries whose normalised text repeated."""

    requested: int
    seed: int
    source: str
    catalog_hash: str
    generated: int = 0
    added: int = 0
    already_present: int = 0
    dropped_duplicates: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, int] = field(default_factory=dict)
    by_tool: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _make(catalog: Catalog, n: int, seed: int, progress: ProgressCallback) -> tuple[list[_Made], int]:
    """Draw ``n`` distinct queries following the plan; returns them (shuffled) and how many repeats were dropped."""
    if n < 0:
        raise ToolDistillError(f"the number of queries must be >= 0, got {n}")
    check_catalog(catalog)
    rng = random.Random(seed)
    seen: set[str] = set()
    made: list[_Made] = []
    dropped = 0

    def draw(cell: _Cell, goal: int) -> int:
        nonlocal dropped
        got, attempts, limit = 0, 0, goal * 30 + 200
        while got < goal and attempts < limit:
            attempts += 1
            q = _draw(cell, rng)
            key = normalize_text(q.text)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            made.append(q)
            got += 1
            if len(made) % 1000 == 0:
                progress(ProgressEvent("generate", len(made), n, "generating queries"))
        return got

    cells = _plan(n)
    shortfall = sum(cell.target - draw(cell, cell.target) for cell in cells)
    # a saturated cell's shortfall is made up by the single-tool cells, whose phrase space is the largest
    single = [c for c in cells if c.category == "single"]
    stalled = 0
    while shortfall > 0 and stalled < len(single):
        got = draw(single[len(made) % len(single)], min(shortfall, 100))
        shortfall -= got
        stalled = stalled + 1 if got == 0 else 0
    if shortfall > 0:
        raise ToolDistillError(f"only {len(made)} distinct queries could be made from the templates, "
                               f"{n} were asked for; ask for fewer")
    rng.shuffle(made)
    progress(ProgressEvent("generate", len(made), n, "generating queries"))
    return made, dropped


class _Validator:
    """Validates labels call by call against the catalogue, remembering calls already seen (most repeat)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self._calls: dict[tuple, Any] = {}

    def label(self, calls: list[dict]) -> Label:
        out = []
        for c in calls:
            key = (c["tool"], tuple(sorted(c["args"].items())))
            if key not in self._calls:
                self._calls[key] = self.catalog.validate_label([c]).calls[0]
            out.append(self._calls[key])
        return Label(calls=out)


def _to_new_query(q: _Made, check: _Validator, source: str) -> NewQuery:
    meta: dict[str, Any] = {}
    if q.acceptable:
        meta["acceptable"] = [check.label(a).canonical() for a in q.acceptable]
    if q.noise:
        meta["noise"] = q.noise
    return NewQuery(text=q.text, source=source, template_id=q.template_id, category=q.category, meta=meta,
                    gold=check.label(q.calls), gold_source=GOLD_SOURCE, catalog_hash=check.catalog.hash)


def generate_queries(catalog: Catalog, n: int, *, seed: int = 0) -> list[NewQuery]:
    """Return ``n`` distinct template queries with gold labels (pure: nothing is written).

    Args:
        catalog: must be the default catalogue (same tools, same argument schemas); descriptions may differ.
        n: how many distinct queries (distinct after :func:`tooldistill.textnorm.normalize_text`).
        seed: the same seed gives the same queries in the same order.

    Returns: ``NewQuery`` objects with ``gold`` validated against ``catalog``, ``gold_source="template"``,
    ``category`` (single, multi, no_tool, ambiguous, edge), ``template_id`` and, for ambiguous queries,
    ``meta["acceptable"]`` (every acceptable label, gold first).

    Raises: ToolDistillError for another catalogue, or when ``n`` distinct queries cannot be made.
    """
    made, _ = _make(catalog, n, seed, noop)
    source = f"template:seed={seed}"
    check = _Validator(catalog)
    return [_to_new_query(q, check, source) for q in made]


def generate(db: Database, n: int, *, seed: int = 0, progress: ProgressCallback | None = None,
             batch_size: int = 2000) -> GenerateReport:
    """Generate ``n`` distinct template queries with gold labels and insert them into the workspace database.

    Args:
        db: the workspace database; its current catalogue must be the default one.
        n, seed: as :func:`generate_queries`.
        progress: called with ``generate`` and ``insert`` events.
        batch_size: queries per insert transaction.

    Returns: a :class:`GenerateReport`; queries whose text the database already holds (e.g. a re-run with the
    same seed) are counted in ``already_present``, not inserted again.
    """
    progress = progress or noop
    catalog = get_catalog(db)
    made, dropped = _make(catalog, n, seed, progress)
    source = f"template:seed={seed}"
    report = GenerateReport(requested=n, seed=seed, source=source, catalog_hash=catalog.hash,
                            generated=len(made), dropped_duplicates=dropped)
    classes, tools, categories = Counter(), Counter(), Counter()
    check = _Validator(catalog)
    for start in range(0, len(made), batch_size):
        batch = [_to_new_query(q, check, source) for q in made[start:start + batch_size]]
        result = insert_queries(db, batch, batch_size=batch_size)
        report.added += result.added
        report.already_present += result.duplicates
        for q in batch:
            categories[q.category] += 1
            classes[q.gold.tool_set_key] += 1
            tools.update(set(q.gold.tools) or {"<none>"})
        progress(ProgressEvent("insert", min(start + batch_size, len(made)), len(made), "writing queries"))
    report.by_category = dict(categories.most_common())
    report.by_class = dict(classes.most_common())
    report.by_tool = {t: tools[t] for t in [*T.TOOLS, "<none>"] if tools[t]}
    return report
