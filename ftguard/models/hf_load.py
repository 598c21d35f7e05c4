"""Loading a Hugging Face model in-process: device, dtype, tokenizer, weights, PEFT adapters.

The ``hf`` backend's steps (:mod:`ftguard.models.registry`), shared with training and
merging. transformers, peft and bitsandbytes are imported only inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.errors import ModelError, UsageError, first_line
from ftguard.models.fingerprint import model_fingerprint
from ftguard.models.resolve import resolve_model
from ftguard.record import ModelInfo

if TYPE_CHECKING:
    from ftguard.models.load import LoadOptions


@dataclass(frozen=True)
class HFPlan:
    """What the hf backend will load, checked but not loaded (:func:`hf_plan`)."""

    resolved: Any
    adapter: Path | None
    device: Any
    dtype: Any
    quant: str | None


def hf_plan(options: LoadOptions) -> HFPlan:
    """Resolve the model, check the adapter folder, pick device, dtype and quantisation."""
    resolved = resolve_model(options.model, allow_pickle=options.allow_pickle)
    adapter = check_adapter(options.adapter, options.allow_pickle)
    device = resolve_device(options.device)
    quant = "nf4" if options.load_in_4bit else "int8" if options.load_in_8bit else None
    return HFPlan(resolved, adapter, device, resolve_dtype(options.dtype, device), quant)


def hf_info(plan: HFPlan) -> ModelInfo:
    """The ModelInfo (fingerprint included) of what ``plan`` loads."""
    return ModelInfo(spec=plan.resolved.spec, backend="hf", path=str(plan.resolved.path),
                     adapter=str(plan.adapter) if plan.adapter else None, device=str(plan.device),
                     dtype=plan.quant or str(plan.dtype).removeprefix("torch."),
                     fingerprint=model_fingerprint(plan.resolved.path, adapter_dir=plan.adapter,
                                                   dtype=str(plan.dtype), quantization=plan.quant))


def resolve_device(name: str) -> Any:
    """The torch device ``--device NAME`` means (``auto``: this rank's, else CUDA or CPU)."""
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


def resolve_dtype(name: str, device: Any) -> Any:
    """The torch dtype ``--dtype NAME`` means on ``device``."""
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32  # bf16 matmul on CPUs without AMX is hundreds of times slower
    return getattr(torch, name)


def load_tokenizer(path: Path, trust_remote_code: bool) -> Any:
    """``AutoTokenizer.from_pretrained``; a ModelError with a fix when it fails."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{{--model}} {path}: the tokenizer cannot be loaded ({first_line(exc)}).",
                         hint="The folder needs tokenizer files saved by save_pretrained().",
                         option="model") from None


def load_model(path: Path, device: Any, dtype: Any, quant: str | None,
               options: LoadOptions) -> Any:
    """:func:`load_causal_lm` with ``options``' safety flags, quantised when ``quant``."""
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
        raise ModelError(f"loading {path} needs a missing package ({first_line(exc)}).",
                         hint="Install it into this environment and retry.") from None
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"{{--model}} {path}: cannot be loaded ({first_line(exc)}).",
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


def check_adapter(adapter: str | None, allow_pickle: bool) -> Path | None:
    """The PEFT adapter folder ``--adapter`` names, checked (ModelError when unusable)."""
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


def apply_adapter(model: Any, adapter: Path, base_path: Path, *, name: str = "default") -> Any:
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
            f"({first_line(exc)}). The adapter was trained on "
            f"{declared or 'an unrecorded base model'}.",
            hint="Pass that base model with {--model}, or an adapter trained on this one.",
            option="adapter") from None


def max_length(model: Any, tokenizer: Any) -> int:
    """The model's context length in tokens (its config, else its tokenizer, else 2048)."""
    config = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**9 else 2048
