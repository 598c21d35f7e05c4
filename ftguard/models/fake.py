"""A deterministic model without weights, for tests and dry runs (``--model fake[:SEED]``).

Its log-likelihoods are a pure function of the text and SEED (a hash), its greedy generations
echo the last word of the prompt (or nothing), its samples are words of the prompt drawn by
each answer's seed, and all end before ``max_new_tokens``. It never
touches torch, so suites, gates and CI wiring can be checked in seconds. An ``--adapter``
folder is checked as for a real model and makes another fake model (its answers also hash
the adapter's files), so multi-adapter runs can be dry-run too.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ftguard.models.base import (
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
    RollingRequest,
    RollingResult,
)
from ftguard.record import ModelInfo


def _unit(text: str) -> float:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeBackend:
    """Deterministic stand-in model; ``seed`` changes every answer."""

    def __init__(self, seed: int = 0, adapter: Path | None = None) -> None:
        from ftguard.models.fingerprint import folder_digest

        digest = folder_digest(adapter)[:16] if adapter is not None else None
        self.seed = seed
        self._salt = str(seed) if digest is None else f"{seed}+{digest}"
        self.info = ModelInfo(spec=f"fake:{seed}", fingerprint=f"fake-{self._salt}",
                              dtype="none", backend="fake", device="cpu",
                              adapter=str(adapter) if adapter is not None else None)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        out = []
        for r in requests:
            n = max(1, len(r.continuation.split()))
            logprob = -n * (0.5 + 3 * _unit(f"{self._salt}|{r.context}|{r.continuation}"))
            out.append(LoglikelihoodResult(logprob, False, n))
        if progress:
            progress(len(requests))
        return out

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        out = []
        for r in requests:
            n = max(1, len(r.text.split()))
            out.append(RollingResult(n * (2 + math.log1p(_unit(f"{self._salt}|{r.text}"))), n))
        if progress:
            progress(len(requests))
        return out

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        out = []
        for r in requests:
            words = r.context.split()
            if r.decoding is None:
                text = words[-1] if words and _unit(f"{self._salt}|{r.context}") < 0.5 else ""
            else:
                text = _sampled(words, r, self._salt)
            out.append(Generation(text, truncated=False))  # one word: within any budget
        if progress:
            progress(len(requests))
        return out

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"


def _sampled(words: list[str], request: GenerateRequest, salt: str) -> str:
    """A sample: a word of the prompt drawn by the answer's seed (so the same seed gives the
    same words); a beam: the ``sample``-th word from the end (the best beam is the last)."""
    assert request.decoding is not None
    if not words:
        return ""
    if not request.decoding.do_sample:
        return words[-1 - request.sample % len(words)]
    seed = request.decoding.sample_seed(request.context, request.sample)
    return words[int(_unit(f"{salt}|{seed}") * len(words))]


class FakeAdapters:
    """:class:`ftguard.models.load.AdapterSet` for the fake model: one base, its adapters."""

    def __init__(self, seed: int, adapters: dict[str, Path]) -> None:
        self.seed, self.adapters = seed, adapters

    def backend(self, adapter: str) -> FakeBackend:
        return FakeBackend(self.seed, self.adapters[adapter])

    @contextmanager
    def base(self) -> Iterator[FakeBackend]:
        yield FakeBackend(self.seed)
