"""One forward pass over a batch of rows, scoring the units that share each row's input.

Only the positions being scored get logits (``logits_to_keep``, where the model takes it),
which skips most of the vocabulary projection and the log-softmax that dominate small models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftguard.models.hf_batching import left_pad, position_ids
from ftguard.models.hf_encode import Unit

if TYPE_CHECKING:
    import torch

Score = tuple[float, bool]
"""Summed log-probability of a unit's scored tokens, and whether greedy decoding picks them."""
Scored = tuple[int, Score]
"""A unit's index among the unique units, and its score."""


@dataclass(frozen=True)
class Runner:
    """What a forward pass needs to know about the model it runs."""

    model: Any
    device: torch.device
    pad_id: int
    keep_arg: bool
    """Whether the model's forward takes ``logits_to_keep``."""


def pick(logprobs: torch.Tensor, tokens: tuple[int, ...], device: torch.device) -> Score:
    """Score ``tokens`` against the log-probabilities of the positions that predict them."""
    import torch

    target = torch.tensor(tokens, device=device)
    picked = logprobs.gather(-1, target[:, None]).squeeze(-1)
    greedy = bool((logprobs.argmax(-1) == target).all())
    return float(picked.double().sum()), greedy


def forward_rows(runner: Runner, unique: list[Unit], rows: list[list[int]]) -> list[Scored]:
    """Score every unit of ``rows`` (units sharing one input per row) in one pass."""
    import torch

    inputs = [unique[row[0]][0][:-1] for row in rows]
    keep = max(unique[i][1] for row in rows for i in row)
    ids, mask = left_pad(inputs, runner.pad_id, runner.device)
    kwargs: dict[str, Any] = {"logits_to_keep": keep} if runner.keep_arg else {}
    with torch.inference_mode():
        logits = runner.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                              use_cache=False, **kwargs).logits[:, -keep:, :]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
    out = []
    for r, row in enumerate(rows):
        for i in row:
            tokens, n = unique[i]
            out.append((i, pick(logprobs[r, keep - n:, :], tokens[-n:], runner.device)))
    return out
