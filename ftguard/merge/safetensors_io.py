"""Reading and writing safetensors one tensor at a time, with plain file reads and writes.

The safetensors library memory-maps files: every page a merge touches then counts as resident
until the file is closed, so reading two 7B models that way looks like holding them. Here a
tensor is read with one ``readinto`` into its own buffer and freed when the merge drops it, and
a file is written by laying out its header from the planned names, dtypes and shapes first and
appending each tensor's bytes as soon as it is merged. Format: an 8-byte little-endian header
length, a JSON header ``{name: {dtype, shape, data_offsets}, "__metadata__": {...}}`` padded
with spaces to 8 bytes, then the tensors' bytes back to back.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2}
NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class Entry:
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: Path, flag: str = "file") -> tuple[dict[str, Entry], int]:
    """The tensors of one safetensors file and where their bytes start; ModelError (naming
    ``flag``) when the file is damaged or cut off, ValueError for a dtype merging lacks."""
    from ftguard.models.safetensors_check import check_safetensors

    header, start = check_safetensors(path, flag)
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in DTYPES:
            raise ValueError(f"tensor {name}: dtype {info.get('dtype')} is not supported")
        begin, end = info["data_offsets"]
        entries[name] = Entry(info["dtype"], tuple(info["shape"]), int(begin), int(end))
    return entries, start


def read_tensor(handle: BinaryIO, entry: Entry, data_start: int) -> torch.Tensor:
    """One tensor, read into its own buffer."""
    dtype = DTYPES[entry.dtype]
    if entry.nbytes == 0:
        return torch.empty(entry.shape, dtype=dtype)
    buffer = bytearray(entry.nbytes)
    handle.seek(data_start + entry.start)
    if handle.readinto(buffer) != entry.nbytes:
        raise ValueError("file ends inside a tensor")
    return torch.frombuffer(buffer, dtype=dtype).reshape(entry.shape)


class StreamingWriter:
    """A safetensors file whose tensors are known in advance (names, dtypes, shapes) and are
    appended one by one, in that order."""

    def __init__(self, path: Path, plan: Sequence[tuple[str, torch.dtype, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None) -> None:
        header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
        offset = 0
        self.order: list[tuple[str, int]] = []
        for name, dtype, shape in plan:
            nbytes = math.prod(shape) * dtype.itemsize
            header[name] = {"dtype": NAMES[dtype], "shape": list(shape),
                            "data_offsets": [offset, offset + nbytes]}
            self.order.append((name, nbytes))
            offset += nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        self.handle = path.open("wb")
        self.handle.write(struct.pack("<Q", len(text)) + text)
        self.next = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        expected, nbytes = self.order[self.next]
        data = tensor.contiguous().reshape(-1).view(torch.uint8)
        if name != expected or data.numel() != nbytes:
            raise ValueError(f"expected {expected} ({nbytes} bytes), got {name} "
                             f"({data.numel()} bytes)")
        self.handle.write(memoryview(data.numpy()))
        self.next += 1

    def abort(self) -> None:
        self.handle.close()

    def close(self) -> None:
        if self.next != len(self.order):
            raise ValueError(f"{len(self.order) - self.next} planned tensors were not written")
        self.handle.flush()
        os.fsync(self.handle.fileno())  # on disk before the folder is renamed into place
        self.handle.close()
