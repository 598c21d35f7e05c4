"""Model fingerprints: a hash that changes when weights, tokenizer, config or adapter change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ftguard.cache.digests import file_digest

_SKIP_SUFFIXES = (".md", ".txt.lock", ".lock")


def folder_digest(folder: Path) -> str:
    """Combined digest of a model or adapter folder's top-level files."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(_SKIP_SUFFIXES):
            digest.update(f"{path.name}:{file_digest(path)}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model_dir: Path, *, adapter_dir: Path | None, dtype: str,
                      quantization: str | None) -> str:
    """Fingerprint of exactly what is evaluated: weights + tokenizer + adapter + precision."""
    parts = {"model": folder_digest(model_dir),
             "adapter": folder_digest(adapter_dir) if adapter_dir else None,
             "dtype": dtype, "quantization": quantization}
    blob = json.dumps(parts, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()

