"""Model SPEC resolution: a local folder, a hub id, or the embedded default."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ftguard.errors import ModelError, OfflineError
from ftguard.models.embedded import EMBEDDED_NAME, embedded_model_dir

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    """What the user asked for."""
    path: Path
    """Local folder holding config, tokenizer and weights."""


def resolve_model(spec: str | None, *, allow_pickle: bool = False,
                  option: str = "model") -> ResolvedModel:
    """Resolve SPEC to a local folder; raise ModelError (naming the option ``option``, as
    ``{--option}``) with a fix when it cannot be. A local folder's safetensors files are
    checked to be complete."""
    flag = _marker(option)
    if spec is None or spec == EMBEDDED_NAME:
        return ResolvedModel(EMBEDDED_NAME, embedded_model_dir())
    path = Path(spec).expanduser()
    if path.is_dir():
        check_model_folder(path, allow_pickle=allow_pickle, option=option)
        return ResolvedModel(spec, path)
    if path.exists():
        raise ModelError(f"{flag} {spec}: is a file, not a model folder.",
                         hint="Give the folder containing config.json and the weights.",
                         option=option)
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        folder = _from_hub(spec, allow_pickle=allow_pickle, option=option)
        check_model_folder(folder, allow_pickle=allow_pickle, option=option)
        return ResolvedModel(spec, folder)
    raise ModelError(f"{flag} {spec}: no such folder, and it is not a hub id (owner/name).",
                     hint=f"Give a local Hugging Face model folder, a hub id, or omit {flag} "
                          f"to use the embedded {EMBEDDED_NAME}.", option=option)


def check_model_folder(path: Path, *, allow_pickle: bool, option: str = "model") -> None:
    """A ModelError (naming ``{--option}``) unless ``path`` is a loadable model folder."""
    flag = _marker(option)
    if not (path / "config.json").is_file():
        raise ModelError(f"{flag} {path}: not a Hugging Face model folder (no config.json).",
                         hint="Save the model with save_pretrained() or give another folder.",
                         option=option)
    from ftguard.json_file import read_json

    config = read_json(path / "config.json", ModelError, what="model config (config.json)",
                       hint="Save the model again with save_pretrained().", flag=flag)
    if not isinstance(config, dict):
        raise ModelError(f"{flag} {path}: config.json is not a JSON object.",
                         hint="Save the model again with save_pretrained().", option=option)
    names = [p.name for p in path.iterdir()]
    if any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names):
        from ftguard.models.safetensors_check import check_weights

        check_weights(path, flag)
        return
    pickled = [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    if pickled and not allow_pickle:
        raise ModelError(f"{flag} {path}: has only pickle weights ({', '.join(sorted(pickled))}); "
                         "ftguard loads safetensors by default because pickle files can run code.",
                         hint="Convert the model to safetensors, or pass --allow-pickle if you "
                              "trust the file.", option=option)
    if not pickled:
        raise ModelError(f"{flag} {path}: no weights found (*.safetensors).",
                         hint="The folder needs the weights saved by save_pretrained().",
                         option=option)


def _marker(option: str) -> str:
    """How library text names an option: ``{--model}`` (each shell spells it)."""
    return "{--" + option + "}"


def _from_hub(repo_id: str, *, allow_pickle: bool, option: str) -> Path:
    flag = _marker(option)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    if allow_pickle:
        patterns.append("*.bin")
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline)
    except Exception as exc:  # noqa: BLE001 -- hub errors vary by version: not found, offline, network
        name = type(exc).__name__
        if offline or "Offline" in name or "LocalEntryNotFound" in name or "Connect" in name:
            raise OfflineError(
                f"{flag} {repo_id}: looks like a hub id, but the Hugging Face hub cannot be "
                f"reached{' (HF_HUB_OFFLINE is set)' if offline else ''} and it is not in the "
                "local cache.",
                hint="Download it once while online (or copy its folder here) and pass the "
                     f"local folder to {flag}.", option=option) from None
        raise ModelError(f"{flag} {repo_id}: cannot be fetched from the hub ({name}: {exc}).",
                         hint="Check the id, or pass a local folder.", option=option) from None
    return Path(folder)
