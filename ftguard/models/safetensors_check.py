"""Checking a safetensors file before anything loads it.

A truncated download, an interrupted copy or a file that only carries the name: each is
found here from the 8-byte header length, the JSON header and the file size (no tensor is
read, no torch), and reported as a ModelError naming the file and the flag, instead of
surfacing as a library error halfway through loading.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ftguard.errors import ModelError

MAX_HEADER = 100 << 20
"""The safetensors library's own limit on the JSON header (100 MB)."""
_HINT = "The file is damaged or incomplete: download or save the model again."


def check_safetensors(path: Path, flag: str) -> tuple[dict[str, Any], int]:
    """The JSON header of ``path`` and the offset its tensors' bytes start at; ModelError
    (naming ``flag``) unless ``path`` is a complete safetensors file."""
    where = f"{flag} {path.parent}: {path.name}"
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                raise ModelError(f"{where} is not a safetensors file ({size} bytes, shorter "
                                 "than the 8-byte header length).", hint=_HINT)
            (length,) = struct.unpack("<Q", raw)
            if length > min(size - 8, MAX_HEADER):
                raise ModelError(f"{where} is not a safetensors file, or is cut off: its "
                                 f"header length says {length} bytes, the file holds "
                                 f"{size - 8} after it.", hint=_HINT)
            text = handle.read(length)
    except OSError as exc:
        raise ModelError(f"{where} cannot be read ({exc.strerror}).") from None
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise ModelError(f"{where} is not a safetensors file (its header is not JSON).",
                         hint=_HINT) from None
    end = _data_end(header, where)
    if 8 + length + end != size:
        raise ModelError(f"{where} is {'cut off' if size < 8 + length + end else 'damaged'}: "
                         f"its header describes {8 + length + end} bytes, the file has {size}.",
                         hint=_HINT)
    return header, 8 + length


def _data_end(header: Any, where: str) -> int:
    """Where the last tensor's bytes end, every entry checked for shape."""
    if not isinstance(header, dict):
        raise ModelError(f"{where} is not a safetensors file (its header is not a mapping).",
                         hint=_HINT)
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offsets)
                or offsets[0] > offsets[1]):
            raise ModelError(f"{where} is damaged: tensor {name!r} has no valid data_offsets.",
                             hint=_HINT)
        end = max(end, offsets[1])
    return end


def check_weights(folder: Path, flag: str) -> None:
    """Check every ``*.safetensors`` file of ``folder`` (and the shards its index names)."""
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path, flag)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise ModelError(f"{flag} {folder}: {index.name} is not a safetensors index "
                             "(no weight_map).", hint=_HINT) from None
        strays = sorted(str(s) for s in shards if Path(str(s)).name != str(s))
        if strays:
            raise ModelError(f"{flag} {folder}: {index.name} names shard(s) outside the "
                             f"folder: {', '.join(strays[:3])}.", hint=_HINT)
        missing = sorted(s for s in shards if not (folder / str(s)).is_file())
        if missing:
            raise ModelError(f"{flag} {folder}: {index.name} names shard(s) that are not "
                             f"there: {', '.join(missing[:3])}.", hint=_HINT)
