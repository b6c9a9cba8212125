"""Audit quality on real data: CLINC150 train+validation (18,200 rows) with seeded label noise.

Noise modes: ``uniform`` flips a row to any other class; ``confusable`` flips it to another intent of the same
domain (the jsonl's ``domain`` field; out-of-scope rows have no domain-mates and are not flipped in this mode).
The noisy labels go into a fresh workspace database as teacher labels (catalogue: one parameterless tool per
intent, ``oos`` as no tool), ``curate audit``'s library runs with its defaults, and its flags are scored against
the injected errors at the flag count the audit chose itself. ``--baseline`` adds plain confident learning
(word+char TF-IDF logistic regression, 5-fold out-of-fold probabilities, cleanlab ``find_label_issues``).
``--models`` compares the confident-learning classifiers (``AuditConfig.models``) on the same noisy labels: each
argument is one audit run (``ngram``, the default; ``ngram,minilm`` adds the sentence encoder; ``minilm`` alone),
and a table at the end puts their F1 and wall time side by side (a run with an encoder pays for its embedding).

    .venv/bin/python benchmarks/audit_clinc.py                 # both modes, 10% noise
    .venv/bin/python benchmarks/audit_clinc.py --baseline      # + the textbook baseline (minutes)
    .venv/bin/python benchmarks/audit_clinc.py --limit 3000    # a quick check on a subsample
    .venv/bin/python benchmarks/audit_clinc.py --models ngram ngram,minilm minilm   # TF-IDF vs the encoder

Prints one figure per line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

DATA = Path("/work/shared/external/clinc150")


def load_rows(limit: int | None, seed: int) -> list[dict]:
    rows = []
    for split in ("train", "validation"):
        with (DATA / f"{split}.jsonl").open(encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    if limit:
        rows = random.Random(seed).sample(rows, limit)
    return rows


def inject_noise(rows: list[dict], mode: str, rate: float, seed: int) -> tuple[list[str], set[int]]:
    """Noisy label per row and the indices of the flipped rows (exactly round(rate * n) of them)."""
    rng = random.Random(f"{seed}|{mode}")
    labels = sorted({r["label"] for r in rows})
    by_domain: dict[str, list[str]] = {}
    for r in rows:
        by_domain.setdefault(r["domain"], [])
        if r["label"] not in by_domain[r["domain"]]:
            by_domain[r["domain"]].append(r["label"])
    candidates = list(range(len(rows)))
    if mode == "confusable":
        candidates = [i for i, r in enumerate(rows) if len(by_domain[r["domain"]]) > 1]
    flipped = set(rng.sample(candidates, round(rate * len(rows))))
    noisy = [r["label"] for r in rows]
    for i in sorted(flipped):
        pool = labels if mode == "uniform" else sorted(by_domain[rows[i]["domain"]])
        noisy[i] = rng.choice([c for c in pool if c != rows[i]["label"]])
    return noisy, flipped


def build_db(path: Path, rows: list[dict], noisy: list[str]):
    """A workspace database with the rows as queries and the noisy labels as teacher labels; returns (db, ids)."""
    from tooldistill.catalog import Catalog
    from tooldistill.db import NewQuery, add_label, insert_queries, open_db, store_catalog

    db = open_db(path)
    catalog = Catalog.from_class_names({r["label"] for r in rows}, none_label="oos", name="clinc150")
    store_catalog(db, catalog)
    ids = insert_queries(db, [NewQuery(text=r["text"], source="clinc150") for r in rows]).ids
    seen: set[int] = set()
    with db.atomic():
        for qid, label in zip(ids, noisy):
            if qid in seen:  # a text repeated across train/validation keeps its first label
                continue
            seen.add(qid)
            add_label(db, qid, catalog.class_label(label), source="teacher", model="clinc-noisy",
                      catalog_hash=catalog.hash)
    return db, ids


def score(flagged: set[int], truth: set[int]) -> tuple[float, float, float]:
    tp = len(flagged & truth)
    p = tp / len(flagged) if flagged else 0.0
    r = tp / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def baseline(rows: list[dict], noisy: list[str], seed: int) -> tuple[set[int], float]:
    """Plain confident learning: word+char TF-IDF logistic regression, 5-fold OOF, cleanlab find_label_issues."""
    import numpy as np
    from cleanlab.filter import find_label_issues
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    start = time.perf_counter()
    texts = [r["text"] for r in rows]
    X = hstack([TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True).fit_transform(texts)]
               ).tocsr()
    classes = sorted(set(noisy))
    y = np.array([classes.index(c) for c in noisy])
    probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, method="predict_proba",
                              cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    issues = find_label_issues(labels=y, pred_probs=probs)
    return {i for i in np.flatnonzero(issues)}, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="uniform,confusable")
    ap.add_argument("--rate", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="subsample this many rows (quick check)")
    ap.add_argument("--signals", default=None, help="comma-separated signals (default: the audit's defaults)")
    ap.add_argument("--baseline", action="store_true", help="also run plain confident learning (slow)")
    ap.add_argument("--models", nargs="+", default=["ngram"],
                    help="one audit run per argument, each a comma-separated AuditConfig.models "
                         "(e.g. ngram ngram,minilm)")
    args = ap.parse_args()

    from tooldistill.curate.audit import AuditConfig, run_audit

    rows = load_rows(args.limit, args.seed)
    print(f"rows: {len(rows)}  noise rate: {args.rate:.0%}  seed: {args.seed}")
    table: list[tuple[str, str, float, float, float, float, int]] = []
    for mode in args.modes.split(","):
        noisy, flipped = inject_noise(rows, mode, args.rate, args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            db, ids = build_db(Path(tmp) / "clinc.db", rows, noisy)
            truth = {ids[i] for i in flipped}
            for models in args.models:
                tag = mode if len(args.models) == 1 else f"{mode} [{models}]"
                config = AuditConfig(seed=args.seed, models=tuple(models.split(",")),
                                     **({"signals": tuple(args.signals.split(","))} if args.signals else {}))
                start = time.perf_counter()
                report = run_audit(db, config=config)
                wall = time.perf_counter() - start
                p, r, f1 = print_report(tag, report, truth, rows, ids, wall)
                table.append((mode, models, p, r, f1, wall, len(report.flags)))
            db.close()
        if args.baseline:
            issues, secs = baseline(rows, noisy, args.seed)
            bp, br, bf = score(issues, flipped)
            print(f"{mode}: baseline (TF-IDF LR 5-fold + find_label_issues) flagged {len(issues)} precision {bp:.3f} "
                  f"recall {br:.3f} F1 {bf:.3f} wall {secs:.1f}s")
    if len(args.models) > 1:
        print(f"{'mode':<11} {'models':<16} {'flags':>6} {'precision':>9} {'recall':>7} {'F1':>6} {'wall':>8}")
        for mode, models, p, r, f1, wall, n in table:
            print(f"{mode:<11} {models:<16} {n:>6} {p:>9.3f} {r:>7.3f} {f1:>6.3f} {wall:>7.1f}s")


def print_report(tag: str, report, truth: set[int], rows: list[dict], ids: list[int], wall: float):
    """Print one audit run's figures against the injected errors; returns its (precision, recall, F1)."""
    flagged = {f.query_id for f in report.flags}
    p, r, f1 = score(flagged, truth)
    print(f"{tag}: injected {len(truth)}, audit flagged {len(flagged)} "
          f"(confident learning estimated {report.signals['confident']['info'].get('estimated_issues')})")
    print(f"{tag}: audit precision {p:.3f} recall {r:.3f} F1 {f1:.3f} wall {wall:.1f}s")
    for name, sig in report.signals.items():
        if sig["skipped"]:
            print(f"{tag}:   signal {name}: skipped ({sig['skipped']})")
            continue
        hits = {f.query_id for f in report.flags if name in f.signals}
        sp, sr, sf = score(hits, truth)
        print(f"{tag}:   signal {name}: fired {sig['fired']} (only it: {sig['only']}) precision {sp:.3f} "
              f"recall {sr:.3f} F1 {sf:.3f} in {sig['seconds']:.1f}s"
              + (f" [{sig['info']['source']}]" if "source" in sig["info"] else ""))
    ranked = [f.query_id for f in report.flags]
    print(f"{tag}: audit F1 at the true count {score(set(ranked[:len(truth)]), truth)[2]:.3f}")
    right = sum(1 for f in report.flags if f.query_id in truth and f.suggested is not None
                and f.suggested.tool_set_key == _true_class(rows, ids, f.query_id))
    print(f"{tag}: suggested label right on {right}/{len(flagged & truth)} true errors flagged")
    return p, r, f1

_CLASS_OF: dict[int, str] = {}


def _true_class(rows: list[dict], ids: list[int], qid: int) -> str:
    if not _CLASS_OF:
        from tooldistill.catalog import class_tool_name

        for r, i in zip(rows, ids):
            _CLASS_OF.setdefault(i, "<none>" if r["label"] == "oos" else class_tool_name(r["label"]))
    return _CLASS_OF[qid]


if __name__ == "__main__":
    main()
