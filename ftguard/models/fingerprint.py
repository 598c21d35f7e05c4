"""Model fingerprints: a hash that changes when weights, tokenizer, config or adapter change.

Weights, tokenizer vocabularies and templates are hashed byte for byte. The small JSON
settings files (:data:`SETTINGS_FILES`) are hashed by their values instead: keys in canonical
order, no whitespace, without the keys a library writes about itself rather than about the
model (:data:`WRITER_KEYS`: the ``transformers_version`` that wrote the file, the path it was
loaded from...), so the same weights converted or saved by another library version keep
their fingerprint, while any real setting that changes changes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ftguard.cache.digests import file_digest

_SKIP_SUFFIXES = (".md", ".txt.lock", ".lock")

SETTINGS_FILES = frozenset({"config.json", "generation_config.json", "tokenizer_config.json",
                            "special_tokens_map.json", "adapter_config.json"})
"""Files hashed by their parsed JSON values, not their bytes."""

WRITER_KEYS: dict[str, frozenset[str]] = {
    "*": frozenset({"transformers_version", "_name_or_path", "_commit_hash"}),
    "config.json": frozenset({"_attn_implementation_autoset"}),
    "generation_config.json": frozenset({"_from_model_config"}),
    # how the tokenizer was loaded (paths, offline flags), not what it does
    "tokenizer_config.json": frozenset({"name_or_path", "is_local", "local_files_only",
                                        "tokenizer_file", "special_tokens_map_file"}),
    # the base is fingerprinted on its own; where it lay when the adapter was trained is not
    "adapter_config.json": frozenset({"peft_version", "base_model_name_or_path", "revision"}),
}
"""Keys dropped (at any depth) before a settings file is hashed, per file name (``*``: all)."""

_RENAMED = {"torch_dtype": "dtype"}
"""Keys transformers renamed between versions, hashed under the new name."""

_SET_KEYS = frozenset({"target_modules", "modules_to_save", "exclude_modules"})
"""peft writes these sets as lists in an arbitrary order: hashed sorted."""


def folder_digest(folder: Path) -> str:
    """Combined digest of a model or adapter folder's top-level files."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(_SKIP_SUFFIXES):
            digest.update(f"{path.name}:{_digest(path)}\n".encode())
    return digest.hexdigest()


def settings_digest(path: Path) -> str | None:
    """sha256 of a settings file's values (see the module docstring); None when it is not
    a JSON object (it is then hashed byte for byte)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    dropped = WRITER_KEYS["*"] | WRITER_KEYS.get(path.name, frozenset())
    text = json.dumps(_canonical(data, dropped), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def model_fingerprint(model_dir: Path, *, adapter_dir: Path | None, dtype: str,
                      quantization: str | None) -> str:
    """Fingerprint of exactly what is evaluated: weights + tokenizer + adapter + precision."""
    parts = {"model": folder_digest(model_dir),
             "adapter": folder_digest(adapter_dir) if adapter_dir else None,
             "dtype": dtype, "quantization": quantization}
    blob = json.dumps(parts, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _digest(path: Path) -> str:
    if path.name in SETTINGS_FILES:
        value = settings_digest(path)
        if value is not None:
            return "values:" + value
    return file_digest(path)


def _canonical(value: Any, dropped: frozenset[str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in dropped:
                continue
            out[_RENAMED.get(key, key)] = _canonical(item, dropped)
        for key in _SET_KEYS & out.keys():
            if isinstance(out[key], list) and all(isinstance(v, str) for v in out[key]):
                out[key] = sorted(out[key])
        return out
    if isinstance(value, list):
        return [_canonical(item, dropped) for item in value]
    return value
