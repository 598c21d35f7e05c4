"""Identical requests of different tasks answered once per evaluation.

Suites often ask the same thing twice: one dataset scored by two tasks (say ``acc`` with and
without a chat template, or a classify and a choice view of the same items), a shared
few-shot block, one corpus in two suites. ``RequestMemo`` wraps the backend for one
``evaluate`` call and keeps every answer in memory, so the model sees each distinct request
once across all tasks and suites. It sits in front of the response cache, which does the same
across runs (on disk, keyed by the model's fingerprint); the memo needs no key beyond the
request because it lives only as long as one model's evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from ftguard.models.base import (
    Backend,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
    RollingRequest,
    RollingResult,
)
from ftguard.models.wrappers import Wrapper

Q = TypeVar("Q", bound=Hashable)
R = TypeVar("R")


class RequestMemo(Wrapper):
    """``inner`` with answers remembered for the lifetime of this object."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.info = inner.info
        self._answers: dict[tuple[str, Hashable], Any] = {}
        self.reused = 0
        """Requests answered from memory (counted per request, duplicates included)."""

    def __getattr__(self, name: str) -> Any:  # batch_size, model, tokenizer, ...
        return getattr(self.inner, name)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        return self._answer("ll", requests, self.inner.loglikelihood, progress)

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        return self._answer("rolling", requests, self.inner.loglikelihood_rolling, progress)

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        return self._answer("generate", requests, self.inner.generate, progress)

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return self.inner.apply_chat_template(messages)

    def _answer(self, kind: str, requests: Sequence[Q],
                ask: Callable[[list[Q], Progress | None], list[R]],
                progress: Progress | None) -> list[R]:
        missing = list(dict.fromkeys(r for r in requests if (kind, r) not in self._answers))
        wanted = set(missing)
        copies = sum(1 for r in requests if r in wanted)
        self.reused += len(requests) - copies
        if progress and len(requests) > copies:
            progress(len(requests) - copies)
        if missing:
            scaled = _Scaled(progress, copies, len(missing)) if progress else None
            for request, answer in zip(missing, ask(missing, scaled)):
                self._answers[(kind, request)] = answer
            if scaled:
                scaled.finish()
        return [self._answers[(kind, r)] for r in requests]


class _Scaled:
    """Progress in requests while the inner backend reports distinct ones (a distinct
    request stands for all its copies)."""

    def __init__(self, progress: Progress, total: int, distinct: int) -> None:
        self.progress, self.total, self.ratio = progress, total, total / distinct
        self.distinct_done, self.reported = 0, 0

    def __call__(self, n: int) -> None:
        self.distinct_done += n
        self._report(min(self.total, int(self.distinct_done * self.ratio)))

    def finish(self) -> None:
        self._report(self.total)

    def _report(self, upto: int) -> None:
        if upto > self.reported:
            self.progress(upto - self.reported)
            self.reported = upto
