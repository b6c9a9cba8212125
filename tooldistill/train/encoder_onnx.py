"""The encoder router as ONNX for onnxruntime: the CPU serving path (fp32 and int8).

Why: on this project's 2-core AVX2 CPU a MiniLM forward at batch 1 spends ~15 ms in PyTorch eager (one
``addmm`` after another, each paying dispatch overhead at 12 tokens), against ~6 ms in onnxruntime fp32 and
~3 ms with its int8 dynamic quantization (``benchmarks/encoder_latency.py``). onnxruntime fuses attention,
GELU and LayerNorm and its MLAS kernels are tuned for these small matrices; writing our own would not beat it.

The exported graph takes ``input_ids`` and ``attention_mask`` (dynamic batch and length) and returns ``logits``
(the head's raw scores) and ``features`` (the mean-pooled last hidden state, what the similarity gate compares),
so the router's decision code is the same whichever backend produced them. Files, beside ``router.json``:

- ``model.onnx``: fp32, the same numbers as the PyTorch model to ~1e-6.
- ``model.int8.onnx``: weights in int8 (``onnxruntime.quantization.quantize_dynamic``), activations quantized on
  the fly; probabilities move a little, so score it on val before serving it (the latency benchmark reports how
  often its top output differs from fp32).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"


def onnx_available() -> bool:
    """True when onnxruntime and onnx import (the ``encoder`` extra installs both)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_onnx(folder: str | Path, *, int8: bool = True) -> list[Path]:
    """Write ``model.onnx`` (and ``model.int8.onnx``) for a saved encoder router folder; return the files.

    Args:
        folder: a folder written by :func:`tooldistill.train.encoder.train_encoder` (``router.json`` inside).
        int8: also write the dynamically quantized int8 copy.

    Side effects: writes the files into ``folder`` (replacing earlier ones).
    """
    import torch

    from .encoder_router import _load_model, read_router_json

    folder = Path(folder)
    meta = read_router_json(folder)
    tokenizer, loaded = _load_model(folder, meta, "cpu")

    class Graph(torch.nn.Module):
        """The loaded router as one module: (input_ids, attention_mask) -> (logits, features)."""

        def __init__(self) -> None:
            super().__init__()
            # Registered so tracing sees the weights as parameters (initializers), not loose constants.
            self.net = loaded.model if hasattr(loaded, "model") else loaded.encoder

        def forward(self, input_ids, attention_mask):
            return loaded(input_ids, attention_mask, True)

    example = tokenizer(["what is the weather in Oslo tomorrow", "hi"], padding=True, return_tensors="pt")
    out = folder / ONNX_FILE
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation; it still exports
        torch.onnx.export(Graph().eval(), (example["input_ids"], example["attention_mask"]), str(out),
                          input_names=["input_ids", "attention_mask"], output_names=["logits", "features"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "logits": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=17, dynamo=False)
    files = [out]
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = folder / ONNX_INT8_FILE
        previous = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # it advises pre-processing on the root logger; not needed here
        try:
            quantize_dynamic(str(out), str(quantized), weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(previous)
        files.append(quantized)
    return files


class OnnxClassifier:
    """An exported router graph run by onnxruntime, called like the PyTorch ones:
    ``(input_ids, attention_mask, with_features) -> (logits, features)`` on torch tensors.

    Args:
        path: the ``.onnx`` file.
        threads: onnxruntime intra-op threads (None: its default, every core).
    """

    def __init__(self, path: str | Path, *, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: Any, attention_mask: Any, with_features: bool = False) -> tuple[Any, Any]:
        import torch

        feed = {"input_ids": input_ids.numpy().astype("int64", copy=False),
                "attention_mask": attention_mask.numpy().astype("int64", copy=False)}
        logits, features = self.session.run(None, feed)
        return torch.from_numpy(logits), (torch.from_numpy(features) if with_features else None)


__all__ = ["ONNX_FILE", "ONNX_INT8_FILE", "onnx_available", "export_onnx", "OnnxClassifier"]
