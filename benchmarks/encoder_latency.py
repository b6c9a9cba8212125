"""Encoder router latency on CPU: median per-query latency at batch 1 and throughput at batch 64.

What it measures, for PyTorch and onnxruntime (``model.onnx``), each in fp32 and int8:
``EncoderRouter.predict`` end to end (tokenise, forward, probabilities, similarity gate, the
decision), the way ``tooldistill route`` and eval call it, on CLINC150 test queries. Target: under 10 ms per query
at batch 1 on this 2-core CPU. The load average is printed with each figure: on a shared machine other processes
inflate every timing, so read the minimum and the median together.

The router folder is ``--model PATH`` (a trained ``runs/<id>/model``), or else one trained here for one epoch on
a tenth of CLINC150 (latency depends on the architecture, the number of outputs and of gate exemplars, not on how
well it was trained); the similarity gate's cost at full CLINC scale (15,000 exemplars) is timed on its own.

Usage:
    .venv/bin/python benchmarks/encoder_latency.py [--model PATH] [--queries 300] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_clinc import CLINC, load_clinc  # noqa: E402

from tooldistill.train.config import load_student_config, parse_overrides  # noqa: E402
from tooldistill.train.encoder import train_encoder  # noqa: E402
from tooldistill.train.encoder_onnx import ONNX_FILE, export_onnx  # noqa: E402
from tooldistill.train.encoder_router import EncoderRouter, nearest_similarity  # noqa: E402


def build_router_folder(out: Path) -> Path:
    catalog, data = load_clinc(CLINC)
    config = load_student_config(None, parse_overrides(["data.max_length=32", "optim.epochs=1"]), student="encoder")
    t0 = time.perf_counter()
    m = train_encoder(data["train"][::10], data["validation"][::10], catalog, config, out)
    print(f"built the router folder on CPU: {m['n_train']} queries, {m['steps']} steps in {m['train_seconds']:.0f} s "
          f"({m['train_seconds'] / m['steps']:.2f} s/step of 32 queries; {time.perf_counter() - t0:.0f} s with "
          f"loading, calibration and saving; load average {load()})", flush=True)
    return out


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="A trained encoder router folder.")
    ap.add_argument("--queries", type=int, default=300, help="Queries timed one by one at batch 1.")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts to try.")
    args = ap.parse_args(argv)

    folder = args.model or build_router_folder(Path(tempfile.mkdtemp(prefix="encoder-latency-")) / "model")
    _, data = load_clinc(CLINC)
    texts = [t for t, _ in data["test"]]
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), size=args.queries, replace=False)]
    if not (folder / ONNX_FILE).is_file():  # a folder trained before ONNX export: write the files once
        export_onnx(folder)
    probs = {}
    for backend, quantize in (("torch", False), ("torch", True), ("onnx", False), ("onnx", True)):
        router = EncoderRouter(folder, quantize=quantize, backend=backend)
        probs[backend, quantize] = router.probabilities(texts[:1024])
        n_ex = 0 if router._exemplars is None else len(router._exemplars)
        print(f"router ({backend}, {'int8' if quantize else 'fp32'}): {len(router.labels)} outputs, head "
              f"{router.meta['head']}, pooling {router.meta['pooling']}, {n_ex} gate exemplars, max_length "
              f"{router.meta['max_length']}; cpu cores {os.cpu_count()}")
        measure(router, sample, texts, args.threads)
    reference = probs["torch", False]
    for key, p in probs.items():
        if key != ("torch", False):
            same = float((reference.argmax(1) == p.argmax(1)).mean())
            print(f"{key[0]} {'int8' if key[1] else 'fp32'} vs torch fp32 on 1,024 test queries: same top output "
                  f"{100 * same:.1f}%, largest probability change {np.abs(reference - p).max():.4f}")
    gate_cost(rng)
    return 0


def measure(router: EncoderRouter, sample: list[str], texts: list[str], thread_counts: list[int]) -> None:
    import torch

    for threads in thread_counts:
        torch.set_num_threads(threads)
        if router.backend == "onnx":  # onnxruntime fixes its threads per session
            router = EncoderRouter(router.path, quantize=router.quantized, backend="onnx", threads=threads)
        router.predict(sample[:20], batch_size=1)  # warm-up: first calls allocate
        times = []
        for q in sample:
            t0 = time.perf_counter()
            router.predict([q], batch_size=1)
            times.append(1000 * (time.perf_counter() - t0))
        p90 = float(np.percentile(times, 90))
        print(f"threads {threads}: batch 1: median {statistics.median(times):.2f} ms, p90 {p90:.2f} ms, "
              f"min {min(times):.2f} ms over {len(times)} queries (load average {load()})", flush=True)
        batch = texts[:1024]
        router.predict(batch[:64], batch_size=64)
        t0 = time.perf_counter()
        router.predict(batch, batch_size=64)
        wall = time.perf_counter() - t0
        print(f"threads {threads}: batch 64: {len(batch) / wall:.0f} queries/s ({1000 * wall / len(batch):.2f} ms "
              f"per query; load average {load()})", flush=True)
        stages(router, sample)


def stages(router: EncoderRouter, sample: list[str]) -> None:
    """Where a batch-1 query's time goes: tokenising, the encoder, the similarity gate, the decision (medians)."""
    import torch

    m = router.meta
    parts: dict[str, list[float]] = {"tokenize": [], "encoder": [], "gate": [], "decide": []}
    with torch.inference_mode():
        for q in sample:
            t0 = time.perf_counter()
            enc = router._tokenizer([q], truncation=True, max_length=int(m["max_length"]), return_tensors="pt")
            t1 = time.perf_counter()
            logits, pooled = router._model(enc["input_ids"], enc["attention_mask"], router._exemplars is not None)
            probs = torch.softmax(logits.float(), -1).numpy() if m["head"] == "softmax" else \
                torch.sigmoid(logits.float()).numpy()
            t2 = time.perf_counter()
            sims = None
            if pooled is not None:
                sims = nearest_similarity(torch.nn.functional.normalize(pooled.float(), dim=-1).numpy(),
                                          router._exemplars)
            t3 = time.perf_counter()
            router.decide(probs, sims)
            t4 = time.perf_counter()
            for name, (a, b) in zip(parts, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                parts[name].append(1000 * (b - a))
    print(f"threads {torch.get_num_threads()}: batch 1 by stage (medians): " +
          ", ".join(f"{name} {statistics.median(ts):.2f} ms" for name, ts in parts.items()), flush=True)


def gate_cost(rng: np.random.Generator) -> None:
    """The similarity gate at full CLINC scale: one query against 15,000 unit vectors."""
    ex = rng.standard_normal((15_000, 384)).astype(np.float32)
    ex /= np.linalg.norm(ex, axis=1, keepdims=True)
    q = ex[:1] + 0.01
    nearest_similarity(q, ex)
    t0 = time.perf_counter()
    for _ in range(200):
        nearest_similarity(q, ex)
    print(f"similarity gate with 15,000 exemplars: {1000 * (time.perf_counter() - t0) / 200:.2f} ms per query")


if __name__ == "__main__":
    sys.exit(main())
