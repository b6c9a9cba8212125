"""Choosing how a student is loaded and trained: 4-bit QLoRA on CUDA, plain LoRA in fp32 on CPU.

:func:`select_precision` is a pure function of the hardware facts, so both branches are unit-tested on a CPU
machine; :func:`detect_precision` asks torch for those facts.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Precision:
    """How to load and train the base model.

    Attributes:
        device: ``cuda`` or ``cpu``.
        load_in_4bit: load the base in NF4 via bitsandbytes (QLoRA).
        dtype: dtype name the unquantized weights load in (``bfloat16``, ``float16``, ``float32``).
        compute_dtype: dtype name of the 4-bit matmuls.
        bf16, fp16: mixed-precision flags for the trainer.
        use_cpu: tell the trainer not to look for a GPU (trl defaults bf16 on, which fails on CPU otherwise).
        device_map: where from_pretrained puts a 4-bit model (``{"": local_rank}`` or ``{"": "cpu"}``).
    """

    device: str
    load_in_4bit: bool
    dtype: str
    compute_dtype: str
    bf16: bool
    fp16: bool
    use_cpu: bool
    device_map: dict | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select_precision(*, cuda: bool, bf16_supported: bool = False, quant: str = "auto",
                     local_rank: int = 0) -> Precision:
    """Pick the precision for the hardware: QLoRA (NF4, bf16) on CUDA, fp32 LoRA on CPU.

    Args:
        cuda: a CUDA device is available.
        bf16_supported: that device computes in bf16 (Ampere or newer); else fp16 is used on CUDA.
        quant: ``auto`` (4-bit on CUDA only), ``4bit`` (always, also on CPU, where bitsandbytes has a CPU backend:
            the tests use it to exercise the QLoRA branch) or ``none`` (never).
        local_rank: this process's GPU under ``accelerate launch`` (each process holds a whole 4-bit copy).

    Returns: a :class:`Precision`.
    """
    if quant not in ("auto", "4bit", "none"):
        raise ValueError(f"quant must be auto, 4bit or none, not {quant!r}")
    four_bit = quant == "4bit" or (quant == "auto" and cuda)
    if cuda:
        half = "bfloat16" if bf16_supported else "float16"
        return Precision(device="cuda", load_in_4bit=four_bit, dtype=half, compute_dtype=half, bf16=bf16_supported,
                         fp16=not bf16_supported, use_cpu=False, device_map={"": local_rank} if four_bit else None)
    return Precision(device="cpu", load_in_4bit=four_bit, dtype="float32", compute_dtype="float32", bf16=False,
                     fp16=False, use_cpu=True, device_map={"": "cpu"} if four_bit else None)


def detect_precision(quant: str = "auto") -> Precision:
    """:func:`select_precision` for this machine (asks torch; never asks about bf16 without CUDA)."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return select_precision(cuda=cuda, bf16_supported=bf16, quant=quant,
                            local_rank=int(os.environ.get("LOCAL_RANK", "0")))
