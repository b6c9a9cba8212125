"""What every audit signal shares: the audited rows, the config, a hit per suspicious row, a signal's output.

A *signal* looks at the audited teacher labels from one angle (confident learning, gold, votes, duplicate
clusters, arguments, a student) and returns a :class:`SignalOutput`: one :class:`Hit` per row it suspects, with a
``strength`` in [0, 1] (higher = more likely mislabeled, by this signal alone), its evidence and, when it has one,
a suggested label. :mod:`.core` combines the hits of all signals into one ranked flag per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from ...catalog import Catalog, Label, ToolCall, normalize_value
from ...progress import ProgressCallback, noop
from ...textnorm import normalize_text

SIGNAL_NAMES = ("confident", "gold", "votes", "duplicates", "arguments", "student")
NONE_CLASS = "<none>"


class AuditConfig(BaseModel):
    """Which signals run and how; every field has a working default."""

    model_config = ConfigDict(extra="forbid")

    # > which signals
    signals: tuple[str, ...] = Field(default=SIGNAL_NAMES, description="Signals to run (the student signal also "
                                     "needs predictions).")
    include_reviewed: bool = Field(default=False, description="Also flag queries a reviewer or an adjudication "
                                   "already settled.")
    seed: int = Field(default=0, description="Seed for fold assignment and anything random.")
    gold_clears: bool = Field(default=True, description="A teacher label that matches its gold is verified: no "
                              "other signal flags it (needs the gold signal).")
    # > confident learning
    models: tuple[str, ...] = Field(default=("ngram",), description="Out-of-sample classifiers for confident "
                                    "learning: 'ngram' and/or registered encoder names.")
    view: str = Field(default="auto", pattern="^(auto|tool_set|tools)$", description="Classes for confident "
                      "learning: 'tool_set' (one per tool set), 'tools' (per-tool presence, composed), or 'auto' "
                      "('tools' when some label calls two or more tools).")
    folds: int | None = Field(default=None, ge=2, le=20, description="Folds of the K-fold linear model "
                              "(default: 5 under 4,000 rows, 3 under 10,000, else 2).")
    max_confident_flags: int | None = Field(default=None, ge=0, description="Cap on confident-learning flags "
                                            "(default: cleanlab's estimate of the number of label issues).")
    # > arguments
    grounding_threshold: float = Field(default=0.75, ge=0, le=1, description="Fuzzy match below which an "
                                       "argument value counts as not found in the query.")
    extractive_rate: float = Field(default=0.95, ge=0, le=1, description="An argument is extractive (checked for "
                                   "grounding) when at least this share of its values are found in their query.")
    extractive_min_count: int = Field(default=10, ge=1, description="Values needed before an argument's "
                                      "grounding rate is trusted.")
    # > student
    student_min_confidence: float = Field(default=0.9, ge=0, le=1, description="Confidence above which a "
                                          "student's disagreement is a flag.")


@dataclass(frozen=True)
class AuditItem:
    """One audited query: its latest valid teacher label and what else is known about it."""

    query_id: int
    text: str
    label: Label
    """The audited label: the latest valid teacher/imported label (what ``db.teacher_labels`` returns)."""
    label_id: int
    model: str | None
    gold: Label | None
    train_label: Label
    """What classifiers learn from: the settled label (review or adjudication) when there is one, else ``label``."""
    settled: str | None = None
    """``review`` or ``adjudicated`` when that already decided this query (it is then not flagged by default)."""

    @property
    def cls(self) -> str:
        return self.label.tool_set_key


@dataclass
class Hit:
    """One signal's suspicion about one row."""

    strength: float
    """0-1, higher = more likely mislabeled according to this signal alone."""
    evidence: dict
    suggested: Label | None = None
    """A full suggested label (valid against the catalogue), when the signal has one."""
    suggested_class: str | None = None
    """The suggested tool set (``Label.tool_set_key``), when the signal has one."""


@dataclass
class SignalOutput:
    """What one signal produced: hits by query id, how many rows it could check, why it did not run."""

    name: str
    hits: dict[int, Hit] = field(default_factory=dict)
    cleared: set[int] = field(default_factory=set)
    """Rows this signal vouches for (gold agrees with the label): flagged by no signal."""
    checked: int = 0
    skipped: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class AuditContext:
    """Everything a signal may read."""

    db: Database
    catalog: Catalog
    items: list[AuditItem]
    config: AuditConfig
    progress: ProgressCallback = noop

    @property
    def targets(self) -> list[AuditItem]:
        """The rows that may be flagged (settled ones only with ``include_reviewed``)."""
        if self.config.include_reviewed:
            return self.items
        return [it for it in self.items if it.settled is None]


class Signal(Protocol):
    """An audit signal: a name, a one-line description, and ``run``."""

    name: str
    description: str

    def run(self, ctx: AuditContext) -> SignalOutput: ...


def class_key(tools: list[str] | tuple[str, ...]) -> str:
    """The ``Label.tool_set_key`` of a list of tool names."""
    return "+".join(sorted(tools)) or NONE_CLASS


def suggest_label(catalog: Catalog, cls: str, donor: Label) -> Label | None:
    """A full label of tool set ``cls`` built from ``donor``'s arguments, or None when none fits the catalogue.

    Calls of ``donor`` whose tool is in ``cls`` are kept; for a new tool, the donor's arguments with a matching
    name are reused, and when both tools take exactly one required string the value moves over (``web_search``'s
    ``query`` becomes ``wikipedia``'s ``query``). Parameterless tools need nothing.
    """
    if cls == NONE_CLASS:
        return Label(calls=[])
    kept = list(donor.calls)
    calls: list[ToolCall] = []
    for tool_name in cls.split("+"):
        tool = catalog.by_name.get(tool_name)
        if tool is None:
            return None
        same = next((c for c in kept if c.tool == tool_name), None)
        if same is not None:
            kept.remove(same)
            calls.append(same)
            continue
        args: dict = {}
        for call in donor.calls:
            for k, v in call.args.items():
                if k in tool.properties and k not in args:
                    args[k] = v
        req = [r for r in tool.required if tool.properties.get(r, {}).get("type") == "string"]
        if len(req) == 1 and req[0] not in args:
            src = [(k, v) for c in donor.calls for k, v in c.args.items() if isinstance(v, str)]
            if len(src) == 1:
                args[req[0]] = src[0][1]
        calls.append(ToolCall(tool=tool_name, args=normalize_value(args, tool.parameters)))
    label = Label(calls=calls)
    return label if not catalog.label_errors(label) else None


def norm_value(value: Any) -> Any:
    """An argument value in the form two labels are compared in: case and spacing of strings ignored."""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [norm_value(v) for v in value]
    if isinstance(value, dict):
        return {k: norm_value(v) for k, v in sorted(value.items())}
    return value


def arg_differences(a: Label, b: Label) -> list[str]:
    """The argument names whose values differ (normalised) between two labels with the same tool set."""
    diffs: list[str] = []
    left = sorted(a.calls, key=lambda c: c.tool)
    right = sorted(b.calls, key=lambda c: c.tool)
    for ca, cb in zip(left, right):
        for key in sorted(set(ca.args) | set(cb.args)):
            if norm_value(ca.args.get(key)) != norm_value(cb.args.get(key)):
                diffs.append(f"{ca.tool}.{key}")
    return diffs
