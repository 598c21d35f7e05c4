"""Writing a merged model: tensor by tensor into safetensors shards, then one rename.

Each merged tensor is appended to its shard as soon as it is computed (the shard's header is
laid out first from the planned shapes), so only the few tensors being merged are in memory
at once. The base's other files (config, generation
config, tokenizer, chat template) are copied, ``merge.json`` records what was merged and how,
and the folder appears under ``out`` only when complete.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ftguard.errors import UsageError
from ftguard.merge.inputs import Inputs
from ftguard.merge.methods import MergeSpec
from ftguard.merge.safetensors_io import StreamingWriter

SHARD_BYTES = 2 << 30
"""Largest shard file (memory does not depend on it: tensors are written as they are merged)."""
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_SKIP = ("model.safetensors.index.json", "pytorch_model.bin.index.json", "merge.json",
         "train_record.json")


def write_merged(inputs: Inputs, spec: MergeSpec, out: Path, *, dtype: str = "auto",
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Merge every tensor of ``inputs`` under ``spec`` into the model folder ``out`` (which
    must be new or empty, see ``check_out``); returns the merge record written beside it."""
    from ftguard.atomic import replace_dir

    started = time.perf_counter()
    target = None if dtype == "auto" else getattr(torch, dtype)
    shards = _plan_shards(inputs, target)
    try:
        with replace_dir(out) as scratch:
            weight_map: dict[str, str] = {}
            done = 0
            for file, names in shards:
                writer = StreamingWriter(scratch / file, [
                    (n, target or inputs.base.dtype(n), inputs.base.shape(n)) for n in names])
                try:
                    for name in names:
                        base, merged = inputs.merged(spec, name)
                        writer.write(name, merged.to(target or base.dtype))
                        del base, merged
                        weight_map[name] = file
                        done += 1
                        if progress:
                            progress(done, len(inputs.names))
                    writer.close()
                except BaseException:
                    writer.abort()
                    raise
            if len(shards) > 1:
                total = sum((scratch / f).stat().st_size for f, _ in shards)
                (scratch / "model.safetensors.index.json").write_text(json.dumps(
                    {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
            _copy_other_files(inputs.base_path, scratch, dtype)
            record = {**spec.settings(), "base": str(inputs.base_path),
                      "models": [{"path": str(t.path), "kind": t.kind} for t in inputs.tuned],
                      "tensors": len(inputs.names), "dtype": dtype,
                      "seconds": round(time.perf_counter() - started, 3)}
            (scratch / "merge.json").write_text(json.dumps(record, indent=1) + "\n")
    except OSError as exc:
        raise UsageError(f"--out {out}: the merged model cannot be written ({exc}).",
                         hint="Check the free disk space and permissions.") from None
    return record


def _plan_shards(inputs: Inputs, target: torch.dtype | None) -> list[tuple[str, list[str]]]:
    """Tensor names grouped into shards of at most SHARD_BYTES, with their file names."""
    groups: list[list[str]] = [[]]
    size = 0
    for name in inputs.names:
        nbytes = math.prod(inputs.base.shape(name)) * (target or inputs.base.dtype(name)).itemsize
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    if len(groups) == 1:
        return [("model.safetensors", groups[0])]
    k = len(groups)
    return [(f"model-{i + 1:05d}-of-{k:05d}.safetensors", g) for i, g in enumerate(groups)]


def _copy_other_files(base: Path, dest: Path, dtype: str) -> None:
    """The base folder's non-weight files (config, tokenizer...), config.json's dtype set to
    the saved one."""
    for path in base.iterdir():
        if (not path.is_file() or path.name.endswith(_WEIGHT_SUFFIXES) or path.name in _SKIP
                or path.name.startswith(".")):
            continue
        shutil.copy2(path, dest / path.name)
    if dtype != "auto":
        config_path = dest / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["torch_dtype" if "torch_dtype" in config else "dtype"] = dtype
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
