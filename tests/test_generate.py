"""Greedy generation with continuous batching (HFBackend): same text as ``model.generate`` on
each prompt alone, whatever the batch size, and finished rows stop costing compute."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from ftguard.models import GenerateRequest, LoadOptions, hf_generate, load_backend

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "water", "boils",
         "Question:", "Answer:", "one", "two", "3", "+", "=", "\n", "yes", "no"]


def _contexts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(n)]


@pytest.fixture(scope="module")
def backend(tiny_model: Path):
    return load_backend(LoadOptions(model=str(tiny_model), batch_size=4))


def _alone(backend, context: str, max_new: int) -> list[int]:
    """New tokens of ``model.generate`` on the prompt alone, unpadded (eos included)."""
    ids = torch.tensor([backend._encode(context)])
    with torch.inference_mode():
        out = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=max_new, do_sample=False,
                                     pad_token_id=backend.pad_id)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_continuous_batches_match_generate_on_each_prompt_alone(backend, batch_size: int,
                                                               monkeypatch) -> None:
    contexts = _contexts(0, 23)
    limits = [3 + i % 9 for i in range(len(contexts))]  # different lengths finish apart
    monkeypatch.setattr(backend, "batch_size", batch_size)
    got = backend.generate([GenerateRequest(c, m) for c, m in zip(contexts, limits)])
    for context, limit, text in zip(contexts, limits, got):
        alone = _alone(backend, context, limit)
        assert text == backend.tokenizer.decode(alone, skip_special_tokens=True)


def test_stop_strings_cut_and_end_rows(backend) -> None:
    contexts = _contexts(1, 12)
    free = backend.generate([GenerateRequest(c, 12) for c in contexts])
    stops = [next((ch for ch in text.strip()), "@") for text in free]
    cut = backend.generate([GenerateRequest(c, 12, (s,)) for c, s in zip(contexts, stops)])
    for text, stop, short in zip(free, stops, cut):
        assert short == (text[:text.index(stop)] if stop in text else text)
    assert any(len(s) < len(t) for s, t in zip(cut, free))


def test_finished_rows_leave_the_batch(backend, monkeypatch) -> None:
    """Row-steps decoded = tokens each prompt needs alone (minus the prefill's first); a fixed
    batch would decode every row until its batch's longest answer."""
    contexts = _contexts(2, 20)
    limits = [1 + (7 * i) % 13 for i in range(len(contexts))]
    needed = sum(len(_alone(backend, c, m)) - 1 for c, m in zip(contexts, limits))
    rows_decoded: list[int] = []
    original = backend.model.forward

    def counting(*args, **kwargs):
        if kwargs.get("past_key_values") is not None:
            rows_decoded.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(backend.model, "forward", counting)
    monkeypatch.setattr(backend, "batch_size", 6)
    backend.generate([GenerateRequest(c, m) for c, m in zip(contexts, limits)])
    assert sum(rows_decoded) == needed
    assert max(rows_decoded) <= 6
    fixed = sum(max(limits[i:i + 6]) - 1 for i in range(0, len(limits), 6)) * 6
    assert sum(rows_decoded) < fixed


def test_model_without_plain_cache_uses_generate(backend, monkeypatch) -> None:
    contexts = _contexts(3, 7)
    reference = backend.generate([GenerateRequest(c, 6) for c in contexts])

    def no_plain(cache):
        raise hf_generate.NoPlainCache

    monkeypatch.setattr(hf_generate, "_plain_layers", no_plain)
    monkeypatch.setattr(backend, "continuous_decoding", True)
    assert backend.generate([GenerateRequest(c, 6) for c in contexts]) == reference
    assert backend.continuous_decoding is False


def test_out_of_memory_while_decoding_shrinks_the_batch(tiny_model: Path, monkeypatch) -> None:
    auto = load_backend(LoadOptions(model=str(tiny_model)))
    contexts = _contexts(4, 10)
    expected = [auto.tokenizer.decode(_alone(auto, c, 5), skip_special_tokens=True)
                for c in contexts]
    real_decode = hf_generate._decode

    def decode_with_a_memory_limit(backend, batch, tokens):
        if len(tokens) > 3:
            raise torch.OutOfMemoryError("simulated")
        return real_decode(backend, batch, tokens)

    monkeypatch.setattr(hf_generate, "_decode", decode_with_a_memory_limit)
    assert auto.auto_batch and auto.batch_size == 16
    assert auto.generate([GenerateRequest(c, 5) for c in contexts]) == expected
    assert auto.batch_size == 2  # 10 rows -> 5 -> 2, the largest size that fits
