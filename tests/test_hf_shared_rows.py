"""Choices sharing a context are scored from one row holding the context once (HFBackend)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from ftguard.models import LoadOptions, LoglikelihoodRequest, hf_shared_context, load_backend

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
    rows: list[hf_shared_context.TreeRow] = []
    plain: list[int] = []
    original_tree, original_model = hf_shared_context.tree_inputs, backend.model.forward

    def spying_tree(batch, runner):
        rows.extend(batch)
        return original_tree(batch, runner)

    def counting(*args, **kwargs):
        if kwargs["attention_mask"].dim() == 2:
            plain.append(kwargs["input_ids"].shape[0])
        return original_model(*args, **kwargs)

    monkeypatch.setattr(hf_shared_context, "tree_inputs", spying_tree)
    monkeypatch.setattr(backend.model, "forward", counting)
    monkeypatch.setattr(backend, "batch_size", batch_size)
    monkeypatch.setattr(backend, "tree_checked", True)
    backend.loglikelihood(requests)
    units = [backend._encode_pair(r.context, r.continuation) for r in requests]
    contexts = [t[:-n] for t, n in units]
    assert sorted(row.context for row in rows) == sorted(set(contexts))
    # every multi-token continuation input sits once in its context's row; nothing else runs
    for row in rows:
        wanted = {t[-n:-1] for t, n in units if t[:-n] == row.context and n > 1}
        assert sorted(row.segments) == sorted(wanted)
    assert plain == []


def test_tree_mask_lets_choices_see_the_context_and_themselves_only(backend) -> None:
    row = hf_shared_context.TreeRow((5, 6, 7), ((8, 9), (10,)))
    short = hf_shared_context.TreeRow((11, 12), ((13,), (14,)))
    ids, mask, positions = hf_shared_context.tree_inputs([row, short], backend._runner())
    allowed = (mask[:, 0] == 0).int()
    assert ids[0].tolist() == [5, 6, 7, 8, 9, 10]
    assert positions[0].tolist() == [0, 1, 2, 3, 4, 3]
    assert allowed[0].tolist() == [[1, 0, 0, 0, 0, 0],
                                   [1, 1, 0, 0, 0, 0],
                                   [1, 1, 1, 0, 0, 0],
                                   [1, 1, 1, 1, 0, 0],
                                   [1, 1, 1, 1, 1, 0],
                                   [1, 1, 1, 0, 0, 1]]
    assert positions[1].tolist()[2:] == [0, 1, 2, 2]  # left-padded by two
    assert allowed[1].tolist()[:2] == [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]]  # pads: self
    assert allowed[1].tolist()[5] == [0, 0, 1, 1, 0, 1]


def test_model_ignoring_the_mask_falls_back_to_rows(tiny_model: Path, monkeypatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    backend = load_backend(LoadOptions(model=str(tiny_model), batch_size=4))
    requests = _requests(seed=3, items=6)
    backend.share_contexts = False
    expected = backend.loglikelihood(requests)
    backend.share_contexts = True
    original = hf_shared_context.tree_inputs

    def no_mask(rows, runner):  # what a model that ignores custom masks computes
        ids, mask, positions = original(rows, runner)
        return ids, torch.zeros_like(mask), positions

    monkeypatch.setattr(hf_shared_context, "tree_inputs", no_mask)
    got = backend.loglikelihood(requests)
    assert [g.logprob for g in got] == pytest.approx([e.logprob for e in expected], abs=1e-5)
    assert backend.share_contexts is False and backend.tree_checked is True
    assert "does not apply custom attention masks" in capsys.readouterr().err


def test_single_token_or_unshared_contexts_take_the_row_path(backend) -> None:
    units = [((5, 6, 7, 8), 1), ((5, 6, 7, 9), 1),  # one-token choices: already one row
             (tuple(range(10, 30)), 3)]  # context used once
    groups, rest = backend._context_groups(units, list(range(len(units))))
    assert groups == [] and rest == [0, 1, 2]
    shared = [((5, 6, 7, 8), 2), ((5, 6, 9), 1), ((5, 6, 1, 2), 2)]
    groups, rest = backend._context_groups(shared, [0, 1, 2])
    assert groups == [[0, 1, 2]] and rest == []
