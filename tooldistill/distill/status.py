"""Where a labeling job stands, read from the database alone (works while a run goes on, or after)."""

from __future__ import annotations

import time

from sqlite_utils import Database

from ..db.queue import queue_counts
from .cache import cache_size

PAID = ("ok", "rejected")


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t)) if t else None


RATE_WINDOW_S = 600.0


def distill_status(db: Database, *, now: float | None = None, clock=None, prices: dict | None = None) -> dict:
    """Queue counts, labels, buckets and slots with their states and until-times, requests by outcome, the recent
    rate, an ETA, tokens and their cost, and Batch Mode jobs.

    A cooling or exhausted state whose time has passed is reported as ``ready`` (the next run will see it so).

    Args:
        clock: the quota clock (for an ETA that waits out daily limits); ``None``: the rate alone.
        prices: ``[distill.prices]`` overrides of the list prices.

    Returns: a JSON-able dict with keys ``queue``, ``labels``, ``buckets``, ``slots``, ``requests``, ``cache``,
    ``progress`` (``labels_per_min`` over the last 10 minutes of requests, ``pending``, ``eta_s``), ``cost``
    (``usd`` and ``by_model`` at list prices; ``None`` where a model has no price), ``batches`` and
    ``recent_errors``.
    """
    from .pricing import cost_usd
    from .runner import eta_seconds

    now = time.time() if now is None else now
    buckets = []
    for row in db.query("SELECT * FROM buckets ORDER BY project, model"):
        until = row.get("until") or 0.0
        state = row["state"] if row["state"] in ("cooling", "exhausted") and until > now else "ready"
        buckets.append({
            "bucket": row["id"], "project": row["project"], "model": row["model"], "state": state,
            "until": until if state != "ready" else None, "until_local": _iso(until) if state != "ready" else None,
            "reason": row.get("reason") if state != "ready" else None, "rpm": row.get("rpm"), "rpd": row.get("rpd"),
            "requests_today": row.get("requests_today") or 0, "day": row.get("day"),
            "left_today": max(0, row["rpd"] - (row.get("requests_today") or 0)) if row.get("rpd") else None,
            "slots": 1, "invalid_slots": 0,
        })
    slots = []
    for row in db.query("SELECT * FROM slots ORDER BY env_var, model"):
        until = row.get("until") or 0.0
        state = row["state"]
        if state == "cooling" and until <= now:
            state = "ready"
        slots.append({
            "slot": row["id"], "fingerprint": row["fingerprint"], "env_var": row["env_var"],
            "project": row["project"], "model": row["model"], "state": state,
            "until": until if state == "cooling" else None, "reason": row.get("reason") if state != "ready" else None,
            "requests": row.get("requests") or 0,
        })
    by_outcome = {k: v for k, v in db.execute("SELECT outcome, count(*) FROM attempts GROUP BY 1 ORDER BY 2 DESC")}
    by_model = {k: v for k, v in db.execute("SELECT model, count(*) FROM attempts GROUP BY 1 ORDER BY 1")}
    tokens = db.execute("SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(output_tokens), 0) FROM attempts"
                        ).fetchone()
    last = db.execute("SELECT max(sent_at) FROM attempts").fetchone()[0]
    labels = {}
    for purpose, valid, n in db.execute("SELECT purpose, valid, count(*) FROM labels WHERE source = 'teacher'"
                                        " GROUP BY 1, 2"):
        labels.setdefault(purpose or "label", {"accepted": 0, "rejected": 0})["accepted" if valid else "rejected"] = n
    answered = db.execute(
        "SELECT coalesce(sum(coalesce(pack_size, 1)), 0), min(sent_at), max(sent_at) FROM attempts"
        " WHERE outcome IN ('ok', 'rejected') AND sent_at > ?", [now - RATE_WINDOW_S]).fetchone()
    span = (answered[2] - answered[1]) if answered[1] is not None else 0.0
    rate = answered[0] / max(span, 60.0) * 60 if answered[0] else None
    counts = queue_counts(db)
    pending = sum(c["pending"] + c["leased"] for p, c in counts.items() if p in ("label", "relabel"))
    pack = db.execute("SELECT max(coalesce(pack_size, 1)) FROM attempts WHERE sent_at > ?",
                      [now - RATE_WINDOW_S]).fetchone()[0] or 1
    by_model_cost, total_cost = {}, 0.0
    for model, p_tok, o_tok in db.execute("SELECT model, coalesce(sum(prompt_tokens), 0),"
                                          " coalesce(sum(output_tokens), 0) FROM attempts GROUP BY 1"):
        c = cost_usd(model, p_tok, o_tok, prices=prices)
        by_model_cost[model] = round(c, 6) if c is not None else None
        total_cost += c or 0.0
    batches = None
    if db["batches"].exists() and db.execute("SELECT 1 FROM batches LIMIT 1").fetchone():
        row = db.execute("SELECT count(*), coalesce(sum(labels), 0), coalesce(sum(cost_usd), 0) FROM batches"
                         ).fetchone()
        batches = {"batches": row[0], "labels": row[1], "cost_usd": round(row[2], 6),
                   "by_state": dict(db.execute("SELECT state, count(*) FROM batches GROUP BY 1 ORDER BY 1"))}
    errors = [{"state": st, "error": err, "jobs": n} for st, err, n in db.execute(
        "SELECT state, last_error, count(*) FROM jobs WHERE state IN ('failed', 'dead') GROUP BY 1, 2"
        " ORDER BY 3 DESC LIMIT 5")]
    return {
        "queue": counts,
        "labels": labels,
        "buckets": buckets,
        "slots": slots,
        "requests": {
            "total": sum(by_outcome.values()), "paid": sum(by_outcome.get(k, 0) for k in PAID),
            "by_outcome": by_outcome, "by_model": by_model,
            "prompt_tokens": tokens[0], "output_tokens": tokens[1], "last_request": _iso(last),
        },
        "cache": {"entries": cache_size(db),
                  "hits": db.execute("SELECT count(*) FROM jobs WHERE cache_hit = 1").fetchone()[0]},
        "progress": {"labels_per_min": round(rate, 1) if rate is not None else None, "pending": pending,
                     "eta_s": eta_seconds(pending, rate, buckets, pack=pack, clock=clock)},
        "cost": {"usd": round(total_cost, 6), "by_model": by_model_cost, "prices": "list prices (estimate)"},
        "batches": batches,
        "recent_errors": errors,
    }
