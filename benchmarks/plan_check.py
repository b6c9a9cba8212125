"""`distill plan` on a 20,000-query queue with 6 free-tier keys in 3 projects, checked against a real run.

1. The plan as a user would see it: 6 keys in 3 projects (2 per project), the two default models, free-tier
   limits (nothing configured: 5/10 RPM, 20 RPD per project and model), ``--pack 8``; keys checked against the
   fake Gemini server (which knows them).
2. The same plan at a shortened quota day (``--day-seconds``): RPD stays the free tier's 20 per bucket; RPM is
   raised to 600 on both sides so a fake day's quota can be spent in a few seconds. Then the run itself
   (``run_distill`` with ``wait``, the server in its own process with the same day) labels the whole queue, and
   its requests, quota days, tokens and cost are set beside the plan's. The plan is made at the start of a fake
   day, as a user would start a job early in the day.

Usage: python benchmarks/plan_check.py [--queries 20000] [--pack 8] [--day-seconds 8] [--json]
Prints one figure per line; the run takes about days x day-seconds (about 3 minutes by default).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import print_figures, start_fake_server  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from tooldistill.catalog import load_catalog  # noqa: E402
from tooldistill.db import get_catalog, insert_queries, open_db  # noqa: E402
from tooldistill.distill import DistillSettings, parse_keys, run_distill  # noqa: E402
from tooldistill.distill.clock import FastClock, make_clock  # noqa: E402
from tooldistill.distill.plan import plan_job  # noqa: E402
from tooldistill.distill.pricing import cost_usd  # noqa: E402
from tooldistill.distill.prompt import build_prompt  # noqa: E402

MODELS = ["gemini-2.5-flash", "gemini-2.5-flash-lite"]
PROJECTS = ("proj-a", "proj-b", "proj-c")
KEYS = {f"free-key-{i}-{p}": p for p in PROJECTS for i in (1, 2)}
FREE_RPD = 20


def start_server(work: Path, oracle: Path, *, day_seconds: float, rpm: int, rpd: int):
    cfg = {"keys": KEYS, "models": {m: {"rpm": rpm, "rpd": rpd} for m in MODELS}, "oracle_db": str(oracle),
           "day_seconds": day_seconds, "latency_s": [0.05, 0.2]}
    return start_fake_server(work, cfg)


def summary_of_plan(p: dict) -> dict:
    return {"jobs": p["jobs"]["total"], "requests": p["requests"], "requests per day": p["requests_per_day"],
            "quota days": p["days"], "sending minutes per day at RPM": p["minutes_of_sending_per_day"],
            "done in (s)": p["finish_in_s"], "prompt tokens": p["tokens"]["prompt"],
            "output tokens": p["tokens"]["output"], "tokens from": p["tokens"]["source"],
            "cost (USD, list prices)": p["cost_usd"],
            "keys ok": sum(k["ok"] for k in p["keys"]), "key checks": len(p["keys"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--pack", type=int, default=8)
    ap.add_argument("--day-seconds", type=float, default=8.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import logging

    from tooldistill.data import generate_queries

    logging.getLogger("tooldistill").setLevel(logging.ERROR)  # a bucket running out each fake day is the point

    work = Path(tempfile.mkdtemp(prefix="td-plan-"))
    db = open_db(work / "ws.db")
    catalog = get_catalog(db)
    insert_queries(db, generate_queries(load_catalog(), args.queries, seed=0))
    keys = parse_keys(",".join(f"{k}@{p}" for k, p in KEYS.items()))
    prompt = build_prompt(catalog)
    server, url = start_server(work, work / "ws.db", day_seconds=args.day_seconds, rpm=600, rpd=FREE_RPD)
    try:
        free = DistillSettings(models=MODELS, base_url=url, pack=args.pack)
        plan_free = plan_job(db, catalog=catalog, keys=keys, settings=free, prompt=prompt, clock=make_clock(None))
        fast = DistillSettings(models=MODELS, base_url=url, pack=args.pack, rpm=600, day_seconds=args.day_seconds,
                               timeout_s=30)
        clock = FastClock(args.day_seconds)
        while clock.next_reset() - clock.now() < args.day_seconds - 0.3:  # start at the top of a fake day
            time.sleep(0.02)
        plan_fast = plan_job(db, catalog=catalog, keys=keys, settings=fast, prompt=prompt, clock=clock)
        t0 = time.time()
        summary = run_distill(db, catalog=catalog, keys=keys, settings=fast, clock=clock, wait=True)
        took = time.time() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    days = db.execute("SELECT count(DISTINCT day) FROM attempts WHERE outcome IN ('ok', 'rejected')").fetchone()[0]
    by_model = db.execute("SELECT model, sum(prompt_tokens), sum(output_tokens) FROM attempts GROUP BY 1").fetchall()
    cost = sum(cost_usd(m, p or 0, o or 0) or 0.0 for m, p, o in by_model)
    measured = {"labels (incl. rejected)": summary.labels + summary.rejected, "requests paid": summary.paid,
                "requests by outcome": summary.requests, "queries asked alone after a packed answer failed":
                summary.unpacked, "quota days used": days, "seconds": round(took, 1),
                "prompt tokens": summary.prompt_tokens, "output tokens": summary.output_tokens,
                "cost (USD, list prices)": round(cost, 4)}
    fp = summary_of_plan(plan_fast)
    fig = {
        "queries": args.queries, "keys / projects / models": [len(KEYS), len(PROJECTS), len(MODELS)],
        "plan, free tier (real days)": summary_of_plan(plan_free),
        f"plan, free-tier RPD at {args.day_seconds:g} s days (RPM 600)": fp,
        "run at the same settings": measured,
        "run / plan: requests": round(summary.paid / fp["requests"], 3),
        "run / plan: quota days": round(days / fp["quota days"], 3),
        "run / plan: seconds": round(took / fp["done in (s)"], 3) if fp["done in (s)"] else None,
        "run / plan: prompt tokens": round(summary.prompt_tokens / fp["prompt tokens"], 3),
        "run / plan: output tokens": round(summary.output_tokens / fp["output tokens"], 3),
        "run / plan: cost": round(cost / fp["cost (USD, list prices)"], 3) if fp["cost (USD, list prices)"] else None,
    }
    print_figures(fig, as_json=args.json)


if __name__ == "__main__":
    main()
