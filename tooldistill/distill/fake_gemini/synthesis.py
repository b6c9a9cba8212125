"""The fake teacher as a query writer: answers synthesis requests from a per-cell pool, with deliberate repeats.

A synthesis request asks for JSON output whose schema has a ``queries`` array; the user turn names the cell in
``Tool:``, ``Category:`` and ``Style:`` lines and the count in ``maxItems`` (or a ``Write N`` line). Each cell
can give ``pool_size`` fresh queries; a share ``repeat_rate`` of what it sends repeats an earlier query (mostly
of the same cell), sent exactly, with only case/spacing/end punctuation changed (an exact duplicate after
normalisation), or with a filler word added (a near duplicate). Once a cell's pool is spent it only repeats
itself, as a real teacher does when asked for the hundredth terse weather query. Every draw is seeded by
(seed, cell, request number of the cell) and counted, so a benchmark can compare what the client caught with
what was planted.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from typing import Any

from ...textnorm import normalize_text
from .config import SynthesisBehaviour
from .protocol import GenerateRequest, pick

_CELL_LINE = re.compile(r"^\s*(tool|tools|category|style)\s*:\s*(.+?)\s*$", re.I | re.M)
_WRITE_N = re.compile(r"\bwrite\s+(\d+)\b", re.I)

_NOUNS = """apple anchor atlas autumn badge bakery ballot bamboo banner barrel basket beacon bicycle blanket
blossom bottle bracelet bridge brook bucket cabin cactus camera candle canyon carpet castle cavern cedar chapel
cherry chimney circus cliff clock cobalt comet compass copper cottage crater crystal cushion dagger daisy desert
diamond dolphin dragon drum eagle ember engine falcon feather fern fiddle forest fossil fountain galaxy garden
garnet geyser glacier goblet granite harbor harvest hazel helmet hermit hollow honey horizon island ivory jacket
jasmine jungle kettle kitten ladder lagoon lantern lemon library lighthouse lily locket magnet mango maple marble
meadow mirror monsoon mosaic mountain nectar needle nickel oasis ocean olive orchard otter paddle palace panda
parrot pebble pepper piano pillow pine planet plum pond poppy prairie pumpkin puzzle quartz quill rabbit radar
rainbow raven reef ribbon river robot rocket saddle sapphire satchel scarf shadow shell silver sketch sleigh
spruce squirrel statue storm summit sunset swan tablet teapot temple thistle thunder tiger timber topaz tower
trumpet tulip tunnel turtle umbrella valley velvet violin volcano walnut waterfall whistle willow window winter
wizard yacht zebra""".split()
_ADJS = """ancient bright calm clever cozy crisp dusty eager faded fancy fierce gentle golden grumpy hidden humble
icy jolly lazy lively lucky mellow misty noble odd plain proud quiet rapid rusty shiny silent sleepy smoky snowy
sturdy sunny swift tiny vivid wild windy wooden""".split()
_LEADS = {
    "chatty": ["hey there, quick one:", "hi! so I was wondering,", "hello friend, could you maybe",
               "ok so random question but", "morning! hoping you can help,", "hiya, sorry to bother you,",
               "good evening, my friend asked me to", "yo, long day here, can u", "hey hey, tiny favour:"],
    "non_native": ["please kindly", "I am wanting to", "can you to", "is possible to", "please you help me",
                   "me need to", "how I can", "kindly do the"],
}
_TRAILERS = {"chatty": ["thanks a ton!", "appreciate it :)", "no rush", "cheers", "you're the best", "ty!!", ""],
             "non_native": ["thank you sir", "please", "thanks for kind help", "", "regards"]}
_FILLERS = ["asap", "quickly", "again", "now", "today", "soon"]  # not ones curate strips as politeness
_UNITS = ["km", "kg", "mph", "usd", "eur", "ml", "GB", "°C"]


def is_synthesis_request(request: GenerateRequest) -> bool:
    """Whether the request asks for JSON with a ``queries`` array (what ``distill synthesize`` sends)."""
    schema = request.response_schema
    props = pick(schema, "properties") if isinstance(schema, dict) else None
    queries = props.get("queries") if isinstance(props, dict) else None
    return isinstance(queries, dict) and str(queries.get("type", "")).lower() == "array"


def read_cell(request: GenerateRequest) -> tuple[str, str, str, int]:
    """(tool, category, style, n) from the request's user turn and schema (defaults where a line is missing)."""
    text = request.last_user_text
    found = {k.lower().rstrip("s"): v for k, v in _CELL_LINE.findall(text)}
    tool = found.get("tool", "any").split(" ")[0].strip(" ,.;:-") or "any"
    category = found.get("category", "single").split(" ")[0].strip(" ,.;:-") or "single"
    style = found.get("style", "plain").split(" ")[0].strip(" ,.;:-") or "plain"
    items = (pick(request.response_schema, "properties") or {}).get("queries") or {}
    n = items.get("maxItems") or items.get("max_items")
    if n is None:
        match = _WRITE_N.search(text)
        n = int(match.group(1)) if match else 5
    return tool, category, style, max(1, min(int(n), 100))


class SynthesisPool:
    """Per-cell pools of fresh queries and the repeats drawn from what was already sent (thread-safe)."""

    def __init__(self, behaviour: SynthesisBehaviour, seed: int = 0):
        self.behaviour, self.seed = behaviour, seed
        self.lock = threading.Lock()
        self.sent: dict[str, list[str]] = {}
        self.seen: dict[str, set[str]] = {}
        self.requests: Counter = Counter()
        self.counts: Counter = Counter()
        """``fresh``, ``exact``, ``surface``, ``near`` (kinds of query sent) and ``cross_cell`` repeats."""

    def answer(self, request: GenerateRequest) -> dict[str, Any]:
        """The JSON value answering a synthesis request: ``{"queries": [...]}``."""
        tool, category, style, n = read_cell(request)
        cell = f"{tool}|{category}|{style}"
        with self.lock:
            self.requests[cell] += 1
            rng = random.Random(f"{self.seed}|synth|{cell}|{self.requests[cell]}")
            return {"queries": [self._draw(cell, tool, category, style, rng) for _ in range(n)]}

    def stats(self) -> dict:
        with self.lock:
            counts = {k: self.counts[k] for k in ("fresh", "exact", "surface", "near", "cross_cell")}
            return {"cells": len(self.requests), "requests": sum(self.requests.values()), **counts,
                    "planted_repeats": self.counts["exact"] + self.counts["surface"] + self.counts["near"]}

    # ------------------------------------------------------------ drawing

    def _draw(self, cell: str, tool: str, category: str, style: str, rng: random.Random) -> str:
        b = self.behaviour
        sent = self.sent.setdefault(cell, [])
        spent = len(sent) >= b.pool_size
        if sent and (spent or rng.random() < b.repeat_rate):
            return self._repeat(cell, rng)
        seen = self.seen.setdefault(cell, set())
        for _ in range(50):
            text = _fresh(tool, category, style, rng)
            if normalize_text(text) not in seen:
                break
        seen.add(normalize_text(text))
        sent.append(text)
        self.counts["fresh"] += 1
        return text

    def _repeat(self, cell: str, rng: random.Random) -> str:
        b = self.behaviour
        source = cell
        others = [c for c in self.sent if c != cell and self.sent[c]]
        if others and rng.random() < b.cross_cell_rate:
            source = rng.choice(sorted(others))
            self.counts["cross_cell"] += 1
        text = rng.choice(self.sent[source])
        r = rng.random()
        if r < b.exact_share:
            self.counts["exact"] += 1
            return text
        if r < b.exact_share + b.surface_share:
            self.counts["surface"] += 1
            return _surface_variant(text, rng)
        self.counts["near"] += 1
        return _near_variant(text, rng)


def _fresh(tool: str, category: str, style: str, rng: random.Random) -> str:
    n1, n2, n3 = rng.sample(_NOUNS, 3)
    adj = rng.choice(_ADJS)
    what = tool.replace("_", " ")
    body = {
        "single": f"{what} for the {adj} {n1} near {n2} {n3}",
        "multi": f"{what} the {adj} {n1} and then compare {n2} with {n3}",
        "no_tool": f"what do you honestly think of {adj} {n1} {n2} and {n3}",
        "ambiguous": f"{adj} {n1} or {n2} {n3} {what}?",
        "edge": f"{what} {n1}{rng.choice(['', '!!', '??', ' ...'])} {n2} {n3} {rng.randint(0, 99999)}",
    }.get(category, f"{what} {adj} {n1} {n2}")
    if style == "terse":
        return " ".join(w for w in body.split() if w not in ("the", "for", "and", "then", "with", "of"))
    if style == "typos":
        return " ".join(_typo(w, rng) if len(w) > 4 and rng.random() < 0.6 else w for w in body.split())
    if style in ("specifics", "numbers"):
        extra = rng.choice([f"{rng.randint(2, 9999)} {rng.choice(_UNITS)}", f"https://{n3}.example.com/{n1}",
                            f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/20{rng.randint(20, 30)}"])
        return f"{body} {extra}"
    if style in _LEADS:
        return f"{rng.choice(_LEADS[style])} {body} {rng.choice(_TRAILERS[style])}".strip()
    return body


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def _surface_variant(text: str, rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        return text.upper() if rng.random() < 0.3 else text[:1].upper() + text[1:]
    if kind == 1:
        return text.rstrip("?!. ") + rng.choice(["?", ".", "!", " ?"])
    return "  " + text.replace(" ", "  ", 1) + " "


def _near_variant(text: str, rng: random.Random) -> str:
    filler = rng.choice(_FILLERS)
    return f"{text} {filler}" if rng.random() < 0.7 else f"{filler}, {text}"
