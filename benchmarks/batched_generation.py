"""Batched (left-padded) greedy generation vs one query at a time, on the tiny offline student.

What it shows: the throughput eval gains by routing a split in batches, and that batching changes no answer
(left padding keeps every prompt's last token at the end of its row). The model is the tiny random Qwen2 of
``tooldistill.train.build_tiny_model`` (what tests and ``make demo`` use); the prompts are real router prompts
(the catalogue as tools + a query) rendered the way the student is trained. Generation always runs the full
``--max-new-tokens`` budget unless the model stops, so both modes produce the same tokens.

Prints one figure per line. Usage:
    .venv/bin/python benchmarks/batched_generation.py [--n 64] [--batch-size 16] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _reshape(tiny_dir: Path, out: Path) -> Path:
    """A random model in Qwen2.5-0.5B's shape that shares the tiny model's tokenizer (no weights to download)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
                      max_position_embeddings=4096, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="queries")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--model", type=Path, help="a model folder (default: build the tiny one)")
    parser.add_argument("--hidden-size", type=int, default=64, help="tiny model width (when building it)")
    parser.add_argument("--layers", type=int, default=2, help="tiny model depth (when building it)")
    parser.add_argument("--shape", choices=["tiny", "qwen2.5-0.5b"], default="tiny",
                        help="qwen2.5-0.5b: random weights in Qwen2.5-0.5B's shape (24 layers, 896 wide) with the "
                        "tiny tokenizer, for a realistic compute profile on a GPU")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto: bfloat16 on CUDA, float32 on CPU")
    args = parser.parse_args(argv)

    import torch

    from tooldistill.catalog import load_catalog
    from tooldistill.eval.generate import generate_batch, load_model_router, render_prompts
    from tooldistill.train import build_tiny_model, synthetic_examples

    catalog = load_catalog()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_tiny_model(Path(tmp) / "tiny", hidden_size=args.hidden_size,
                                                   num_layers=args.layers)
        if args.shape != "tiny":
            model_dir = _reshape(model_dir, Path(tmp) / args.shape)
        router = load_model_router(model_dir, catalog, max_new_tokens=args.max_new_tokens, dtype=args.dtype)
        texts = [text for text, _ in synthetic_examples(catalog, args.n, seed=1)][:args.n]
        prompts = render_prompts(router.tokenizer, catalog, texts)
        lengths = [len(router.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        device = next(router.model.parameters()).device
        print(f"device: {device}; dtype: {next(router.model.parameters()).dtype}; "
              f"torch threads: {torch.get_num_threads()}; queries: {len(prompts)}; "
              f"prompt tokens: min {min(lengths)} / max {max(lengths)}; max_new_tokens: {args.max_new_tokens}")
        generate_batch(router.model, router.tokenizer, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

        def timed(batch_size: int) -> tuple[list[str], float]:
            t0 = time.perf_counter()
            outs = generate_batch(router.model, router.tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                                  batch_size=batch_size)
            return outs, time.perf_counter() - t0

        single, single_s = timed(1)
        batched, batched_s = timed(args.batch_size)
        same = sum(a == b for a, b in zip(single, batched))
        print(f"one at a time: {single_s:.2f} s, {len(prompts) / single_s:.1f} queries/s")
        print(f"batched (batch {args.batch_size}): {batched_s:.2f} s, {len(prompts) / batched_s:.1f} queries/s")
        print(f"throughput ratio batched/one-at-a-time: {single_s / batched_s:.2f}x")
        print(f"identical answers: {same}/{len(prompts)}")
    return 0 if same == len(prompts) else 1


if __name__ == "__main__":
    sys.exit(main())
