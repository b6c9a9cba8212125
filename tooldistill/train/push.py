"""Publishing a run to the Hugging Face Hub: the adapter (or the merged model) with a generated model card.

The card says what the model is for (a tool router for this catalogue), its base model, the dataset version it
learned from (with the dataset's card when it was pushed), the resolved config, training metrics, and the
metrics of every eval run of it, plus how to prompt it the way it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..catalog import Catalog, load_catalog
from ..errors import ToolDistillError
from .runs import eval_runs_for, get_run, run_dir_of

_HUB_KEYS = ("hub_repo", "repo_id", "push_to_hub", "hub")
_SHOWN_METRICS = ("tool_accuracy", "fully_correct", "args_exact", "arg_f1", "false_tool_call", "no_tool_recall",
                  "valid_json", "schema_valid", "exact", "valid")


def _dataset_repo(db: Database | None, version: str | None) -> str | None:
    """The hub repo a dataset version was pushed to, when curate recorded one."""
    if db is None or not version:
        return None
    row = db.execute("SELECT params, report, lineage FROM dataset_versions WHERE id = ?", [version]).fetchone()
    for blob in row or ():
        try:
            data = json.loads(blob) if blob else {}
        except json.JSONDecodeError:
            continue
        for key in _HUB_KEYS:
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, str) and "/" in value:
                return value
    return None


def _rate(value) -> str | None:
    if isinstance(value, dict):
        point, lo, hi = value.get("value"), value.get("lo"), value.get("hi")
        if not isinstance(point, (int, float)):
            return None
        return f"{point:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if isinstance(lo, (int, float)) else "")
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _split_of(eval_run: dict) -> str:
    config = eval_run.get("config") if isinstance(eval_run.get("config"), dict) else {}
    return str(config.get("split") or eval_run.get("dataset_version") or "")


def _metrics_line(metrics: dict) -> str:
    """Headline rates of a metrics dict: an eval run's first label view (with intervals), or flat rates."""
    views = (metrics.get("summary") or {}).get("views") or {}
    if views:
        view, data = next(iter(views.items()))
        rates = data.get("rates") or {}
        parts = [f"{k} {r}" for k in _SHOWN_METRICS if (r := _rate(rates.get(k)))]
        return f"{view} labels, n={data.get('n')}: " + (", ".join(parts) or "no rates")
    flat = {**metrics, **(metrics.get("val_score") or {})}
    return ", ".join(f"{k} {r}" for k in _SHOWN_METRICS if (r := _rate(flat.get(k)))) or "see metrics JSON"


def model_card(run: dict, *, catalog: Catalog, config_yaml: str, eval_runs: list[dict], merged: bool,
               dataset_repo: str | None = None) -> str:
    """Return the README.md (YAML front matter + Markdown) for a trained run.

    Args:
        run: the run row (decoded, see :func:`~tooldistill.train.runs.get_run`).
        catalog: the catalogue the router was trained on.
        config_yaml: the resolved config as saved with the run.
        eval_runs: eval rows of this run (their metrics go in a table).
        merged: the card describes the merged model (else the PEFT adapter).
        dataset_repo: the hub dataset the version was pushed to, if any.
    """
    metrics = run.get("metrics") or {}
    base = run.get("base_model") or "unknown"
    base_is_hub = not Path(base).is_absolute() and base.count("/") == 1
    front = ["---", "library_name: " + ("transformers" if merged else "peft"),
             *(["base_model: " + base] if base_is_hub else []),
             *(["datasets:", f"- {dataset_repo}"] if dataset_repo else []),
             "pipeline_tag: text-generation", "tags:", "- tool-calling", "- function-calling", "- router",
             "- tooldistill", *([] if merged else ["- lora"]), "---", ""]
    tools = "\n".join(f"- `{t.name}`: {t.description}" for t in catalog.tools)
    data_line = f"dataset version `{run.get('dataset_version')}`"
    if dataset_repo:
        data_line += f" ([dataset card](https://huggingface.co/datasets/{dataset_repo}))"
    evals = "\n".join(f"| `{e['id']}` | {_split_of(e)} | {_metrics_line(e.get('metrics') or {})} |"
                      for e in eval_runs) or "| (none yet: run `tooldistill eval run --run RUN`) | | |"
    train_metrics = {k: round(v, 4) if isinstance(v, float) else v for k in ("steps", "epochs", "train_loss_last",
                     "eval_loss", "best_step", "tokens_per_s") if (v := metrics.get(k)) is not None}
    import yaml

    in_prompt = ((yaml.safe_load(config_yaml) or {}).get("data") or {}).get("catalog_in_prompt", True)
    catalog_how = "the catalogue as `tools` (OpenAI function format)" if in_prompt else \
        "no catalogue in the prompt (the student learned it; `tooldistill_catalog_in_prompt: false`)"
    val = metrics.get("val_score")
    kind = "merged model (LoRA merged into the unquantized base)" if merged else "LoRA adapter (PEFT)"
    body = f"""# {run['id']}: a tool router

A {kind} distilled with tooldistill from a teacher's labels. Given a user request, it
answers with the tool calls that serve it (or `[]` when no tool fits), for this catalogue only.

## Intended use

Route requests between these tools (catalogue hash `{catalog.hash}`):

{tools}

It is not a chat model: for anything outside the catalogue it should answer `[]`. Validate its calls against
the catalogue's JSON Schemas before executing them.

## How to prompt it

Render the request with the tokenizer's chat template, {catalog_how}, the system prompt stored in
`tokenizer_config.json` (`tooldistill_system_prompt`) and the generation prompt; decode greedily. With tooldistill: `load_trained`, `render_prompt`, `generate_batch`, `parse_output` from
`tooldistill.train`.

## Training

- base model: `{base}`
- data: {data_line}{' (parent run `' + run['parent_run_id'] + '`)' if run.get('parent_run_id') else ''}
- metrics: `{json.dumps(train_metrics)}`{f'; quick val score on {val["n"]} examples: ' + _metrics_line(val) if val else ''}

```yaml
{config_yaml.strip()}
```

## Evaluation

| eval run | split | metrics |
|---|---|---|
{evals}
"""
    return "\n".join(front) + body


def push_run(run: str | Path, *, repo: str, db: Database | None = None, merged: bool = False,
             private: bool = False, token: str | None = None, dataset_repo: str | None = None,
             commit_message: str | None = None) -> dict[str, Any]:
    """Upload a run's adapter (or merged model) with a generated model card to the Hub.

    Args:
        run: a run id/prefix (with ``db``) or a run folder.
        repo: the model repo, ``owner/name`` (created if missing).
        db: the workspace database (run row, eval runs, dataset version).
        merged: upload ``merged/`` (run ``train merge`` first) instead of ``adapter/``.
        private: create the repo private.
        token: a Hub write token (default: ``HF_TOKEN`` or the cached ``hf auth login``).
        dataset_repo: the hub dataset to link in the card (default: the one curate recorded, if any).

    Returns: ``{"repo", "url", "folder", "card"}``.

    Side effects: writes README.md into the uploaded folder; creates the repo and one commit on the Hub.
    """
    from huggingface_hub import HfApi

    from .load import ADAPTER_DIR, MERGED_DIR

    if repo.count("/") != 1:
        raise ToolDistillError(f"--to {repo!r} is not a repo id; use OWNER/NAME")
    folder = run_dir_of(db, run)
    row = get_run(db, folder.name) if db is not None else {"id": folder.name}
    upload = folder / (MERGED_DIR if merged else ADAPTER_DIR)
    marker = "config.json" if merged else "adapter_config.json"
    if not (upload / marker).is_file():
        hint = f"run 'tooldistill train merge {row['id']}' first" if merged else "did the run finish?"
        raise ToolDistillError(f"nothing to push: {upload / marker} is missing; {hint}")
    if "base_model" not in row:
        from .config import load_config

        row = {**row, "base_model": load_config(folder / "config.yaml").model.base_model}
    card = model_card(row, catalog=load_catalog(folder / "catalog.yaml"),
                      config_yaml=(folder / "config.yaml").read_text(encoding="utf-8"),
                      eval_runs=eval_runs_for(db, row["id"]) if db is not None else [], merged=merged,
                      dataset_repo=dataset_repo or _dataset_repo(db, row.get("dataset_version")))
    (upload / "README.md").write_text(card, encoding="utf-8")
    api = HfApi(token=token)
    api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=repo, folder_path=str(upload), repo_type="model",
                             commit_message=commit_message or f"tooldistill: {row['id']} "
                                                              f"({'merged' if merged else 'adapter'})",
                             ignore_patterns=["training_args.bin", "checkpoint-*"])
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo}"
    return {"repo": repo, "url": str(url), "folder": str(upload), "card": card}
