"""Instruction following as IFEval defines it: prompt-level and instruction-level accuracy.

Each item carries instructions (IFEval's ``instruction_id_list`` and ``kwargs``); the
checkers of :mod:`ftguard.metrics.instructions` say per instruction whether the response
followed it strictly and loosely (:func:`followed`).

- ``prompt_level_strict_acc`` / ``prompt_level_loose_acc``: per item 1 when every one of its
  instructions is followed, else 0; the task value is their mean.
- ``inst_level_strict_acc`` / ``inst_level_loose_acc``: followed instructions over all
  instructions of all items (a micro average: an item with three instructions weighs three
  times one with one). Corpus metrics: each item's statistics are ``[followed, count]``, so
  bootstrap intervals and the paired swap test recompute the ratio from summed counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ftguard.metrics.base import corpus_metric, mean_metric

INSTRUCTION_METRICS: tuple[str, ...] = ("prompt_level_strict_acc", "prompt_level_loose_acc",
                                        "inst_level_strict_acc", "inst_level_loose_acc")
"""The metrics that read an item's instructions instead of reference answers."""

Instructions = tuple[tuple[str, Mapping[str, Any]], ...]
"""An item's instructions: ``(instruction id, kwargs)`` pairs, in the data's order."""

Followed = list[tuple[str, bool, bool]]
"""Per instruction: ``(id, followed strictly, followed loosely)``."""


def followed(prediction: str, instructions: Instructions) -> Followed:
    """Which of ``instructions`` the ``prediction`` follows, strictly and loosely."""
    from ftguard.metrics.instructions import follow

    ids = [instruction_id for instruction_id, _ in instructions]
    strict, loose = follow(prediction, ids, [kwargs for _, kwargs in instructions])
    return list(zip(ids, strict, loose, strict=True))


@mean_metric("prompt_level_strict_acc", higher_is_better=True, kind="generate",
             reference_free=True, binary=True,
             description="IFEval: share of prompts whose every instruction is followed "
                         "(strict)")
def prompt_level_strict(result: Followed) -> float:
    return float(all(strict for _, strict, _ in result))


@mean_metric("prompt_level_loose_acc", higher_is_better=True, kind="generate",
             reference_free=True, binary=True,
             description="IFEval: share of prompts whose every instruction is followed "
                         "(loose: also without first/last line or '*')")
def prompt_level_loose(result: Followed) -> float:
    return float(all(loose for _, _, loose in result))


def inst_level_stats(result: Followed, *, loose: bool) -> list[float]:
    """One item's ``[followed, count]`` for ``inst_level_*_acc``."""
    return [float(sum(r[2] if loose else r[1] for r in result)), float(len(result))]


def _ratio(stats: np.ndarray) -> np.ndarray:
    s = np.asarray(stats, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s[..., 1] > 0, s[..., 0] / s[..., 1], 0.0)


@corpus_metric("inst_level_strict_acc", higher_is_better=True, kind="generate",
               reference_free=True,
               description="IFEval: share of all instructions followed (strict; micro average)")
def inst_level_strict_from_stats(stats: np.ndarray) -> np.ndarray:
    """Followed / count of summed ``[followed, count]`` rows, shape ``(..., 2)`` -> ``(...)``."""
    return _ratio(stats)


@corpus_metric("inst_level_loose_acc", higher_is_better=True, kind="generate",
               reference_free=True,
               description="IFEval: share of all instructions followed (loose; micro average)")
def inst_level_loose_from_stats(stats: np.ndarray) -> np.ndarray:
    """As :func:`inst_level_strict_from_stats`, on the loose counts."""
    return _ratio(stats)


def score_followed(result: Followed, names: Sequence[str]
                   ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """``(scores, stats)`` of the instruction-following metrics among ``names``; ``scores``
    also shows an item's own instruction-level share, for display only."""
    scores: dict[str, float] = {}
    stats: dict[str, list[float]] = {}
    for name in names:
        if name == "prompt_level_strict_acc":
            scores[name] = prompt_level_strict(result)
        elif name == "prompt_level_loose_acc":
            scores[name] = prompt_level_loose(result)
        elif name in ("inst_level_strict_acc", "inst_level_loose_acc"):
            row = inst_level_stats(result, loose=name == "inst_level_loose_acc")
            stats[name] = row
            scores[name] = row[0] / row[1] if row[1] else 0.0
    return scores, stats


def uses_instructions(metrics: Sequence[str]) -> bool:
    """Whether a task's metric list needs its items' instructions."""
    return any(name in INSTRUCTION_METRICS for name in metrics)
