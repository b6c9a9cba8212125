"""The encoder student: fine-tune all-MiniLM-L6-v2 (or another BERT-like encoder) to choose the tool set, on CPU.

A tool set is one tool, several tools, or none. The default head is a softmax over the tool sets seen in training
(``<none>``, i.e. no tool, among them); ``head.kind: sigmoid`` is the multi-label alternative (one probability per
tool, binary cross-entropy, no-tool rows as all-zero targets) for catalogues whose multi-tool combinations are not
all in the training data. On top of the head the no-tool decision has two calibrated gates (on the validation
split): the best probability under ``no_tool_threshold``, or the cosine to the nearest training query under
``similarity_threshold`` (see :mod:`tooldistill.train.encoder_router`). Why softmax + gate by default: on CLINC150
the softmax head reached the higher in-scope accuracy, and the similarity gate raised out-of-scope recall by 14
points at the same in-scope accuracy (``benchmarks/encoder_clinc.py``).

The saved folder loads without this package: with ``pooling: cls`` (default) it *is* a
``BertForSequenceClassification`` (``AutoModelForSequenceClassification`` / ``pipeline`` read it directly;
``problem_type`` says softmax or sigmoid), ``router.json`` adds label names and thresholds, and
``exemplars.safetensors`` the gate's training embeddings. Its README gives the recipe.

Entry points: :func:`train` (the student registry's hook, used by ``tooldistill train run --student encoder``),
:func:`train_encoder` (examples in, folder + metrics out, no database) and :func:`run_encoder_training`
(a dataset version in, a ``runs`` row out).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sqlite_utils import Database

from ..catalog import Catalog, Label, dump_catalog
from ..db import SplitExample
from ..errors import InputError, Interrupted, ToolDistillError
from ..progress import ProgressCallback, ProgressEvent, noop
from .encoder_config import PACKAGED_MINILM, Config, EncoderRunConfig
from .encoder_router import (EXEMPLARS_FILE, FORMAT, HEAD_FILE, NONE_KEY, ROUTER_FILE, EncoderRouter, Thresholds,
                             calibrate_thresholds, decide, nearest_similarity, predict_outputs, predict_probabilities,
                             set_key, tool_set, tool_set_metrics)
from .runs import TrainRequest, TrainResult, create_run, finish_run, get_run, new_run_id, runs_dir, update_run

log = logging.getLogger(__name__)

MODEL_DIR = "model"
Example = SplitExample | tuple[str, Label]


# ------------------------------------------------------------------ data


def _pairs(examples: Sequence[Example], where: str) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for i, ex in enumerate(examples):
        text, label = (ex.text, ex.label) if isinstance(ex, SplitExample) else ex
        if not isinstance(label, Label):
            raise InputError(f"example {i} has a {type(label).__name__}, not a Label", field=where)
        out.append((str(text), tool_set(label)))
    return out


def _output_labels(train: list[tuple[str, tuple]], catalog: Catalog, head: str) -> list[str]:
    known = set(catalog.names)
    for i, (_, tools) in enumerate(train):
        unknown = [t for t in tools if t not in known]
        if unknown:
            raise InputError(f"tool {unknown[0]!r} is not in the catalogue ({len(known)} tools); revalidate the labels "
                             "with 'tooldistill data validate'", field=f"train[{i}].label")
    if head == "sigmoid":
        return list(catalog.names)
    return sorted({set_key(tools) for _, tools in train}, key=lambda k: (k != NONE_KEY, k))


def _targets(sets: list[tuple], labels: list[str], head: str) -> np.ndarray:
    index = {name: j for j, name in enumerate(labels)}
    if head == "softmax":
        return np.array([index.get(set_key(s), -100) for s in sets], dtype=np.int64)
    y = np.zeros((len(sets), len(labels)), dtype=np.float32)
    for i, s in enumerate(sets):
        for tool in s:
            y[i, index[tool]] = 1.0
    return y


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length rows: shuffle, sort within windows of 50 batches, shuffle the batches.

    On CPU the padded length is the cost; this keeps batches random across epochs while padding little.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


# ------------------------------------------------------------------ model


def base_model_path(config: EncoderRunConfig) -> str:
    """The folder (or hub id) the encoder starts from; the packaged MiniLM by default."""
    if config.model.base_model == PACKAGED_MINILM:
        from ..embeddings import minilm_path

        return str(minilm_path())
    return config.model.base_model


def _build_model(config: EncoderRunConfig, labels: list[str]) -> tuple[Any, Any, Any, list, list]:
    """Return (tokenizer, trainable module, save function, encoder params, head params)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from ..embeddings import mean_pool, quiet_transformers

    path = base_model_path(config)
    problem = "multi_label_classification" if config.head.kind == "sigmoid" else "single_label_classification"
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path)
        if config.model.pooling == "cls":
            hf_config = AutoConfig.from_pretrained(path, num_labels=len(labels), problem_type=problem,
                                                   id2label=dict(enumerate(labels)),
                                                   label2id={n: j for j, n in enumerate(labels)},
                                                   classifier_dropout=config.head.dropout)
            model = AutoModelForSequenceClassification.from_pretrained(path, config=hf_config)
        else:
            model = AutoModel.from_pretrained(path, add_pooling_layer=False)

    if config.model.pooling == "cls":
        base = getattr(model, model.base_model_prefix)

        class Trainable(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, with_features=False):
                out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                 output_hidden_states=with_features)
                return out.logits, (mean_pool(out.hidden_states[-1], attention_mask) if with_features else None)

        trainable = Trainable()
        head_names = ("classifier", "pooler")
        head = [p for n, p in model.named_parameters() if n.split(".")[0] in head_names or ".pooler." in n]

        def save(out_dir: Path) -> None:
            model.save_pretrained(out_dir)
    else:
        base = model
        classifier = torch.nn.Linear(model.config.hidden_size, len(labels))
        dropout = torch.nn.Dropout(config.head.dropout)

        class Trainable(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.classifier = model, classifier

            def forward(self, input_ids, attention_mask, with_features=False):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                pooled = mean_pool(hidden, attention_mask)
                return self.classifier(dropout(pooled)), pooled

        trainable = Trainable()
        head = list(classifier.parameters())

        def save(out_dir: Path) -> None:
            from safetensors.torch import save_file

            model.save_pretrained(out_dir)
            save_file({"weight": classifier.weight.detach().cpu().contiguous(),
                       "bias": classifier.bias.detach().cpu().contiguous()}, str(out_dir / HEAD_FILE))

    if config.model.freeze_embeddings:
        base.embeddings.word_embeddings.weight.requires_grad_(False)
    head_ids = {id(p) for p in head}
    encoder = [p for p in trainable.parameters() if id(p) not in head_ids and p.requires_grad]
    return tokenizer, trainable, save, encoder, head


def _optimizer(config: EncoderRunConfig, trainable: Any, encoder: list, head: list, total_steps: int):
    import torch

    names = {id(p): n for n, p in trainable.named_parameters()}

    def no_decay(p) -> bool:
        n = names.get(id(p), "")
        return n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n

    o = config.optim
    groups = [
        {"params": [p for p in encoder if not no_decay(p)], "lr": o.learning_rate, "weight_decay": o.weight_decay},
        {"params": [p for p in encoder if no_decay(p)], "lr": o.learning_rate, "weight_decay": 0.0},
        {"params": [p for p in head if not no_decay(p)], "lr": o.head_learning_rate, "weight_decay": o.weight_decay},
        {"params": [p for p in head if no_decay(p)], "lr": o.head_learning_rate, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW([g for g in groups if g["params"]])
    warmup = max(1, int(total_steps * o.warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------ training


def train_encoder(examples_train: Sequence[Example], examples_val: Sequence[Example], catalog: Catalog,
                  config: EncoderRunConfig | None, out_dir: str | Path, *,
                  progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Fine-tune the encoder + head, calibrate thresholds on val, and save a self-contained folder.

    Args:
        examples_train, examples_val: :class:`~tooldistill.db.SplitExample` s or ``(text, Label)`` pairs. Val
            drives early stopping and threshold calibration; with no val rows every epoch runs and the
            thresholds default to 0.5 (sigmoid) / 0 (softmax).
        catalog: the tools (a sigmoid head has one output per tool, in catalogue order).
        config: the run config (None: defaults).
        out_dir: the folder to write (created): model weights, tokenizer, ``router.json``, ``README.md``.
        progress: receives ``ProgressEvent("train", step, total)`` and ``("validate", epoch, epochs)``.

    Returns: metrics: ``val`` (tool-set accuracy, in-scope accuracy, no-tool recall/precision at the calibrated
    thresholds), ``thresholds``, ``best_epoch``, ``epochs_run``, ``history`` (per-epoch loss and val scores),
    ``train_seconds``, sizes.

    Raises: InputError when there is nothing to train on or a label names a tool outside the catalogue.
    """
    import torch

    config = config or EncoderRunConfig()
    progress = progress or noop
    train, val = _pairs(examples_train, "train"), _pairs(examples_val, "val")
    if config.data.max_train_examples:
        train = train[: config.data.max_train_examples]
    if not train:
        raise InputError("no training examples; check the dataset version's train split", field="train")
    labels = _output_labels(train, catalog, config.head.kind)
    if config.head.kind == "softmax" and len(labels) < 2:
        raise InputError(f"a softmax head needs at least 2 tool sets in train, found {labels}", field="head.kind")
    max_tools = max(1, max(len(set(s)) for _, s in train))  # distinct tools: what a sigmoid head can name
    device = _resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    tokenizer, model, save, enc_params, head_params = _build_model(config, labels)
    model.to(device)
    ids = tokenizer([t for t, _ in train], truncation=True, max_length=config.data.max_length)["input_ids"]
    y = torch.from_numpy(_targets([s for _, s in train], labels, config.head.kind))
    steps_per_epoch = math.ceil(len(train) / config.optim.batch_size)
    total = steps_per_epoch * config.optim.epochs
    opt, sched = _optimizer(config, model, enc_params, head_params, total)
    if config.head.kind == "sigmoid":
        bce = torch.nn.BCEWithLogitsLoss(reduction="none")
        loss_fn = lambda logits, target: bce(logits, target).sum(1).mean()  # noqa: E731 - sum over tools
    else:
        loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=config.optim.label_smoothing)
    meta = {"head": config.head.kind, "labels": labels, "max_length": config.data.max_length}
    rng = random.Random(config.seed)
    history: list[dict] = []
    best: tuple[float, int, dict, Thresholds | None] | None = None
    stale, step, t_start = 0, 0, time.perf_counter()
    for epoch in range(1, config.optim.epochs + 1):
        model.train()
        losses = []
        for batch in _batches([len(x) for x in ids], config.optim.batch_size, rng):
            enc = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
            logits, _ = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            loss = loss_fn(logits, y[batch].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if step % 10 == 0 or step == total:
                progress(ProgressEvent("train", step, total, message=f"epoch {epoch}/{config.optim.epochs} "
                                       f"loss {np.mean(losses[-50:]):.4f}", info={"epoch": epoch}))
        row: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                               "seconds": round(time.perf_counter() - t_start, 1)}
        if val:
            model.eval()
            probs = predict_probabilities(model, tokenizer, meta, [t for t, _ in val], batch_size=128,
                                          device=device)
            val_gold = [s for _, s in val]
            th = _calibrate(probs, labels, val_gold, config, max_tools)
            ceiling = _in_scope_ceiling(probs, labels, val_gold, config.head.kind, max_tools)
            stop = _early_stopping_score(probs, labels, val_gold, config, max_tools, ceiling)
            row.update({"val_objective": round(th.score, 6), "val_early_stopping": round(stop, 6),
                        "val_in_scope_ceiling": round(ceiling, 6),
                        **{f"val_{k}": v for k, v in th.metrics.items() if k != "n"}})
            if best is None or stop > best[0] + 1e-9:
                best = (stop, epoch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, th)
                stale = 0
            else:
                stale += 1
        history.append(row)
        log.info("epoch %d: %s", epoch, row)
        progress(ProgressEvent("validate", epoch, config.optim.epochs, message=f"epoch {epoch}", info=row))
        if val and stale >= config.eval.patience:
            break
    train_seconds = time.perf_counter() - t_start
    if best is not None:
        model.load_state_dict(best[2])
        best_epoch, thresholds = best[1], best[3]
    else:
        best_epoch = len(history)
        thresholds = Thresholds(config.eval.no_tool_threshold if config.eval.no_tool_threshold is not None else
                                (0.5 if config.head.kind == "sigmoid" else 0.0),
                                (config.eval.tool_threshold or 0.5) if config.head.kind == "sigmoid" and max_tools > 1
                                else None, config.eval.objective, float("nan"), {})
    model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.eval.similarity_gate and val:
        progress(ProgressEvent("similarity gate", 0, 1, message="embedding train queries for the similarity gate"))
        in_scope = [t for t, tools in train if tools]
        _, exemplars = predict_outputs(model, tokenizer, meta, in_scope, batch_size=128, device=device, features=True)
        probs, feats = predict_outputs(model, tokenizer, meta, [t for t, _ in val], batch_size=128, device=device,
                                       features=True)
        thresholds = _calibrate(probs, labels, [s for _, s in val], config, max_tools,
                                similarity=nearest_similarity(feats, exemplars))
        if thresholds.similarity is not None:  # calibration may find the gate useless: then nothing to ship
            from safetensors.numpy import save_file

            save_file({"embeddings": exemplars.astype(np.float16)}, str(out_dir / EXEMPLARS_FILE))
        progress(ProgressEvent("similarity gate", 1, 1))
    from ..embeddings import quiet_transformers

    with quiet_transformers():
        save(out_dir)
        tokenizer.save_pretrained(out_dir)
    router = _router_json(config, labels, thresholds, max_tools, catalog)
    (out_dir / ROUTER_FILE).write_text(json.dumps(router, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(_readme(router, config), encoding="utf-8")
    serving = "torch"
    if config.serve.onnx:
        from .encoder_onnx import export_onnx, onnx_available

        if onnx_available():
            progress(ProgressEvent("onnx export", 0, 1, message="writing model.onnx and model.int8.onnx"))
            export_onnx(out_dir)
            progress(ProgressEvent("onnx export", 1, 1))
            serving = "onnx"
        else:
            serving = "torch (onnxruntime is not installed: pip install 'tooldistill[encoder]' for model.onnx)"
    metrics = {
        "student": "encoder", "head": config.head.kind, "pooling": config.model.pooling, "outputs": len(labels),
        "max_tools": max_tools, "n_train": len(train), "n_val": len(val), "best_epoch": best_epoch,
        "epochs_run": len(history), "train_seconds": round(train_seconds, 1), "device": device, "steps": step,
        "train_loss_first": history[0]["train_loss"], "train_loss_last": history[-1]["train_loss"],
        "thresholds": {"no_tool": thresholds.no_tool, "tool": thresholds.tool, "similarity": thresholds.similarity,
                       "objective": thresholds.objective},
        "val": thresholds.metrics, "history": history, "serving": serving,
    }
    return metrics


def _in_scope_ceiling(probs: np.ndarray, labels: list[str], gold: list[tuple], head: str, max_tools: int) -> float:
    """Tool-set accuracy on the rows that need a tool when the no-tool threshold is off (the model's ceiling)."""
    chosen = decide(probs, labels, head=head, no_tool_threshold=0.0, max_tools=max_tools,
                    tool_threshold=0.5 if head == "sigmoid" and max_tools > 1 else None)
    return tool_set_metrics(chosen, gold)["in_scope_accuracy"] or 0.0


def _early_stopping_score(probs: np.ndarray, labels: list[str], gold: list[tuple], config: EncoderRunConfig,
                          max_tools: int, ceiling: float) -> float:
    """The val score that picks the best epoch: it scores the model, not the threshold policy.

    ``balanced`` weighs in-scope accuracy and no-tool recall equally at their best threshold ("retain" would
    prefer an epoch whose scores merely separate no-tool rows well, even when it picks tools worse);
    ``in_scope`` is the threshold-free in-scope accuracy.
    """
    if config.eval.early_stopping == "in_scope" or not any(not g for g in gold):
        return ceiling
    return calibrate_thresholds(probs, labels, gold, head=config.head.kind, objective="balanced",
                                max_tools=max_tools).score


def _calibrate(probs: np.ndarray, labels: list[str], gold: list[tuple], config: EncoderRunConfig,
               max_tools: int, similarity: np.ndarray | None = None) -> Thresholds:
    return calibrate_thresholds(probs, labels, gold, head=config.head.kind, objective=config.eval.objective,
                                max_tools=max_tools, no_tool_threshold=config.eval.no_tool_threshold,
                                tool_threshold=config.eval.tool_threshold, no_tool_weight=config.eval.no_tool_weight,
                                in_scope_budget=config.eval.in_scope_budget, similarity=similarity)


def _router_json(config: EncoderRunConfig, labels: list[str], th: Thresholds, max_tools: int,
                 catalog: Catalog) -> dict:
    return {
        "format": FORMAT, "version": 1, "head": config.head.kind, "pooling": config.model.pooling,
        "labels": labels, "no_tool_threshold": th.no_tool, "tool_threshold": th.tool, "max_tools": max_tools,
        "similarity_threshold": th.similarity,
        "exemplars": EXEMPLARS_FILE if th.similarity is not None else None,
        "max_length": config.data.max_length, "catalog_hash": catalog.hash, "catalog_name": catalog.name,
        "base_model": config.model.base_model, "calibration": {"objective": th.objective, "val": th.metrics},
        "decision": ("best tool, plus other tools with p >= tool_threshold (at most max_tools); no tool if the best "
                     "p < no_tool_threshold" if config.head.kind == "sigmoid" else
                     "most probable tool set ('+'-joined names); no tool if it is '<none>' or its p < "
                     "no_tool_threshold") + ("; also no tool if the cosine between the query's mean-pooled last "
                                             "hidden state and its nearest row of exemplars.safetensors is < "
                                             "similarity_threshold" if th.similarity is not None else ""),
    }


_README = """\
# Encoder tool router

A sentence encoder fine-tuned by tooldistill to choose the tool set for a request (one tool, several, or none).
Head: **{head}** over {outputs} outputs, pooling: **{pooling}**, max length {max_length} tokens, seed {seed}.
`router.json` holds the label names (`labels`), the thresholds and the decision rule; thresholds were calibrated on
the validation split: `no_tool_threshold` = {no_tool}, `tool_threshold` = {tool}, `max_tools` = {max_tools},
`similarity_threshold` = {similarity}.

Decision: {decision}.

## Load it with transformers alone

```python
import json, torch
from safetensors.numpy import load_file
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

path = "."  # this folder
meta = json.load(open(f"{{path}}/router.json"))
tok = AutoTokenizer.from_pretrained(path)
enc = tok(["what's the weather in Oslo?"], padding=True, truncation=True, max_length=meta["max_length"],
          return_tensors="pt")
mask = enc["attention_mask"].unsqueeze(-1).float()
with torch.no_grad():
{load}
probs = {act}[0]
best = int(probs.argmax())
label = meta["labels"][best]                     # a tool (sigmoid) or a '+'-joined tool set (softmax)
tools = [] if label == "<none>" else label.split("+")
if meta["head"] == "sigmoid" and meta["tool_threshold"] is not None:   # other tools of a multi-tool set
    tools += [meta["labels"][j] for j in probs.argsort(descending=True)[:meta["max_tools"]].tolist()
              if j != best and probs[j] >= meta["tool_threshold"]]
if probs[best] < meta["no_tool_threshold"]:
    tools = []                                   # no tool fits
if meta["similarity_threshold"] is not None:     # the similarity gate
    emb = torch.nn.functional.normalize(pooled, dim=-1)[0].numpy()
    exemplars = load_file(f"{{path}}/exemplars.safetensors")["embeddings"].astype("float32")
    if float((exemplars @ emb).max()) < meta["similarity_threshold"]:
        tools = []
```
{pipeline}
## Serve it with onnxruntime (CPU)

When `model.onnx` is here (and `model.int8.onnx`, its int8 copy), onnxruntime alone runs the network: inputs
`input_ids` and `attention_mask` (int64), outputs `logits` and `features` (the mean-pooled last hidden state; L2-
normalise it for the similarity gate). Apply softmax or sigmoid to `logits` as above:

```python
import onnxruntime as ort
session = ort.InferenceSession(f"{{path}}/model.onnx", providers=["CPUExecutionProvider"])
logits, pooled = session.run(None, {{"input_ids": enc["input_ids"].numpy(), "attention_mask": enc["attention_mask"].numpy()}})
```

With tooldistill installed: `EncoderRouter(path).route(["..."])` returns labels, and
`tooldistill route "..." --run RUN` answers from the command line.
"""

_PIPELINE = """
With `pooling: cls` the folder is a standard sequence classifier, so `pipeline` reads it too:
`pipeline("text-classification", model=path, top_k=None)` gives every label's probability
(sigmoid for a multi-label head); apply the thresholds above.
"""


def _readme(router: dict, config: EncoderRunConfig) -> str:
    i = "    "
    if router["pooling"] == "cls":
        load = (f"{i}out = AutoModelForSequenceClassification.from_pretrained(path).eval()(**enc, "
                f"output_hidden_states=True)\n"
                f"{i}logits = out.logits\n"
                f"{i}pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1)")
    else:
        load = (f"{i}head = load_file(f\"{{path}}/head.safetensors\")\n"
                f"{i}hidden = AutoModel.from_pretrained(path).eval()(**enc).last_hidden_state\n"
                f"{i}pooled = (hidden * mask).sum(1) / mask.sum(1)\n"
                f"{i}logits = pooled @ torch.from_numpy(head[\"weight\"]).T + torch.from_numpy(head[\"bias\"])")
    act = "torch.sigmoid(logits)" if router["head"] == "sigmoid" else "torch.softmax(logits, -1)"
    return _README.format(head=router["head"], pooling=router["pooling"], outputs=len(router["labels"]),
                          no_tool=router["no_tool_threshold"], tool=router["tool_threshold"],
                          similarity=router["similarity_threshold"], max_tools=router["max_tools"],
                          max_length=router["max_length"], load=load, act=act, decision=router["decision"],
                          seed=config.seed, pipeline=_PIPELINE if router["pooling"] == "cls" else "")


# ------------------------------------------------------------------ runs


def train(db: Database, config: EncoderRunConfig, *, request: TrainRequest) -> TrainResult:
    """Train an ``encoder`` student on a dataset version (or export file) and record it as a ``runs`` row.

    The student registry's hook: ``tooldistill train run --student encoder`` lands here through
    :func:`tooldistill.train.runs.start_run`. ``--resume`` of an encoder run trains it again from the start under
    the same id (a run takes minutes; there are no checkpoints).

    Side effects: a ``runs`` row (``running`` then ``done``/``failed``/``interrupted``) and ``runs/<id>/`` with
    ``config.yaml``, ``catalog.yaml``, ``metrics.json`` and ``model/`` (the router folder).

    Raises: InputError for data problems; Interrupted (exit 130) on Ctrl-C after marking the run.
    """
    from ..embeddings import ENCODER_NAME
    from .config import config_to_yaml
    from .examples import load_training_data

    progress = request.progress
    data = load_training_data(db, dataset=request.dataset, data_file=request.data_file, catalog=request.catalog,
                              val_fraction=config.data.val_fraction, seed=config.seed)
    run_id = request.run_id or new_run_id("train")
    run_dir = runs_dir(request.root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(config), encoding="utf-8")
    (run_dir / "catalog.yaml").write_text(dump_catalog(data.catalog), encoding="utf-8")
    base = ENCODER_NAME if config.model.base_model == PACKAGED_MINILM else config.model.base_model
    if request.resume_run_id:
        update_run(db, run_id, status="running", finished_at=None, notes=None)
    else:
        create_run(db, run_id=run_id, kind="train", config=config.model_dump(mode="json"),
                   dataset_version=data.version, base_model=base, artifact_path=run_dir.resolve(),
                   parent_run_id=request.parent_run_id,
                   inputs={**data.source, "catalog_hash": data.catalog.hash,
                           **({"dataset": data.version} if "dataset" in data.source else {})})
    try:
        metrics = train_encoder(data.train, data.val, data.catalog, config, run_dir / MODEL_DIR, progress=progress)
    except KeyboardInterrupt:
        finish_run(db, run_id, status="interrupted", notes="stopped by Ctrl-C")
        raise Interrupted(f"training {run_id} stopped; start again with: tooldistill train run --resume {run_id}") \
            from None
    except BaseException as exc:
        finish_run(db, run_id, status="failed", notes=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    summary = {k: v for k, v in metrics.items() if k != "history"}
    finish_run(db, run_id, status="done", metrics=summary)
    return TrainResult(run_id, run_dir, "done", data.version, summary)


def run_encoder_training(db: Database, *, dataset_version: str, config: EncoderRunConfig | None = None,
                         workspace_root: str | Path, like_run: str | None = None,
                         progress: ProgressCallback = noop) -> str:
    """Train an encoder student on ``dataset_version`` and return the new run's id.

    Args:
        db: the workspace database.
        dataset_version: a dataset version reference (id, unique prefix, name or ``latest``).
        config: the run config (None: the ``like_run``'s resolved config, else defaults).
        workspace_root: artifacts go to ``workspace_root/runs/<id>/``.
        like_run: an earlier run this one repeats on new data; recorded as ``parent_run_id``.

    Side effects: see :func:`train`.
    """
    parent = None
    if like_run is not None:
        parent = get_run(db, like_run)
        if config is None:
            if (parent.get("config") or {}).get("student") != "encoder":
                raise ToolDistillError(f"run {parent['id']} is not an encoder run; pass a config")
            config = EncoderRunConfig.model_validate(parent["config"])
    request = TrainRequest(root=Path(workspace_root), dataset=dataset_version,
                           parent_run_id=parent["id"] if parent else None, progress=progress)
    return train(db, config or EncoderRunConfig(), request=request).run_id


__all__ = ["Config", "EncoderRunConfig", "EncoderRouter", "train", "train_encoder", "run_encoder_training",
           "base_model_path", "MODEL_DIR"]
