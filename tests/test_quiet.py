"""Quiet by default: the libraries' deprecation warnings and notices are silenced while
ftguard runs (and only then), ``-v`` shows them; a cached result says so."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import pytest

from conftest import MC_TASK, REPO, suite_yaml, write_jsonl
from ftguard.quiet import quiet, verbosity

RunCli = Callable[..., tuple[int, str, str]]

PUBLISHER = ("Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' "
             "because Hugging Face Hub is in offline mode.")
KERNEL = "Failed to load CPU gemm_4bit_forward from kernels-community"
EVERY_WARNING = ["`is_gradient_checkpointing` is deprecated",
                 "`past_key_values` is deprecated and will be removed", "my own warning"]


def chatter(*scopes: AbstractContextManager[None]) -> list[str]:
    """The warnings that reach the user when, inside ``scopes``, the libraries say what they
    say on a CPU with AVX512-BF16, offline: two log records (kernels, bitsandbytes), two
    FutureWarnings (one attributed to torch's Module call, as transformers' forward raises
    it), and a warning of the user's own code."""
    with warnings.catch_warnings(record=True) as caught, ExitStack() as stack:
        warnings.simplefilter("always")
        for scope in scopes:
            stack.enter_context(scope)
        logging.getLogger("kernels._internals.hf_hub").warning(PUBLISHER)
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(KERNEL)
        warnings.warn_explicit("`is_gradient_checkpointing` is deprecated", FutureWarning,
                               "modeling_utils.py", 3314, module="transformers.modeling_utils")
        warnings.warn_explicit("`past_key_values` is deprecated and will be removed",
                               FutureWarning, "module.py", 1789, module="torch.nn.modules.module")
        warnings.warn_explicit("my own warning", UserWarning, "mine.py", 1, module="mine")
        inside = os.environ.get("TRANSFORMERS_VERBOSITY")
    return [str(w.message) for w in caught] + [f"TRANSFORMERS_VERBOSITY={inside}"]


def test_quiet_silences_the_libraries_and_restores_everything(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTGUARD_VERBOSE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    caplog.set_level(logging.WARNING)
    levels = {name: logging.getLogger(name).level for name in ("kernels", "bitsandbytes")}
    assert chatter(quiet()) == ["my own warning", "TRANSFORMERS_VERBOSITY=error"]
    assert caplog.messages == []
    assert "TRANSFORMERS_VERBOSITY" not in os.environ
    assert {n: logging.getLogger(n).level for n in levels} == levels
    # outside an ftguard call a library user sees everything, as before
    assert chatter()[:-1] == EVERY_WARNING and caplog.messages == [PUBLISHER, KERNEL]


def test_verbose_lets_everything_through(caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTGUARD_VERBOSE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    caplog.set_level(logging.WARNING)
    # -v, and an ftguard call inside the command
    assert chatter(verbosity(True), quiet())[:-1] == EVERY_WARNING
    assert caplog.messages == [PUBLISHER, KERNEL]
    caplog.clear()
    assert chatter(verbosity(False), quiet()) == ["my own warning",
                                                  "TRANSFORMERS_VERBOSITY=error"]
    assert caplog.messages == []
    monkeypatch.setenv("FTGUARD_VERBOSE", "1")
    assert chatter(quiet())[:-1] == EVERY_WARNING
    assert caplog.messages == [PUBLISHER, KERNEL]


def test_a_cached_result_says_so(tmp_path: Path, run_cli: RunCli,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    suite = tmp_path / "tiny"
    suite.mkdir()
    (suite / "suite.yaml").write_text(suite_yaml("tiny", tasks=MC_TASK))
    write_jsonl(suite / "data" / "mc.jsonl", [
        {"id": f"q{i}", "question": f"{i}+1?", "choices": [str(i + 1), str(i)], "answer": 0}
        for i in range(30)])
    args = ("eval", suite, "--model", "fake", "--cache", "--no-progress")
    code, first, err = run_cli(*args)
    assert code == 0 and "cached" not in err
    code, again, err = run_cli(*args)
    assert code == 0 and again == first
    assert err == "tiny: cached, 0 requests\n"


GEO_SUITE = """\
name: geo
version: 1
role: general
tasks:
  - name: capitals
    kind: generate
    data: data.jsonl
    prompt: "The capital of {{ country }} is"
    target: "{{ city }}"
    generation: {max_new_tokens: 6, stop: [".", "\\n"]}
    metrics: [exact_match]
"""


@pytest.mark.slow
def test_eval_on_the_embedded_model_is_quiet_and_verbose_with_v(tmp_path: Path) -> None:
    root = tmp_path / "geo"
    root.mkdir()
    (root / "suite.yaml").write_text(GEO_SUITE)
    write_jsonl(root / "data.jsonl", [{"id": "fr", "country": "France", "city": "Paris"}])
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    env.pop("FTGUARD_VERBOSE", None)

    def stderr(*flags: str) -> str:
        done = subprocess.run([sys.executable, "-m", "ftguard", "eval", str(root),
                               "--no-progress", "--device", "cpu", *flags],
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        assert "Paris" in done.stdout or "1.0000" in done.stdout
        return done.stderr

    noisy = re.compile(r"warn|deprecat|bitsandbytes|publisher", re.IGNORECASE)
    assert [line for line in stderr().splitlines() if noisy.search(line)] == []
    verbose = stderr("-v")
    assert re.search(r"past_key_values.* deprecated", verbose), verbose
