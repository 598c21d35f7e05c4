"""Choices sharing a context, scored from one cached pass over that context.

A classify item's labels or a question's multi-token choices repeat the same long context.
The contexts of a batch of groups run once, keeping their KV cache and last logits (which
score every continuation's first token); then only the continuations' other tokens run, in
right-padded batches attending to the cached contexts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftguard.models.hf_batching import batches, left_pad, longest_first, position_ids
from ftguard.models.hf_encode import Unit
from ftguard.models.hf_forward import Runner, Scored, pick

if TYPE_CHECKING:
    import torch

PREFIX_MIN_TOKENS = 8
"""Shortest context worth one cached pass shared by its multi-token continuations."""

ContinuationRows = dict[tuple[int, tuple[int, ...]], list[int]]
"""(context row, continuation input tokens) -> the units scored from that row."""


class NoSharedCache(Exception):
    """The model's KV cache is not a plain DynamicCache; score rows whole instead."""


def context_groups(unique: list[Unit], indices: list[int]) -> tuple[list[list[int]], list[int]]:
    """Units worth scoring from one shared context pass, and the others.

    A unit's context is every token but its scored ones. Where units sharing a context of
    at least PREFIX_MIN_TOKENS tokens would take two or more rows (choices of more than
    one token), the context is encoded once and only the continuations are run.
    """
    by_context: dict[tuple[int, ...], list[int]] = {}
    for i in indices:
        tokens, n = unique[i]
        by_context.setdefault(tokens[:-n], []).append(i)
    groups: list[list[int]] = []
    rest: list[int] = []
    for context, members in by_context.items():
        rows = {unique[i][0][:-1] for i in members}
        if len(context) >= PREFIX_MIN_TOKENS and len(rows) >= 2:
            groups.append(members)
        else:
            rest += members
    return groups, sorted(rest)


def forward_contexts(runner: Runner, unique: list[Unit], groups: list[list[int]], *,
                     batch_size: int, vocab_size: int) -> list[Scored]:
    """Score every unit of ``groups`` from one pass over the groups' contexts."""
    import torch

    contexts = [unique[g[0]][0][:-unique[g[0]][1]] for g in groups]
    out: list[Scored] = []
    with torch.inference_mode():
        saved, mask, first = _run_contexts(runner, contexts)
        best = first.argmax(-1).tolist()
        rows: ContinuationRows = {}
        for r, group in enumerate(groups):
            for i in group:
                tokens, n = unique[i]
                if n == 1:
                    out.append((i, (float(first[r, tokens[-1]].double()),
                                    best[r] == tokens[-1])))
                else:
                    rows.setdefault((r, tokens[-n:-1]), []).append(i)
        keys = list(rows)
        widths = [len(k[1]) for k in keys]
        for batch in batches(longest_first(widths), widths, batch_size=batch_size,
                             vocab_size=vocab_size):
            logprobs = _run_continuations(runner, [keys[k] for k in batch], saved, mask)
            for b, k in enumerate(batch):
                r = keys[k][0]
                for i in rows[keys[k]]:
                    tokens, n = unique[i]
                    total, greedy = pick(logprobs[b, :n - 1, :], tokens[-n + 1:], runner.device)
                    out.append((i, (float(first[r, tokens[-n]].double()) + total,
                                    best[r] == tokens[-n] and greedy)))
    return out


def _run_contexts(runner: Runner, contexts: list[tuple[int, ...]],
                  ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
    """One left-padded pass over ``contexts``: each layer's cached keys and values, the
    attention mask, and the log-probabilities of the token after each context."""
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    ids, mask = left_pad(contexts, runner.pad_id, runner.device)
    kwargs: dict[str, Any] = {"logits_to_keep": 1} if runner.keep_arg else {}
    result = runner.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                          use_cache=True, **kwargs)
    cache, last = result.past_key_values, result.logits[:, -1, :]
    del result
    if (type(cache) is not DynamicCache
            or any(type(layer) is not DynamicLayer for layer in cache.layers)):
        raise NoSharedCache
    saved = [(layer.keys, layer.values) for layer in cache.layers]
    del cache
    return saved, mask, torch.log_softmax(last.float(), dim=-1)


def _run_continuations(runner: Runner, keys: list[tuple[int, tuple[int, ...]]],
                       saved: list[tuple[torch.Tensor, torch.Tensor]],
                       mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities after each token of the continuation inputs ``keys`` (context row,
    tokens), right-padded, each attending to its context's cached keys and values."""
    import torch
    from transformers import DynamicCache

    width = max(len(tokens) for _, tokens in keys)
    owner = torch.tensor([r for r, _ in keys], device=runner.device)
    cont = torch.full((len(keys), width), runner.pad_id, dtype=torch.long)
    cont_mask = torch.zeros((len(keys), width), dtype=torch.long)
    for b, (_, tokens) in enumerate(keys):
        cont[b, :len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        cont_mask[b, :len(tokens)] = 1
    cont, cont_mask = cont.to(runner.device), cont_mask.to(runner.device)
    past = DynamicCache(ddp_cache_data=[(k.index_select(0, owner), v.index_select(0, owner))
                                        for k, v in saved])
    step = torch.arange(width, device=runner.device)
    logits = runner.model(
        input_ids=cont,
        attention_mask=torch.cat([mask.index_select(0, owner), cont_mask], dim=1),
        position_ids=mask.sum(-1).index_select(0, owner)[:, None] + step[None, :],
        past_key_values=past, use_cache=True).logits
    del past
    return torch.log_softmax(logits.float(), dim=-1)
