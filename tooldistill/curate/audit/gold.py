"""Disagreement with gold: a query with a verified label (template-generated or imported as verified) whose
teacher label says otherwise.

A different tool set is near-certain evidence (strength 0.99). Same tools with different argument values (compared
case- and spacing-insensitively, numbers as numbers) is strong but not certain evidence (0.8): gold templates
and teachers can both phrase a value differently. A label that matches its gold is *cleared*: two independent
sources agree, so no other signal flags it (``AuditConfig.gold_clears``; turn it off to audit the gold itself).
"""

from __future__ import annotations

from .base import AuditContext, Hit, SignalOutput, arg_differences

TOOLS_STRENGTH = 0.99
ARGS_STRENGTH = 0.8


class GoldSignal:
    """Teacher label vs the query's gold label."""

    name = "gold"
    description = "disagreement with the query's gold label"

    def run(self, ctx: AuditContext) -> SignalOutput:
        out = SignalOutput(self.name)
        with_gold = [it for it in ctx.targets if it.gold is not None]
        if not with_gold:
            out.skipped = "no audited query has a gold label"
            return out
        out.checked = len(with_gold)
        for it in with_gold:
            gold = it.gold
            if it.label.tool_set_key != gold.tool_set_key:
                out.hits[it.query_id] = Hit(
                    TOOLS_STRENGTH, {"gold": gold.to_json(), "differs": "tools"}, suggested=gold,
                    suggested_class=gold.tool_set_key)
                continue
            diffs = arg_differences(it.label, gold)
            if diffs:
                out.hits[it.query_id] = Hit(
                    ARGS_STRENGTH, {"gold": gold.to_json(), "differs": "args", "args": diffs}, suggested=gold,
                    suggested_class=gold.tool_set_key)
            elif ctx.config.gold_clears:
                out.cleared.add(it.query_id)
        out.info = {"agree": out.checked - len(out.hits), "cleared": len(out.cleared)}
        return out
