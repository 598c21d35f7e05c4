"""BLEU and chrF as sacrebleu defines them, from per-sample sufficient statistics.

sacrebleu extracts the statistics (``Metric._extract_corpus_statistics``), so
tokenisation and multi-reference matching are exactly its own; the corpus functions below
re-implement ``BLEU.compute_bleu`` and ``CHRF._compute_f_score`` vectorised over leading
axes, so that summing statistics over any subset of samples and applying them equals
``sacrebleu.corpus_bleu`` / ``corpus_chrf`` on that subset.

Defaults: BLEU with the 13a tokenizer, ``exp`` smoothing, 4-grams, no effective order;
chrF with character order 6, word order 0, beta 2, whitespace removed, no eps smoothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from ftguard.metrics.base import corpus_metric

BLEU_MAX_ORDER = 4
BLEU_STATS = 2 + 2 * BLEU_MAX_ORDER
"""[hyp_len, closest_ref_len, correct_1..4, total_1..4]."""
CHRF_CHAR_ORDER = 6
CHRF_WORD_ORDER = 0
CHRF_BETA = 2
CHRF_STATS = 3 * (CHRF_CHAR_ORDER + CHRF_WORD_ORDER)
"""[hyp_count, ref_count, match_count] per n-gram order."""


@cache
def _bleu() -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU()


@cache
def _chrf() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(char_order=CHRF_CHAR_ORDER, word_order=CHRF_WORD_ORDER, beta=CHRF_BETA)


def _segment_stats(metric: Any, prediction: str, references: list[str]) -> list[float]:
    if not references:
        raise ValueError("BLEU/chrF need at least one reference")
    # One segment; each reference is its own "reference stream", as sacrebleu expects.
    (stats,) = metric._extract_corpus_statistics([prediction], [[ref] for ref in references])
    return [float(x) for x in stats]


def bleu_stats(prediction: str, references: list[str]) -> list[float]:
    """sacrebleu's BLEU statistics of one segment (length :data:`BLEU_STATS`)."""
    return _segment_stats(_bleu(), prediction, references)


def chrf_stats(prediction: str, references: list[str]) -> list[float]:
    """sacrebleu's chrF statistics of one segment, taken from the reference with the best
    sentence-level chrF (length :data:`CHRF_STATS`)."""
    return _segment_stats(_chrf(), prediction, references)


@corpus_metric("bleu", higher_is_better=True, kind="generate",
               description="sacrebleu corpus BLEU (13a, exp smoothing), 0-100")
def bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-100) of summed statistics, shape ``(..., 10)`` -> ``(...)``."""
    s = np.asarray(stats, dtype=np.float64)
    sys_len, ref_len = s[..., 0], s[..., 1]
    correct = s[..., 2:2 + BLEU_MAX_ORDER]
    total = s[..., 2 + BLEU_MAX_ORDER:BLEU_STATS]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bp = np.where(sys_len < ref_len,
                      np.where(sys_len > 0, np.exp(1 - ref_len / sys_len), 0.0), 1.0)
        # exp smoothing (mteval-v13a): the k-th order without matches gets 1 / (2^k total).
        halvings = np.cumsum(correct == 0, axis=-1)
        precisions = np.where(correct > 0, 100.0 * correct / total,
                              100.0 / (2.0 ** halvings * total))
        score = bp * np.exp(np.log(precisions).sum(axis=-1) / BLEU_MAX_ORDER)
    # sacrebleu returns 0 when nothing matches, and (via log(0) floored at -1e10) when some
    # order has no n-grams at all.
    defined = (total > 0).all(axis=-1) & (correct > 0).any(axis=-1)
    return np.where(defined, score, 0.0)


@corpus_metric("chrf", higher_is_better=True, kind="generate",
               description="sacrebleu corpus chrF (char order 6, beta 2), 0-100")
def chrf_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus chrF (0-100) of summed statistics, shape ``(..., 18)`` -> ``(...)``."""
    s = np.asarray(stats, dtype=np.float64)
    s = s.reshape(*s.shape[:-1], CHRF_STATS // 3, 3)
    n_hyp, n_ref, n_match = s[..., 0], s[..., 1], s[..., 2]
    # Averages run over "effective" orders only: those with hypothesis and reference n-grams.
    effective = (n_hyp > 0) & (n_ref > 0)
    n_eff = effective.sum(axis=-1)
    factor = CHRF_BETA ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(effective, n_match / n_hyp, 0.0).sum(axis=-1)
        rec = np.where(effective, n_match / n_ref, 0.0).sum(axis=-1)
        avg_prec = np.where(n_eff > 0, prec / n_eff, 0.0)
        avg_rec = np.where(n_eff > 0, rec / n_eff, 0.0)
        score = (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)
    return np.where(avg_prec + avg_rec > 0, 100 * score, 0.0)


def _signature(metric: Any, num_refs: int) -> str:
    # sacrebleu only knows the reference count after scoring; set it as scoring would.
    metric.num_refs = num_refs
    return str(metric.get_signature().format())


def bleu_signature(num_refs: int = 1) -> str:
    """sacrebleu's signature of the default BLEU (``num_refs=-1``: a varying count)."""
    return _signature(_bleu.__wrapped__(), num_refs)


def chrf_signature(num_refs: int = 1) -> str:
    """sacrebleu's signature of the default chrF (``num_refs=-1``: a varying count)."""
    return _signature(_chrf.__wrapped__(), num_refs)
