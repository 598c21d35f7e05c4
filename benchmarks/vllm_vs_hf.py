"""The same tasks evaluated in-process (HF backend) and through a vLLM server.

Starts vLLM (``.venv-vllm``, made by ``make test``) on the embedded SmolLM2 and times its
start-up (process start to the first answer of ``/v1/models``); then evaluates the shipped
suites' multiple-choice tasks (``general/world_knowledge``, ``legal/doctrine_mc``) and
generation tasks (``general/arithmetic``, ``legal/legal_qa``) on the first ``--limit`` items
with both backends, each into a fresh FTGUARD_HOME so nothing is cached, and prints the wall
times, the ratio, and whether every prediction is the same.

Run: ``.venv/bin/python benchmarks/vllm_vs_hf.py [--limit 60] [--concurrency 8]
[--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = {"mc": ["world_knowledge", "doctrine_mc"], "generation": ["arithmetic", "legal_qa"]}


def start_vllm(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_KVCACHE_SPACE": "2",
           "VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(REPO / ".venv-vllm/bin/python"), "-m", "vllm.entrypoints.openai.api_server",
             "--model", str(model), "--served-model-name", "smollm2", "--host", "127.0.0.1",
             "--port", str(port), "--dtype", "float32", "--enforce-eager"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    while time.perf_counter() - started < 600:
        if server.poll() is not None:
            sys.exit(f"vLLM exited:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5):
                return server, url, time.perf_counter() - started
        except OSError:
            time.sleep(1)
    os.killpg(server.pid, signal.SIGKILL)
    sys.exit("vLLM did not start within 600 s")


def evaluate(limit: int, tasks: list[str], extra: list[str], home: Path) -> tuple[float, dict]:
    out = home / "run.json"
    started = time.perf_counter()
    subprocess.run([str(REPO / ".venv/bin/ftguard"), "eval", str(REPO / "suites/general"),
                    str(REPO / "suites/legal"), "--limit", str(limit), "--out", str(out),
                    "--no-progress", *extra],
                   check=True, capture_output=True, env={**os.environ, "FTGUARD_HOME": str(home)})
    seconds = time.perf_counter() - started
    record = json.loads(out.read_text())
    predictions = {}
    for suite in record["suites"]:
        for task in suite["tasks"]:
            if task["name"] in tasks:
                predictions[task["name"]] = [s["prediction"] for s in task["samples"]]
    return seconds, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from ftguard.models.resolve import resolve_model

    model = resolve_model("smollm2-135m-instruct", allow_pickle=False).path
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        server, url, startup = start_vllm(model, Path(tmp) / "vllm.log")
        results["vllm_startup_s"] = round(startup, 1)
        try:
            for kind, tasks in TASKS.items():
                filter_ = _only(tasks)
                rows = {}
                for backend, extra in (("hf", []), ("vllm", ["--backend", "openai", "--base-url",
                                                            url, "--max-concurrency",
                                                            str(args.concurrency)])):
                    home = Path(tempfile.mkdtemp(dir=tmp))
                    _link_models(home)
                    rows[backend] = evaluate(args.limit, tasks, extra + filter_, home)
                same = rows["hf"][1] == rows["vllm"][1]
                results[kind] = {"tasks": tasks, "hf_s": round(rows["hf"][0], 1),
                                 "vllm_s": round(rows["vllm"][0], 1),
                                 "hf_over_vllm": round(rows["hf"][0] / rows["vllm"][0], 2),
                                 "same_predictions": same}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


def _only(tasks: list[str]) -> list[str]:
    """--subset flags that keep only ``tasks``: every other task gets one item."""
    return ["--subset", "1"] + [f for t in tasks for f in ("--subset", f"{t}=1.0")]


def _link_models(home: Path) -> None:
    """The converted embedded model in the fresh FTGUARD_HOME (no caches, no re-conversion)."""
    source = Path(os.environ.get("FTGUARD_HOME") or Path.home() / ".cache/ftguard") / "models"
    if source.is_dir():
        (home / "models").symlink_to(source)


if __name__ == "__main__":
    main()
