"""Batching examples into tensors for a causal LM with weighted loss.

Unpacked rows are right-padded and get an ``attention_mask``. Packed rows get no attention
mask but ``position_ids``; padding gets positions ``0..k`` of its own so it forms a separate
segment, and transformers (``masking_utils.find_packed_sequence_indices``) makes attention
block-diagonal. transformers only does so without a KV cache: call the model with
``use_cache=False`` on packed batches (Llama creates a cache by default, and then attention
silently crosses examples). ``labels`` equal ``input_ids`` except -100 where the weight is 0
or on padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _get(feature: Any, key: str) -> Any:
    if isinstance(feature, Mapping):
        return feature.get(key)
    return getattr(feature, key, None)


class Collator:
    """Turn a list of features (dicts or Example/PackedRow objects) into a batch of tensors."""

    def __init__(self, pad_id: int, packed: bool) -> None:
        self.pad_id = pad_id
        self.packed = packed

    def __call__(self, features: Sequence[Any]) -> dict[str, Any]:
        import torch

        width = max(len(_get(f, "input_ids")) for f in features)
        ids, labels, weights, masks, positions = [], [], [], [], []
        for f in features:
            row_ids = list(_get(f, "input_ids"))
            row_w = [float(w) for w in _get(f, "weights")]
            pad = width - len(row_ids)
            ids.append(row_ids + [self.pad_id] * pad)
            labels.append([t if w != 0 else -100 for t, w in zip(row_ids, row_w)] + [-100] * pad)
            weights.append(row_w + [0.0] * pad)
            masks.append([1] * len(row_ids) + [0] * pad)
            if self.packed:
                pos = _get(f, "position_ids")
                pos = list(pos) if pos is not None else list(range(len(row_ids)))
                positions.append(pos + list(range(pad)))
        batch = {"input_ids": torch.tensor(ids, dtype=torch.long),
                 "labels": torch.tensor(labels, dtype=torch.long),
                 "loss_weights": torch.tensor(weights, dtype=torch.float32),
                 # real (non-padding) tokens per row, for tokens/s; not a model input
                 "num_tokens": torch.tensor([sum(m) for m in masks], dtype=torch.long)}
        if self.packed:
            batch["position_ids"] = torch.tensor(positions, dtype=torch.long)
        else:
            batch["attention_mask"] = torch.tensor(masks, dtype=torch.long)
        return batch
