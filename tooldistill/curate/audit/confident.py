"""Confident learning: flag rows whose label the out-of-sample classifiers find improbable (cleanlab).

The classes are tool sets (``Label.tool_set_key``; ``<none>`` for no tool), so on a catalogue with arguments this
audits the choice of tools; the argument checks audit the arguments. Two views of the classes: ``tool_set``, one
class per tool set, scored by multiclass classifiers (single-tool data such as intents); and ``tools``, where a
tool set's probability is composed from per-tool "the label calls t" classifiers (data with multi-tool labels,
whose combinations are too many and too rare to learn one by one; there a class is the set of distinct tools).
``auto`` picks ``tools`` when some label calls two or more tools. Steps:

1. score every row with the members of each model in ``AuditConfig.models`` (:mod:`.oof`), never with a model
   that trained on that row's label;
2. temperature-calibrate each member to the labels, average their log-probabilities, calibrate again;
3. ask cleanlab's ``find_label_issues`` (``prune_by_noise_rate``, the confident joint) *how many* rows are
   mislabeled, and flag that many rows with the lowest self-confidence ``p(given label)``: strength
   ``0.5 + 0.5 * (1 - p)``, so each is a flag on its own. Rows past that count whose most probable class is not
   their label get ``0.5 * (1 - p)``: supporting evidence, a flag only together with another signal.

Why count with cleanlab but rank by self-confidence: on CLINC150 with 10% injected noise the confident joint's
count lands within a few percent of the true number of errors, while self-confidence ranks them better than
cleanlab's own selection (F1 about 0.96 vs 0.85 for the selection itself; ``benchmarks/audit_clinc.py``).
"""

from __future__ import annotations

import time

import numpy as np

from ...catalog import Label
from ...progress import ProgressEvent
from .base import NONE_CLASS, AuditContext, Hit, SignalOutput, suggest_label
from .oof import TextFeatures, calibrate, known_models, member_scores, tool_presence_logits

MIN_ROWS = 20


def default_folds(n_rows: int) -> int:
    """Folds of the K-fold member: more when rows are few (cheap), fewer when many (the SVM dominates the time)."""
    return 5 if n_rows < 4000 else 3 if n_rows < 10000 else 2


def tool_view(items, config_view: str) -> str:
    """``tool_set`` (one class per tool set) or ``tools`` (per-tool presence), as configured or chosen.

    ``auto`` picks ``tools`` as soon as some label calls two or more tools: combinations are many and each rare, so
    a classifier over tool sets cannot learn them, while one per tool can and composes them.
    """
    if config_view != "auto":
        return config_view
    return "tools" if any(len(it.train_label.calls) >= 2 for it in items) else "tool_set"


def class_of(label: Label, view: str) -> str:
    """The class of a label in a view: its tool set, or in the ``tools`` view its set of distinct tools."""
    if view == "tools":
        return "+".join(sorted(set(label.tools))) or NONE_CLASS
    return label.tool_set_key


class ConfidentSignal:
    """Confident learning on out-of-sample probabilities of fast text classifiers (cleanlab)."""

    name = "confident"
    description = "confident learning (cleanlab) on out-of-sample class probabilities of fast text classifiers"

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        items = ctx.items
        view = tool_view(items, ctx.config.view)
        classes = sorted({class_of(it.train_label, view) for it in items})
        if len(items) < MIN_ROWS or len(classes) < 2:
            out.skipped = f"needs at least {MIN_ROWS} labeled queries and 2 tool sets (has {len(items)}, " \
                          f"{len(classes)})"
            return out
        unknown = [m for m in ctx.config.models if m not in known_models()]
        if unknown:
            from ...errors import ToolDistillError

            raise ToolDistillError(f"unknown audit model {unknown[0]!r} (known: {', '.join(known_models())})")
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[class_of(it.train_label, view)] for it in items])
        folds = ctx.config.folds or default_folds(len(items))
        features = TextFeatures([it.text for it in items])
        seconds: dict[str, float] = {}
        log_probs: dict[str, np.ndarray] = {}
        temperatures: dict[str, float] = {}
        for n_done, model in enumerate(ctx.config.models):
            ctx.progress(ProgressEvent("confident learning", n_done, len(ctx.config.models),
                                       f"confident learning: {model}"))
            start = time.perf_counter()
            if view == "tools":
                scores = {model: _tool_set_scores(items, classes, features, folds=folds, seed=ctx.config.seed,
                                                  model=model)}
            else:
                scores = member_scores(model, features, y, len(classes), folds=folds, seed=ctx.config.seed)
            for member, matrix in scores.items():
                log_probs[member], temperatures[member] = calibrate(matrix, y, seed=ctx.config.seed)
            seconds[model] = round(time.perf_counter() - start, 3)
        mean_lp, temperatures["ensemble"] = calibrate(np.mean(list(log_probs.values()), axis=0), y,
                                                      seed=ctx.config.seed)
        probs = np.exp(mean_lp)
        probs /= probs.sum(axis=1, keepdims=True)
        issues = _label_issues(y, probs)
        self_conf = probs[np.arange(len(y)), y]
        target_rows = [i for i, it in enumerate(items) if it.settled is None or ctx.config.include_reviewed]
        n_fire = int(issues[target_rows].sum())
        if ctx.config.max_confident_flags is not None:
            n_fire = min(n_fire, ctx.config.max_confident_flags)
        order = sorted(target_rows, key=lambda i: (self_conf[i], items[i].query_id))
        member_p = {m: np.exp(lp[np.arange(len(y)), y]) for m, lp in log_probs.items()}
        predicted = probs.argmax(axis=1)
        for rank, i in enumerate(order, 1):
            fired = rank <= n_fire
            if not fired and predicted[i] == y[i]:
                continue
            hit = self._hit(ctx, items[i], probs[i], y[i], classes, member_p, i, rank)
            hit.strength = 0.5 + hit.strength / 2 if fired else hit.strength / 2
            out.hits[items[i].query_id] = hit
        out.checked = len(target_rows)
        out.info = {
            "rows": len(items), "view": view, "classes": len(classes), "folds": folds,
            "models": list(ctx.config.models), "members": list(log_probs),
            "temperatures": {k: round(v, 5) for k, v in temperatures.items()},
            "estimated_issues": int(issues.sum()), "flagged": n_fire,
            "count_method": "cleanlab find_label_issues (prune_by_noise_rate) count; lowest self-confidence first",
            "accuracy_vs_labels": round(float((predicted == y).mean()), 4), "seconds": seconds,
        }
        return out

    @staticmethod
    def _hit(ctx, item, p, y_i, classes, member_p, row, rank) -> Hit:
        others = p.copy()
        others[y_i] = -1.0
        best = int(others.argmax())
        top = np.argsort(-p)[:3]
        suggested_cls = classes[best]
        if ctx.catalog.is_class_catalog or suggested_cls == NONE_CLASS:
            suggested = suggest_label(ctx.catalog, suggested_cls, Label(calls=[]))
        else:
            suggested = suggest_label(ctx.catalog, suggested_cls, item.label)
        evidence = {
            "p_label": round(float(p[y_i]), 4), "suggested": suggested_cls, "p_suggested": round(float(p[best]), 4),
            "top": [[classes[j], round(float(p[j]), 4)] for j in top],
            "members": {m: round(float(v[row]), 4) for m, v in member_p.items()}, "rank": rank,
        }
        return Hit(strength=float(1.0 - p[y_i]), evidence=evidence, suggested=suggested,
                   suggested_class=suggested_cls)


def _tool_set_scores(items, classes: list[str], features: TextFeatures, *, folds: int, seed: int,
                     model: str) -> np.ndarray:
    """Log-probability of each tool set from per-tool presence probabilities (the ``tools`` view).

    ``log P(S | x) = sum over tools t in S of log p_t(x) + sum over tools not in S of log(1 - p_t(x))``, with each
    ``p_t`` an out-of-sample, calibrated "the label calls t" probability: a rare combination of common tools gets
    the probability its parts earn.
    """
    tools = sorted({t for it in items for t in it.train_label.tools})
    col = {t: j for j, t in enumerate(tools)}
    presence = np.zeros((len(items), len(tools)), dtype=np.int8)
    for i, it in enumerate(items):
        for t in it.train_label.tools:
            presence[i, col[t]] = 1
    logits = tool_presence_logits(features, presence, folds=folds, seed=seed, model=model)
    member = np.zeros((len(classes), len(tools)))
    for c, key in enumerate(classes):
        for t in ([] if key == NONE_CLASS else key.split("+")):
            member[c, col[t]] = 1.0
    log_yes, log_no = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
    return log_yes @ member.T + log_no @ (1.0 - member).T


def _label_issues(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's boolean issue mask (the confident joint, pruned by noise rate), single process."""
    import warnings

    from cleanlab.filter import find_label_issues

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about tiny classes; their rows are still scored
        return np.asarray(find_label_issues(labels=y, pred_probs=probs, filter_by="prune_by_noise_rate", n_jobs=1))
