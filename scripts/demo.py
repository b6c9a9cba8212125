"""The whole pipeline, offline, against the built-in fake Gemini teacher (`make demo`).

Each step is the real `tooldistill` command a user would type; this script only chains them and explains.
The teacher is a real HTTP server on 127.0.0.1 speaking Gemini's REST protocol, with injected 503s, malformed
answers, per-minute quotas, a short fake day (so a daily quota runs out and resets within the demo), and a few
percent of seeded label noise, so the audit has something to find.

    python scripts/demo.py [--workspace demo-workspace] [--n 1200] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO  # replaced by the workspace once it exists: run artifacts go under it
KEYS = "demo-key-alpha@project-a,demo-key-bravo@project-a,demo-key-charlie@project-b"
FAKE_CONFIG = {
    "keys": {"demo-key-alpha": "project-a", "demo-key-bravo": "project-a", "demo-key-charlie": "project-b"},
    "models": {
        # the two default teacher models make a few mistakes; the stronger one does not (used to relabel)
        "gemini-2.5-flash": {"rpm": 600, "rpd": 150, "noise_rate": 0.06},
        "gemini-2.5-flash-lite": {"rpm": 600, "rpd": 150, "noise_rate": 0.06},
        "gemini-2.5-pro": {"rpm": 600, "rpd": 2000, "noise_rate": 0.0},
    },
    "faults": {"unavailable_503": 0.04, "internal_500": 0.01, "malformed": 0.02},
    "latency_s": [0.01, 0.05],
    "day_seconds": 25,
    "seed": 7,
}


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def tool(*args: str, env: dict, ok=(0,), capture: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run one `tooldistill` command as a user would, echoing it; stop the demo on an unexpected exit code."""
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ tooldistill {shown}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "tooldistill", *args], env=env, text=True, cwd=cwd or WORKSPACE,
                          stdout=subprocess.PIPE if capture else None)
    if proc.returncode not in ok:
        sys.exit(f"demo: 'tooldistill {shown}' exited {proc.returncode}")
    return proc


def last_id(proc: subprocess.CompletedProcess, key: str) -> str:
    return json.loads(proc.stdout)[key]


def main() -> None:
    global WORKSPACE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=REPO / "demo-workspace")
    ap.add_argument("--n", type=int, default=1200, help="Generated queries.")
    ap.add_argument("--steps", type=int, default=200, help="Training steps of the tiny student.")
    args = ap.parse_args()

    ws = args.workspace.resolve()
    if ws.exists():
        shutil.rmtree(ws)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(ws / ".hf"), "COLUMNS": "140", "TOOLDISTILL_DB": str(ws / "tooldistill.db"), "PYTHONPATH": str(REPO)}
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "HF_TOKEN"):
        env.pop(var, None)
    started = time.time()

    banner("1. A workspace and its data")
    tool("init", str(ws), env=env)
    WORKSPACE = ws
    scratch = {**env, "TOOLDISTILL_DB": str(ws / "scratch.db")}
    tool("data", "generate", "--n", str(args.n), "--seed", "7", env=scratch)
    tool("data", "export", "--out", str(ws / "oracle.jsonl"), env=scratch)
    (ws / "scratch.db").unlink()
    print("The generated gold labels become the fake teacher's knowledge (oracle.jsonl); the workspace gets the\n"
          "queries without them, as a user's unlabeled queries would arrive.")
    tool("data", "import", str(ws / "oracle.jsonl"), "--no-labels", env=env)

    banner("2. Label through the fake Gemini teacher (503s, malformed answers, a short quota day)")
    (ws / "fake-gemini.json").write_text(json.dumps({**FAKE_CONFIG, "oracle": str(ws / "oracle.jsonl"),
                                                     "log_path": str(ws / "fake-gemini.log.jsonl")}))
    port_file = ws / "fake-gemini.port"
    server = subprocess.Popen([sys.executable, "-m", "tooldistill", "distill", "fake-server", "--config",
                               str(ws / "fake-gemini.json"), "--port-file", str(port_file)], env=env,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        teacher_env = {**env, "GEMINI_API_KEYS": KEYS,
                       "GEMINI_BASE_URL": f"http://127.0.0.1:{port_file.read_text().strip()}"}
        tool("distill", "run", "--wait", "--day-seconds", "25", "--concurrency", "8", "--rpm", "600", "--rpd", "150",
             env=teacher_env)
        tool("distill", "status", env=teacher_env)
        tool("distill", "run", "--day-seconds", "25", env=teacher_env)  # a re-run pays nothing

        banner("3. Curate: dedup, a first split, and a first student on the teacher's labels")
        tool("curate", "dedup", env=env)
        v1 = last_id(tool("curate", "split", "--seed", "0", "--no-hard", "--name", "v1-teacher", "--json", env=env,
                          capture=True), "version_id")
        tool("curate", "export", v1, "--format", "hf", "--out", str(ws / "export-v1"), env=env)
        tool("train", "tiny-model", str(ws / "models" / "tiny"), env=env)
        run1 = last_id(tool("train", "run", "--config", str(REPO / "configs" / "tiny-cpu.yaml"), "--dataset", v1,
                            "--base-model", str(ws / "models" / "tiny"), "--set", f"optim.max_steps={args.steps}",
                            "--json", env=env, capture=True), "run_id")

        banner("4. Audit the teacher, relabel what it flags with a stronger model, adjudicate")
        tool("curate", "audit", "--limit", "15", env=env)
        tool("curate", "relabel", "--top", "60", "--model", "gemini-2.5-pro", env=env)
        tool("distill", "run", "--day-seconds", "25", "--models", "gemini-2.5-pro", "--rpm", "600", "--rpd", "2000",
             env=teacher_env)
        tool("curate", "adjudicate", "--models", "gemini-2.5-pro,gemini-2.5-flash,gemini-2.5-flash-lite", env=env)

        banner("5. Retrain on the relabeled data (same config, new dataset version, lineage kept)")
        v2 = last_id(tool("curate", "split", "--seed", "0", "--no-hard", "--name", "v2-relabeled", "--json", env=env,
                          capture=True), "version_id")
        run2 = last_id(tool("train", "run", "--like", run1, "--dataset", v2, "--json", env=env, capture=True),
                       "run_id")
        # The CPU student: MiniLM fine-tuned to pick the tool set, served with onnxruntime (tools only, no args).
        encoder = last_id(tool("train", "run", "--student", "encoder", "--config",
                               str(REPO / "configs" / "encoder-cpu.yaml"), "--dataset", v2, "--set",
                               "optim.epochs=3", "--set", "threads=1", "--json", env=env, capture=True), "run_id")
        tool("train", "runs", env=env)

        banner("6. Evaluate against teacher and corrected labels side by side, with baselines")
        evals = []
        for target in (["--baseline", "majority"], ["--baseline", "keyword"], ["--teacher"], ["--run", run1],
                       ["--run", run2], ["--run", encoder]):
            proc = tool("eval", "run", "--split", f"{v2}:test", *target, "--json", env=teacher_env, capture=True)
            evals.append(last_id(proc, "run_id"))
        tool("eval", "board", *evals, env=env)
        tool("eval", "compare", evals[3], evals[4], "--view", "corrected", env=env)
        tool("route", "what's the weather like in Lisbon tomorrow?", "--run", run2, env=env)
        tool("route", "what's the weather like in Lisbon tomorrow?", "--run", encoder, env=env)
        # The hybrid: the encoder picks the tool, the LLM student writes its arguments (the demo's tiny random LLM
        # writes poor ones; a pretrained student on a GPU is what fills them well).
        tool("route", "what's the weather like in Lisbon tomorrow?", "--run", encoder, "--args-run", run2, env=env)
        # The loop closes: the encoder's eval run is a student for the audit (its confident disagreements).
        tool("curate", "audit", "--signals", "student", "--student-run", evals[5], "--student-min-confidence", "0.8",
             "--limit", "5", env=env)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)

    banner(f"Done in {time.time() - started:.0f} s. Everything is in {ws}")
    print(f"  database      {ws / 'tooldistill.db'}   (tooldistill db status)\n"
          f"  dataset       {ws / 'export-v1'}      (datasets.load_from_disk)\n"
          f"  runs          {ws / 'runs'}            (adapters, loss.png, eval reports and charts)")


if __name__ == "__main__":
    main()
