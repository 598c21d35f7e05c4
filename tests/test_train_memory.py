"""The training memory estimate: exact parameter arithmetic, 4-bit weights, and activations
checked against the tensors autograd really saves for the backward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftguard.errors import UsageError
from ftguard.train.memory import (
    available_memory,
    estimate_memory,
    format_estimate,
    peak_memory,
)
from ftguard.train.record import MemoryEstimate


def _load(path: Path, **kwargs: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)


def _estimate(model: Any, **overrides: Any) -> MemoryEstimate:
    args: dict[str, Any] = {"method": "full", "batch_size": 2, "seq_len": 64,
                            "gradient_checkpointing": False, "optimizer": "adamw",
                            "dtype_bytes": 4, "device": "cpu"}
    args.update(overrides)
    return estimate_memory(model, **args)


def _real_bytes(model: Any) -> int:
    return (sum(p.numel() * p.element_size() for p in model.parameters())
            + sum(b.numel() * b.element_size() for b in model.buffers()))


def test_full_and_lora_follow_trainable_parameter_arithmetic(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model

    full = _load(tiny_model)
    n_all = sum(p.numel() for p in full.parameters())
    est = _estimate(full)
    assert est.weights == _real_bytes(full)
    assert est.gradients == n_all * 4
    assert est.optimizer == n_all * 8
    assert est.total == est.weights + est.gradients + est.optimizer + est.activations

    lora = get_peft_model(_load(tiny_model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    n_train = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    # q_proj 32->32 and v_proj 32->16 (2 KV heads of width 8), two layers: r*(in+out) each
    assert n_train == 2 * (4 * (32 + 32) + 4 * (32 + 16))
    est_lora = _estimate(lora, method="lora")
    assert est_lora.weights == _real_bytes(lora) == est.weights + n_train * 4
    assert est_lora.gradients == n_train * 4
    assert est_lora.optimizer == n_train * 8
    assert _estimate(lora, method="lora", optimizer="adamw_8bit").optimizer == n_train * 2
    assert _estimate(lora, method="lora", optimizer="sgd").optimizer == 0
    assert est_lora.activations == est.activations  # frozen layers keep their activations


def test_4bit_weights_are_smaller_than_float32(tiny_model: Path) -> None:
    pytest.importorskip("bitsandbytes")
    import torch
    from transformers import BitsAndBytesConfig

    fp32 = _estimate(_load(tiny_model))
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=torch.float32)
    model = _load(tiny_model, quantization_config=quant, device_map={"": "cpu"})
    packed = _real_bytes(model)
    est = _estimate(model, method="qlora")
    assert est.weights > packed  # the quantisation constants (absmax) are counted too
    assert est.weights < 0.7 * fp32.weights  # embeddings and head stay float32 in this model
    # the 4-bit weights never train; the float32 embeddings, norms and head still would
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert est.gradients == trainable * 4 < fp32.gradients


def test_activation_estimate_matches_saved_tensors() -> None:
    """Sum the storages autograd saves for backward (parameters excluded): deterministic and
    exact, unlike RSS. The estimate must be within a factor of 3 of it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=2000, hidden_size=256, intermediate_size=688,
                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=512)
    model = LlamaForCausalLM(config).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, 2000, (4, 256))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()  # what was saved is what the backward used
    measured = sum(saved.values())
    est = estimate_memory(model, method="full", batch_size=4, seq_len=256,
                          gradient_checkpointing=False, optimizer="adamw", dtype_bytes=4,
                          device="cpu")
    assert 0.33 * measured <= est.activations <= 3 * measured, (est.activations, measured)
    checkpointed = estimate_memory(model, method="full", batch_size=4, seq_len=256,
                                   gradient_checkpointing=True, optimizer="adamw",
                                   dtype_bytes=4, device="cpu")
    assert checkpointed.activations < est.activations / 2


def test_available_peak_and_format(tiny_model: Path) -> None:
    free = available_memory("cpu")
    assert free is None or free > 0
    peak = peak_memory("cpu")
    assert peak is not None and peak > 50 * 2**20  # this process holds torch: > 50 MiB
    assert available_memory("meta") is None and peak_memory("meta") is None
    est = MemoryEstimate(weights=2**29, gradients=2**20, optimizer=2**21, activations=2**30,
                         total=2**29 + 2**20 + 2**21 + 2**30, available=20 * 2**30, fits=True)
    text = format_estimate(est)
    assert text.startswith("memory estimate: 1.50 GiB (weights 0.50, gradients 0.00, "
                           "optimizer 0.00, activations 1.00)")
    assert "fits in 20.0 GiB free on cpu" in text
    tight = est.model_copy(update={"available": 2**30, "fits": False})
    assert "does NOT fit" in format_estimate(tight) and "batch_size" in format_estimate(tight)
    unknown = est.model_copy(update={"available": None, "fits": None})
    assert "unknown" in format_estimate(unknown)
    model = _load(tiny_model)
    real = _estimate(model)
    assert real.device == "cpu" and (real.fits is None) == (real.available is None)


def test_bad_arguments_name_the_option(tiny_model: Path) -> None:
    model = _load(tiny_model)
    with pytest.raises(UsageError, match="optim.optimizer"):
        _estimate(model, optimizer="lion")
    with pytest.raises(UsageError, match="method"):
        _estimate(model, method="dpo")
