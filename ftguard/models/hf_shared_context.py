"""Choices sharing a context, scored together in one row of one forward pass.

A question's multi-token choices (or a classify item's labels) repeat the same context. lm-eval
runs context + choice once per choice; here a row holds the context once, followed by every
choice's input tokens, and a 4D attention mask lets each choice see the context and its own
earlier tokens only (a prefix tree, flattened). Each choice's tokens take the positions they
would have after the context, so every score equals the one a row of its own gives (within
float rounding, tests/test_hf_prefix_cache.py). The context's last position scores every
choice's first token, so one-token choices cost nothing extra.

Rows are left-padded; a pad position attends to itself only, which keeps its softmax finite.
Models whose attention ignores custom 4D masks (flash-attention kernels) or that limit
attention to a sliding window shorter than the row keep the plain one-row-per-input path;
:func:`agrees_with_rows` is the backend's one-time check that the model honours the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftguard.models.hf_encode import Unit
from ftguard.models.hf_forward import Runner, Scored, pick

if TYPE_CHECKING:
    import torch

MASK_BUDGET_BYTES = 256 * 2**20
"""Most memory one batch's 4D attention mask may take; long rows get smaller batches."""

MASKED_ATTENTION = frozenset({"sdpa", "eager"})
"""Attention implementations that apply a custom 4D mask as given."""


@dataclass(frozen=True)
class TreeRow:
    """One context and the input tokens of the choices that follow it."""

    context: tuple[int, ...]
    segments: tuple[tuple[int, ...], ...]
    """Distinct choice inputs: every scored token but the last (those of 2+ tokens)."""

    @property
    def length(self) -> int:
        return len(self.context) + sum(len(s) for s in self.segments)

    @property
    def keep(self) -> int:
        """Positions that need logits: the context's last, then every segment token."""
        return 1 + sum(len(s) for s in self.segments)


def context_groups(unique: list[Unit], indices: list[int]) -> tuple[list[list[int]], list[int]]:
    """Units worth sharing one row, and the others.

    A unit's context is every token but its scored ones. Units sharing a context go in one
    row when they would otherwise take two or more rows (choices of more than one token);
    single-token choices of one context already share a row on the plain path.
    """
    by_context: dict[tuple[int, ...], list[int]] = {}
    for i in indices:
        tokens, n = unique[i]
        by_context.setdefault(tokens[:-n], []).append(i)
    groups: list[list[int]] = []
    rest: list[int] = []
    for context, members in by_context.items():
        rows = {unique[i][0][:-1] for i in members}
        if context and len(rows) >= 2:
            groups.append(members)
        else:
            rest += members
    return groups, sorted(rest)


def tree_row(unique: list[Unit], group: list[int]) -> TreeRow:
    tokens, n = unique[group[0]]
    segments = dict.fromkeys(unique[i][0][-unique[i][1]:-1] for i in group if unique[i][1] > 1)
    return TreeRow(tokens[:-n], tuple(segments))


def supports_tree(model: Any, longest: int) -> bool:
    """Whether ``model`` applies a custom 4D mask to rows of ``longest`` tokens."""
    config = model.config
    if getattr(config, "_attn_implementation", "eager") not in MASKED_ATTENTION:
        return False
    window = getattr(config, "sliding_window", None)
    return not (isinstance(window, int) and 0 < window < longest)


def rows_per_batch(length: int, batch_size: int) -> int:
    """``batch_size``, or fewer where the mask of rows this long would exceed its budget."""
    return max(1, min(batch_size, MASK_BUDGET_BYTES // (4 * length * length)))


def forward_tree(runner: Runner, unique: list[Unit], groups: list[list[int]],
                 rows: list[TreeRow]) -> list[Scored]:
    """Score every unit of ``groups`` (units sharing one context per group; ``rows[k]`` is
    ``tree_row`` of ``groups[k]``) in one pass."""
    import torch

    ids, mask, positions = tree_inputs(rows, runner)
    keep = max(row.keep for row in rows)
    kwargs: dict[str, Any] = {"logits_to_keep": keep} if runner.keep_arg else {}
    with torch.inference_mode():
        logits = runner.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                              use_cache=False, **kwargs).logits[:, -keep:, :]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
    out: list[Scored] = []
    for r, (row, group) in enumerate(zip(rows, groups)):
        last = keep - row.keep  # the context's last position among the kept ones
        starts: dict[tuple[int, ...], int] = {}
        offset = last + 1
        for segment in row.segments:
            starts[segment] = offset
            offset += len(segment)
        for i in group:
            tokens, n = unique[i]
            where = [last]
            if n > 1:
                start = starts[tokens[-n:-1]]
                where += range(start, start + n - 1)
            out.append((i, pick(logprobs[r, where, :], tokens[-n:], runner.device)))
    return out


def tree_inputs(rows: list[TreeRow], runner: Runner,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded token ids, the additive 4D attention mask and the position ids."""
    import torch

    width = max(row.length for row in rows)
    ids = torch.full((len(rows), width), runner.pad_id, dtype=torch.long)
    part = torch.full((len(rows), width), -1, dtype=torch.long)  # -1 pad, 0 context, k segment
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = width - row.length
        c = len(row.context)
        ids[r, at:at + c] = torch.tensor(row.context, dtype=torch.long)
        part[r, at:at + c] = 0
        positions[r, at:at + c] = torch.arange(c)
        at += c
        for k, segment in enumerate(row.segments, start=1):
            ids[r, at:at + len(segment)] = torch.tensor(segment, dtype=torch.long)
            part[r, at:at + len(segment)] = k
            positions[r, at:at + len(segment)] = torch.arange(c, c + len(segment))
            at += len(segment)
    query, key = part[:, :, None], part[:, None, :]
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed = causal & (key >= 0) & ((key == 0) | (key == query))
    allowed |= (query == -1) & torch.eye(width, dtype=torch.bool)  # pads see themselves
    dtype = runner.model.get_input_embeddings().weight.dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    return (ids.to(runner.device), mask[:, None].to(runner.device),
            positions.to(runner.device))


def agrees_with_rows(tree: list[Scored], rows: list[Scored], dtype: torch.dtype) -> bool:
    """Whether the shared-row scores of some units match their plain-row scores (the check
    that the model honours the 4D mask: a model that ignores it lets choices see each other,
    which moves their scores by whole nats)."""
    import torch

    tolerance = 1e-3 if dtype == torch.float32 else 0.25
    plain = dict(rows)
    return all(abs(score[0] - plain[i][0]) <= tolerance for i, score in tree)
