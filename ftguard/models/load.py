"""Loading a backend from user options: model SPEC, adapter, device, dtype, quantisation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ftguard.errors import UsageError
from ftguard.models.base import Backend
from ftguard.models.fake import FakeAdapters
from ftguard.models.hf_load import (
    HFPlan,
    apply_adapter,
    check_adapter,
    hf_info,
    hf_plan,
    load_model,
    load_tokenizer,
    max_length,
)
from ftguard.models.registry import BACKENDS, backend_for, model_backend, named
from ftguard.record import ModelInfo

DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class LoadOptions:
    """How to load the model under evaluation."""

    model: str | None = None
    """Local folder, hub id, ``smollm2-135m-instruct`` (default) or ``fake[:SEED]``."""
    adapter: str | None = None
    """PEFT adapter folder applied on top of the model."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``..."""
    dtype: str = "auto"
    """``auto`` = float32 on CPU, bfloat16 (or float16) on CUDA."""
    load_in_4bit: bool = False
    """Quantise to 4-bit nf4 with bitsandbytes."""
    load_in_8bit: bool = False
    """Quantise to 8-bit with bitsandbytes."""
    allow_pickle: bool = False
    """Allow pickle (.bin) weights, which can execute code when loaded."""
    trust_remote_code: bool = False
    """Allow the model folder's own Python code to run."""
    batch_size: int | None = None
    """Requests per forward pass; None = automatic."""
    backend: str = "hf"
    """``hf`` (in-process transformers) or ``openai`` (an OpenAI-compatible server)."""
    base_url: str | None = None
    """openai: the server's API root, ``http://HOST:PORT/v1``."""
    api_key_env: str | None = None
    """openai: the environment variable holding the API key (never recorded)."""
    max_concurrency: int = 8
    """openai: requests in flight at once."""
    request_timeout: float = 120.0
    """openai: seconds to wait for one answer before retrying it."""
    max_retries: int = 5
    """openai: retries of a request after 429/5xx answers, timeouts and dropped connections."""
    tokenizer: str | None = None
    """openai: a folder with the model's tokenizer_config.json (for its BOS/EOS tokens) when
    the server's model folder is not readable here."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend}: choose one of {', '.join(BACKENDS)}.")
        named(self.backend).check(self)
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype}: unknown dtype; choose one of "
                             f"{', '.join(DTYPES)}.")
        if self.load_in_4bit and self.load_in_8bit:
            raise UsageError("--load-in-4bit and --load-in-8bit exclude each other; pick one.")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be a positive integer "
                             "or 'auto'.")


def describe_model(options: LoadOptions) -> ModelInfo:
    """What :func:`load_backend` would load, fingerprint included, without loading it."""
    return backend_for(options).describe(options)


def load_backend(options: LoadOptions) -> Backend:
    """Resolve, load and fingerprint the model; raise ModelError with a fix on failure."""
    return backend_for(options).load(options)


@dataclass
class AdapterSet:
    """One base model loaded once with several PEFT adapters attached (:func:`load_adapters`).

    :meth:`backend` activates one adapter, :meth:`base` disables them all; each backend's
    ``info`` is exactly what ``load_backend`` with that single adapter (or none) reports.
    """

    model: Any
    tokenizer: Any
    base_info: ModelInfo
    infos: dict[str, ModelInfo]
    """Adapter as the caller gave it -> its ModelInfo (adapter path and own fingerprint)."""
    batch_size: int | None
    max_length: int
    _names: dict[str, str] = field(default_factory=dict)  # adapter -> peft adapter name

    def backend(self, adapter: str) -> Backend:
        """A backend evaluating the base model with ``adapter`` active (and no other)."""
        self.model.set_adapter(self._names[adapter], inference_mode=True)
        return self._backend(self.infos[adapter])

    @contextmanager
    def base(self) -> Iterator[Backend]:
        """A backend evaluating the base model itself: every adapter disabled meanwhile."""
        with self.model.disable_adapter() if self._names else nullcontext():
            yield self._backend(self.base_info)

    def _backend(self, info: ModelInfo) -> Backend:
        from ftguard.models.hf import HFBackend

        return HFBackend(self.model, self.tokenizer, info, batch_size=self.batch_size,
                         max_length=self.max_length)


def describe_adapters(options: LoadOptions, adapters: Sequence[str]) -> dict[str, ModelInfo]:
    """The ModelInfo of the base with each adapter, without loading anything; every adapter
    folder is checked as for a single ``--adapter`` (ModelError on the first bad one)."""
    if model_backend(options.model) == "fake":
        return {a: describe_model(replace(options, adapter=a)) for a in adapters}
    return _adapter_plan(options, adapters)[1]


def _adapter_plan(options: LoadOptions,
                  adapters: Sequence[str]) -> tuple[HFPlan, dict[str, ModelInfo]]:
    if backend_for(options).name != "hf":
        raise UsageError(f"{{--backend}} {options.backend}: several adapters on one loaded "
                         "base need the hf backend.", option="backend")
    plan = hf_plan(replace(options, adapter=None))
    return plan, {a: hf_info(replace(plan, adapter=check_adapter(a, options.allow_pickle)))
                  for a in adapters}


def load_adapters(options: LoadOptions, adapters: Sequence[str]) -> AdapterSet | FakeAdapters:
    """Load the base model once and attach every adapter: the first with
    ``PeftModel.from_pretrained``, the others with ``load_adapter``. ``options.adapter`` is
    ignored. An adapter for another base raises the same ModelError as ``--adapter``."""
    if model_backend(options.model) == "fake":
        from ftguard.models.registry import fake_seed

        return FakeAdapters(fake_seed(options.model),
                            {a: check_adapter(a, options.allow_pickle) for a in adapters})
    plan, infos = _adapter_plan(options, adapters)
    tokenizer = load_tokenizer(plan.resolved.path, options.trust_remote_code)
    model = load_model(plan.resolved.path, plan.device, plan.dtype, plan.quant, options)
    names = {}
    for i, adapter in enumerate(adapters):
        names[adapter] = f"adapter{i}"
        model = apply_adapter(model, Path(str(infos[adapter].adapter)), plan.resolved.path,
                               name=names[adapter])
    model.eval()
    return AdapterSet(model, tokenizer, hf_info(plan), infos, options.batch_size,
                      max_length(model, tokenizer), names)


