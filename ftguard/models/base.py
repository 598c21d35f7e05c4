"""The backend Protocol: what the engine asks of a model, and nothing more."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ftguard.record import ModelInfo

Progress = Callable[[int], None]
"""Called with the number of requests just finished."""


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Log-probability of ``continuation`` following ``context``."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    logprob: float
    """Sum of the continuation tokens' log-probabilities (natural log)."""
    is_greedy: bool
    """Whether greedy decoding would have produced exactly the continuation."""
    n_tokens: int
    """Number of continuation tokens."""


@dataclass(frozen=True)
class RollingRequest:
    """Log-likelihood of a whole text, scored with rolling windows."""

    text: str
    max_length: int | None = None
    """Window length in tokens; None = the model's context size."""


@dataclass(frozen=True)
class RollingResult:
    nll: float
    """Negative log-likelihood of every token of the text, summed (nats)."""
    n_tokens: int
    """Number of tokens scored."""


@dataclass(frozen=True)
class GenerateRequest:
    """Greedy continuation of ``context``."""

    context: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()


@runtime_checkable
class Backend(Protocol):
    """A loaded model the engine can query. Implementations batch internally."""

    info: ModelInfo

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]: ...

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]: ...

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]: ...

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    end = len(text)
    for s in stop:
        index = text.find(s)
        if index != -1:
            end = min(end, index)
    return text[:end]
