"""Baseline routers: the majority label, and a keyword/regex router (what a distilled student replaces).

The keyword router has a few hand-written patterns per tool of the default catalogue, with argument extractors,
tried in a fixed priority order (the seeds' regex classifier was this kind of thing). For any other tool, and
for class catalogues such as CLINC150's, it derives keywords: the tokens of the tool's name, plus, when training
examples are given, the words that point to one tool (>= 80% of their occurrences, seen >= 3 times). A request
made of clauses that each match a different rule ("... and ...") becomes a multi-tool call.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from ..catalog import Catalog, Label, ToolCall, load_catalog

BASELINES = ("majority", "keyword")
"""Baseline names :func:`make_baseline` knows (``regex`` is an alias of ``keyword``)."""

_LANGS = ("afrikaans arabic bengali bulgarian catalan chinese mandarin cantonese croatian czech danish dutch english "
          "estonian finnish french german greek hebrew hindi hungarian icelandic indonesian irish italian japanese "
          "korean latin latvian lithuanian malay norwegian persian farsi polish portuguese romanian russian serbian "
          "slovak slovenian spanish swahili swedish tagalog thai turkish ukrainian urdu vietnamese welsh").split()
_UNITS = (r"km|kilometers?|kilometres?|miles?|mi|m|meters?|metres?|cm|centimeters?|mm|feet|foot|ft|inch(?:es)?|in|"
          r"yards?|yd|kg|kilograms?|kilos?|g|grams?|pounds?|lbs?|lb|ounces?|oz|stones?|tons?|tonnes?|celsius|"
          r"fahrenheit|kelvin|°c|°f|c|f|liters?|litres?|l|ml|milliliters?|gallons?|gal|quarts?|pints?|cups?|"
          r"mph|km/h|kmh|kph|knots?|m/s|acres?|hectares?")
_STOP = set("a an the to of in on for and or is are was be what whats how who me my i you it do does can could "
            "please tell show give get find with at by from this that there".split())
_TIME_WORDS = r"(?:today|tomorrow|tonight|this (?:week(?:end)?|morning|afternoon|evening)|next week|right now|now)"


def _clean(text: str) -> str:
    return text.strip().strip("?!.,;:\"' ").strip()


def _after(pattern: str, text: str) -> str | None:
    m = re.search(pattern, text, re.I)
    return _clean(m.group(1)) if m and _clean(m.group(1)) else None


def _quoted(text: str) -> str | None:
    m = re.search(r"[\"“']([^\"”']{1,200})[\"”']", text)
    return m.group(1).strip() if m else None


def _weather_args(text: str) -> dict:
    loc = _after(rf"\b(?:in|for|at)\s+([^?.!,]+?)(?:\s+{_TIME_WORDS})?\s*[?.!]*$", text)
    return {"location": loc or _clean(text)}


def _calc_args(text: str) -> dict:
    expr = _after(r"(?:calculate|compute|evaluate|what(?:'s| is)|how much is|solve)\s+(.+)$", text) or _clean(text)
    return {"expression": expr}


def _convert_args(text: str) -> dict:
    m = re.search(rf"(-?\d+(?:[.,]\d+)?)\s*({_UNITS})\b\s*(?:to|in|into|as)\s+({_UNITS})\b", text, re.I)
    if m:
        return {"value": float(m.group(1).replace(",", "")), "from": m.group(2), "to": m.group(3)}
    num = re.search(r"-?\d+(?:\.\d+)?", text)
    return {"value": float(num.group(0)) if num else 1.0, "from": "", "to": ""}


def _translate_args(text: str) -> dict:
    lang = next((w for w in _LANGS if re.search(rf"\b{w}\b", text, re.I)), "")
    body = _quoted(text) or _after(r"translate\s+(.+?)\s+(?:to|into)\s+\w+", text) or \
        _after(r"how (?:do|would) (?:you|i) say\s+(.+?)\s+in\s+\w+", text) or _clean(text)
    return {"text": body, "to_lang": lang.capitalize()}


def _datetime_args(text: str) -> dict:
    t = text.lower()
    if re.search(r"\bdays? (?:until|till|to|left)\b|\bhow (?:many|long) (?:days )?until\b", t):
        return {"action": "days_until", "date": _after(r"(?:until|till|to|before)\s+(.+)$", text) or ""}
    if re.search(r"\bwhat day\b|\bday of the week\b|\bweekday\b", t):
        return {"action": "day_of_week", "date": _after(r"(?:is|was|will be|falls? on)\s+(.+)$", text) or ""}
    if re.search(r"\bconvert\b|\bin .+ (?:when|if) it'?s\b|\bto (?:\w+ )?time\b", t) and " to " in t:
        args = {"action": "convert_timezone"}
        src, dst = _after(r"from\s+(.+?)\s+to\s+", text), _after(r"\bto\s+([^?.!]+)$", text)
        return {**args, **({"timezone": src} if src else {}), **({"target_timezone": dst} if dst else {})}
    if re.search(r"\bdate\b", t) and not re.search(r"\btime\b", t):
        return {"action": "current_date"}
    zone = _after(r"\b(?:in|at)\s+([^?.!,]+?)(?:\s+right now|\s+now)?\s*[?.!]*$", text)
    return {"action": "current_time", **({"timezone": zone} if zone else {})}


def _dictionary_args(text: str) -> dict:
    word = _quoted(text) or _after(r"(?:define|definition of|meaning of|synonyms? (?:of|for)|antonyms? (?:of|for)|"
                                   r"pronounce|what does)\s+(?:the word\s+)?([\w'-]+)", text)
    return {"word": word or _clean(text).split()[-1]}


def _query_after(pattern: str) -> Callable[[str], dict]:
    def extract(text: str) -> dict:
        return {"query": _after(pattern, text) or _clean(text)}
    return extract


@dataclass(frozen=True)
class Rule:
    """One keyword rule: when ``pattern`` matches, call ``tool`` with the arguments ``extract`` finds."""

    tool: str
    pattern: re.Pattern
    extract: Callable[[str], dict] = field(default=lambda text: {})
    weight: float = 1.0


def _rx(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.I)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("web_reader", _rx(r"https?://\S+|\bwww\.\S+|\b[\w-]+\.(?:com|org|net|io|dev|ai|edu|gov|co\.uk)(?:/\S*)?\b"),
         lambda t: {"url": (re.search(r"(https?://\S+|www\.\S+|\b[\w-]+\.(?:com|org|net|io|dev|ai|edu|gov|co\.uk)"
                                      r"(?:/\S*)?)", t, re.I).group(1).rstrip(".,;:!?)\"'"))}),
    Rule("translate", _rx(r"\btranslat\w*\b|\bhow (?:do|would) (?:you|i) say\b|\bin (?:" + "|".join(_LANGS) + r")\b"),
         _translate_args),
    Rule("unit_converter", _rx(rf"\d\s*(?:{_UNITS})\b\s*(?:to|in|into|as)\s+(?:{_UNITS})\b|\bconvert\b.*\b(?:{_UNITS})\b"),
         _convert_args),
    Rule("datetime", _rx(r"\bwhat time\b|\btime (?:is it )?in\b|\btime ?zone\b|\bwhat day\b|\bdays? (?:until|till|left)\b|"
                         r"\bhow many days\b|\b(?:today'?s|the|current) date\b|\bcurrent time\b|\bwhat'?s the time\b|"
                         r"\bweekday\b|\bday of the week\b"),
         _datetime_args),
    Rule("weather", _rx(r"\bw[h]?eather\b|\bforecast\b|\btemperature\b|\brain(?:ing|y)?\b|\bsnow(?:ing)?\b|\bsunny\b|"
                        r"\bhumid(?:ity)?\b|\bumbrella\b|\bwindy\b|\bhow (?:hot|cold|warm) is it\b"), _weather_args),
    Rule("calculator", _rx(r"\d\s*[-+*/x×^%]\s*\d|\bpercent\b|%\s*of\b|\bsquare root\b|\bsqrt\b|\bcalculate\b|"
                           r"\bcompute\b|\bsquared\b|\bcubed\b|\d+\s+(?:times|plus|minus|divided by)\s+\d|\baverage of\b|"
                           r"\bfactorial\b|\broot of\b|√"), _calc_args),
    Rule("dictionary", _rx(r"\bdefine\b|\bdefinition\b|\bmeaning of\b|\bwhat does .{1,30} mean\b|\bsynonyms?\b|"
                           r"\bantonyms?\b|\bpronounce\b|\bpart of speech\b|\ba real word\b|\bhow do you spell\b"), _dictionary_args),
    Rule("wikipedia", _rx(r"\bwho (?:was|is|were)\b|\bwiki(?:pedia)?\b|\btell me about\b|\bhistory of\b|\bbiography\b|"
                          r"\bwhat did .+ (?:discover|invent)\b|\bwhen was .+ born\b|\boverview of\b|\blife story\b"),
         _query_after(r"(?:who (?:was|is|were)|wikipedia(?: article)? (?:on|about|for)|tell me about|history of|"
                      r"biography of)\s+(.+)$")),
    Rule("web_search", _rx(r"\bsearch\b|\blook up\b|\bgoogle\b|\blatest\b|\bnews\b|\bprice of\b|\bhow much (?:does|do|is)\b|"
                           r"\breviews?\b|\bbest\b|\bnear me\b|\bfind\b|\bresults? for\b|\bscores?\b"),
         _query_after(r"(?:search(?: the web)? for|look up|google|find)\s+(.+)$")),
)

_CLAUSES = re.compile(r"\s*(?:;|,\s*and\s+(?:then\s+|also\s+)?|\s+and\s+(?:then\s+|also\s+)?|\.\s+|\?\s+|"
                      r",?\s+then\s+|\s+after that,?\s+|\s+&\s+)\s*", re.I)


def _name_tokens(name: str) -> list[str]:
    parts = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").replace(".", " ").lower()
    return [p for p in parts.split() if len(p) >= 3 and p not in _STOP]


def _stem(token: str) -> str:
    return token[:-1] if len(token) > 4 and token.endswith("s") else token


def fill_args(catalog: Catalog, tool: str, text: str) -> dict:
    """Generic arguments for a derived call: every required string argument gets the query text."""
    spec = catalog.by_name.get(tool)
    if spec is None:
        return {}
    return {name: _clean(text) for name in spec.required if spec.properties.get(name, {}).get("type") == "string"}


class KeywordRouter:
    """Route by regular expressions and keywords; ``name`` is ``keyword``."""

    name = "keyword"

    def __init__(self, catalog: Catalog, rules: Sequence[Rule], *, keywords: dict[str, set[str]] | None = None):
        self.catalog = catalog
        self.rules = [r for r in rules if r.tool in catalog.by_name]
        self.keywords = keywords or {}

    @classmethod
    def for_catalog(cls, catalog: Catalog, *, examples: Iterable[tuple[str, Label]] | None = None,
                    min_count: int = 3, min_share: float = 0.8, per_tool: int = 8) -> "KeywordRouter":
        """Build the router for ``catalog``: hand rules where they exist, derived keywords for the other tools.

        Args:
            catalog: the tools to route between.
            examples: (text, label) training pairs to mine keywords from (only for tools without hand rules).
            min_count, min_share, per_tool: a mined keyword occurs >= ``min_count`` times, >= ``min_share`` of them
                with one tool, and each tool keeps its ``per_tool`` most frequent.
        """
        default = load_catalog()
        # hand rules fit only tools that are the default catalogue's own (same name and arguments)
        hand = {r.tool for r in DEFAULT_RULES if r.tool in catalog.by_name and r.tool in default.by_name
                and catalog.by_name[r.tool].parameters == default.by_name[r.tool].parameters}
        derived = [t for t in catalog.names if t not in hand]
        keywords = {t: {_stem(tok) for tok in _name_tokens(t)} for t in derived}
        if examples is not None and derived:
            for tool, words in _mine_keywords(examples, set(derived), min_count, min_share, per_tool).items():
                keywords[tool] |= words
        rules = [r for r in DEFAULT_RULES if r.tool in hand]
        return cls(catalog, rules, keywords={t: w for t, w in keywords.items() if w})

    def _match(self, text: str) -> ToolCall | None:
        for rule in self.rules:
            if rule.pattern.search(text):
                return ToolCall(tool=rule.tool, args=rule.extract(text))
        if not self.keywords:
            return None
        words = {_stem(w) for w in re.findall(r"[a-z0-9']+", text.lower())}
        scores = [(len(kw & words), -i, tool) for i, (tool, kw) in enumerate(self.keywords.items()) if kw & words]
        if not scores:
            return None
        tool = max(scores)[2]
        return ToolCall(tool=tool, args=fill_args(self.catalog, tool, text))

    def predict(self, text: str) -> Label:
        """The label this router gives ``text``."""
        clauses = [c for c in _CLAUSES.split(text) if c.strip()]
        if len(clauses) >= 2:
            calls = [c for c in (self._match(cl) for cl in clauses) if c is not None]
            if len(calls) >= 2 and len({c.tool for c in calls}) >= 2:
                return Label(calls=calls)
        call = self._match(text)
        return Label(calls=[call] if call else [])

    def route(self, texts: Sequence[str]) -> list[str]:
        """Raw outputs (label JSON) for a batch of texts."""
        return [self.predict(t).to_json() for t in texts]


def _mine_keywords(examples, tools: set[str], min_count: int, min_share: float, per_tool: int) -> dict[str, set[str]]:
    by_word: dict[str, Counter] = defaultdict(Counter)
    for text, label in examples:
        key = label.tool_set_key
        for word in {_stem(w) for w in re.findall(r"[a-z0-9']+", text.lower())} - _STOP:
            if len(word) >= 3:
                by_word[word][key] += 1
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for word, counts in by_word.items():
        key, hits = counts.most_common(1)[0]
        total = sum(counts.values())
        if key in tools and hits >= min_count and hits / total >= min_share:
            out[key].append((hits, word))
    return {tool: {w for _, w in sorted(pairs, reverse=True)[:per_tool]} for tool, pairs in out.items()}


class MajorityRouter:
    """Always answer the most frequent tool set of the training labels (ties: the first seen).

    Arguments cannot be guessed from a majority, so each required string argument gets the query text.
    """

    name = "majority"

    def __init__(self, catalog: Catalog, tools: Sequence[str]):
        self.catalog = catalog
        self.tools = list(tools)

    @classmethod
    def fit(cls, catalog: Catalog, labels: Iterable[Label]) -> "MajorityRouter":
        """The majority router of ``labels`` (raises ValueError when there are none)."""
        counts = Counter(tuple(sorted(label.tools)) for label in labels)
        if not counts:
            raise ValueError("the majority baseline needs at least one training label")
        return cls(catalog, counts.most_common(1)[0][0])

    def predict(self, text: str) -> Label:
        return Label(calls=[ToolCall(tool=t, args=fill_args(self.catalog, t, text)) for t in self.tools])

    def route(self, texts: Sequence[str]) -> list[str]:
        return [self.predict(t).to_json() for t in texts]


def make_baseline(name: str, catalog: Catalog, *, examples: Sequence[tuple[str, Label]] | None = None):
    """Build a baseline router by name (``majority``, ``keyword`` or its alias ``regex``).

    Args:
        name: the baseline.
        catalog: the tools.
        examples: training (text, label) pairs; the majority baseline needs them, the keyword one mines them.

    Raises: ValueError naming the known baselines, or when ``majority`` gets no examples.
    """
    key = {"regex": "keyword"}.get(name, name)
    if key == "keyword":
        return KeywordRouter.for_catalog(catalog, examples=examples)
    if key == "majority":
        return MajorityRouter.fit(catalog, (label for _, label in (examples or ())))
    raise ValueError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)}, regex)")
