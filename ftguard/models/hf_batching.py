"""Batching for the HF backend: batch cuts, left padding, and the out-of-memory back-off.

Rows are sorted longest first by the callers, so a batch holds rows of similar length and the
first batch is the largest: an out-of-memory error shows up at once. Rows are left-padded
with position ids counted over the real tokens only, so a padded row scores as it would alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from ftguard.errors import ModelError

if TYPE_CHECKING:
    import torch

LOGIT_BUDGET_BYTES = 512 * 2**20
"""Most memory one batch's float32 logits may take; long rows get smaller batches."""


def longest_first(lengths: Sequence[int]) -> list[int]:
    """Indices of ``lengths``, longest first (ties keep their order)."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def batches(order: list[int], keeps: list[int], *, batch_size: int,
            vocab_size: int) -> Iterator[list[int]]:
    """Rows in ``order``, at most batch_size per batch and within the logit budget;
    ``keeps[r]`` is how many positions of row r need logits."""
    batch: list[int] = []
    keep = 0
    for r in order:
        n = keeps[r]
        size = len(batch) + 1
        if batch and (size > batch_size
                      or size * max(keep, n) * vocab_size * 4 > LOGIT_BUDGET_BYTES):
            yield batch
            batch, keep = [], 0
        batch.append(r)
        keep = max(keep, n)
    if batch:
        yield batch


def left_pad(rows: Sequence[Sequence[int]], pad_id: int,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``rows`` padded on the left to the longest."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens, so left padding does not shift them (0 on pads)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def smaller_batch_after_oom(size: int, *, auto: bool, device: torch.device, spec: str) -> int:
    """The batch size to retry with after a batch of ``size`` ran out of memory.

    With ``--batch-size auto`` halving finds the largest batch that fits; a fixed batch size
    that does not fit (or a single row) is an error that says what to do.
    """
    import torch

    if not auto or size == 1:
        raise ModelError(
            f"out of memory on {device} with a batch of {size} (model {spec}).",
            hint="Use --batch-size auto, a smaller --batch-size, or a shorter max_length.")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return max(1, size // 2)
