"""Names of models and adapters, from the folders they live in.

A trained adapter is saved as ``runs/a/adapter`` (``ftguard train --out runs/a``), a full
fine-tune as ``runs/a/model``, a Trainer checkpoint as ``runs/a/checkpoints/checkpoint-200``:
the folder's own name says what kind of thing it is, the run's folder says which one. So a
folder named generically (:data:`GENERIC`) is named after the nearest folder above it that is
not; a checkpoint folder (:data:`STEP`) keeps its step: ``runs/a/adapter`` -> ``a``,
``runs/a/checkpoints/checkpoint-200`` -> ``a-checkpoint-200``, ``adapters/legal-v2`` ->
``legal-v2``. One name serves the record files of ``eval --out-dir``, a baseline's default
name and what tables and comparisons show.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftguard.errors import UsageError

if TYPE_CHECKING:
    from ftguard.record import ModelInfo

GENERIC = re.compile(r"adapters?|models?|final|best|last|merged|outputs?|checkpoints")
"""Folder names that say what a folder holds, not which run it is."""

STEP = re.compile(r"(checkpoint|step)-\d+")
"""Checkpoint folders: generic too, but their step is kept in the name."""


def folder_name(path: str | Path, *, parents: int = 0) -> str:
    """The name of the model or adapter folder ``path`` (see the module docstring), with
    ``parents`` more folders above it joined by ``-`` (to tell two names apart)."""
    parts = Path(os.path.abspath(Path(path).expanduser())).parts[1:]
    steps: list[str] = []
    i = len(parts) - 1
    while i >= 0 and (GENERIC.fullmatch(parts[i]) or STEP.fullmatch(parts[i])):
        if STEP.fullmatch(parts[i]):
            steps.insert(0, parts[i])
        i -= 1
    if i < 0:  # nothing but generic names up to the root
        return "-".join(parts[-1 - parents:]) if parts else "model"
    return "-".join([*parts[max(0, i - parents):i + 1], *steps])


def distinct_names(paths: Sequence[str], *, reserved: Collection[str] = (),
                   option: str = "adapter") -> dict[str, str]:
    """:func:`folder_name` of each path; names that collide (with each other or with a
    ``reserved`` one) take more of their parent folders until they differ:
    ``x/a/adapter`` and ``y/a/adapter`` -> ``x-a`` and ``y-a``. UsageError when one folder
    is given twice."""
    real: dict[str, str] = {}
    for path in paths:
        resolved = os.path.realpath(Path(path).expanduser())
        if resolved in real:
            raise UsageError(f"{{--{option}}} {path}: given twice (also as {real[resolved]}).",
                             hint="Name each folder once.", option=option)
        real[resolved] = path
    depth = dict.fromkeys(paths, 0)
    names = {p: folder_name(p) for p in paths}
    for _ in range(64):
        taken: dict[str, list[str]] = {}
        for path, name in names.items():
            taken.setdefault(name, []).append(path)
        clashes = [p for ps in taken.values() for p in ps
                   if len(ps) > 1 or names[p] in reserved]
        if not clashes:
            return names
        for path in clashes:
            depth[path] += 1
            names[path] = folder_name(path, parents=depth[path])
    raise UsageError(f"{{--{option}}}: cannot name {', '.join(clashes)} apart by their folders.",
                     hint="Give the folders distinct names.", option=option)


def model_name(info: ModelInfo) -> str:
    """The short name of an evaluated model: its adapter's :func:`folder_name`, else that of
    a local model folder, else its spec's last part (a hub id's model, the embedded model)."""
    if info.adapter:
        return folder_name(info.adapter)
    spec = info.spec.rstrip("/")
    if info.backend == "hf" and info.path and Path(spec).expanduser().exists():
        return folder_name(spec)
    return Path(spec).name or spec


def model_label(info: ModelInfo) -> str:
    """What tables and comparisons show: the spec, or ``NAME (SPEC + ADAPTER)`` with an
    adapter."""
    if not info.adapter:
        return info.spec
    return f"{model_name(info)} ({info.spec} + {info.adapter})"
