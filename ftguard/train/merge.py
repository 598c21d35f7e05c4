"""Merging a LoRA-family adapter into its base model, for serving without peft.

The base is always loaded unquantised in float32 on the CPU and the adapter's update is added
to its weights exactly (``merge_and_unload``). An adapter trained with qlora is merged into the
unquantised base too: merging into 4-bit weights would round the update away, and the 4-bit
base is itself only an approximation of these weights. The merged model is then cast to the
chosen dtype and written with safetensors, with the tokenizer, to a temporary folder beside
``out`` that is renamed into place, so ``out`` never holds half a model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ftguard.errors import ModelError, RecordError, UsageError
from ftguard.models.hf_load import apply_adapter, check_adapter, load_model, load_tokenizer
from ftguard.models.load import DTYPES, LoadOptions
from ftguard.models.resolve import resolve_model
from ftguard.train.record import TRAIN_RECORD, read_train_data

log = logging.getLogger(__name__)

PROMPT_LEARNING = frozenset({"PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING",
                             "MULTITASK_PROMPT_TUNING", "ADAPTION_PROMPT", "CPT", "CARTRIDGE"})
"""peft types that add virtual tokens (extra inputs) instead of changing weights."""

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def merge_adapter(adapter: str | Path, out: str | Path, *, model: str | None = None,
                  allow_pickle: bool = False, trust_remote_code: bool = False,
                  dtype: str = "auto", overwrite: bool = False) -> Path:
    """Merge the LoRA-family ``adapter`` into its base and save the result to ``out``.

    The base is ``model`` or, without it, the ``base_model_name_or_path`` the adapter
    recorded (a local folder, hub id, or the embedded ``smollm2-135m-instruct``). ``dtype``
    is the dtype of the saved weights: ``auto`` keeps the base's stored dtype (float32 when
    unrecorded); the merge itself is always done in float32. Returns ``out``.
    """
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: unknown dtype; choose one of {', '.join(DTYPES)}.")
    adapter_dir = check_adapter(str(adapter), allow_pickle)
    assert adapter_dir is not None
    config = _adapter_config(adapter_dir)
    _check_mergeable(adapter_dir, config)
    base = _resolve_base(adapter_dir, config, model, allow_pickle)
    out_dir = _check_out(Path(out).expanduser(), overwrite, inputs=(adapter_dir, base))
    if _trained_with_qlora(adapter_dir):
        log.warning("%s was trained with qlora on a 4-bit base; merging it into the "
                    "unquantised float32 base %s (merging into 4-bit weights would lose the "
                    "update).", adapter_dir, base)

    import torch

    options = LoadOptions(model=str(base), adapter=str(adapter_dir), device="cpu",
                          dtype="float32", allow_pickle=allow_pickle,
                          trust_remote_code=trust_remote_code)
    tokenizer_dir = adapter_dir if _has_tokenizer(adapter_dir) else base
    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code)
    peft_model = apply_adapter(load_model(base, torch.device("cpu"), torch.float32, None,
                                           options), adapter_dir, base)
    try:
        merged = peft_model.merge_and_unload()
    except (AttributeError, NotImplementedError, ValueError) as exc:
        raise UsageError(f"{{--adapter}} {adapter_dir}: peft type {config.get('peft_type')} "
                         f"cannot be merged ({exc}).",
                         hint="Use the adapter as it is with {--adapter}.",
                         option="adapter") from None
    target = _save_dtype(base, dtype)
    merged = merged.to(getattr(torch, target))
    _save_atomically(merged, tokenizer, out_dir)
    log.info("merged %s into %s (%s) -> %s", adapter_dir, base, target, out_dir)
    return out_dir


def _adapter_config(adapter: Path) -> dict[str, Any]:
    from ftguard.json_file import read_json

    data = read_json(adapter / "adapter_config.json", ModelError, what="PEFT adapter config",
                     hint="Give the folder written by save_pretrained() of a PEFT model.")
    if not isinstance(data, dict):
        raise ModelError(f"{{--adapter}} {adapter}: adapter_config.json is not a JSON object.",
                         option="adapter")
    return data


def _check_mergeable(adapter: Path, config: dict[str, Any]) -> None:
    kind = str(config.get("peft_type") or "").upper()
    if kind in PROMPT_LEARNING:
        raise UsageError(
            f"{{--adapter}} {adapter}: is a {kind.lower().replace('_', ' ')} adapter, which cannot "
            "be merged: it trains virtual tokens fed to the model as extra inputs, not a "
            "change of its weights, so there is nothing to add to the base.",
            hint="Use it as it is with {--adapter}; only LoRA-family adapters (lora, qlora) "
                 "can be merged.", option="adapter")


def _resolve_base(adapter: Path, config: dict[str, Any], model: str | None,
                  allow_pickle: bool) -> Path:
    if model is not None:
        return resolve_model(model, allow_pickle=allow_pickle).path
    declared = config.get("base_model_name_or_path")
    if not declared:
        raise ModelError(f"{{--adapter}} {adapter}: does not record its base model "
                         "(no base_model_name_or_path in adapter_config.json).",
                         hint="Pass the base model it was trained on with {--model}.",
                         option="adapter")
    try:
        return resolve_model(str(declared), allow_pickle=allow_pickle).path
    except ModelError as exc:
        raise ModelError(f"{{--adapter}} {adapter}: its recorded base model {declared} cannot be "
                         f"found here ({exc.message}).",
                         hint="Pass the base model it was trained on with {--model}.",
                         option="adapter") from None


def _check_out(out: Path, overwrite: bool, *, inputs: tuple[Path, ...]) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a folder for the merged model.")
    if any(out.resolve() == p.resolve() for p in inputs):
        raise UsageError(f"--out {out}: is the adapter or base folder; merging would "
                         "overwrite its own input.", hint="Choose a new folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"--out {out}: the folder is not empty.",
                         hint="Choose a new folder, or pass --overwrite to replace it.")
    return out


def _trained_with_qlora(adapter: Path) -> bool:
    """Whether a train record beside the adapter (or in its parent) says method qlora."""
    for folder in (adapter, adapter.parent):
        try:
            record = read_train_data(folder / TRAIN_RECORD)
        except RecordError:
            continue
        if isinstance(record, dict):
            return record.get("method") == "qlora"
    return False


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _save_dtype(base: Path, dtype: str) -> str:
    """``dtype``, or for ``auto`` the dtype recorded in the base's config.json."""
    if dtype != "auto":
        return dtype
    try:
        config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32"
    recorded = config.get("dtype") or config.get("torch_dtype")
    return recorded if recorded in ("float32", "bfloat16", "float16") else "float32"


def _save_atomically(model: Any, tokenizer: Any, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write here ({exc.strerror}).",
                         hint="Choose another output folder.") from None
    try:
        model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        os.chmod(scratch, 0o777 & ~_umask())  # mkdtemp creates 0700; models are shared
        if out.exists():
            shutil.rmtree(out)  # empty, or --overwrite was given
        os.replace(scratch, out)
    except OSError as exc:
        raise UsageError(f"--out {out}: the merged model cannot be written ({exc}).",
                         hint="Check the free disk space and permissions.") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
