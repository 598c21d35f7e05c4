"""The backend Protocol: what the engine asks of a model, and nothing more."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ftguard.record import ModelInfo

if TYPE_CHECKING:
    from typing_extensions import Self

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
class Decoding:
    """Sampling or beam-search settings of a generate request (a request without them is
    greedy); :class:`ftguard.suite.generation.GenerationSpec` documents each."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    n: int = 1
    """Answers asked for the item; the request is for one of them (``sample``)."""
    seed: int = 0
    num_beams: int = 1

    def sample_seed(self, context: str, sample: int) -> int:
        """Seed of answer ``sample`` to ``context``: a function of the seed, the exact text and
        the answer's index alone, so it does not depend on batches or on other requests."""
        blob = f"{self.seed}\x00{sample}\x00{context}".encode("utf-8", "surrogatepass")
        return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1

    def item_seed(self, context: str) -> int:
        """Seed of all answers to ``context`` together (a server asked for n at once), below
        2**31 so that every server accepts it."""
        return self.sample_seed(context, -1) >> 32


@dataclass(frozen=True)
class GenerateRequest:
    """Continuation of ``context``: greedy, or answer ``sample`` of ``decoding.n``."""

    context: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    decoding: Decoding | None = None
    """Sampling or beam search; None: greedy (what every request was before they existed)."""
    sample: int = 0
    """Which of the item's ``decoding.n`` answers this request is (0 for greedy)."""


class Generation(str):
    """A generated answer (the text, cut at the first stop string) that also says whether
    the token budget cut it: ``truncated`` is True when generation stopped because
    ``max_new_tokens`` ran out, False when it ended at an end-of-sequence token or a stop
    string, None when unknown (a backend that does not report it, or an answer cached by an
    ftguard that did not record it).

    It is a ``str``, so wrappers and backends that return plain strings keep working; string
    operations return plain ``str``, so read ``truncated`` (:func:`truncated_flag`) before
    transforming the text."""

    __slots__ = ("truncated",)
    truncated: bool | None

    def __new__(cls, text: str = "", truncated: bool | None = None) -> Self:
        self = super().__new__(cls, text)
        self.truncated = truncated
        return self

    def __reduce__(self) -> tuple[type[Generation], tuple[str, bool | None]]:
        return Generation, (str(self), self.truncated)  # survives pickling (multi-process runs)

    def __repr__(self) -> str:
        return f"Generation({str(self)!r}, truncated={self.truncated!r})"


def truncated_flag(text: str) -> bool | None:
    """Whether a ``generate`` answer was cut at ``max_new_tokens``; None when unknown (a
    plain ``str`` says nothing about it)."""
    return text.truncated if isinstance(text, Generation) else None


class ChatTemplater(Protocol):
    """What applies a model's chat template: every backend, or a tokenizer alone
    (:meth:`ftguard.models.registry.BackendKind.templater`)."""

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str: ...


@runtime_checkable
class Backend(Protocol):
    """A loaded model the engine can query. Implementations batch internally."""

    info: ModelInfo

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]: ...

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]: ...

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        """Answers in request order (greedy, or the sample a request's ``decoding`` asks
        for), ideally each a :class:`Generation` that says
        whether ``max_new_tokens`` cut it (a plain ``str`` leaves that unknown)."""
        ...

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    end = len(text)
    for s in stop:
        index = text.find(s)
        if index != -1:
            end = min(end, index)
    return text[:end]
