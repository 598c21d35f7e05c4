"""Model fingerprints: a hash that changes when weights, tokenizer, config or adapter change."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ftguard.models.embedded import ftguard_home

_SKIP_SUFFIXES = (".md", ".txt.lock", ".lock")
_CHUNK = 1 << 22


def file_digest(path: Path) -> str:
    """sha256 of a file, remembered by (path, size, mtime) in $FTGUARD_HOME/digests.json."""
    stat = path.stat()
    key = str(path.resolve())
    cache_file = ftguard_home() / "digests.json"
    cache = _read_cache(cache_file)
    entry = cache.get(key)
    if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
        return str(entry[2])
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    if stat.st_size > 1 << 20:  # only large files are worth remembering
        cache[key] = [stat.st_size, stat.st_mtime_ns, value]
        _write_cache(cache_file, cache)
    return value


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


def _read_cache(path: Path) -> dict[str, list[object]]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache: dict[str, list[object]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation; a read-only home only costs re-hashing
