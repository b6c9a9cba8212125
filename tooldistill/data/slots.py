"""Slot samplers: draw the values a query template fills in, with the argument each value becomes.

A :class:`Value` is what the user writes (``text``) and, unless the argument is the text itself (``arg`` is
None), the argument value the gold label gets: ``"15% of 2850"`` is written, ``"0.15 * 2850"`` is the calculator's
expression. Verbatim values follow the text through casing noise, so a string argument always appears in the
query exactly as written (the audit's grounding check relies on it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from . import vocab


@dataclass(frozen=True)
class Value:
    """A slot value: the text shown, the argument it stands for (None: the text itself), alternative arguments."""

    text: str
    arg: Any = None
    alts: tuple = ()

    @property
    def verbatim(self) -> bool:
        return self.arg is None


def _num(rng: random.Random) -> int:
    """A positive integer with a varied number of digits (small numbers are more common)."""
    return rng.choice((rng.randint(2, 20), rng.randint(2, 99), rng.randint(10, 999), rng.randint(100, 9999),
                       rng.randint(1000, 99999)))


def _pct_decimal(p: int | float) -> str:
    """``15`` -> ``"0.15"``, exactly (no float artefacts)."""
    return format((Decimal(str(p)) / 100).normalize(), "f")


def sample_calc(rng: random.Random) -> Value:
    """A calculator request in words or symbols, with the expression the calculator gets."""
    a, b, c = _num(rng), _num(rng), rng.randint(2, 50)
    k = rng.randint(2, 9)
    forms = (
        (f"{a} times {b}", f"{a} * {b}"), (f"{a} * {b}", f"{a} * {b}"), (f"{a} x {b}", f"{a} * {b}"),
        (f"{a} multiplied by {b}", f"{a} * {b}"), (f"{a} plus {b}", f"{a} + {b}"), (f"{a} + {b}", f"{a} + {b}"),
        (f"{a} minus {b}", f"{a} - {b}"), (f"{a} - {b}", f"{a} - {b}"), (f"{a} divided by {b}", f"{a} / {b}"),
        (f"{a} / {b}", f"{a} / {b}"), (f"{a} squared", f"{a}^2"), (f"{a} cubed", f"{a}^3"),
        (f"{c} to the power of {k}", f"{c}^{k}"), (f"{c}^{k}", f"{c}^{k}"), (f"the square root of {a}", f"sqrt({a})"),
        (f"sqrt({a})", f"sqrt({a})"), (f"({a} + {b}) * {c}", f"({a} + {b}) * {c}"), (f"{a} + {b} * {c}", f"{a} + {b} * {c}"),
        (f"the average of {a}, {b} and {c}", f"({a} + {b} + {c}) / 3"), (f"{a} mod {c}", f"{a} % {c}"),
        (f"{k} factorial", f"factorial({k})"), (f"{a}.{k} * {c}", f"{a}.{k} * {c}"), (f"{a} percent of {b}", None),
    )
    text, expr = rng.choice(forms)
    if expr is None:
        return sample_pct(rng, percent_word=True)
    return Value(text, expr)


def sample_pct(rng: random.Random, *, percent_word: bool = False) -> Value:
    """``"15% of 2850"`` with expression ``"0.15 * 2850"`` (alternatives: other correct spellings)."""
    p = rng.choice((rng.randint(1, 99), rng.choice((5, 10, 12.5, 15, 18, 20, 25, 33, 50, 75, 150))))
    n = rng.choice((_num(rng), round(rng.uniform(5, 500), 2)))
    text = f"{p} percent of {n}" if percent_word else f"{p}% of {n}"
    expr = f"{_pct_decimal(p)} * {n}"
    return Value(text, expr, alts=(f"{p}/100 * {n}", f"{n} * {_pct_decimal(p)}", f"{p}% of {n}"))


def sample_root(rng: random.Random) -> Value:
    n = rng.choice((rng.randint(2, 999), rng.randint(1000, 99999)))
    return Value(str(n), f"sqrt({n})")


def sample_symbolic(rng: random.Random) -> Value:
    """A bare expression typed with symbols: the expression is the text (verbatim)."""
    a, b, c = _num(rng), _num(rng), rng.randint(2, 30)
    sp = rng.choice(("", " "))
    return Value(rng.choice((f"{a}{sp}*{sp}{b}", f"{a}{sp}+{sp}{b}", f"{a}{sp}-{sp}{b}", f"{a}{sp}/{sp}{c}",
                             f"({a}{sp}+{sp}{b}){sp}*{sp}{c}", f"{c}^{rng.randint(2, 12)}", f"{a}.{c}{sp}*{sp}{c}")))


def sample_units(rng: random.Random) -> dict[str, Value]:
    """A value and two distinct units of one dimension, drawn together (``value``, ``from``, ``to``)."""
    group = rng.choice(vocab.UNIT_GROUPS)
    src, dst = rng.sample(group, 2)
    value = rng.choice((rng.randint(1, 100), rng.randint(1, 2000), round(rng.uniform(0.1, 300), 1)))
    return {"value": Value(str(value), value), "from": Value(src), "to": Value(dst)}


def sample_url(rng: random.Random) -> Value:
    domain = rng.choice(vocab.DOMAINS)
    path = "/".join(rng.sample(vocab.URL_WORDS, rng.randint(1, 3)))
    slug = rng.choice(("", f"-{rng.randint(1, 999)}", f"/{rng.randint(1000, 99999)}", ".html"))
    scheme = rng.choice(("https://", "https://www.", "http://", "https://"))
    if domain.count(".") > 1 and scheme.endswith("www."):
        scheme = "https://"
    return Value(f"{scheme}{domain}/{path}{slug}")


def sample_search(rng: random.Random) -> Value:
    pattern = rng.choice(vocab.SEARCH_PATTERNS)
    subject, subject2 = rng.sample(vocab.SEARCH_SUBJECTS, 2)
    city, city2 = rng.sample(vocab.CITIES, 2)
    return Value(pattern.format(
        subject=subject, subject2=subject2, company=rng.choice(vocab.COMPANIES), team=rng.choice(vocab.TEAMS),
        event=rng.choice(vocab.EVENTS), year=rng.choice(vocab.YEARS), thing=rng.choice(vocab.THINGS), city=city,
        city2=city2, movie=rng.choice(vocab.MOVIES),
    ))


def _tz(rng: random.Random) -> Value:
    return Value(rng.choice(vocab.TIMEZONES) if rng.random() < 0.35 else rng.choice(vocab.CITIES))


def _pick(items: tuple[str, ...]) -> Callable[[random.Random], Value]:
    return lambda rng: Value(rng.choice(items))


SAMPLERS: dict[str, Callable[[random.Random], Value]] = {
    "location": _pick(vocab.CITIES), "tz": _tz, "wiki": _pick(vocab.TOPICS + vocab.PEOPLE),
    "person": _pick(vocab.PEOPLE), "topic": _pick(vocab.TOPICS), "amb": _pick(vocab.AMBIGUOUS_TOPICS),
    "concept": _pick(vocab.CONCEPTS), "word": _pick(vocab.WORDS), "phrase": _pick(vocab.PHRASES),
    "short": _pick(vocab.SHORT_PHRASES), "lang": _pick(vocab.LANGUAGES), "url": sample_url, "search": sample_search,
    "date": _pick(vocab.DATES), "hdate": _pick(vocab.HISTORIC_DATES), "time": _pick(vocab.TIMES),
    "calc": sample_calc, "pct": sample_pct, "root": sample_root, "sym": sample_symbolic,
    # slots that never become arguments (no-tool requests, traps)
    "form": _pick(vocab.WRITING_FORMS), "subject": _pick(vocab.WRITING_SUBJECTS),
    "explain": _pick(vocab.EXPLAIN_SUBJECTS), "activity": _pick(vocab.ACTIVITIES),
    "ingredient": _pick(vocab.INGREDIENTS), "codetask": _pick(vocab.CODE_TASKS), "name": _pick(vocab.NAMES),
    "relation": _pick(vocab.RELATIONS), "animal": _pick(vocab.ANIMALS), "fav": _pick(vocab.FAVORITES),
    "thing": _pick(vocab.THINGS),
}
JOINT_SAMPLERS: dict[str, Callable[[random.Random], dict[str, Value]]] = {
    "value": sample_units, "from": sample_units, "to": sample_units,
}
"""Slots drawn together: asking for any of them fills all of the group."""


def base_name(slot: str) -> str:
    """``location2`` -> ``location``: a trailing digit asks for a second, independent value of the same kind."""
    return slot.rstrip("0123456789")


def fill(slots: list[str], rng: random.Random) -> dict[str, Value]:
    """Draw a value for every slot name; same-kind slots (``x``, ``x2``) get distinct values when possible."""
    values: dict[str, Value] = {}
    for slot in slots:
        if slot in values:
            continue
        base = base_name(slot)
        if base in JOINT_SAMPLERS:
            suffix = slot[len(base):]
            values.update({k + suffix: v for k, v in JOINT_SAMPLERS[base](rng).items()})
            continue
        sampler = SAMPLERS[base]
        value = sampler(rng)
        for _ in range(5):
            if all(value.text != v.text for k, v in values.items() if base_name(k) == base):
                break
            value = sampler(rng)
        values[slot] = value
    return values
