"""Where a labeling job stands, read from the database alone (works while a run goes on, or after)."""

from __future__ import annotations

import time

from sqlite_utils import Database

from ..db.queue import queue_counts
from .cache import cache_size

PAID = ("ok", "rejected")


def _iso(t: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t)) if t else None


def distill_status(db: Database, *, now: float | None = None) -> dict:
    """Queue counts, labels, buckets and slots with their states and until-times, requests by outcome.

    A cooling or exhausted state whose time has passed is reported as ``ready`` (the next run will see it so).

    Returns: a JSON-able dict with keys ``queue``, ``labels``, ``buckets``, ``slots``, ``requests``, ``cache``,
    ``recent_errors``.
    """
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
    errors = [{"state": st, "error": err, "jobs": n} for st, err, n in db.execute(
        "SELECT state, last_error, count(*) FROM jobs WHERE state IN ('failed', 'dead') GROUP BY 1, 2"
        " ORDER BY 3 DESC LIMIT 5")]
    return {
        "queue": queue_counts(db),
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
        "recent_errors": errors,
    }
