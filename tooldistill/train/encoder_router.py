"""The encoder student at inference: tool-set decisions, threshold calibration, and :class:`EncoderRouter`.

A trained encoder folder holds a plain ``transformers`` model plus ``router.json`` (label names, head kind,
pooling, thresholds). The decision rule, which ``router.json`` documents for users without this package:

- ``sigmoid`` head (one probability per tool): the best tool, plus any other tool whose probability reaches
  ``tool_threshold`` (at most ``max_tools``); **no tool** when the best probability is under ``no_tool_threshold``.
- ``softmax`` head (one class per tool set seen in training, ``<none>`` among them): the most probable set;
  **no tool** when that is ``<none>`` or its probability is under ``no_tool_threshold``.

- the similarity gate (when ``similarity_threshold`` is set): **no tool** also when the cosine between the
  query's mean-pooled last hidden state and its nearest training query (``exemplars.safetensors``) is under it:
  a request far from everything the router was trained on is rarely one of its tools.

The thresholds are calibrated on the validation split (:func:`calibrate_thresholds`). Decisions and calibration
are numpy only; torch and transformers load when a router is built.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..catalog import Catalog, Label, ToolCall
from ..errors import ToolDistillError

ROUTER_FILE = "router.json"
HEAD_FILE = "head.safetensors"
EXEMPLARS_FILE = "exemplars.safetensors"
FORMAT = "tooldistill.encoder-router"
NONE_KEY = "<none>"
TOOL_THRESHOLD_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MAX_NO_TOOL_CANDIDATES = 2000

ToolSet = tuple[str, ...]
"""A decision: the sorted tool names chosen, repeats kept (``()`` = no tool)."""


def tool_set(label: Label) -> ToolSet:
    """The tools a label calls, sorted, repeats kept (``weather`` twice for two cities is its own tool set).

    A softmax head learns such sets as classes and answers with the repeated calls (empty args); a sigmoid head
    has one output per tool, so it can only say each tool once.
    """
    return tuple(sorted(label.tools))


def set_key(tools: ToolSet) -> str:
    """``a+b`` for a multi-tool set, ``<none>`` for no tool (the class names of a softmax head)."""
    return "+".join(tools) or NONE_KEY


def key_set(key: str) -> ToolSet:
    return () if key == NONE_KEY else tuple(sorted(key.split("+")))


# ------------------------------------------------------------------ decisions


def candidate_sets(probs: np.ndarray, labels: Sequence[str], *, head: str, tool_threshold: float | None,
                   max_tools: int) -> tuple[list[ToolSet], np.ndarray]:
    """Each row's best tool set and its score, before the no-tool threshold.

    Args:
        probs: (rows, outputs) probabilities (sigmoid per tool, or softmax over tool-set classes).
        labels: output names: tool names (sigmoid) or tool-set keys (softmax).
        head: ``sigmoid`` or ``softmax``.
        tool_threshold: sigmoid only: other tools at or above it join the best one (None: never).
        max_tools: sigmoid only: the largest set to return.

    Returns: (sets, scores) where ``scores`` is each row's best probability (higher = surer a tool fits).
    """
    probs = np.asarray(probs, dtype=np.float64)
    top = probs.argmax(axis=1)
    scores = probs[np.arange(len(probs)), top] if len(probs) else np.zeros(0)
    if head == "softmax":
        sets = [key_set(labels[j]) for j in top]
        return sets, scores
    if tool_threshold is None or max_tools <= 1:
        return [(labels[j],) for j in top], scores
    sets = []
    for row, best in zip(probs, top):
        extra = [j for j in np.argsort(-row)[:max_tools] if j != best and row[j] >= tool_threshold]
        sets.append(tuple(sorted({labels[best], *(labels[j] for j in extra)})))
    return sets, scores


def decide(probs: np.ndarray, labels: Sequence[str], *, head: str, no_tool_threshold: float,
           tool_threshold: float | None = None, max_tools: int = 1, similarity: np.ndarray | None = None,
           similarity_threshold: float | None = None) -> list[ToolSet]:
    """The tool set of each row under the router's rule (see the module docstring); ``()`` means no tool.

    ``similarity`` (each row's cosine to its nearest training query) with ``similarity_threshold`` adds the
    similarity gate: a row under it gets no tool whatever its probabilities.
    """
    sets, scores = candidate_sets(probs, labels, head=head, tool_threshold=tool_threshold, max_tools=max_tools)
    accept = np.asarray(scores) >= no_tool_threshold
    if similarity is not None and similarity_threshold is not None:
        accept &= np.asarray(similarity) >= similarity_threshold
    return [s if ok else () for s, ok in zip(sets, accept)]


def tool_set_metrics(predicted: Sequence[ToolSet], gold: Sequence[ToolSet]) -> dict[str, Any]:
    """Tool-set accuracy overall, on rows that need a tool (in-scope), and no-tool recall/precision.

    Returns: ``{"n", "accuracy", "in_scope_accuracy", "no_tool_recall", "no_tool_precision", "balanced"}``
    (a rate is None when its denominator is 0; ``balanced`` is the mean of the in-scope accuracy and the no-tool
    recall that exist).
    """
    pred = [tuple(sorted(p)) for p in predicted]
    gold = [tuple(sorted(g)) for g in gold]
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predictions for {len(gold)} gold labels")
    hit = np.array([p == g for p, g in zip(pred, gold)], dtype=bool)
    has_tool = np.array([bool(g) for g in gold], dtype=bool)
    said_none = np.array([not p for p in pred], dtype=bool)

    def rate(num: np.ndarray, mask: np.ndarray) -> float | None:
        return float(num[mask].mean()) if mask.any() else None

    in_scope, recall = rate(hit, has_tool), rate(said_none, ~has_tool)
    parts = [r for r in (in_scope, recall) if r is not None]
    return {"n": len(gold), "accuracy": float(hit.mean()) if len(hit) else None, "in_scope_accuracy": in_scope,
            "no_tool_recall": recall, "no_tool_precision": rate(~has_tool, said_none),
            "balanced": float(np.mean(parts)) if parts else None}


# ------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class Thresholds:
    """Calibrated thresholds and what they scored on the calibration rows."""

    no_tool: float
    tool: float | None
    objective: str
    score: float
    metrics: dict = field(default_factory=dict)
    similarity: float | None = None
    """The similarity gate's threshold (None: no gate)."""


def _objective_curve(sets: list[ToolSet], scores: np.ndarray, gold: list[ToolSet], candidates: np.ndarray,
                     objective: str, weight: float = 0.5, gate: np.ndarray | None = None,
                     budget: float = 0.01) -> np.ndarray:
    """The objective at each no-tool threshold candidate (rows: ``scores >= candidate`` keep their tool set)."""
    has_tool = np.array([bool(g) for g in gold], dtype=bool)
    match = np.array([s == g and bool(g) for s, g in zip(sets, gold)], dtype=bool)
    said_none = np.array([not s for s in sets], dtype=bool)
    accept = scores[:, None] >= candidates[None, :]
    if gate is not None:
        accept &= gate[:, None]
    correct_tool = (match[:, None] & accept)[has_tool]
    correct_none = (said_none[:, None] | ~accept)[~has_tool]
    if objective == "accuracy" or not has_tool.any() or has_tool.all():
        total = correct_tool.sum(0) + correct_none.sum(0)
        return total / max(1, len(gold))
    in_scope, recall = correct_tool.mean(0), correct_none.mean(0)
    if objective == "retain":
        # Most no-tool recall while in-scope accuracy stays within `budget` of what no rejection at all gives;
        # in-scope accuracy breaks ties. Infeasible thresholds score below every feasible one.
        ceiling = match[has_tool].mean()
        feasible = in_scope >= ceiling - budget - 1e-12
        return np.where(feasible, recall + 1e-3 * in_scope, -1.0 + in_scope)
    return (1 - weight) * in_scope + weight * recall


def calibrate_thresholds(probs: np.ndarray, labels: Sequence[str], gold: Sequence[ToolSet], *, head: str,
                         objective: str = "balanced", max_tools: int = 1, no_tool_threshold: float | None = None,
                         tool_threshold: float | None = None, no_tool_weight: float = 0.5,
                         in_scope_budget: float = 0.01, similarity: np.ndarray | None = None) -> Thresholds:
    """Choose the no-tool threshold (and the sigmoid head's extra-tool threshold) that maximise ``objective``.

    Args:
        probs: (rows, outputs) validation probabilities; ``labels`` names the outputs.
        gold: each row's gold tool set (``()`` = no tool).
        head: ``sigmoid`` or ``softmax``.
        objective: ``balanced`` (``no_tool_weight`` x no-tool recall + the rest x in-scope tool-set accuracy),
            ``retain`` (the most no-tool recall that costs at most ``in_scope_budget`` of in-scope accuracy
            against never saying no tool) or ``accuracy`` (plain accuracy over the rows as they come).
        max_tools: largest tool set seen in training (1 disables the extra-tool threshold).
        no_tool_threshold, tool_threshold: fixed values that are kept instead of searched.
        similarity: each row's cosine to its nearest training query; when given, a similarity-gate threshold is
            searched too (jointly with the no-tool threshold; "no gate" is among the candidates).

    Returns: :class:`Thresholds`. Among equally good thresholds it takes the middle of the best plateau, placed
    halfway between two observed scores, so a small shift in scores does not flip many decisions.
    """
    gold = [tuple(sorted(g)) for g in gold]
    probs = np.asarray(probs, dtype=np.float64)
    if head == "softmax" or max_tools <= 1:
        tool_grid: Sequence[float | None] = [None]
    elif tool_threshold is not None:
        tool_grid = [tool_threshold]
    else:
        tool_grid = TOOL_THRESHOLD_GRID
    sims = None if similarity is None else np.asarray(similarity, dtype=np.float64)
    sim_grid = [None] if sims is None else [None, *_midpoints(sims, 200)]
    best: Thresholds | None = None
    for tau in tool_grid:
        sets, scores = candidate_sets(probs, labels, head=head, tool_threshold=tau, max_tools=max_tools)
        results = []
        for sigma in sim_grid:
            gate = None if sigma is None else sims >= sigma
            if no_tool_threshold is not None:
                nu = float(no_tool_threshold)
                value = float(_objective_curve(sets, scores, gold, np.array([nu]), objective, no_tool_weight,
                                               gate, in_scope_budget)[0])
            else:
                nu, value = _best_no_tool_threshold(sets, scores, gold, objective, no_tool_weight, gate,
                                                    in_scope_budget)
            results.append((value, nu, sigma))
        top = max(r[0] for r in results)
        ties = [r for r in results if r[0] >= top - 1e-12]
        value, nu, sigma = ties[len(ties) // 2] if ties[0][2] is not None else ties[0]
        if best is None or value > best.score + 1e-12:
            chosen = decide(probs, labels, head=head, no_tool_threshold=nu, tool_threshold=tau, max_tools=max_tools,
                            similarity=sims, similarity_threshold=sigma)
            best = Thresholds(nu, tau, objective, value, tool_set_metrics(chosen, gold), sigma)
    assert best is not None
    return best


def _midpoints(values: np.ndarray, most: int) -> list[float]:
    """Up to ``most`` thresholds halfway between consecutive distinct quantiles of ``values``."""
    qs = np.unique(np.quantile(values, np.linspace(0, 1, most + 1)))
    return [float(x) for x in (qs[:-1] + qs[1:]) / 2]


def _best_no_tool_threshold(sets: list[ToolSet], scores: np.ndarray, gold: list[ToolSet], objective: str,
                            weight: float = 0.5, gate: np.ndarray | None = None,
                            budget: float = 0.01) -> tuple[float, float]:
    uniq = np.unique(scores)
    if len(uniq) > MAX_NO_TOOL_CANDIDATES:
        uniq = np.unique(np.quantile(scores, np.linspace(0, 1, MAX_NO_TOOL_CANDIDATES)))
    candidates = np.concatenate([[0.0], uniq])
    curve = _objective_curve(sets, scores, gold, candidates, objective, weight, gate, budget)
    top = curve.max()
    best = np.flatnonzero(curve >= top - 1e-12)
    run_end = best[0]
    while run_end + 1 < len(curve) and curve[run_end + 1] >= top - 1e-12:
        run_end += 1
    c = (best[0] + run_end) // 2
    if c == 0:
        return 0.0, float(top)
    return float((candidates[c - 1] + candidates[c]) / 2), float(top)


def set_probability(row: np.ndarray, labels: Sequence[str], tools: ToolSet, *, head: str) -> float:
    """The head's probability that ``tools`` (``()``: no tool) is the right set, in [0, 1].

    Softmax: that set's class probability (0 for a set that is not a class). Sigmoid: the per-tool outputs taken
    as independent, the probability that exactly these tools fit and no other does.
    """
    row = np.asarray(row, dtype=np.float64)
    if head == "softmax":
        key = set_key(tools)
        return float(row[labels.index(key)]) if key in labels else 0.0
    chosen = set(tools)
    return float(np.prod([p if name in chosen else 1.0 - p for name, p in zip(labels, row)]))

# ------------------------------------------------------------------ the router


@dataclass
class EncoderPrediction:
    """One routed query: the label (calls with empty args), the top probabilities, and the batch's wall time."""

    label: Label
    probabilities: dict[str, float]
    latency_ms: float
    confidence: float | None = None
    """The head's probability of the chosen tool set (:func:`set_probability`)."""

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.label.canonical(), "probabilities": self.probabilities,
                "latency_ms": round(self.latency_ms, 3)}


def read_router_json(path: str | Path) -> dict:
    """Read and check a folder's ``router.json``; raises ToolDistillError when it is missing or foreign."""
    file = Path(path) / ROUTER_FILE
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolDistillError(f"{path} is not an encoder router folder (no {ROUTER_FILE}); pass the 'model' folder "
                               "of an encoder run") from None
    except json.JSONDecodeError as exc:
        raise ToolDistillError(f"{file}: invalid JSON ({exc.msg}); the folder is damaged, retrain or restore it") from None
    if meta.get("format") != FORMAT:
        raise ToolDistillError(f"{file}: format {meta.get('format')!r} is not {FORMAT!r}")
    return meta


class EncoderRouter:
    """A trained encoder student as a router (the eval :class:`~tooldistill.eval.Router` protocol).

    Args:
        path: the model folder (``runs/<id>/model``) or a run folder containing one.
        name: display name (default ``encoder:<folder>``).
        catalog: the catalogue (default: ``catalog.yaml`` beside the model folder, when present).
        device: torch device; ``threads`` sets torch's CPU threads (None keeps torch's default).
        quantize: serve the int8 copy: ``model.int8.onnx`` with the onnx backend, else PyTorch's dynamic
            quantization of the Linear layers. Probabilities move, so decisions near a threshold can change:
            score the quantized router on val before serving it.
        backend: ``onnx`` (onnxruntime on ``model.onnx``: ~2.5x faster than PyTorch at batch 1 on a 2-core CPU,
            same outputs to ~1e-6), ``torch``, or ``auto`` (onnx when the folder has the file, onnxruntime is
            installed and the device is the CPU; else torch).
    """

    predicts_arguments = False
    """The encoder chooses tools only (calls come with empty args): eval grades its tool choice and marks the
    argument metrics not applicable."""

    def __init__(self, path: str | Path, *, name: str | None = None, catalog: Catalog | None = None,
                 device: str = "cpu", threads: int | None = None, quantize: bool = False, backend: str = "auto"):
        path = Path(path)
        if not (path / ROUTER_FILE).is_file() and (path / "model" / ROUTER_FILE).is_file():
            path = path / "model"
        self.path = path
        self.meta = read_router_json(path)
        self.labels: list[str] = list(self.meta["labels"])
        self.name = name or f"encoder:{path.parent.name if path.name == 'model' else path.name}"
        if catalog is None and (path.parent / "catalog.yaml").is_file():
            from ..catalog import load_catalog

            catalog = load_catalog(path.parent / "catalog.yaml")
        self.catalog = catalog
        self.device = device
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.quantized = quantize
        self.backend = _pick_backend(path, backend, device, quantize)
        if self.backend == "onnx":
            from .encoder_onnx import ONNX_FILE, ONNX_INT8_FILE, OnnxClassifier

            self._tokenizer = _load_tokenizer(path)
            self._model = OnnxClassifier(path / (ONNX_INT8_FILE if quantize else ONNX_FILE), threads=threads)
        else:
            self._tokenizer, self._model = _load_model(path, self.meta, device)
            if quantize:
                _quantize(self._model)
        self._exemplars = None
        if self.meta.get("similarity_threshold") is not None:
            from safetensors.numpy import load_file

            self._exemplars = load_file(str(path / EXEMPLARS_FILE))["embeddings"].astype(np.float32)

    @classmethod
    def from_run(cls, run_id: str, *, db: Any, **kwargs: Any) -> "EncoderRouter":
        """The router of an encoder train run (its ``artifact_path``), named ``run:<id>``."""
        from .runs import get_run

        run = get_run(db, run_id, kind="train")
        folder = Path(run.get("artifact_path") or "")
        if not (folder / "model" / ROUTER_FILE).is_file():
            raise ToolDistillError(f"run {run['id']} has no encoder model under {folder}/model (status "
                                   f"{run['status']}); train it again or pass the moved folder")
        kwargs.setdefault("name", f"run:{run['id']}")
        return cls(folder / "model", **kwargs)

    def probabilities(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """(len(texts), outputs) probabilities of the head, in input order."""
        return self.outputs(texts, batch_size=batch_size)[0]

    def outputs(self, texts: Sequence[str], *, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
        """Head probabilities and each text's cosine to its nearest training query (None without the gate)."""
        probs, feats = predict_outputs(self._model, self._tokenizer, self.meta, texts, batch_size=batch_size,
                                       device=self.device, features=self._exemplars is not None)
        sims = nearest_similarity(feats, self._exemplars) if feats is not None else None
        return probs, sims

    def decide(self, probs: np.ndarray, similarity: np.ndarray | None = None) -> list[ToolSet]:
        """The router's tool sets for precomputed outputs (see :meth:`outputs`)."""
        m = self.meta
        return decide(probs, self.labels, head=m["head"], no_tool_threshold=float(m["no_tool_threshold"]),
                      tool_threshold=m.get("tool_threshold"), max_tools=int(m.get("max_tools", 1)),
                      similarity=similarity, similarity_threshold=m.get("similarity_threshold"))

    def predict(self, texts: Sequence[str], *, batch_size: int = 64, top_k: int = 5) -> list[EncoderPrediction]:
        """Route ``texts``: each gets a label, its ``top_k`` output probabilities and its batch's wall time (ms)."""
        out: list[EncoderPrediction] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            t0 = time.perf_counter()
            probs, sims = self.outputs(chunk, batch_size=batch_size)
            sets = self.decide(probs, sims)
            ms = 1000 * (time.perf_counter() - t0)
            for row, tools in zip(probs, sets):
                top = np.argsort(-row)[:top_k]
                out.append(EncoderPrediction(Label(calls=[ToolCall(tool=t) for t in tools]),
                                             {self.labels[j]: round(float(row[j]), 6) for j in top}, ms,
                                             set_probability(row, self.labels, tools, head=self.meta["head"])))
        return out

    def route(self, texts: Sequence[str], *, batch_size: int = 64) -> list[Label]:
        """One :class:`~tooldistill.catalog.Label` per text (tool calls with empty args; ``[]`` = no tool)."""
        return [p.label for p in self.predict(texts, batch_size=batch_size, top_k=1)]

    def route_scored(self, texts: Sequence[str], *, batch_size: int = 64) -> list[tuple[Label, float | None]]:
        """Each text's label with the probability of its tool set (what eval stores as the confidence)."""
        return [(p.label, p.confidence) for p in self.predict(texts, batch_size=batch_size, top_k=1)]


def _pick_backend(path: Path, backend: str, device: str, quantize: bool) -> str:
    from .encoder_onnx import ONNX_FILE, ONNX_INT8_FILE, onnx_available

    file = path / (ONNX_INT8_FILE if quantize else ONNX_FILE)
    if backend == "auto":
        return "onnx" if device == "cpu" and file.is_file() and onnx_available() else "torch"
    if backend == "onnx":
        if device != "cpu":
            raise ToolDistillError(f"the onnx backend runs on the CPU, not {device!r}; use backend 'torch'")
        if not file.is_file():
            raise ToolDistillError(f"{file} is missing; write it with tooldistill.train.encoder_onnx.export_onnx"
                                   f"({str(path)!r}) or use backend 'torch'")
        if not onnx_available():
            raise ToolDistillError("the onnx backend needs onnxruntime and onnx: pip install 'tooldistill[encoder]'")
        return "onnx"
    if backend != "torch":
        raise ToolDistillError(f"unknown backend {backend!r}: use auto, onnx or torch")
    return "torch"


def _load_tokenizer(path: Path) -> Any:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from ..embeddings import quiet_transformers

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(path)


def _load_model(path: Path, meta: dict, device: str) -> tuple[Any, Any]:
    tokenizer = _load_tokenizer(path)  # first: it sets HF_HUB_OFFLINE before transformers is imported
    from transformers import AutoModel, AutoModelForSequenceClassification

    from ..embeddings import quiet_transformers

    with quiet_transformers():
        if meta["pooling"] == "cls":
            model: Any = ClsClassifier(AutoModelForSequenceClassification.from_pretrained(path))
        else:
            from safetensors.torch import load_file

            model = MeanPoolClassifier(AutoModel.from_pretrained(path), load_file(str(path / HEAD_FILE)))
    return tokenizer, model.to(device).eval()


def _quantize(model: Any) -> None:
    """Swap the Linear layers of a loaded router model for int8 dynamically quantized ones (CPU only)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.quantization import quantize_dynamic

        if isinstance(model, ClsClassifier):
            model.model = quantize_dynamic(model.model, {torch.nn.Linear}, dtype=torch.qint8)
        else:
            model.encoder = quantize_dynamic(model.encoder, {torch.nn.Linear}, dtype=torch.qint8)


class ClsClassifier:
    """A ``*ForSequenceClassification`` model called as ``(input_ids, attention_mask) -> (logits, features)``.

    Features are the mean-pooled last hidden states, L2-normalised (what the similarity gate compares).
    """

    def __init__(self, model: Any):
        self.model = model

    def to(self, device: str) -> "ClsClassifier":
        self.model.to(device)
        return self

    def eval(self) -> "ClsClassifier":
        self.model.eval()
        return self

    def __call__(self, input_ids: Any, attention_mask: Any, with_features: bool = False) -> tuple[Any, Any]:
        from ..embeddings import mean_pool

        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=with_features)
        feats = mean_pool(out.hidden_states[-1], attention_mask) if with_features else None
        return out.logits, feats


class MeanPoolClassifier:
    """An encoder + linear head over mean-pooled token states (the ``pooling: mean`` folder layout)."""

    def __init__(self, encoder: Any, head: dict):
        self.encoder, self.weight, self.bias = encoder, head["weight"], head["bias"]

    def to(self, device: str) -> "MeanPoolClassifier":
        self.encoder.to(device)
        self.weight, self.bias = self.weight.to(device), self.bias.to(device)
        return self

    def eval(self) -> "MeanPoolClassifier":
        self.encoder.eval()
        return self

    def __call__(self, input_ids: Any, attention_mask: Any, with_features: bool = False) -> tuple[Any, Any]:
        from ..embeddings import mean_pool

        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return pooled @ self.weight.T + self.bias, pooled


def predict_outputs(model: Any, tokenizer: Any, meta: dict, texts: Sequence[str], *, batch_size: int = 64,
                    device: str = "cpu", features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Head probabilities (sigmoid or softmax per ``meta["head"]``) and, with ``features``, the L2-normalised
    mean-pooled states of a loaded encoder router, in input order.

    ``model`` is called as ``model(input_ids, attention_mask, with_features) -> (logits, features)``.
    """
    import torch

    texts = [str(t) for t in texts]
    probs = np.zeros((len(texts), len(meta["labels"])), dtype=np.float32)
    feats = None
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                            max_length=int(meta["max_length"]), return_tensors="pt").to(device)
            logits, pooled = model(enc["input_ids"], enc["attention_mask"], features)
            logits = logits.float()
            p = torch.sigmoid(logits) if meta["head"] == "sigmoid" else torch.softmax(logits, dim=-1)
            probs[idx] = p.cpu().numpy()
            if features:
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
                if feats is None:
                    feats = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
                feats[idx] = pooled
    return probs, feats


def predict_probabilities(model: Any, tokenizer: Any, meta: dict, texts: Sequence[str], *, batch_size: int = 64,
                          device: str = "cpu") -> np.ndarray:
    """Head probabilities of a loaded encoder router, in input order (see :func:`predict_outputs`)."""
    return predict_outputs(model, tokenizer, meta, texts, batch_size=batch_size, device=device)[0]


def nearest_similarity(features: np.ndarray, exemplars: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """Each row's cosine to its nearest exemplar (both L2-normalised), computed in chunks to bound memory.

    With torch loaded (a router always has it) the products run in torch: against CLINC150's 15,000 exemplars
    its matrix-vector product was ~3x faster than numpy's at batch 1 here, and the gate is the router's largest
    cost after the encoder. ``torch.from_numpy`` shares the arrays' memory, so nothing is copied.
    """
    import sys

    features = np.ascontiguousarray(features, dtype=np.float32)
    ex = np.ascontiguousarray(exemplars, dtype=np.float32)
    torch = sys.modules.get("torch")
    if torch is not None and len(features):
        f, e = torch.from_numpy(features), torch.from_numpy(ex)
        best = torch.full((len(features),), -1.0)
        with torch.inference_mode():
            for start in range(0, len(ex), chunk):
                best = torch.maximum(best, (f @ e[start:start + chunk].T).amax(dim=1))
        return best.numpy()
    out = np.full(len(features), -1.0, dtype=np.float32)
    for start in range(0, len(ex), chunk):
        np.maximum(out, (features @ ex[start:start + chunk].T).max(axis=1), out=out)
    return out


__all__ = [
    "ROUTER_FILE", "HEAD_FILE", "EXEMPLARS_FILE", "FORMAT", "ClsClassifier", "MeanPoolClassifier",
    "predict_outputs", "nearest_similarity", "NONE_KEY", "ToolSet", "tool_set", "set_key", "key_set",
    "candidate_sets", "decide", "tool_set_metrics", "Thresholds", "calibrate_thresholds",
    "EncoderPrediction", "EncoderRouter", "read_router_json", "predict_probabilities",
]
