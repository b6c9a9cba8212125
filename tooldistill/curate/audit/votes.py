"""Disagreement among teacher votes: a query labeled more than once (several models, relabel votes, another
prompt version) whose audited label the other votes contradict.

Each distinct (model, purpose, prompt version, job params) answer is one vote, its latest valid label. With ``k``
other votes of which ``d`` name a different tool set, the strength is ``d / (k + 1)``, the share of all votes
against the audited label, and the signal fires from one half up (one other model disagreeing is worth a look).
When every vote names the same tools but most others fill the arguments differently, it fires at half that.
"""

from __future__ import annotations

import json
from collections import Counter

from ...catalog import parse_label
from .base import AuditContext, Hit, SignalOutput, arg_differences


def label_votes(db, query_ids: set[int] | None = None) -> dict[int, list[dict]]:
    """Every distinct valid answer per query: ``{query_id: [{"label_id", "model", "purpose", "prompt_version",
    "vote", "label"}, ...]}``, one per (model, purpose, prompt version, job params), the latest kept."""
    rows = db.execute(
        "SELECT l.id, l.query_id, l.model, l.purpose, l.prompt_version, l.calls, j.params FROM labels l"
        " LEFT JOIN jobs j ON j.id = l.job_id WHERE l.valid = 1 AND l.calls IS NOT NULL ORDER BY l.id"
    ).fetchall()
    latest: dict[tuple, dict] = {}
    for label_id, qid, model, purpose, pv, calls, params in rows:
        if query_ids is not None and qid not in query_ids:
            continue
        params = json.loads(params) if params else {}
        key = (qid, model, purpose, pv, json.dumps(params, sort_keys=True))
        latest[key] = {"label_id": label_id, "model": model, "purpose": purpose, "prompt_version": pv,
                       "vote": params.get("vote"), "label": parse_label(json.loads(calls))}
    out: dict[int, list[dict]] = {}
    for (qid, *_), vote in latest.items():
        out.setdefault(qid, []).append(vote)
    for votes in out.values():
        votes.sort(key=lambda v: v["label_id"])
    return out


class VotesSignal:
    """The audited label vs the query's other teacher answers."""

    name = "votes"
    description = "disagreement among several teacher answers for the same query"

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        targets = {it.query_id: it for it in ctx.targets}
        votes = label_votes(ctx.db, set(targets))
        multi = {qid: v for qid, v in votes.items() if len(v) >= 2}
        if not multi:
            out.skipped = "no audited query has more than one teacher answer"
            return out
        out.checked = len(multi)
        for qid, all_votes in multi.items():
            item = targets[qid]
            others = [v for v in all_votes if v["label_id"] != item.label_id]
            if not others:
                continue
            against = [v for v in others if v["label"].tool_set_key != item.cls]
            strength = len(against) / (len(others) + 1)
            kind = "tools"
            if strength < 0.5:
                against = [v for v in others if v["label"].tool_set_key == item.cls
                           and arg_differences(v["label"], item.label)]
                strength = 0.5 * len(against) / (len(others) + 1)
                kind = "args"
                if len(against) / (len(others) + 1) < 0.5:
                    continue
            top_hash, _ = Counter(v["label"].hash for v in against).most_common(1)[0]
            chosen = next(v["label"] for v in against if v["label"].hash == top_hash)
            evidence = {
                "differs": kind, "against": len(against), "votes": len(others) + 1,
                "answers": [{"model": v["model"], "purpose": v["purpose"], "vote": v["vote"],
                             "label": v["label"].to_json()} for v in others],
            }
            suggested = None if ctx.catalog.label_errors(chosen) else chosen
            out.hits[qid] = Hit(strength, evidence, suggested=suggested, suggested_class=chosen.tool_set_key)
        return out
