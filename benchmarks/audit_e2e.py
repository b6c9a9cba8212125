"""End to end, gold switched off: generated queries labeled through the fake Gemini server with seeded teacher
noise, then audited as a user would.

Pipeline: ``tooldistill.data.generate`` (template queries with gold) -> the fake Gemini server on 127.0.0.1
(``FakeGemini``, one model with ``noise_rate``, the database's gold as its oracle) -> ``run_distill`` (the library
behind ``tooldistill distill run``: the real google-genai client, the queue, the key pool) -> ``run_audit``.
The injected errors are the answers the server's request log marks ``noised``.

Prints: the share of injected errors in the first 2 x (noise count) flags with gold off (target >= 85%),
precision / recall / F1 at the audit's own flag count, and, with gold on, the flags gold alone would not have
raised (by signal, and how many of them are ambiguous or edge-case queries by the generator's category).

    .venv/bin/python benchmarks/audit_e2e.py                # 3,000 queries, 8% noise
    .venv/bin/python benchmarks/audit_e2e.py --n 500        # a quick check
    .venv/bin/python benchmarks/audit_e2e.py --models ngram,minilm   # confident learning with the encoder too
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

KEY = "AIzaSyBench-audit-e2e-key-00000"
MODEL = "gemini-2.5-flash"


def label_through_fake_server(db, path: Path, noise: float, seed: int) -> tuple[set[int], float]:
    """Label every query through the fake server; returns (ids of noised answers, seconds)."""
    from tooldistill.db import get_catalog
    from tooldistill.distill import DistillSettings, parse_keys, run_distill
    from tooldistill.distill.fake_gemini import FakeGemini, FakeGeminiConfig, ModelSpec
    from tooldistill.textnorm import normalize_text

    config = FakeGeminiConfig(keys={KEY: "bench"}, models={MODEL: ModelSpec(noise_rate=noise)}, oracle_db=path,
                              seed=seed)
    start = time.perf_counter()
    with FakeGemini(config) as server:
        settings = DistillSettings(models=[MODEL], base_url=server.base_url, rpm=0, rpd=0, concurrency=16,
                                   backoff_base_s=0.01, backoff_max_s=0.1)
        run_distill(db, catalog=get_catalog(db), keys=parse_keys(f"{KEY}@bench"), settings=settings)
        log = server.log
    by_norm = {normalize_text(t): q for q, t in db.execute("SELECT id, text FROM queries")}
    noised = {by_norm[e["query"]] for e in log if e.get("noised") and e.get("status") == 200}
    return noised, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--noise", type=float, default=0.08)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="ngram", help="AuditConfig.models, comma-separated (e.g. ngram,minilm)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the labeled database here (and reuse it if present)")
    args = ap.parse_args()
    models = tuple(args.models.split(","))

    from tooldistill.curate.audit import SIGNAL_NAMES, AuditConfig, run_audit
    from tooldistill.data import generate
    from tooldistill.db import get_catalog, open_db

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "e2e.db"
        reuse = path.exists()
        db = open_db(path)
        get_catalog(db)
        if reuse:  # labeled before: the injected errors were saved beside it
            generated = generate(db, args.n, seed=args.seed)
            noised = {int(x) for x in path.with_suffix(".noised").read_text().split()}
            secs = 0.0
        else:
            generated = generate(db, args.n, seed=args.seed)
            noised, secs = label_through_fake_server(db, path, args.noise, args.seed)
            if args.keep:
                path.with_suffix(".noised").write_text(" ".join(map(str, sorted(noised))))
        labels = db.execute("SELECT count(*) FROM labels WHERE valid = 1").fetchone()[0]
        rejected = db.execute("SELECT count(*) FROM labels WHERE valid = 0").fetchone()[0]
        print(f"queries: {generated.generated}  labeled: {labels} (rejected {rejected}) through the fake server "
              f"in {secs:.1f}s  injected errors (noised answers): {len(noised)} ({len(noised) / labels:.1%})")
        category = dict(db.execute("SELECT id, category FROM queries").fetchall())

        no_gold = tuple(s for s in SIGNAL_NAMES if s != "gold")
        start = time.perf_counter()
        report = run_audit(db, config=AuditConfig(signals=no_gold, seed=args.seed, models=models))
        wall = time.perf_counter() - start
        ranked = [f.query_id for f in report.flags]
        k = 2 * len(noised)
        share = len(set(ranked[:k]) & noised) / len(noised)
        print(f"gold off: {len(ranked)} flags in {wall:.1f}s; injected errors in the first 2x{len(noised)} = {k} "
              f"flags: {share:.1%} (target >= 85%)")
        tp = len(set(ranked) & noised)
        p, r = tp / max(len(ranked), 1), tp / len(noised)
        print(f"gold off: at the audit's own count ({len(ranked)}): precision {p:.3f} recall {r:.3f} "
              f"F1 {2 * p * r / max(p + r, 1e-9):.3f}; in the first {len(noised)}: "
              f"{len(set(ranked[:len(noised)]) & noised) / len(noised):.1%}")
        for name, sig in report.signals.items():
            if sig["skipped"]:
                print(f"gold off:   {name}: skipped ({sig['skipped']})")
                continue
            with_it = {f.query_id for f in report.flags if name in f.signals}
            print(f"gold off:   {name}: fired {sig['fired']}, in {len(with_it)} flags ({sig['only']} alone), "
                  f"{len(with_it & noised)} of them injected errors")
        false = Counter(category[q] for q in ranked if q not in noised)
        print(f"gold off: flags that are not injected errors, by category: {dict(false.most_common())}")

        report = run_audit(db, config=AuditConfig(seed=args.seed, models=models))
        print(f"gold on: {len(report.flags)} flags; {report.info['cleared']} labels match their gold (cleared), "
              f"{report.info['cleared_with_hits']} of which other signals would have flagged; flags gold alone would not have "
              f"raised: {sum(1 for f in report.flags if 'gold' not in f.signals)}")
        report = run_audit(db, config=AuditConfig(seed=args.seed, gold_clears=False, models=models))
        print("gold on, without clearing (gold_clears=False):")
        gold_flags = {f.query_id for f in report.flags if "gold" in f.signals}
        extra = [f for f in report.flags if "gold" not in f.signals]
        print(f"gold on: {len(report.flags)} flags; gold raised {len(gold_flags)} "
              f"({len(gold_flags & noised)} of the {len(noised)} injected errors); "
              f"{len(extra)} flags gold alone would not have raised")
        print(f"gold on:   those {len(extra)} by signal: "
              f"{dict(Counter('+'.join(f.signals) for f in extra).most_common())}")
        print(f"gold on:   those {len(extra)} by category: {dict(Counter(category[f.query_id] for f in extra).most_common())}")
        for f in extra[:8]:
            print(f"gold on:   e.g. [{', '.join(f.signals)}] {f.text!r}: {f.label.to_json()}")
        db.close()


if __name__ == "__main__":
    main()
