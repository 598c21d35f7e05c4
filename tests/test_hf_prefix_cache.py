"""Choices sharing a context are scored from one cached pass over it (HFBackend)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from ftguard.models import LoadOptions, LoglikelihoodRequest, load_backend
from ftguard.models.hf import PREFIX_MIN_TOKENS

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "water", "boils", "at",
         "one", "hundred", "degrees", "sky", "is", "blue", "grass", "green", "positive",
         "negative", "neutral", "yes", "no", "true", "false"]
CHOICES = ["positive", " negative", " yes no maybe", " the quick brown fox jumps", " blue",
           " sky", " one two three four five six", " Water boils"]


def _requests(seed: int = 0, items: int = 12) -> list[LoglikelihoodRequest]:
    rng = random.Random(seed)
    requests = []
    for _ in range(items):
        context = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40))) + ":"
        if rng.random() < 0.3:
            context += " "  # trailing space moves into the continuation
        requests += [LoglikelihoodRequest(context, c) for c in rng.sample(CHOICES, 5)]
    rng.shuffle(requests)
    return requests


@pytest.fixture(scope="module")
def backend(tiny_model: Path):
    return load_backend(LoadOptions(model=str(tiny_model), batch_size=4))


def _direct(backend, tokens: tuple[int, ...], n: int) -> tuple[float, bool]:
    """Log-likelihood and greediness of the last n tokens, one unpadded forward pass."""
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([tokens])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)[-n - 1:-1]
    target = torch.tensor(tokens[-n:])
    picked = logprobs.gather(-1, target[:, None]).squeeze(-1)
    return float(picked.double().sum()), bool((logprobs.argmax(-1) == target).all())


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_shared_contexts_match_direct_and_row_scoring(backend, batch_size: int) -> None:
    requests = _requests()
    units = [backend._encode_pair(r.context, r.continuation) for r in requests]
    assert any(n > 1 for _, n in units) and any(n == 1 for _, n in units)
    assert any(len(t) - n >= PREFIX_MIN_TOKENS for t, n in units)
    backend.batch_size = batch_size
    try:
        shared = backend.loglikelihood(requests)
        backend.share_contexts = False
        rows = backend.loglikelihood(requests)
    finally:
        backend.share_contexts, backend.batch_size = True, 4
    for (tokens, n), a, b in zip(units, shared, rows):
        logprob, greedy = _direct(backend, tokens, n)
        assert a.n_tokens == b.n_tokens == n
        assert a.logprob == pytest.approx(logprob, abs=1e-5)
        assert a.logprob == pytest.approx(b.logprob, abs=1e-5)
        assert a.is_greedy == b.is_greedy == greedy


def test_greedy_continuations_are_recognised(backend) -> None:
    units = []
    rng = random.Random(1)
    for length in (9, 15, 30):
        context = [rng.randrange(backend.vocab_size) for _ in range(length)]
        greedy = list(context)
        for _ in range(4):
            with torch.inference_mode():
                logits = backend.model(input_ids=torch.tensor([greedy])).logits[0, -1]
            greedy.append(int(logits.argmax()))
        for n in (1, 2, 4):
            units.append((tuple(greedy[:length + n]), n))
        wrong = list(greedy[:length + 3])
        wrong[-1] = (wrong[-1] + 1) % backend.vocab_size
        units.append((tuple(wrong), 3))
    scored = backend._score_units(units, None, share=True)
    for (tokens, n), (logprob, greedy_flag) in zip(units, scored):
        direct_logprob, direct_greedy = _direct(backend, tokens, n)
        assert logprob == pytest.approx(direct_logprob, abs=1e-5)
        assert greedy_flag == direct_greedy
    assert [g for _, g in scored] == [True, True, True, False] * 3


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_each_context_is_encoded_once(backend, monkeypatch: pytest.MonkeyPatch,
                                      batch_size: int) -> None:
    requests = _requests(seed=2, items=10)
    contexts: list[tuple[int, ...]] = []
    original = backend.model.forward

    def counting(*args, **kwargs):
        if kwargs.get("use_cache") and kwargs.get("past_key_values") is None:
            ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
            contexts.extend(tuple(row[m.bool()].tolist()) for row, m in zip(ids, mask))
        return original(*args, **kwargs)

    monkeypatch.setattr(backend.model, "forward", counting)
    monkeypatch.setattr(backend, "batch_size", batch_size)
    backend.loglikelihood(requests)
    units = [backend._encode_pair(r.context, r.continuation) for r in requests]
    distinct = {t[:-n] for t, n in units if len(t) - n >= PREFIX_MIN_TOKENS}
    assert sorted(contexts) == sorted(distinct)
    assert len(contexts) == len(set(contexts))


def test_short_or_unshared_contexts_take_the_row_path(backend) -> None:
    units = [((5, 6, 7, 8), 2), ((5, 6, 7, 9), 2),  # context too short
             (tuple(range(10, 30)), 3)]  # context used once
    groups, rest = backend._context_groups(units, list(range(len(units))))
    assert groups == [] and rest == [0, 1, 2]
    long = [(tuple(range(10, 30)) + (1, 2), 2), (tuple(range(10, 30)) + (3,), 1)]
    groups, rest = backend._context_groups(long, [0, 1])
    assert groups == [[0, 1]] and rest == []
