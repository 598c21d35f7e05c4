"""The backend registry: how each ``--backend`` describes and loads a model, by name.

A backend is added in one place: a class decorated with :func:`backend` below, whose
``describe(options)`` says what would be loaded (fingerprint included, nothing loaded) and
whose ``load(options)`` loads it. A backend registered with a ``model`` pattern stands in for
another when ``--model`` matches it: ``fake[:SEED]`` under the default ``hf``. Heavy imports
(torch, transformers, the HTTP client) stay inside the methods.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ftguard.errors import UsageError
from ftguard.models.openai_sampling import UNSUPPORTED as OPENAI_UNSUPPORTED

if TYPE_CHECKING:
    from ftguard.models.base import Backend, ChatTemplater
    from ftguard.models.load import LoadOptions
    from ftguard.record import ModelInfo


class BackendKind:
    """One way of loading a model; subclasses registered with :func:`backend`."""

    name: str = ""
    model: re.Pattern[str] | None = None
    """The ``--model`` specs this backend is chosen for instead of :attr:`instead_of`."""
    instead_of: str | None = None
    unsupported_decoding: ClassVar[dict[str, str]] = {}
    """Decoding settings (``generation`` fields) this backend cannot honour, with why: a
    task that sets one is refused before any request."""

    def check(self, options: LoadOptions) -> None:
        """Reject options this backend cannot honour (called when LoadOptions is built)."""

    def describe(self, options: LoadOptions) -> ModelInfo:
        """What :meth:`load` would load, fingerprint included, without loading it."""
        raise NotImplementedError

    def load(self, options: LoadOptions) -> Backend:
        """Load the model; raise ModelError with a fix on failure."""
        raise NotImplementedError

    def templater(self, options: LoadOptions) -> ChatTemplater:
        """What applies the model's chat template, loading no more than it needs (``suites
        show --render``); by default the loaded backend."""
        return self.load(options)


_REGISTRY: dict[str, BackendKind] = {}


def backend(name: str, *, model: str | None = None,
            instead_of: str | None = None) -> Callable[[type[BackendKind]], type[BackendKind]]:
    """Register the decorated BackendKind as ``name`` (``--backend NAME``), or, with a
    ``model`` pattern, as the backend chosen when ``--backend`` is ``instead_of`` and
    ``--model`` matches it."""
    def register(cls: type[BackendKind]) -> type[BackendKind]:
        kind = cls()
        kind.name = name
        kind.model = re.compile(model) if model is not None else None
        kind.instead_of = instead_of
        _REGISTRY[name] = kind
        return cls
    return register


def named(name: str) -> BackendKind:
    """The backend ``--backend name`` selects (one of :data:`BACKENDS`)."""
    return _REGISTRY[name]


def backend_for(options: LoadOptions) -> BackendKind:
    """The backend that describes and loads ``options``' model."""
    for kind in _REGISTRY.values():
        if kind.instead_of == options.backend and model_match(kind, options.model):
            return kind
    return _REGISTRY[options.backend]


def model_backend(spec: str | None) -> str | None:
    """The backend a ``--model`` spec selects by itself (``fake`` for ``fake:3``), if any."""
    return next((k.name for k in _REGISTRY.values() if model_match(k, spec)), None)


def model_match(kind: BackendKind, spec: str | None) -> re.Match[str] | None:
    return kind.model.match(spec or "") if kind.model is not None else None


@backend("hf")
class _HF(BackendKind):
    """transformers in-process: a local folder, a hub id or the embedded model."""

    def describe(self, options: LoadOptions) -> ModelInfo:
        from ftguard.models.hf_load import hf_info, hf_plan

        return hf_info(hf_plan(options))

    def load(self, options: LoadOptions) -> Backend:
        from ftguard.models.hf_load import (
            apply_adapter,
            hf_info,
            hf_plan,
            load_model,
            load_tokenizer,
            max_length,
        )

        plan = hf_plan(options)
        tokenizer = load_tokenizer(plan.resolved.path, options.trust_remote_code)
        model = load_model(plan.resolved.path, plan.device, plan.dtype, plan.quant, options)
        if plan.adapter is not None:
            model = apply_adapter(model, plan.adapter, plan.resolved.path)
        model.eval()
        from ftguard.models.hf import HFBackend

        return HFBackend(model, tokenizer, hf_info(plan), batch_size=options.batch_size,
                         max_length=max_length(model, tokenizer))

    def templater(self, options: LoadOptions) -> ChatTemplater:
        from ftguard.models.hf_chat import TokenizerChat
        from ftguard.models.hf_load import load_tokenizer
        from ftguard.models.resolve import resolve_model

        resolved = resolve_model(options.model, allow_pickle=True)  # no weights are loaded
        return TokenizerChat(load_tokenizer(resolved.path, options.trust_remote_code),
                             resolved.spec)


@backend("openai")
class _OpenAI(BackendKind):
    """An OpenAI-compatible server (vLLM, SGLang, llama.cpp...)."""

    unsupported_decoding = OPENAI_UNSUPPORTED

    def check(self, options: LoadOptions) -> None:
        _check_server_options(options)

    def describe(self, options: LoadOptions) -> ModelInfo:
        from ftguard.models.openai import describe_server

        return describe_server(_client(options), options.model)[0]

    def load(self, options: LoadOptions) -> Backend:
        from ftguard.models.openai import OpenAIBackend, describe_server
        from ftguard.models.openai_text import OpenAITextBackend, has_tokenize

        client = _client(options)
        info, entry = describe_server(client, options.model)
        if not has_tokenize(client, info.spec):  # generation only, see openai_text
            return OpenAITextBackend(client, info)
        return OpenAIBackend(client, info, entry, tokenizer_dir=options.tokenizer)


@backend("fake", model=r"^fake(?::(\d+))?$", instead_of="hf")
class _Fake(BackendKind):
    """``--model fake[:SEED]``: the deterministic stand-in of :mod:`ftguard.models.fake`."""

    def describe(self, options: LoadOptions) -> ModelInfo:
        return self.load(options).info

    def load(self, options: LoadOptions) -> Backend:
        from ftguard.models.fake import FakeBackend
        from ftguard.models.hf_load import check_adapter

        return FakeBackend(fake_seed(options.model),
                           check_adapter(options.adapter, options.allow_pickle))


def unsupported_decoding(name: str) -> dict[str, str]:
    """What the backend called ``name`` (a ModelInfo's ``backend``) cannot decode, with why."""
    kind = _REGISTRY.get(name)
    return kind.unsupported_decoding if kind is not None else {}


def fake_seed(spec: str | None) -> int:
    """SEED of a ``fake[:SEED]`` model spec."""
    match = model_match(_REGISTRY["fake"], spec)
    assert match is not None  # backend_for chose the fake backend by this pattern
    return int(match.group(1) or 0)


BACKENDS: tuple[str, ...] = tuple(k.name for k in _REGISTRY.values() if k.model is None)
"""The names ``--backend`` accepts."""


def _check_server_options(options: LoadOptions) -> None:
    """The options that make no sense with a server, and the ones it needs."""
    if not options.base_url:
        raise UsageError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1).")
    if not re.match(r"^https?://[^/\s]+", options.base_url):
        raise UsageError(f"--base-url {options.base_url}: give an http(s) URL such as "
                         "http://127.0.0.1:8000/v1.")
    local = [flag for flag, on in (("{--adapter}", options.adapter),
                                   ("--load-in-4bit", options.load_in_4bit),
                                   ("--load-in-8bit", options.load_in_8bit),
                                   ("--dtype", options.dtype != "auto"),
                                   ("--device", options.device != "auto")) if on]
    if local:
        raise UsageError(f"{local[0]} applies to models loaded in-process; with --backend "
                         "openai the server decides.",
                         hint="Serve adapters with vLLM's --enable-lora --lora-modules "
                              "NAME=PATH and pass {--model} NAME.",
                         option="adapter" if local[0] == "{--adapter}" else None)
    if options.max_concurrency < 1 or not options.request_timeout > 0 or options.max_retries < 0:
        raise UsageError("--max-concurrency must be at least 1, --request-timeout positive "
                         "and --max-retries at least 0.")
    if options.api_key_env and options.api_key_env not in os.environ:
        raise UsageError(f"--api-key-env {options.api_key_env}: that environment variable "
                         "is not set.", hint=f"export {options.api_key_env}=... first.")


def _client(options: LoadOptions) -> Any:
    from ftguard.models.openai_client import ServerClient

    key = os.environ.get(options.api_key_env) if options.api_key_env else None
    return ServerClient(str(options.base_url), api_key=key, timeout=options.request_timeout,
                        max_concurrency=options.max_concurrency, retries=options.max_retries)
