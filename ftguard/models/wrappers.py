"""Backend wrappers: a backend in front of another one.

The response cache (:class:`~ftguard.cache.backend.CachedBackend`), the per-evaluation memo
(:class:`~ftguard.cache.memo.RequestMemo`) and multi-process sharding
(:class:`~ftguard.engine.distributed.ShardedBackend`) each derive from :class:`Wrapper` and
expose the backend they wrap as ``inner``; :func:`unwrap` finds the real one underneath, for
the code that needs it itself (lm-eval tasks, a server's request counts).
"""

from __future__ import annotations

from ftguard.models.base import Backend


class Wrapper:
    """Base of the backend wrappers: ``inner`` is the wrapped backend.

    A wrapper that creates its backend lazily (the response cache loads the model on the
    first request it cannot answer) overrides ``loaded``: False while ``inner`` was never
    read, since reading it would load the model. ``loaded`` is a class attribute here so that
    a wrapper forwarding unknown attributes to ``inner`` answers it itself."""

    inner: Backend
    loaded: bool = True


def unwrap(backend: Backend, *, load: bool = False) -> Backend:
    """The real backend under ``backend``'s wrappers (``backend`` itself when it is none).

    It stops at a lazy wrapper whose backend was never loaded and returns that wrapper
    (reading its ``inner`` would load the model only to look at it); with ``load`` it reads
    ``inner`` all the same, loading the model if need be."""
    while isinstance(backend, Wrapper) and (load or backend.loaded):
        backend = backend.inner
    return backend
