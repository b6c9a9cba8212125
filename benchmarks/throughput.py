"""Throughput at the quota ceiling: the runner against a one-request-at-a-time rested-longest rotation, side by side.

The fake Gemini server runs in its own process (so its threads do not share this one's interpreter lock) with
6 keys in 3 projects x 2 models = 6 (project, model) buckets, RPM 60 each on the server (aggregate ceiling
360/min) and 0.5-2 s latency. Both clients know the limit (``rpm = 60``: limits are configured, or learned from
429s, never guessed upward).

1. The runner (``run_distill``, the library behind ``distill run``) labels ``--queries`` queries.
2. The baseline labels ``--baseline-queries`` other queries the way the seeds' ClientPool did: one request at a
   time, each on the slot (key x model) that has rested longest, waiting first until that slot's bucket may send
   (60/RPM seconds since its last send), through the same google-genai client code (``ask_teacher``).

Labels per minute are counted over the sending window (first send to last answer) and over the whole wall time
(start-up included). Prints one figure per line; timings depend on the machine's load.

Usage: python benchmarks/throughput.py [--queries 600] [--baseline-queries 120] [--rpm 60] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import print_figures, start_fake_server  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from tooldistill.catalog import parse_label  # noqa: E402
from tooldistill.db import NewQuery, get_catalog, insert_queries, open_db  # noqa: E402

MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")
PROJECTS = ("proj-a", "proj-b", "proj-c")
KEYS = {f"bench-key-{i}-{p}": p for p in PROJECTS for i in (1, 2)}


def make_db(path: Path, n: int, *, offset: int = 0):
    db = open_db(path)
    get_catalog(db)
    insert_queries(db, [NewQuery(f"what is the weather in town number {i}", "bench", gold=parse_label(
        [{"tool": "weather", "args": {"location": f"town number {i}"}}])) for i in range(offset, offset + n)])
    return db


def start_server(workdir: Path, oracle_db: Path, *, rpm: int, latency: tuple[float, float], seed: int):
    """The fake server in a subprocess; returns (process, base_url)."""
    cfg = {"keys": KEYS, "models": {m: {"rpm": rpm} for m in MODELS}, "latency_s": list(latency), "seed": seed,
           "oracle_db": str(oracle_db)}
    return start_fake_server(workdir, cfg)


def server_stats(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{url}/_stats", timeout=30) as r:
        return json.loads(r.read())


def run_runner(db, url: str, *, rpm: int, concurrency: int | None) -> dict:
    from tooldistill.distill import DistillSettings, parse_keys, run_distill

    settings = DistillSettings(models=list(MODELS), base_url=url, rpm=rpm, rpd=0, timeout_s=30,
                               **({"concurrency": concurrency} if concurrency else {}))
    in_flight: list[int] = []
    t0 = time.time()
    summary = run_distill(db, catalog=get_catalog(db), keys=parse_keys(",".join(f"{k}@{p}" for k, p in KEYS.items())),
                          settings=settings, progress=lambda e: in_flight.append(e.info.get("in_flight", 0)))
    wall = time.time() - t0
    first, last = db.execute("SELECT min(sent_at), max(sent_at + latency_ms / 1000.0) FROM attempts").fetchone()
    return {"labels": summary.labels + summary.rejected, "requests": dict(summary.requests), "wall_s": wall,
            "window_s": last - first, "concurrency": settings.concurrency,
            "mean_in_flight": sum(in_flight) / max(1, len(in_flight)), "max_in_flight": max(in_flight or [0])}


async def rotation_baseline(db, url: str, *, rpm: int) -> dict:
    """One request at a time on the rested-longest slot, each bucket paced at 60/rpm seconds between sends."""
    from tooldistill.distill.prompt import build_prompt
    from tooldistill.distill.teacher import ask_teacher, make_client

    catalog = get_catalog(db)
    prompt = build_prompt(catalog)
    clients = {k: make_client(k, base_url=url, timeout_s=30) for k in KEYS}
    slots = [(k, m) for k in KEYS for m in MODELS]
    rested = {s: 0.0 for s in slots}
    bucket_last: dict[tuple[str, str], float] = {}
    texts = [r[0] for r in db.execute("SELECT text FROM queries ORDER BY id")]
    outcomes: dict[str, int] = {}
    t0 = time.time()
    first = None
    for text in texts:
        slot = min(slots, key=lambda s: rested[s])
        bucket = (KEYS[slot[0]], slot[1])
        wait = bucket_last.get(bucket, 0.0) + 60.0 / rpm - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        now = time.time()
        first = first or now
        rested[slot] = bucket_last[bucket] = now
        result = await ask_teacher(clients[slot[0]], model=slot[1], prompt=prompt, catalog=catalog, query=text)
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    end = time.time()
    for c in clients.values():
        await c.aio.aclose()
    labels = outcomes.get("ok", 0) + outcomes.get("rejected", 0)
    return {"labels": labels, "requests": outcomes, "wall_s": end - t0, "window_s": end - first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--baseline-queries", type=int, default=120)
    ap.add_argument("--rpm", type=int, default=60, help="Per (project, model) on the server and the client.")
    ap.add_argument("--latency", type=float, nargs=2, default=(0.5, 2.0))
    ap.add_argument("--concurrency", type=int, default=None, help="Runner cap (default: the setting's default).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="td-throughput-"))
    db = make_db(work / "runner.db", args.queries)
    base_db = make_db(work / "baseline.db", args.baseline_queries, offset=args.queries)
    oracle = make_db(work / "oracle.db", args.queries + args.baseline_queries)
    oracle.close()
    server, url = start_server(work, work / "oracle.db", rpm=args.rpm, latency=tuple(args.latency), seed=args.seed)
    try:
        runner = run_runner(db, url, rpm=args.rpm, concurrency=args.concurrency)
        after_runner = server_stats(url)
        time.sleep(61)  # let the server's minute windows empty, so the baseline starts as fresh as the runner did
        baseline = asyncio.run(rotation_baseline(base_db, url, rpm=args.rpm))
    finally:
        server.terminate()
        server.wait(timeout=30)
    ceiling = len(PROJECTS) * len(MODELS) * args.rpm
    r_rate = runner["labels"] / runner["window_s"] * 60
    b_rate = baseline["labels"] / baseline["window_s"] * 60
    fig = {
        "buckets (project x model)": len(PROJECTS) * len(MODELS), "keys": len(KEYS),
        "aggregate RPM ceiling (labels/min)": ceiling, "server latency (s)": list(args.latency),
        "runner: queries": args.queries, "runner: labels": runner["labels"],
        "runner: requests by outcome": runner["requests"],
        "runner: server 429s (per-minute)": after_runner["by_outcome"].get("minute_quota", 0),
        "runner: concurrency cap": runner["concurrency"],
        "runner: mean / max in flight": [round(runner["mean_in_flight"], 1), runner["max_in_flight"]],
        "runner: sending window (s)": round(runner["window_s"], 1),
        "runner: wall time incl. start-up (s)": round(runner["wall_s"], 1),
        "runner: labels/min (sending window)": round(r_rate, 1),
        "runner: labels/min (wall)": round(runner["labels"] / runner["wall_s"] * 60, 1),
        "runner: share of the ceiling": round(r_rate / ceiling, 3),
        "baseline: queries": args.baseline_queries, "baseline: labels": baseline["labels"],
        "baseline: requests by outcome": baseline["requests"],
        "baseline: labels/min (sending window)": round(b_rate, 1),
        "baseline: share of the ceiling": round(b_rate / ceiling, 3),
        "runner / baseline (labels per minute)": round(r_rate / b_rate, 2),
    }
    print_figures(fig, as_json=args.json)


if __name__ == "__main__":
    main()
