"""QLoRA training throughput and peak GPU memory of the train stage, on models built offline (random weights).

No hub is reachable on the machines this runs on, so every model is built here: the tiny student of
`tooldistill train tiny-model`, and random models of real Qwen2.5 shapes (hard-coded Qwen2Config fields) that
reuse the tiny BPE tokenizer (its ids fit any of these vocabularies). Each model goes through the production
path of `train run`: the recipe from configs/, rendering with the catalogue in the prompt, a 4-bit NF4 load
(`load_base_model`), `build_trainer` (trl SFTTrainer + LoRA) and `trainer.train()` for warmup + N steps.

Prints, per model, one figure per line: parameters, GPU memory after the 4-bit load, peak GPU memory while
training (torch.cuda.max_memory_allocated), non-padding tokens/s and s/step after the warmup steps, and the loss.
Random weights train like real ones of the same shape as far as time and memory go; the loss means nothing.

    python benchmarks/train_gpu.py --models tiny,0.5b,1.5b,7b --steps 10     # on a CUDA machine
    python benchmarks/train_gpu.py --cpu-smoke                                # tiny model, CPU, 4-bit CPU backend
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QWEN25 = dict(rope_theta=1_000_000.0, max_position_embeddings=32768, rms_norm_eps=1e-6, initializer_range=0.02,
              hidden_act="silu", use_sliding_window=False)
SHAPES = {  # Qwen2.5 config.json fields (hidden, MLP, layers, heads, KV heads, vocab, tied embeddings)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "3b": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
               num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}
RECIPES = {"tiny": "tiny-cpu.yaml", "0.5b": "qwen2.5-0.5b.yaml", "1.5b": "qwen2.5-0.5b.yaml",
           "3b": "qwen2.5-7b-r64.yaml", "7b": "qwen2.5-7b-r64.yaml"}


def build_shape(name: str, tiny: Path, out: Path, *, device: str) -> Path:
    """A random bf16 model of a real Qwen2.5 shape with the tiny tokenizer, saved to ``out``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    for f in tiny.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    tiny_cfg = json.loads((tiny / "config.json").read_text())
    cfg = Qwen2Config(**QWEN25, **SHAPES[name], eos_token_id=tiny_cfg["eos_token_id"],
                      pad_token_id=tiny_cfg["pad_token_id"], bos_token_id=None)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        torch.manual_seed(0)
        with torch.device(device):  # initialising 7B on the GPU takes seconds, on the CPU minutes
            model = Qwen2ForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.generation_config = GenerationConfig(eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id)
    model.save_pretrained(out, max_shard_size="4GB")
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def _timing_callback():
    import torch
    from transformers import TrainerCallback

    class Timing(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[int, float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks.append((state.global_step, time.perf_counter(), int(state.num_input_tokens_seen or 0)))

    return Timing()


def bench(name: str, base: Path, *, steps: int, warmup: int, cpu: bool, overrides: dict, work: Path) -> dict:
    """Train ``base`` through the production QLoRA branch for warmup + steps; return the measured figures."""
    import torch

    from tooldistill.catalog import load_catalog
    from tooldistill.db import SplitExample
    from tooldistill.train import detect_format, load_config, select_precision, synthetic_examples, to_bnb_config
    from tooldistill.train.load import load_base_model, load_tokenizer, quiet_libraries
    from tooldistill.train.precision import detect_precision
    from tooldistill.train.render import set_render_options
    from tooldistill.train.sft import build_trainer, prepare_rows

    config = load_config(REPO / "configs" / RECIPES[name], {
        "model.base_model": str(base), "quant.mode": "4bit", "data.catalog_in_prompt": True,
        "data.max_length": 2048, "optim.max_steps": warmup + steps, "optim.lr_scheduler": "constant",
        "optim.warmup": 0, "eval.strategy": "no", "eval.load_best": False, "eval.early_stopping_patience": None,
        "eval.score_examples": 0, "logging.steps": 1, "logging.report_to": [], **overrides})
    precision = select_precision(cuda=False, quant="4bit") if cpu else detect_precision("4bit")
    catalog = load_catalog()
    rows_needed = (warmup + steps) * config.optim.batch_size * config.optim.grad_accum
    examples = [SplitExample(i, q, lab, "synthetic", "train")
                for i, (q, lab) in enumerate(synthetic_examples(catalog, rows_needed, seed=7))]
    with quiet_libraries():
        tok = load_tokenizer(base)
        fmt = detect_format(tok)
        set_render_options(tok, catalog_in_prompt=True)
        rows, report = prepare_rows(tok, catalog, examples, config, fmt, split="train")
        if not cpu:
            torch.cuda.reset_peak_memory_stats()
        model = load_base_model(base, precision=precision, bnb_config=to_bnb_config(config, precision))
        weights = torch.cuda.memory_allocated() if not cpu else None
        # a Params4bit packs two 4-bit values per uint8 element: count the weights it stands for
        n_params = sum(p.numel() * (2 if type(p).__name__ == "Params4bit" else 1) for p in model.parameters())
        timing = _timing_callback()
        trainer = build_trainer(model, tok, rows, [], config, precision, output_dir=work / f"{name}-ckpt",
                                eos_token=fmt.end_of_turn)
        trainer.add_callback(timing)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        trainer.train()
    (s0, t0, k0), (s1, t1, k1) = timing.marks[warmup - 1], timing.marks[-1]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = {
        "model": name, "device": precision.device, "params_m": round(n_params / 1e6, 1),
        "lora_params_m": round(trainable / 1e6, 2), "weights_gib": round(weights / 2**30, 2) if weights else None,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if not cpu else None,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "tokens_per_s": round((k1 - k0) / (t1 - t0), 1), "s_per_step": round((t1 - t0) / (s1 - s0), 3),
        "rows_per_step": config.optim.batch_size * config.optim.grad_accum,
        "batch_size": config.optim.batch_size, "grad_accum": config.optim.grad_accum,
        "mean_tokens_per_row": report["mean_tokens"], "timed_steps": s1 - s0,
        "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
        "gradient_checkpointing": bool(trainer.args.activation_checkpointing),
        "optim": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
    }
    del trainer, model
    gc.collect()
    if not cpu:
        torch.cuda.empty_cache()
    return result


def _print(r: dict) -> None:
    tag = f"[{r['model']}]"
    print(f"{tag} params: {r['params_m']}M (LoRA trainable {r['lora_params_m']}M), 4-bit NF4 base")
    if r["weights_gib"] is not None:
        print(f"{tag} GPU memory after 4-bit load: {r['weights_gib']} GiB")
        print(f"{tag} peak GPU memory while training: {r['peak_gib']} GiB")
    print(f"{tag} peak process RSS: {r['peak_rss_gib']} GiB")
    print(f"{tag} tokens/s (non-padding, {r['timed_steps']} timed steps): {r['tokens_per_s']}")
    print(f"{tag} s/step: {r['s_per_step']} ({r['batch_size']} rows x {r['grad_accum']} accumulation, "
          f"mean {r['mean_tokens_per_row']} tokens/row, checkpointing {r['gradient_checkpointing']}, {r['optim']})")
    print(f"{tag} loss (random weights): {r['loss_first']} -> {r['loss_last']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,0.5b,1.5b", help="Comma list of: tiny, " + ", ".join(SHAPES))
    ap.add_argument("--steps", type=int, default=10, help="Timed optimizer steps per model.")
    ap.add_argument("--warmup", type=int, default=2, help="Untimed optimizer steps first.")
    ap.add_argument("--batch-size", type=int, help="Override the recipe's rows per device step.")
    ap.add_argument("--grad-accum", type=int, help="Override the recipe's accumulation.")
    ap.add_argument("--cpu-smoke", action="store_true", help="Tiny model only, on CPU (bitsandbytes' CPU "
                    "backend), 2 timed steps: checks the script anywhere.")
    ap.add_argument("--json", type=Path, help="Also write the results as JSON to this file.")
    args = ap.parse_args(argv)
    import torch

    from tooldistill.train import build_tiny_model

    cpu = args.cpu_smoke or not torch.cuda.is_available()
    if cpu and not args.cpu_smoke:
        print("no CUDA device: run with --cpu-smoke for the CPU check", file=sys.stderr)
        return 2
    models = ["tiny"] if args.cpu_smoke else [m.strip() for m in args.models.split(",") if m.strip()]
    steps, warmup = (2, 1) if args.cpu_smoke else (args.steps, args.warmup)
    overrides = {k: v for k, v in (("optim.batch_size", args.batch_size), ("optim.grad_accum", args.grad_accum))
                 if v is not None}
    import bitsandbytes
    import transformers

    gpu = "cpu" if cpu else f"cuda {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}"
    print(f"device: {gpu}; torch {torch.__version__}, transformers {transformers.__version__}, "
          f"bitsandbytes {bitsandbytes.__version__}")
    results = []
    with tempfile.TemporaryDirectory(prefix="train-gpu-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        tiny = build_tiny_model(work / "tiny")
        print(f"[tiny] built in {time.perf_counter() - start:.1f} s", flush=True)
        for name in models:
            base = tiny
            if name != "tiny":
                start = time.perf_counter()
                base = build_shape(name, tiny, work / name, device="cpu" if cpu else "cuda")
                print(f"[{name}] built and saved in {time.perf_counter() - start:.1f} s", flush=True)
            start = time.perf_counter()
            result = bench(name, base, steps=steps, warmup=warmup, cpu=cpu, overrides=overrides, work=work)
            result["wall_s"] = round(time.perf_counter() - start, 1)
            _print(result)
            results.append(result)
            if name != "tiny":
                shutil.rmtree(base, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
