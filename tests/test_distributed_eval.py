"""``accelerate launch --multi_gpu --num_processes 2 -m ftguard eval ...`` on a CPU-only
machine: two processes share the requests and process 0 writes one RunRecord, per sample
the single-process one. (accelerate's ``--cpu`` multi-process launcher needs mpirun, which
this machine lacks: without it accelerate starts a single process.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO

Run = Callable[..., tuple[int, str, str]]


def _samples(path: Path) -> list[tuple]:
    data = json.loads(path.read_text())
    return [(t["name"], s["id"], s["prediction"], s["target"], s.get("gold"),
             sorted(s["scores"]))
            for suite in data["suites"] for t in suite["tasks"] for s in t["samples"]]


def test_two_processes_write_the_single_process_record(tiny_model: Path,
                                                       make_suite: Callable[..., Path],
                                                       tmp_path: Path, run_cli: Run) -> None:
    suite = make_suite()  # choice, generate, classify and perplexity tasks
    code, _, err = run_cli("eval", suite, "--model", tiny_model, "--out", tmp_path / "one.json",
                           "--no-progress")
    assert code == 0, err
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "FTGUARD_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ftguard", "eval",
         str(suite), "--model", str(tiny_model), "--out", str(tmp_path / "two.json"),
         "--no-progress"],
        check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote") + done.stderr.count("wrote ") == 1  # process 0 only
    assert _samples(tmp_path / "two.json") == _samples(tmp_path / "one.json")
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two["config"]["processes"] == 2
    for a, b in zip(one["suites"][0]["tasks"], two["suites"][0]["tasks"]):
        for x, y in zip(a["samples"], b["samples"]):
            assert y["scores"] == pytest.approx(x["scores"], rel=1e-5, abs=1e-6)
            if x.get("loglikelihoods"):
                assert y["loglikelihoods"] == pytest.approx(x["loglikelihoods"], abs=1e-4)
        for name, metric in a["metrics"].items():
            assert b["metrics"][name]["value"] == pytest.approx(metric["value"], rel=1e-5)
