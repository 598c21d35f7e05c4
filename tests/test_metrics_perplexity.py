"""Perplexity, word perplexity and bits per byte against their direct formulas."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from ftguard.metrics import aggregate, get_metric, score_perplexity
from ftguard.metrics.perplexity import count_bytes, count_words

NAMES = ["perplexity", "word_perplexity", "bits_per_byte"]
TEXTS = [
    "The quick brown fox.",
    "  leading and trailing whitespace \n",
    "tabs\tand\nnewlines\r\nmixed",
    "café naïve — 東京タワー",
    "x",
    "\n",
]


def test_word_and_byte_counts_follow_lm_eval() -> None:
    assert count_words("hello world") == 2
    assert count_words("hello world\n") == 3        # trailing whitespace adds an empty word
    assert count_words("  a  b ") == 4
    assert count_words("") == 1
    assert count_bytes("café") == 5
    assert count_bytes("東京") == 6
    for text in TEXTS:
        assert count_words(text) == len(re.split(r"\s+", text))
        assert count_bytes(text) == len(text.encode("utf-8"))


def test_corpus_values_equal_direct_formulas() -> None:
    rng = np.random.default_rng(0)
    nlls = rng.gamma(5.0, 10.0, size=len(TEXTS)).tolist()
    tokens = rng.integers(1, 40, size=len(TEXTS)).tolist()
    stats: dict[str, list[list[float]]] = {n: [] for n in NAMES}
    for nll, n_tok, text in zip(nlls, tokens, TEXTS):
        scores, st = score_perplexity(nll, n_tok, text, NAMES)
        words, n_bytes = len(re.split(r"\s+", text)), len(text.encode("utf-8"))
        assert scores["perplexity"] == pytest.approx(math.exp(nll / n_tok))
        assert scores["word_perplexity"] == pytest.approx(math.exp(nll / words))
        assert scores["bits_per_byte"] == pytest.approx(nll / n_bytes / math.log(2))
        for n in NAMES:
            assert st[n] == [nll, n_tok, words, n_bytes]
            stats[n].append(st[n])
    total_nll, total_tok = sum(nlls), sum(tokens)
    total_words = sum(len(re.split(r"\s+", t)) for t in TEXTS)
    total_bytes = sum(len(t.encode("utf-8")) for t in TEXTS)
    values = {n: aggregate(n, None, np.array(stats[n])) for n in NAMES}
    assert values["perplexity"].value == pytest.approx(math.exp(total_nll / total_tok),
                                                       rel=1e-12)
    assert values["word_perplexity"].value == pytest.approx(
        math.exp(total_nll / total_words), rel=1e-12)
    # lm-eval: bits_per_byte = -weighted_mean([(loglikelihood, bytes)]) / ln 2
    assert values["bits_per_byte"].value == pytest.approx(
        -sum(-x for x in nlls) / total_bytes / math.log(2), rel=1e-12)
    for v in values.values():
        assert not v.higher_is_better
        assert v.ci_low <= v.value <= v.ci_high
        assert v.n == len(TEXTS)


def test_corpus_fns_are_vectorised() -> None:
    rng = np.random.default_rng(1)
    batch = np.column_stack([rng.gamma(5, 10, 7), rng.integers(1, 9, 7),
                             rng.integers(1, 9, 7), rng.integers(1, 9, 7)])
    for name in NAMES:
        fn = get_metric(name).corpus_fn
        assert fn is not None
        np.testing.assert_allclose(fn(batch), [float(fn(row)) for row in batch], rtol=1e-15)


def test_huge_nll_does_not_raise() -> None:
    scores, _ = score_perplexity(1e6, 1, "x", ["perplexity"])
    assert scores["perplexity"] == math.inf


@pytest.mark.parametrize(("nll", "n_tokens", "text", "message"), [
    (1.0, 0, "x", "at least one"),
    (1.0, 1, "", "empty"),
    (math.nan, 1, "x", "finite"),
])
def test_invalid_documents(nll: float, n_tokens: int, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score_perplexity(nll, n_tokens, text, NAMES)
