"""Sampling and beam search on the in-process HF backend (tiny random model): seeded draws
that do not depend on the batch size, warpers equal to transformers' own, top-k 1 equal to
greedy, and beams equal to ``model.generate``'s."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ftguard.models import GenerateRequest, LoadOptions, hf_generate, load_backend
from ftguard.models.base import Decoding
from ftguard.models.hf_sampling import Sampler, warped_probabilities

CONTEXTS = ["The quick brown fox", "Question: What is the capital of France?\nAnswer:",
            "one two three", "Either party may terminate", "Review: I loved this film."]


@pytest.fixture(scope="module")
def backend(tiny_model: Path):
    return load_backend(LoadOptions(model=str(tiny_model), batch_size=4))


def _asks(decoding: Decoding, max_new: int = 8, contexts: int = 5) -> list[GenerateRequest]:
    return [GenerateRequest(c, max_new, (), decoding, j) for c in CONTEXTS[:contexts]
            for j in range(decoding.n)]


def test_samples_are_seeded_and_do_not_depend_on_their_neighbours(backend) -> None:
    decoding = Decoding(do_sample=True, n=3, seed=5, temperature=1.5)
    answers = backend.generate(_asks(decoding, 6))
    again = backend.generate(list(reversed(_asks(decoding, 6))))  # other batches, same answers
    assert again == list(reversed(answers))
    other = backend.generate(_asks(Decoding(do_sample=True, n=3, seed=6, temperature=1.5), 6))
    assert other != answers
    per_item = [answers[i:i + 3] for i in range(0, len(answers), 3)]
    assert any(len(set(item)) > 1 for item in per_item)  # an item's samples differ


def test_top_k_1_samples_the_greedy_answer(backend) -> None:
    greedy = backend.generate([GenerateRequest(c, 8) for c in CONTEXTS])
    sampled = backend.generate(_asks(Decoding(do_sample=True, n=2, seed=1, top_k=1)))
    assert sampled == [g for g in greedy for _ in range(2)]


def test_warpers_match_transformers(backend) -> None:
    from transformers import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 3
    for t, k, p in [(0.7, None, 0.9), (1.3, 10, 1.0), (1.0, 5, 0.5), (0.5, None, 0.3)]:
        warpers = LogitsProcessorList([TemperatureLogitsWarper(t)]
                                      + ([TopKLogitsWarper(k)] if k else [])
                                      + ([TopPLogitsWarper(p)] if p < 1 else []))
        expected = torch.softmax(warpers(None, logits.clone()), dim=-1)
        got = warped_probabilities(logits, Decoding(do_sample=True, temperature=t, top_k=k,
                                                    top_p=p))
        assert torch.allclose(got, expected, atol=1e-6), (t, k, p)


def test_a_draw_is_the_inverse_cdf_of_its_uniform_number() -> None:
    class Fixed:
        def __init__(self, u: float) -> None:
            self.u = u

        def random(self) -> float:
            return self.u

    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]])
    sampler = Sampler(Decoding(do_sample=True), [])
    for u, token in [(0.0, 0), (0.05, 0), (0.12, 2), (0.69, 2), (0.71, 3), (0.999, 3)]:
        sampler.rngs = {0: Fixed(u)}  # type: ignore[dict-item]
        assert sampler(torch.log(probs), [0]) == [token], u


def test_beams_are_model_generate_beams(backend) -> None:
    decoding = Decoding(num_beams=3, n=3)
    got = backend.generate(_asks(decoding, max_new=6))
    for i, context in enumerate(CONTEXTS):
        ids = torch.tensor([backend._encode(context)])
        with torch.inference_mode():
            out = backend.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                         max_new_tokens=6, num_beams=3, num_return_sequences=3,
                                         do_sample=False, pad_token_id=backend.pad_id)
        beams = [backend.tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True)
                 for row in out.tolist()]
        assert got[3 * i:3 * i + 3] == beams, context


def test_without_continuous_batching_samples_are_still_seeded(backend, monkeypatch) -> None:
    def no_plain(cache):
        raise hf_generate.NoPlainCache

    monkeypatch.setattr(hf_generate, "_plain_layers", no_plain)
    monkeypatch.setattr(backend, "continuous_decoding", True)
    decoding = Decoding(do_sample=True, n=2, seed=2, top_p=0.9)
    first = backend.generate(_asks(decoding, 5, 3))
    assert backend.continuous_decoding is False
    assert backend.generate(_asks(decoding, 5, 3)) == first
    assert backend.generate(_asks(Decoding(do_sample=True, n=2, seed=3, top_p=0.9), 5, 3)) \
        != first


def test_a_sampled_eval_is_reproducible_across_batch_sizes(tiny_model: Path, make_suite) -> None:
    from ftguard import api

    yaml = ("name: s\nversion: 1\nrole: target\ntasks:\n  - name: qa\n    kind: generate\n"
            "    data: data/qa.jsonl\n    prompt: '{{ q }}'\n    target: '{{ a }}'\n"
            "    generation: {max_new_tokens: 4, do_sample: true, n: 3, temperature: 2.0}\n"
            "    metrics: [pass@2, 'mean@n[f1]']\n")
    suite = make_suite(yaml, {"data/qa.jsonl": [{"id": f"i{i}", "q": c, "a": "fox"}
                                                for i, c in enumerate(CONTEXTS)]})
    runs = [api.evaluate([suite], load=LoadOptions(model=str(tiny_model), batch_size=size))
            for size in (1, 8)]
    one, eight = (r.suites[0].tasks[0] for r in runs)
    assert [s.predictions for s in one.samples] == [s.predictions for s in eight.samples]
    assert all(len(s.predictions or []) == 3 for s in one.samples)
    assert one.metrics["pass@2"].value == eight.metrics["pass@2"].value
