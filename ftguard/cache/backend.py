"""A backend that answers from the response cache and asks the real model only what it lacks.

``CachedBackend`` implements the :class:`~ftguard.models.base.Backend` protocol over a
:class:`~ftguard.cache.responses.ResponseCache`. Each call splits its requests into hits and
misses; the inner backend sees only the misses (each distinct request once), in chunks of
``chunk_size`` whose answers are stored as they arrive, so an evaluation killed half-way
resumes where it stopped. The inner backend is created on the first miss: a fully cached
evaluation never loads the model.

Chat prompts need the tokenizer's template. Rather than loading a tokenizer, rendered chat
prompts are cached too, keyed by the fingerprint (which covers the tokenizer files, template
included) and the messages; a prompt not in the cache belongs to an item whose requests are
not either, so rendering it with the real backend costs no extra load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ftguard.cache.responses import ResponseCache, chat_key, model_scope, request_key
from ftguard.errors import ModelError
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
from ftguard.record import ModelInfo

R = TypeVar("R")
T = TypeVar("T")

DEFAULT_CHUNK = 64
"""Requests per inner call: answers are stored after each chunk (what a kill -9 can lose)."""


class CachedBackend(Wrapper):
    """Backend answering from ``cache``; ``inner`` is a loaded backend or a factory for one."""

    def __init__(self, inner: Backend | Callable[[], Backend], cache: ResponseCache,
                 info: ModelInfo | None = None, *, chunk_size: int = DEFAULT_CHUNK) -> None:
        self._inner: Backend | None = None
        self._factory: Callable[[], Backend] | None = None
        if hasattr(inner, "loglikelihood"):
            self._inner = inner  # type: ignore[assignment]
            info = info or self._inner.info  # type: ignore[union-attr]
        else:
            self._factory = inner  # type: ignore[assignment]
        if info is None:
            raise ValueError("CachedBackend needs the model's info when the backend is lazy")
        self.info = info
        self.cache = cache
        self.chunk_size = max(1, chunk_size)
        self.scope = model_scope(info)
        self.inner_requests = 0
        """Requests sent to the inner backend (chat renderings included)."""

    # -- the inner backend -------------------------------------------------------------------

    @property  # type: ignore[override]
    def loaded(self) -> bool:
        """Whether the real backend exists (False while every answer came from the cache)."""
        return self._inner is not None

    @property  # type: ignore[override]
    def inner(self) -> Backend:
        """The real backend, created on first use."""
        if self._inner is None:
            assert self._factory is not None
            backend = self._factory()
            if backend.info.fingerprint != self.info.fingerprint:
                raise ModelError(f"model {self.info.spec} changed while it was being evaluated "
                                 "(its fingerprint differs from the one computed at the start).",
                                 hint="Run the evaluation again once the model files are final.")
            self._inner = backend
        return self._inner

    @property
    def batch_size(self) -> int | None:
        """The inner backend's batch size once loaded (None while every answer was cached)."""
        return getattr(self._inner, "batch_size", None) if self._inner is not None else None

    # -- Backend protocol --------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        return self._answer("loglikelihood", requests, progress,
                            lambda part, p: self.inner.loglikelihood(part, p))

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        return self._answer("rolling", requests, progress,
                            lambda part, p: self.inner.loglikelihood_rolling(part, p))

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        return self._answer("generate", requests, progress,
                            lambda part, p: self.inner.generate(part, p))

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        key = chat_key(self.scope, messages)
        hit = self.cache.get_many([(key, "chat")]).get(key)
        if isinstance(hit, str):
            return hit
        self.inner_requests += 1
        text = self.inner.apply_chat_template(messages)
        self.cache.put_many([(key, "chat", text)])
        return text

    def close(self) -> None:
        """Commit buffered answers and close the cache (the inner backend stays usable)."""
        self.cache.close()

    # -- the split -----------------------------------------------------------------------

    def _answer(self, kind: str, requests: Sequence[T], progress: Progress | None,
                ask: Callable[[list[T], Progress | None], list[Any]]) -> list[Any]:
        keys = [request_key(self.scope, r) for r in requests]  # type: ignore[arg-type]
        found: dict[str, Any] = self.cache.get_many((k, kind) for k in keys)
        todo: dict[str, T] = {}
        for key, request in zip(keys, requests):
            if key not in found:
                todo.setdefault(key, request)
        already = len(requests) - len(todo)  # hits, and repeats of a request being asked
        if progress and already:
            progress(already)
        pending = list(todo.items())
        try:
            for start in range(0, len(pending), self.chunk_size):
                part = pending[start:start + self.chunk_size]
                self.inner_requests += len(part)
                answers = ask([r for _, r in part], progress)
                if len(answers) != len(part):
                    raise ModelError(f"backend {self.info.backend} returned {len(answers)} "
                                     f"answers for {len(part)} requests.")
                self.cache.put_many((k, kind, a) for (k, _), a in zip(part, answers))
                found.update((k, a) for (k, _), a in zip(part, answers))
        finally:
            self.cache.flush()
        return [found[k] for k in keys]
