"""The HF backend on a tiny random model, checked against direct computation with the model."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from ftguard.models import (
    GenerateRequest,
    LoadOptions,
    LoglikelihoodRequest,
    RollingRequest,
    load_backend,
)
from ftguard.models.fingerprint import model_fingerprint

TEXTS = ["The quick brown fox jumps over the lazy dog. Water boils at one hundred degrees.",
         "Either party may terminate this Agreement upon thirty days written notice.",
         "positive negative yes no"]


@pytest.fixture(scope="module")
def backend(tiny_model: Path):
    return load_backend(LoadOptions(model=str(tiny_model), batch_size=4))


def _direct_token_logprobs(backend, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i >= 1, one unpadded forward pass."""
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return logprobs[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_perplexity_equals_exp_mean_token_nll(backend) -> None:
    results = backend.loglikelihood_rolling([RollingRequest(t) for t in TEXTS])
    total_nll, total_tokens = 0.0, 0
    for text, result in zip(TEXTS, results):
        ids = [backend.prefix_id] + backend.tokenizer(text, add_special_tokens=False)["input_ids"]
        direct = -_direct_token_logprobs(backend, ids).double().sum().item()
        assert result.n_tokens == len(ids) - 1
        assert result.nll == pytest.approx(direct, rel=1e-5)
        total_nll += direct
        total_tokens += len(ids) - 1
    perplexity = math.exp(sum(r.nll for r in results) / sum(r.n_tokens for r in results))
    assert perplexity == pytest.approx(math.exp(total_nll / total_tokens), rel=1e-5)


def test_rolling_windows_score_every_token_once(backend) -> None:
    text = " ".join(TEXTS * 4)
    n = len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])
    whole = backend.loglikelihood_rolling([RollingRequest(text)])[0]
    windowed = backend.loglikelihood_rolling([RollingRequest(text, max_length=16)])[0]
    assert whole.n_tokens == windowed.n_tokens == n and n > 48
    assert windowed.nll != pytest.approx(whole.nll)  # less context per token


def test_loglikelihood_matches_direct_computation(backend) -> None:
    requests = [LoglikelihoodRequest("Question: What is the capital of France?\nAnswer:", " Paris"),
                LoglikelihoodRequest("Review: I loved this film.\nSentiment: ", "positive"),
                LoglikelihoodRequest("", "The quick brown fox")]
    results = backend.loglikelihood(requests)
    for request, result in zip(requests, results):
        context, continuation = request.context, request.continuation
        if context.endswith(" "):  # lm-eval moves trailing spaces into the continuation
            context, continuation = context.rstrip(" "), " " + continuation
        encode = lambda s: backend.tokenizer(s, add_special_tokens=False)["input_ids"]
        ctx = encode(context) if context else [backend.prefix_id]
        whole = encode(context + continuation) if context else ctx + encode(continuation)
        n = len(whole) - len(ctx)
        direct = _direct_token_logprobs(backend, whole)[-n:]
        assert result.n_tokens == n
        assert result.logprob == pytest.approx(direct.double().sum().item(), abs=1e-4)


def test_results_do_not_depend_on_batch_size(tiny_model: Path, backend) -> None:
    requests = [LoglikelihoodRequest(f"Question {i}: {t}", c) for i, t in enumerate(TEXTS * 3)
                for c in (" yes", " no", " the lazy dog")]
    reference = backend.loglikelihood(requests)
    for size in (1, 16):
        other = load_backend(LoadOptions(model=str(tiny_model), batch_size=size))
        got = other.loglikelihood(requests)
        assert [g.logprob for g in got] == pytest.approx([r.logprob for r in reference], abs=1e-5)


def test_greedy_generation_matches_unbatched_generate_and_stops(backend) -> None:
    contexts = ["Question: What is the capital of France?\nAnswer:", "The quick brown", "Review:"]
    batched = backend.generate([GenerateRequest(c, 12) for c in contexts])
    for context, text in zip(contexts, batched):
        ids = torch.tensor([backend.tokenizer(context, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            out = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         max_new_tokens=12, do_sample=False,
                                         pad_token_id=backend.pad_id)
        assert text == backend.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    stop = next(ch for ch in batched[1] if ch.strip()) if batched[1].strip() else None
    if stop:
        cut = backend.generate([GenerateRequest(contexts[1], 12, (stop,))])[0]
        assert cut == batched[1][:batched[1].index(stop)]


def test_chat_template_is_applied(backend) -> None:
    text = backend.apply_chat_template([{"role": "user", "content": "hi"}])
    assert text == "<user>hi\n<assistant>"


def test_fingerprint_tracks_weights_tokenizer_and_adapter(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    base = model_fingerprint(copy, adapter_dir=None, dtype="float32", quantization=None)
    assert base == model_fingerprint(tiny_model, adapter_dir=None, dtype="float32",
                                     quantization=None)
    assert base != model_fingerprint(copy, adapter_dir=None, dtype="bfloat16", quantization=None)
    config = (copy / "tokenizer_config.json").read_text()
    (copy / "tokenizer_config.json").write_text(config.replace("}", ', "x": 1}', 1))
    after_tokenizer = model_fingerprint(copy, adapter_dir=None, dtype="float32", quantization=None)
    assert after_tokenizer != base
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert model_fingerprint(copy, adapter_dir=None, dtype="float32",
                             quantization=None) not in (base, after_tokenizer)


def test_adapter_changes_scores_and_fingerprint(tiny_model: Path, tmp_path: Path, backend) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    tuned = load_backend(LoadOptions(model=str(tiny_model), adapter=str(tmp_path / "adapter")))
    assert tuned.info.adapter == str(tmp_path / "adapter")
    assert tuned.info.fingerprint != backend.info.fingerprint
    request = [LoglikelihoodRequest("The quick brown", " fox")]
    assert tuned.loglikelihood(request)[0].logprob != pytest.approx(
        backend.loglikelihood(request)[0].logprob, abs=1e-4)


def test_load_in_4bit_and_8bit_with_bitsandbytes(tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from conftest import build_tiny_model

    folder = build_tiny_model(tmp_path / "wide", hidden=64)
    full = load_backend(LoadOptions(model=str(folder)))
    request = [LoglikelihoodRequest("The quick brown", " fox jumps")]
    reference = full.loglikelihood(request)[0].logprob
    for flag, dtype in (("load_in_4bit", "nf4"), ("load_in_8bit", "int8")):
        quantised = load_backend(LoadOptions(model=str(folder), **{flag: True}))
        assert quantised.info.dtype == dtype and quantised.info.fingerprint != full.info.fingerprint
        value = quantised.loglikelihood(request)[0].logprob
        assert math.isfinite(value) and value == pytest.approx(reference, rel=0.5)


def test_auto_batch_size_halves_on_out_of_memory(tiny_model: Path, monkeypatch) -> None:
    auto = load_backend(LoadOptions(model=str(tiny_model)))
    fixed = load_backend(LoadOptions(model=str(tiny_model), batch_size=8))
    requests = [LoglikelihoodRequest(f"Question {i}: {t}", " yes") for i, t in enumerate(TEXTS * 4)]
    expected = [r.logprob for r in fixed.loglikelihood(requests)]
    real_forward = type(auto)._forward

    def forward_with_a_memory_limit(self, unique, rows):
        if len(rows) > 3:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(self, unique, rows)

    monkeypatch.setattr(type(auto), "_forward", forward_with_a_memory_limit)
    assert auto.auto_batch and auto.batch_size == 16
    assert [r.logprob for r in auto.loglikelihood(requests)] == pytest.approx(expected, abs=1e-5)
    assert auto.batch_size == 3  # 12 rows -> 6 -> 3, the largest size that fits
    from ftguard.errors import ModelError

    with pytest.raises(ModelError, match="out of memory .* batch of 8"):
        fixed.loglikelihood(requests)
