"""BLEU/chrF from summed per-sample statistics equal sacrebleu's corpus scores."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sacrebleu

from ftguard.metrics import bleu_signature, chrf_signature, get_metric, score_generate

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "fast", "slow", "red", "blue", "a",
         "an", "is", "was", "very", "quickly", ".", ",", "!", "?", "café", "naïve", "東京", "タワー",
         "don't", "it's", "(hi)", "42", "3.14"]

EDGE_CASES: list[tuple[str, list[str]]] = [
    ("", ["the cat sat on the mat ."]),                     # empty prediction
    ("the cat sat on the mat .", [""]),                     # empty reference
    ("", [""]),
    ("   ", ["  the cat  "]),                               # whitespace only
    ("The cat sat on the mat.", ["the cat sat on the mat ."]),  # case, tokenisation
    ("東京タワーは高い。", ["東京タワーは高いです。", "東京 タワー"]),
    ("café naïve résumé", ["cafe naive resume", "café naive résumé"]),
    ("cat", ["cat", "a cat", "the cat sat"]),               # short: some orders empty
    ("Hello, world! (hi)", ["Hello world (hi)"]),
]


def _random_corpus(seed: int, n: int, max_refs: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(n):
        base = [rng.choice(WORDS) for _ in range(rng.randint(1, 14))]
        sample_refs = []
        for _ in range(rng.randint(1, max_refs)):
            ref = [w if rng.random() < 0.7 else rng.choice(WORDS) for w in base]
            sample_refs.append(" ".join(ref[: rng.randint(1, len(ref))]))
        hyp = [w for w in base if rng.random() < 0.85]
        hyps.append(" ".join(hyp))
        refs.append(sample_refs)
    return hyps, refs


def _streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's reference layout: one stream per reference slot, padded with None."""
    width = max(len(r) for r in refs)
    return [[r[i] if i < len(r) else None for r in refs] for i in range(width)]


def _stats(name: str, hyps: list[str], refs: list[list[str]]) -> np.ndarray:
    return np.array([score_generate(h, r, [name])[1][name] for h, r in zip(hyps, refs)])


def _check(hyps: list[str], refs: list[list[str]], subsets: int = 0, seed: int = 0) -> None:
    bleu_stats, chrf_stats = _stats("bleu", hyps, refs), _stats("chrf", hyps, refs)
    bleu_fn, chrf_fn = get_metric("bleu").corpus_fn, get_metric("chrf").corpus_fn
    assert bleu_fn is not None and chrf_fn is not None
    rng = np.random.default_rng(seed)
    index_sets = [np.arange(len(hyps))]
    # With replacement, as a bootstrap resample would draw them.
    index_sets += [rng.integers(0, len(hyps), size=rng.integers(1, len(hyps) + 1))
                   for _ in range(subsets)]
    for idx in index_sets:
        sub_h, sub_r = [hyps[i] for i in idx], [refs[i] for i in idx]
        expected_bleu = sacrebleu.corpus_bleu(sub_h, _streams(sub_r)).score
        expected_chrf = sacrebleu.corpus_chrf(sub_h, _streams(sub_r)).score
        assert float(bleu_fn(bleu_stats[idx].sum(0))) == pytest.approx(expected_bleu, abs=1e-9)
        assert float(chrf_fn(chrf_stats[idx].sum(0))) == pytest.approx(expected_chrf, abs=1e-9)


@pytest.mark.parametrize(("prediction", "references"), EDGE_CASES)
def test_single_sample_edge_cases(prediction: str, references: list[str]) -> None:
    _check([prediction], [references])


def test_edge_cases_as_one_corpus() -> None:
    hyps = [h for h, _ in EDGE_CASES]
    refs = [r for _, r in EDGE_CASES]
    _check(hyps, refs, subsets=10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_corpus_single_reference(seed: int) -> None:
    hyps, refs = _random_corpus(seed, 60, max_refs=1)
    _check(hyps, refs, subsets=15, seed=seed)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_random_corpus_varying_references(seed: int) -> None:
    hyps, refs = _random_corpus(seed, 60, max_refs=4)
    assert len({len(r) for r in refs}) > 1
    _check(hyps, refs, subsets=15, seed=seed)


def test_known_bleu_value() -> None:
    (_, stats) = score_generate("the cat sat on the mat", ["the cat sat under the mat"],
                                ["bleu"])
    assert stats["bleu"] == [6, 6, 5, 3, 1, 0, 6, 5, 4, 3]  # no 4-gram matches
    bleu_fn = get_metric("bleu").corpus_fn
    assert bleu_fn is not None
    # exp smoothing: no 4-gram match -> precision 1 / (2 * 3)
    expected = 100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25
    assert float(bleu_fn(np.array(stats["bleu"]))) == pytest.approx(expected, rel=1e-12)


def test_corpus_fns_are_vectorised() -> None:
    hyps, refs = _random_corpus(7, 30, max_refs=3)
    for name in ("bleu", "chrf"):
        stats = _stats(name, hyps, refs)
        fn = get_metric(name).corpus_fn
        assert fn is not None
        batch = np.stack([stats[: i + 1].sum(0) for i in range(len(stats))])
        assert fn(batch).shape == (len(stats),)
        np.testing.assert_array_equal(fn(batch), [float(fn(row)) for row in batch])
        assert fn(batch.reshape(5, 6, -1)).shape == (5, 6)


def test_signatures_match_sacrebleu() -> None:
    hyps, refs = ["a b c"], [["a b c d"]]
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu.corpus_score(hyps, refs)
    chrf.corpus_score(hyps, refs)
    assert bleu_signature() == str(bleu.get_signature())
    assert chrf_signature() == str(chrf.get_signature())
    assert bleu_signature().startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert chrf_signature().startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|")
    assert bleu_signature(-1).startswith("nrefs:var|")
