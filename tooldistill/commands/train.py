"""`tooldistill train` commands: run, runs, merge, push, config, tiny-model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import JsonOpt, info, out, print_json, progress_bar, state

app = typer.Typer(no_args_is_help=True, help="Fine-tune the student router (LoRA; QLoRA on CUDA), merge it, push "
                  "it, and compare runs and their lineage.")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Train config YAML (see configs/).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field, KEY=VALUE with a "
                                                     "dotted key (repeatable), e.g. optim.learning_rate=1e-4.")]
StudentOpt = Annotated[Optional[str], typer.Option("--student", help="Student kind: sft (causal LM, LoRA/QLoRA) "
                                                   "or encoder (default: the config's, else sft).")]
RunArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix, or 'latest'), or a run folder.")]


def _overrides(set_: list[str] | None, base_model: str | None) -> dict:
    from ..train.config import parse_overrides

    overrides = parse_overrides(set_)
    if base_model:
        path = Path(base_model).expanduser()
        overrides["model.base_model"] = str(path.resolve()) if path.exists() else base_model
    return overrides


def _accelerate_args(config, set_, dataset, data, base_model, like, student) -> list[str]:
    args = ["train", "run"]
    for flag, value in (("--config", config), ("--dataset", dataset), ("--data", data), ("--base-model", base_model),
                        ("--like", like), ("--student", student)):
        if value:
            args += [flag, str(value)]
    for item in set_ or []:
        args += ["--set", item]
    return args


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset version to train on (id, "
                                                   "prefix, name or 'latest').")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Or a labeled export JSONL (its content hash "
                                                 "becomes the dataset version).")] = None,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Base model folder or hub id "
                                                      "(same as --set model.base_model=...).")] = None,
    like: Annotated[Optional[str], typer.Option("--like", help="Repeat this run's config on new data "
                                                "(recorded as its parent).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Continue this interrupted run from its "
                                                  "last checkpoint.")] = None,
    student: StudentOpt = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Explicit id for the new run.")] = None,
    accelerate: Annotated[bool, typer.Option("--print-accelerate-command", help="Print the 'accelerate launch' "
                                             "line that runs this on every GPU (data parallel), and exit.")] = False,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="With --print-accelerate-command: processes "
                                      "(0: every visible GPU).")] = 0,
    json_: JsonOpt = False,
) -> None:
    """Fine-tune a student on a dataset version and record the run (adapter, loss.png, metrics, runs row).

    QLoRA (4-bit NF4, bf16) on CUDA, plain LoRA in fp32 on CPU. Ctrl-C stops cleanly; --resume continues.

    Example: tooldistill train run --config configs/tiny-cpu.yaml --dataset latest --base-model tiny/
    """
    from ..train.runs import accelerate_command, start_run

    if accelerate:
        if gpus == 0:
            import torch

            gpus = max(torch.cuda.device_count(), 1)
        out.print(accelerate_command(_accelerate_args(config, set_, dataset, data, base_model, like, student),
                                     gpus=gpus, run_id=run_id), highlight=False)
        return
    st = state(ctx)
    db = st.open_db()
    with progress_bar(ctx) as progress:
        result = start_run(db, root=st.workspace.root, config_path=config, overrides=_overrides(set_, base_model),
                           student=student, dataset=dataset, data_file=data, like=like, resume=resume,
                           run_id=run_id, progress=progress)
    for warning in result.warnings:
        info(f"[yellow]warning:[/yellow] {warning}", ctx)
    if json_:
        print_json(result.to_dict())
        return
    m = result.metrics
    out.print(f"run [bold]{result.run_id}[/bold] {result.status}: {m.get('steps')} steps, train loss "
              f"{_num(m.get('train_loss_first'))} -> {_num(m.get('train_loss_last'))}, eval loss "
              f"{_num(m.get('eval_loss'))}", highlight=False)
    _print_data_report(m.get("data") or {})
    if m.get("val_score"):
        v = m["val_score"]
        out.print(f"val ({v['n']} generated): valid {_pct(v['valid'])}, tool accuracy {_pct(v['tool_accuracy'])}, "
                  f"exact {_pct(v['exact'])}", highlight=False)
    out.print(f"artifacts: {result.run_dir}", highlight=False)


def _print_data_report(data: dict) -> None:
    for split in ("train", "val"):
        rep = data.get(split)
        if rep:
            dropped = f", {rep['too_long']} dropped (over max_length)" if rep["too_long"] else ""
            out.print(f"{split}: {rep['kept']} examples, mean {rep['mean_tokens']} tokens (max {rep['max_tokens']})"
                      f"{dropped}", highlight=False)


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _pct(value) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


@app.command("runs")
def runs_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", help="Run kind to list (train, eval, or all).")] = "train",
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N runs.")] = 50,
    json_: JsonOpt = False,
) -> None:
    """List runs newest first, with their lineage (parent/children), data version and metrics.

    Example: tooldistill train runs --json
    """
    from ..train.runs import list_runs

    rows = list_runs(state(ctx).open_db(create=False), kind=None if kind == "all" else kind, limit=limit)
    if json_:
        print_json(rows)
        return
    table = Table(title=f"{kind} runs")
    table.add_column("run", no_wrap=True)
    for name in ("status", "student", "data", "parent", "base", "eval loss", "val tool acc"):
        table.add_column(name, overflow="fold")
    for r in rows:
        cfg, m = r.get("config") or {}, r.get("metrics") or {}
        table.add_row(r["id"], r["status"], str(cfg.get("student", "")) if isinstance(cfg, dict) else "",
                      (r.get("dataset_version") or "")[:8], r.get("parent_run_id") or "",
                      Path(r.get("base_model") or "").name, _num(m.get("eval_loss")),
                      _pct((m.get("val_score") or {}).get("tool_accuracy")))
    out.print(table)


@app.command("merge")
def merge_cmd(
    ctx: typer.Context,
    run: RunArg,
    dtype: Annotated[str, typer.Option("--dtype", help="auto (bf16 on a bf16 GPU, else fp32), bfloat16, float16, "
                                       "float32. The base is never 4-bit.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing merged/.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Merge a run's adapter into an unquantized base, saved to runs/<id>/merged/ for deployment.

    Example: tooldistill train merge latest
    """
    from ..train.merge import merge_run

    db = state(ctx).open_db(create=False) if state(ctx).workspace.db_path.exists() else None
    with progress_bar(ctx) as progress:
        path = merge_run(run, db=db, dtype=dtype, force=force, progress=progress)
    if json_:
        print_json({"run": run, "merged": str(path)})
        return
    out.print(f"merged model: {path}", highlight=False)


@app.command("push")
def push_cmd(
    ctx: typer.Context,
    run: RunArg,
    to: Annotated[str, typer.Option("--to", help="Hub model repo, OWNER/NAME (created if missing).")],
    merged: Annotated[bool, typer.Option("--merged", help="Push merged/ instead of the adapter.")] = False,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    dataset_repo: Annotated[Optional[str], typer.Option("--dataset-repo", help="Hub dataset to link in the card "
                                                        "(default: the one curate pushed, if recorded).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Push a run's adapter (or merged model) to the Hugging Face Hub with a generated model card.

    The token comes from HF_TOKEN (environment or .env) or a cached 'hf auth login'.

    Example: tooldistill train push latest --to my-org/router-qwen0.5b --merged
    """
    from ..train.push import push_run

    st = state(ctx)
    db = st.open_db(create=False) if st.workspace.db_path.exists() else None
    result = push_run(run, repo=to, db=db, merged=merged, private=private, token=st.workspace.getenv("HF_TOKEN"),
                      dataset_repo=dataset_repo)
    if json_:
        print_json({k: v for k, v in result.items() if k != "card"})
        return
    out.print(f"pushed {result['folder']} to {result['url']}", highlight=False)


@app.command("config")
def config_cmd(config: ConfigOpt = None, set_: SetOpt = None, student: StudentOpt = None,
               base_model: Annotated[Optional[str], typer.Option("--base-model", help="Base model.")] = None) -> None:
    """Validate a config with its overrides and print it resolved (every field, defaults filled in).

    Example: tooldistill train config -c configs/qwen2.5-7b-r64.yaml --set optim.epochs=1
    """
    from ..train.config import config_to_yaml, load_student_config

    resolved = load_student_config(config, _overrides(set_, base_model), student=student)
    out.print(config_to_yaml(resolved), end="", highlight=False, markup=False)


@app.command("tiny-model")
def tiny_model_cmd(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="Folder to write the model and tokenizer to.")],
    catalog: Annotated[Optional[Path], typer.Option("--catalog", help="Catalogue whose chats train the tokenizer "
                                                    "(default: the workspace's, else the packaged one).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the corpus and the weights.")] = 0,
) -> None:
    """Build a tiny random Qwen2-shaped student offline (tests and the demo use it as the base model).

    Example: tooldistill train tiny-model tiny-student && tooldistill train run -c configs/tiny-cpu.yaml
    --dataset latest --base-model tiny-student
    """
    from ..catalog import load_catalog
    from ..train.tiny import build_tiny_model

    st = state(ctx)
    if catalog is not None:
        cat = load_catalog(catalog)
    elif st.workspace.db_path.exists():
        from ..db import get_catalog

        cat = get_catalog(st.open_db(create=False))
    else:
        cat = load_catalog(st.workspace.catalog_path) if st.workspace.catalog_path else load_catalog()
    path = build_tiny_model(folder, catalog=cat, seed=seed)
    out.print(f"tiny model: {path} (catalogue {cat.name}, {len(cat.tools)} tools)", highlight=False)
    info(f"next: tooldistill train run -c configs/tiny-cpu.yaml --dataset latest --base-model {path}", ctx)
