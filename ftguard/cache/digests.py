"""File digests (sha256) remembered by (path, size, mtime) in ``$FTGUARD_HOME/digests.json``,
so a model's fingerprint (:mod:`ftguard.models.fingerprint`) does not re-hash its weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ftguard.cache.home import ftguard_home

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
