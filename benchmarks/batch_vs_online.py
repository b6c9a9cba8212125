"""Online vs Batch Mode: the same labeling job (N template queries) run both ways against the fake Gemini server,
with the cost and request figures side by side.

Online is ``run_distill`` (one generateContent per query, concurrent); batch is ``run_batches`` (inline batch
jobs, polled). Both start from copies of one database, ask the same model with the same prompt, and are checked to
produce the same labels. Cost is computed from the usage the answers report, at the standard paid price online
and at the batch price (50%) for Batch Mode (tooldistill.distill.batch.PRICES_USD_PER_M). The fake server's own
request log gives the request counts.

Usage: python benchmarks/batch_vs_online.py [--queries 1000] [--batch-size 500] [--model gemini-2.5-flash] [--json]
Prints one line per figure: name, online, batch. Timings depend on the machine's load and the fake's latency.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tooldistill.data import generate  # noqa: E402
from tooldistill.db import get_catalog, open_db  # noqa: E402
from tooldistill.distill.batch import BatchSettings, cost_usd, run_batches  # noqa: E402
from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig  # noqa: E402
from tooldistill.distill.keys import parse_keys  # noqa: E402
from tooldistill.distill.runner import run_distill  # noqa: E402
from tooldistill.distill.settings import DistillSettings  # noqa: E402

KEY, PROJECT = "compare-key-PAID", "billing-on"


def _server(oracle: Path, seed: int) -> FakeGemini:
    return FakeGemini(FakeGeminiConfig(keys={KEY: PROJECT}, paid_projects=[PROJECT], oracle_db=oracle, seed=seed,
                                       tier="paid", latency_s=(0.005, 0.02),
                                       batch={"pending_polls": 1, "running_polls": 2}))


def _labels(db) -> dict[int, str]:
    return dict(db.execute("SELECT query_id, label_hash FROM labels WHERE valid = 1").fetchall())


def _tokens(db) -> tuple[int, int]:
    return db.execute("SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(output_tokens), 0) FROM attempts"
                      " WHERE outcome IN ('ok', 'rejected')").fetchone()


def compare(n: int, *, batch_size: int, model: str, seed: int, workdir: Path) -> dict:
    base = workdir / "base.db"
    db = open_db(base)
    generate(db, n, seed=seed)
    db.close()
    out: dict[str, dict] = {}
    for mode in ("online", "batch"):
        path = workdir / f"{mode}.db"
        shutil.copy(base, path)
        db = open_db(path)
        catalog, keys = get_catalog(db), parse_keys(f"{KEY}@{PROJECT}")
        with _server(base, seed) as server:
            settings = DistillSettings(base_url=server.base_url, models=[model], rpm=0, rpd=0, concurrency=8)
            started = time.perf_counter()
            if mode == "online":
                summary = run_distill(db, catalog=catalog, keys=keys, settings=settings)
                labels, rejected = summary.labels, summary.rejected
            else:
                summary = run_batches(db, catalog=catalog, keys=keys, settings=settings,
                                      batch=BatchSettings(max_requests=batch_size, poll_s=0.2))
                labels, rejected = summary.labels, summary.rejected
            elapsed = time.perf_counter() - started
            calls = Counter(e["path"].rsplit(":", 1)[-1] if ":" in e["path"] else
                            f"{e['method']} {e['path'].split('/v1beta/')[-1].split('/')[0]}" for e in server.log)
        prompt, output = _tokens(db)
        out[mode] = {
            "labels": labels, "rejected": rejected, "calls": dict(calls), "http_requests": sum(calls.values()),
            "answers billed": labels + rejected, "prompt_tokens": prompt, "output_tokens": output,
            "cost_usd": cost_usd(model, prompt, output, batch=mode == "batch"),
            "generate requests (count against RPM/RPD)": calls.get("generateContent", 0),
            "elapsed_s": round(elapsed, 2), "label_map": _labels(db),
        }
        db.close()
    same = sum(out["online"]["label_map"].get(q) == h for q, h in out["batch"]["label_map"].items())
    for mode in out:
        out[mode].pop("label_map")
    out["same labels both ways"] = same
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--model", default="gemini-2.5-flash")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = compare(args.queries, batch_size=args.batch_size, model=args.model, seed=args.seed,
                         workdir=Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    on, ba = result["online"], result["batch"]
    print(f"{'figure (' + str(args.queries) + ' queries, ' + args.model + ')':<46}{'online':>16}{'batch':>16}")
    rows = [("labels accepted", "labels"), ("answers rejected (paid)", "rejected"),
            ("answers billed", "answers billed"), ("HTTP requests to the API", "http_requests"),
            ("generate requests (count against RPM/RPD)", "generate requests (count against RPM/RPD)"),
            ("prompt tokens", "prompt_tokens"), ("output tokens", "output_tokens")]
    for name, key in rows:
        print(f"{name:<46}{on[key]:>16,}{ba[key]:>16,}")
    print(f"{'cost USD (standard price / batch price)':<46}{on['cost_usd']:>16.4f}{ba['cost_usd']:>16.4f}")
    print(f"{'cost per 1,000 labels USD':<46}{1000 * on['cost_usd'] / max(on['labels'], 1):>16.4f}"
          f"{1000 * ba['cost_usd'] / max(ba['labels'], 1):>16.4f}")
    print(f"{'batch / online cost':<46}{'':>16}{ba['cost_usd'] / on['cost_usd']:>16.3f}")
    print(f"{'API calls by kind':<46}{json.dumps(on['calls']):>16}  {json.dumps(ba['calls'])}")
    print(f"{'elapsed s (fake server; real batches take minutes to 24 h)':<46}{on['elapsed_s']:>16}"
          f"{ba['elapsed_s']:>16}")
    print(f"same labels both ways: {result['same labels both ways']:,} of {ba['labels']:,}")


if __name__ == "__main__":
    main()
