"""Packing: several examples concatenated into rows of at most ``max_length`` tokens.

Positions restart at 0 at every example; with ``attention_mask=None`` transformers derives
block-diagonal attention from those restarts, so nothing leaks between examples. Token 0 of
each example has weight 0, so no example is trained to follow the previous one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ftguard.train.tokenize import Example


@dataclass
class PackedRow:
    """Examples concatenated in order."""

    input_ids: list[int] = field(default_factory=list)
    """Token ids of every example, back to back."""
    weights: list[float] = field(default_factory=list)
    """Loss weights, as in :class:`Example`."""
    position_ids: list[int] = field(default_factory=list)
    """Position of each token inside its own example (restarts at 0)."""
    sources: list[int] = field(default_factory=list)
    """Source index of each packed example."""

    def to_feature(self) -> dict[str, Any]:
        """The row as a collator feature."""
        return {"input_ids": self.input_ids, "weights": self.weights,
                "position_ids": self.position_ids}


def pack(examples: Sequence[Example], max_length: int) -> list[PackedRow]:
    """Pack greedily in the given order (keeping the mixture order); never split an example."""
    rows: list[PackedRow] = []
    row = PackedRow()
    for ex in examples:
        n = len(ex.input_ids)
        if n > max_length:
            raise ValueError(f"an example of {n} tokens exceeds max_length={max_length}")
        if row.input_ids and len(row.input_ids) + n > max_length:
            rows.append(row)
            row = PackedRow()
        row.input_ids.extend(ex.input_ids)
        row.weights.extend([0.0, *ex.weights[1:]])
        row.position_ids.extend(range(n))
        row.sources.append(ex.source)
    if row.input_ids:
        rows.append(row)
    return rows
