"""Merging a LoRA adapter into its base: the merged model scores like base + adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftguard.errors import ModelError, UsageError
from ftguard.models.base import LoglikelihoodRequest
from ftguard.models.load import LoadOptions, load_backend
from ftguard.train.merge import merge_adapter

REQUESTS = [
    LoglikelihoodRequest("Question: What is the capital of France?\nAnswer:", " Paris"),
    LoglikelihoodRequest("The quick brown fox", " jumps over the lazy dog."),
    LoglikelihoodRequest("Review: I loved this film.\nSentiment:", " positive"),
    LoglikelihoodRequest("Either party may terminate", " this Agreement upon notice."),
]


@pytest.fixture(scope="module")
def lora_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter (r=4 on q_proj, v_proj) whose B matrices are random, so it changes
    the model's outputs (peft initialises B to zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.1)
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(folder)
    return folder


def _scores(options: LoadOptions) -> list[float]:
    return [r.logprob for r in load_backend(options).loglikelihood(REQUESTS)]


def test_merged_model_scores_like_base_plus_adapter(tiny_model: Path, lora_adapter: Path,
                                                    tmp_path: Path) -> None:
    out = merge_adapter(lora_adapter, tmp_path / "merged")
    assert out == tmp_path / "merged"
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    assert not list(out.glob("adapter_*"))  # a plain model, no peft needed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left

    with_adapter = _scores(LoadOptions(model=str(tiny_model), adapter=str(lora_adapter),
                                       device="cpu"))
    merged = _scores(LoadOptions(model=str(out), device="cpu"))
    base = _scores(LoadOptions(model=str(tiny_model), device="cpu"))
    assert merged == pytest.approx(with_adapter, abs=1e-4)
    assert max(abs(m - b) for m, b in zip(merged, base)) > 1e-3  # the adapter did something


def test_explicit_model_and_overwrite(tiny_model: Path, lora_adapter: Path,
                                      tmp_path: Path) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    with pytest.raises(UsageError, match="--out") as info:
        merge_adapter(lora_adapter, out, model=str(tiny_model))
    assert "--overwrite" in str(info.value)
    assert (out / "old.txt").is_file()  # untouched after the refusal
    merge_adapter(lora_adapter, out, model=str(tiny_model), overwrite=True, dtype="bfloat16")
    assert not (out / "old.txt").exists()
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_bad_inputs_are_user_errors(tiny_model: Path, lora_adapter: Path, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ModelError, match="no such folder"):
        merge_adapter(tmp_path / "missing", tmp_path / "o1")
    with pytest.raises(ModelError, match="not a PEFT adapter"):
        merge_adapter(tiny_model, tmp_path / "o2")
    with pytest.raises(UsageError, match="--out"):
        merge_adapter(lora_adapter, lora_adapter)
    with pytest.raises(UsageError, match="--dtype"):
        merge_adapter(lora_adapter, tmp_path / "o3", dtype="int4")

    moved = tmp_path / "moved"  # an adapter whose recorded base is gone
    moved.mkdir()
    config = json.loads((lora_adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted-base")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    (moved / "adapter_model.safetensors").write_bytes(
        (lora_adapter / "adapter_model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="--model"):
        merge_adapter(moved, tmp_path / "o4")
    (moved / "train_record.json").write_text(json.dumps({"method": "qlora"}))
    assert merge_adapter(moved, tmp_path / "o4", model=str(tiny_model)).is_dir()
    assert "unquantised float32 base" in caplog.text  # a qlora adapter is merged unquantised


def test_prefix_tuning_cannot_be_merged(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = get_peft_model(base, PrefixTuningConfig(num_virtual_tokens=4, task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "prefix")
    with pytest.raises(UsageError, match="prefix tuning adapter, which cannot be merged"):
        merge_adapter(tmp_path / "prefix", tmp_path / "out")
    assert not (tmp_path / "out").exists()
