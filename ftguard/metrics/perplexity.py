"""Perplexity of whole documents, as lm-eval's ``loglikelihood_rolling`` tasks report it.

Per-sample statistics: ``[nll_sum (nats), n_tokens, n_words, n_bytes]``. Words are counted
like lm-eval's ``count_words``: ``len(re.split(r"\\s+", text))``, so leading or trailing
whitespace adds an (empty) word; bytes are UTF-8 bytes.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ftguard.metrics.base import corpus_metric

_WHITESPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """lm-eval's word count (``re.split(r"\\s+", text)``)."""
    return len(_WHITESPACE.split(text))


def count_bytes(text: str) -> int:
    """Length of the UTF-8 encoding."""
    return len(text.encode("utf-8"))


def perplexity_stats(nll: float, n_tokens: int, text: str) -> list[float]:
    """``[nll, n_tokens, n_words, n_bytes]`` of one document."""
    if n_tokens < 1:
        raise ValueError(f"a perplexity document needs at least one scored token, got {n_tokens}")
    if not text:
        raise ValueError("a perplexity document must not be empty")
    if not math.isfinite(nll):
        raise ValueError(f"negative log-likelihood must be finite, got {nll}")
    return [float(nll), float(n_tokens), float(count_words(text)), float(count_bytes(text))]


def _ratio(stats: np.ndarray, denominator: int) -> np.ndarray:
    s = np.asarray(stats, dtype=np.float64)
    return s[..., 0] / s[..., denominator]


@corpus_metric("perplexity", higher_is_better=False, kind="perplexity",
               description="token perplexity exp(sum NLL / sum tokens)")
def perplexity_from_stats(stats: np.ndarray) -> np.ndarray:
    """Token perplexity ``exp(sum nll / sum tokens)``; ``(..., 4)`` -> ``(...)``."""
    with np.errstate(over="ignore"):
        return np.exp(_ratio(stats, 1))


@corpus_metric("word_perplexity", higher_is_better=False, kind="perplexity",
               description="exp(sum NLL / sum words), words as lm-eval counts them")
def word_perplexity_from_stats(stats: np.ndarray) -> np.ndarray:
    """Word perplexity ``exp(sum nll / sum words)``; ``(..., 4)`` -> ``(...)``."""
    with np.errstate(over="ignore"):
        return np.exp(_ratio(stats, 2))


@corpus_metric("bits_per_byte", higher_is_better=False, kind="perplexity",
               description="sum NLL / sum UTF-8 bytes / ln 2")
def bits_per_byte_from_stats(stats: np.ndarray) -> np.ndarray:
    """Bits per UTF-8 byte ``sum nll / sum bytes / ln 2``; ``(..., 4)`` -> ``(...)``."""
    return _ratio(stats, 3) / math.log(2)
