"""A deterministic model without weights, for tests and dry runs (``--model fake``).

Its log-likelihoods are a pure function of the text (a hash), its generations echo the
last word of the prompt (or nothing) and always end before ``max_new_tokens``. It never touches torch, so CLI tests that need a model are fast.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

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

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.info = ModelInfo(spec=f"fake:{seed}", fingerprint=f"fake-{seed}", dtype="none",
                              backend="fake", device="cpu")

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        out = []
        for r in requests:
            n = max(1, len(r.continuation.split()))
            logprob = -n * (0.5 + 3 * _unit(f"{self.seed}|{r.context}|{r.continuation}"))
            out.append(LoglikelihoodResult(logprob, False, n))
        if progress:
            progress(len(requests))
        return out

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        out = []
        for r in requests:
            n = max(1, len(r.text.split()))
            out.append(RollingResult(n * (2 + math.log1p(_unit(f"{self.seed}|{r.text}"))), n))
        if progress:
            progress(len(requests))
        return out

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        out = []
        for r in requests:
            words = r.context.split()
            text = words[-1] if words and _unit(f"{self.seed}|{r.context}") < 0.5 else ""
            out.append(Generation(text, truncated=False))  # one word: within any budget
        if progress:
            progress(len(requests))
        return out

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"
