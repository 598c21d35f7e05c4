"""Loading a backend from user options: model SPEC, adapter, device, dtype, quantisation."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ftguard.errors import ModelError, UsageError
from ftguard.models.base import Backend
from ftguard.models.fingerprint import model_fingerprint
from ftguard.models.resolve import resolve_model
from ftguard.record import ModelInfo

DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("hf", "openai")
FAKE_SPEC = re.compile(r"^fake(?::(\d+))?$")
"""A ``fake[:SEED]`` model SPEC (:class:`~ftguard.models.fake.FakeBackend`); group 1 is the seed."""


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
        if self.backend == "openai":
            _check_server_options(self)
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype}: unknown dtype; choose one of "
                             f"{', '.join(DTYPES)}.")
        if self.load_in_4bit and self.load_in_8bit:
            raise UsageError("--load-in-4bit and --load-in-8bit exclude each other; pick one.")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be a positive integer "
                             "or 'auto'.")


@dataclass(frozen=True)
class _Plan:
    resolved: Any
    adapter: Path | None
    device: Any
    dtype: Any
    quant: str | None


def _plan(options: LoadOptions) -> _Plan:
    resolved = resolve_model(options.model, allow_pickle=options.allow_pickle)
    adapter = _check_adapter(options.adapter, options.allow_pickle)
    device = _device(options.device)
    quant = "nf4" if options.load_in_4bit else "int8" if options.load_in_8bit else None
    return _Plan(resolved, adapter, device, _dtype(options.dtype, device), quant)


def _info(plan: _Plan) -> ModelInfo:
    return ModelInfo(spec=plan.resolved.spec, backend="hf", path=str(plan.resolved.path),
                     adapter=str(plan.adapter) if plan.adapter else None, device=str(plan.device),
                     dtype=plan.quant or str(plan.dtype).removeprefix("torch."),
                     fingerprint=model_fingerprint(plan.resolved.path, adapter_dir=plan.adapter,
                                                   dtype=str(plan.dtype), quantization=plan.quant))


def describe_model(options: LoadOptions) -> ModelInfo:
    """What :func:`load_backend` would load, fingerprint included, without loading it."""
    if options.backend == "openai":
        from ftguard.models.openai import describe_server

        return describe_server(_client(options), options.model)[0]
    fake = FAKE_SPEC.match(options.model or "")
    if fake:
        from ftguard.models.fake import FakeBackend

        return FakeBackend(int(fake.group(1) or 0)).info
    return _info(_plan(options))


def load_backend(options: LoadOptions) -> Backend:
    """Resolve, load and fingerprint the model; raise ModelError with a fix on failure."""
    if options.backend == "openai":
        from ftguard.models.openai import OpenAIBackend, describe_server
        from ftguard.models.openai_text import OpenAITextBackend, has_tokenize

        client = _client(options)
        info, entry = describe_server(client, options.model)
        if not has_tokenize(client, info.spec):  # generation only, see openai_text
            return OpenAITextBackend(client, info)
        return OpenAIBackend(client, info, entry, tokenizer_dir=options.tokenizer)
    fake = FAKE_SPEC.match(options.model or "")
    if fake:
        from ftguard.models.fake import FakeBackend

        return FakeBackend(int(fake.group(1) or 0))
    plan = _plan(options)
    tokenizer = _load_tokenizer(plan.resolved.path, options.trust_remote_code)
    model = _load_model(plan.resolved.path, plan.device, plan.dtype, plan.quant, options)
    if plan.adapter is not None:
        model = _apply_adapter(model, plan.adapter, plan.resolved.path)
    model.eval()
    from ftguard.models.hf import HFBackend

    return HFBackend(model, tokenizer, _info(plan), batch_size=options.batch_size,
                     max_length=_max_length(model, tokenizer))


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
    return _adapter_plan(options, adapters)[1]


def _adapter_plan(options: LoadOptions,
                  adapters: Sequence[str]) -> tuple[_Plan, dict[str, ModelInfo]]:
    if FAKE_SPEC.match(options.model or ""):
        raise UsageError(f"{{--model}} {options.model}: the fake backend takes no adapters.",
                         hint="Pass a Hugging Face model folder or hub id with {--model}.",
                         option="model")
    plan = _plan(replace(options, adapter=None))
    return plan, {a: _info(replace(plan, adapter=_check_adapter(a, options.allow_pickle)))
                  for a in adapters}


def load_adapters(options: LoadOptions, adapters: Sequence[str]) -> AdapterSet:
    """Load the base model once and attach every adapter: the first with
    ``PeftModel.from_pretrained``, the others with ``load_adapter``. ``options.adapter`` is
    ignored. An adapter for another base raises the same ModelError as ``--adapter``."""
    plan, infos = _adapter_plan(options, adapters)
    tokenizer = _load_tokenizer(plan.resolved.path, options.trust_remote_code)
    model = _load_model(plan.resolved.path, plan.device, plan.dtype, plan.quant, options)
    names = {}
    for i, adapter in enumerate(adapters):
        names[adapter] = f"adapter{i}"
        model = _apply_adapter(model, Path(str(infos[adapter].adapter)), plan.resolved.path,
                               name=names[adapter])
    model.eval()
    return AdapterSet(model, tokenizer, _info(plan), infos, options.batch_size,
                      _max_length(model, tokenizer), names)


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


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        from ftguard.engine.distributed import local_device

        return torch.device(local_device() or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a device name; use auto, cpu, cuda or "
                         "cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine.",
                         hint="Use --device cpu (or auto).")
    return device


def _dtype(name: str, device: Any) -> Any:
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # bf16 matmul on CPUs without AMX is hundreds of times slower
    return getattr(torch, name)


def _load_tokenizer(path: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{{--model}} {path}: the tokenizer cannot be loaded ({_first_line(exc)}).",
                         hint="The folder needs tokenizer files saved by save_pretrained().",
                         option="model") from None


def _load_model(path: Path, device: Any, dtype: Any, quant: str | None,
                options: LoadOptions) -> Any:
    return load_causal_lm(path, device=device, dtype=dtype,
                          quantization_config=_bnb_config(quant, dtype) if quant else None,
                          allow_pickle=options.allow_pickle,
                          trust_remote_code=options.trust_remote_code)


def load_causal_lm(path: Path, *, device: Any, dtype: Any, quantization_config: Any = None,
                   allow_pickle: bool = False, trust_remote_code: bool = False) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` with ftguard's safety defaults (safetensors
    only, no remote code) and its errors turned into a ModelError with a fix."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # ftguard draws its own progress
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ImportError as exc:
        raise ModelError(f"loading {path} needs a missing package ({_first_line(exc)}).",
                         hint="Install it into this environment and retry.") from None
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"{{--model}} {path}: cannot be loaded ({_first_line(exc)}).",
                         hint="Check that the folder holds a causal language model.",
                         option="model") from None
    return model if quantization_config is not None else model.to(device)


def _bnb_config(quant: str, dtype: Any) -> Any:
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ModelError("--load-in-4bit/--load-in-8bit need bitsandbytes, which is not "
                         "installed.", hint="pip install bitsandbytes") from None
    if quant == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)
    return BitsAndBytesConfig(load_in_8bit=True)


def _check_adapter(adapter: str | None, allow_pickle: bool) -> Path | None:
    if adapter is None:
        return None
    path = Path(adapter).expanduser()
    if not path.is_dir():
        raise ModelError(f"{{--adapter}} {adapter}: no such folder.",
                         hint="Give the folder written by save_pretrained() of a PEFT model.",
                         option="adapter")
    if not (path / "adapter_config.json").is_file():
        raise ModelError(f"{{--adapter}} {adapter}: not a PEFT adapter (no adapter_config.json).",
                         option="adapter")
    names = [p.name for p in path.iterdir()]
    if "adapter_model.safetensors" not in names:
        if "adapter_model.bin" in names and not allow_pickle:
            raise ModelError(f"{{--adapter}} {adapter}: has only pickle weights (adapter_model.bin).",
                             hint="Re-save it with safetensors, or pass --allow-pickle if you "
                                  "trust the file.", option="adapter")
        if "adapter_model.bin" not in names:
            raise ModelError(f"{{--adapter}} {adapter}: no adapter weights found "
                             "(adapter_model.safetensors).", option="adapter")
    else:
        from ftguard.models.safetensors_check import check_safetensors

        check_safetensors(path / "adapter_model.safetensors", "{--adapter}")
    return path


def _apply_adapter(model: Any, adapter: Path, base_path: Path, *, name: str = "default") -> Any:
    """``model`` with ``adapter`` attached as ``name``: wrapped by ``PeftModel.from_pretrained``,
    or added with ``load_adapter`` when it already is a PeftModel."""
    from peft import PeftModel

    try:
        declared = json.loads((adapter / "adapter_config.json").read_text()).get(
            "base_model_name_or_path")
    except (OSError, ValueError):
        declared = None
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(adapter, adapter_name=name, is_trainable=False)
            return model
        return PeftModel.from_pretrained(model, adapter, adapter_name=name, is_trainable=False)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{{--adapter}} {adapter}: does not match the base model {base_path} "
            f"({_first_line(exc)}). The adapter was trained on "
            f"{declared or 'an unrecorded base model'}.",
            hint="Pass that base model with {--model}, or an adapter trained on this one.",
            option="adapter") from None


def _max_length(model: Any, tokenizer: Any) -> int:
    config = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**9 else 2048


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) < 300 else line[:297] + "..."
