"""Generation for the HF backend: continuous batching over a shared KV cache (greedy, and
sampling with a seeded draw per row; beam search: :mod:`.hf_sampling`).

Requests with the same token limit and stop strings run together, longest prompt first. Up
to ``batch_size`` rows decode at once; each step picks every row's most likely token, and a
row that produced an end-of-sequence token, a stop string (checked on the decoded text after
every token) or its last allowed token leaves the batch at once: its cache rows are dropped
and waiting prompts take the free places (prefilled together, left-padded, their cache
merged into the batch's). The steps a batch takes thus follow the tokens actually generated,
not the longest answer of every batch.

Rows are left-padded with explicit position ids and a mask over real tokens only, so a row
decodes as it would alone (tests/test_generate.py compares with ``model.generate`` and with
batch size 1). Models whose cache is not a plain per-layer key/value cache (sliding windows,
prompt-tuning adapters) run through ``model.generate`` in fixed batches instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ftguard.models.base import Decoding, GenerateRequest, Generation, Progress, cut_at_stop
from ftguard.models.hf_batching import left_pad, position_ids
from ftguard.models.hf_sampling import Greedy, beam_search, picker, sample_one_by_one

if TYPE_CHECKING:
    import torch

    from ftguard.models.hf import HFBackend

REFILL_FRACTION = 4
"""Waiting prompts are prefilled once 1/REFILL_FRACTION of the batch's places are free (or
the batch is empty): one prefill pass for several rows instead of one per finished row."""


class NoPlainCache(Exception):
    """The model's cache cannot be split and merged row by row."""


def generate_all(backend: HFBackend, requests: Sequence[GenerateRequest],
                 progress: Progress | None) -> list[str]:
    """Every request's greedy continuation, in request order, each a :class:`Generation`
    that says whether ``max_new_tokens`` cut it (neither an end-of-sequence token nor a stop
    string ended it)."""
    out: list[str] = [Generation("", truncated=True)] * len(requests)  # a budget of 0 tokens
    groups: dict[tuple[int, tuple[str, ...], Decoding | None], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault((request.max_new_tokens, request.stop, request.decoding),
                          []).append(index)
    for (max_new, stop, decoding), indices in groups.items():
        if max_new <= 0:
            continue
        encoded = {i: backend._encode(requests[i].context)[-(backend.max_length - max_new):]
                   for i in indices}
        order = sorted(indices, key=lambda i: -len(encoded[i]))
        if decoding is not None and not decoding.do_sample:  # beam search (hf_sampling)
            beam_search(backend, requests, encoded, order, max_new, stop, decoding, out,
                        progress, generate_batch)
            continue
        if backend.continuous_decoding:
            try:
                _continuous(backend, encoded, order, max_new, stop, out, progress,
                            picker(decoding, requests))
                continue
            except NoPlainCache:  # raised by the first prefill, before any answer
                backend.continuous_decoding = False
        if decoding is not None:
            sample_one_by_one(backend, requests, encoded, order, max_new, stop, decoding, out,
                              progress, generate_batch)
            continue
        _fixed_batches(backend, encoded, order, max_new, stop, out, progress)
    return out


# -- continuous batching --------------------------------------------------------------------

@dataclass
class _Batch:
    """The rows decoding together: their requests, tokens so far, cache and mask."""

    rows: list[int] = field(default_factory=list)
    new: list[list[int]] = field(default_factory=list)
    cache: Any = None
    """The model's DynamicCache: one key and one value tensor per layer, rows first."""
    mask: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    """Each row's next-token logits."""


def _continuous(backend: HFBackend, encoded: dict[int, list[int]], order: list[int],
                max_new: int, stop: tuple[str, ...], out: list[str],
                progress: Progress | None, pick: Greedy) -> None:
    """Decode ``order`` with continuous batching into ``out``; ``pick`` chooses each row's
    next token (greedy, or a seeded draw per row: :mod:`.hf_sampling`)."""
    import torch

    eos = _eos_ids(backend)
    waiting = list(order)
    batch = _Batch()
    with torch.inference_mode():
        while waiting or batch.rows:
            free = max(0, backend.batch_size - len(batch.rows))
            enough = free >= max(1, backend.batch_size // REFILL_FRACTION)
            if waiting and (not batch.rows or enough):
                admitted = waiting[:free]
                fresh = backend._shrinking_on_oom(len(admitted), _prefill, backend,
                                                  [encoded[i] for i in admitted])
                if fresh is None:
                    continue
                _merge(batch, fresh, admitted)
                pick.admit(admitted)
                waiting = waiting[len(admitted):]
            assert batch.logits is not None
            picked = pick(batch.logits, batch.rows)
            keep: list[int] = []
            for r, token in enumerate(picked):
                tokens = batch.new[r]
                ended = token in eos
                if not ended:
                    tokens.append(token)
                    ended = bool(stop) and _has_stop(backend.tokenizer, tokens, stop)
                if ended or len(tokens) >= max_new:
                    text = backend.tokenizer.decode(tokens, skip_special_tokens=True)
                    out[batch.rows[r]] = Generation(cut_at_stop(text, stop), truncated=not ended)
                    if progress:
                        progress(1)
                else:
                    keep.append(r)
            _select(batch, keep)
            while batch.rows and backend._shrinking_on_oom(
                    len(batch.rows), _decode, backend, batch,
                    [tokens[-1] for tokens in batch.new]) is None:
                # out of memory: rows beyond the smaller batch size start again later
                waiting = batch.rows[backend.batch_size:] + waiting
                _select(batch, list(range(min(backend.batch_size, len(batch.rows)))))


def _prefill(backend: HFBackend, inputs: list[list[int]]) -> _Batch:
    """One left-padded pass over new prompts: their cache, mask and next-token logits."""
    ids, mask = left_pad(inputs, backend.pad_id, backend.device)
    kwargs: dict[str, Any] = {"logits_to_keep": 1} if backend._keep_arg else {}
    result = backend.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                           use_cache=True, **kwargs)
    _plain_layers(result.past_key_values)
    return _Batch(mask=mask, logits=result.logits[:, -1, :].float(),
                  cache=result.past_key_values)


def _decode(backend: HFBackend, batch: _Batch, tokens: list[int]) -> bool:
    """One step: feed each row's last token, extend the cache, keep the next logits.
    Returns True (``_shrinking_on_oom`` reads None as "ran out of memory")."""
    import torch

    assert batch.mask is not None
    ones = torch.ones((len(tokens), 1), dtype=batch.mask.dtype, device=backend.device)
    mask = torch.cat([batch.mask, ones], dim=1)
    positions = batch.mask.sum(-1, keepdim=True)
    ids = torch.tensor(tokens, dtype=torch.long, device=backend.device)[:, None]
    result = backend.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                           past_key_values=batch.cache, use_cache=True)
    batch.cache = result.past_key_values
    batch.mask, batch.logits = mask, result.logits[:, -1, :].float()
    return True


def _plain_layers(cache: Any) -> list[Any]:
    """The cache's layers, each holding ``keys`` and ``values`` of all rows."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if (type(cache) is not DynamicCache
            or any(type(layer) is not DynamicLayer or not layer.is_initialized
                   for layer in cache.layers)):
        raise NoPlainCache
    return list(cache.layers)


def _merge(batch: _Batch, fresh: _Batch, rows: list[int]) -> None:
    """Add prefilled rows to the batch; the narrower side's cache is left-padded."""
    import torch

    assert fresh.mask is not None and fresh.logits is not None
    batch.new += [[] for _ in rows]
    batch.rows += rows
    if batch.mask is None or batch.logits is None:
        batch.cache, batch.mask, batch.logits = fresh.cache, fresh.mask, fresh.logits
        return
    width = max(batch.mask.shape[1], fresh.mask.shape[1])
    for mine, theirs in zip(_plain_layers(batch.cache), _plain_layers(fresh.cache)):
        mine.keys = torch.cat([_pad_left(mine.keys, width, 2), _pad_left(theirs.keys, width, 2)])
        mine.values = torch.cat([_pad_left(mine.values, width, 2),
                                 _pad_left(theirs.values, width, 2)])
    batch.mask = torch.cat([_pad_left(batch.mask, width, 1), _pad_left(fresh.mask, width, 1)])
    batch.logits = torch.cat([batch.logits, fresh.logits])


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    import torch

    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _select(batch: _Batch, keep: list[int]) -> None:
    """Keep only rows ``keep``; columns that are padding in every kept row are dropped."""
    if len(keep) == len(batch.rows):
        return
    batch.rows = [batch.rows[r] for r in keep]
    batch.new = [batch.new[r] for r in keep]
    if not keep:
        batch.cache, batch.mask, batch.logits = None, None, None
        return
    import torch

    assert batch.mask is not None and batch.logits is not None
    index = torch.tensor(keep, device=batch.mask.device)
    mask = batch.mask.index_select(0, index)
    start = int(mask.any(0).int().argmax())  # first column some row still uses
    batch.mask = mask[:, start:]
    batch.logits = batch.logits.index_select(0, index)
    for layer in _plain_layers(batch.cache):
        layer.keys = layer.keys.index_select(0, index)[:, :, start:]
        layer.values = layer.values.index_select(0, index)[:, :, start:]


def _has_stop(tokenizer: Any, tokens: list[int], stop: tuple[str, ...]) -> bool:
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return any(s in text for s in stop)


def _eos_ids(backend: HFBackend) -> set[int]:
    eos = backend.model.generation_config.eos_token_id
    if eos is None:
        eos = backend.tokenizer.eos_token_id
    return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


# -- fixed batches through model.generate -----------------------------------------------------

def _fixed_batches(backend: HFBackend, encoded: dict[int, list[int]], order: list[int],
                   max_new: int, stop: tuple[str, ...], out: list[str],
                   progress: Progress | None) -> None:
    while order:
        batch = order[:backend.batch_size]
        texts = backend._shrinking_on_oom(len(batch), generate_batch, backend.model,
                                          backend.tokenizer, [encoded[i] for i in batch],
                                          max_new, stop, pad_id=backend.pad_id,
                                          device=backend.device)
        if texts is None:
            continue
        order = order[len(batch):]
        for i, text in zip(batch, texts):
            out[i] = text
        if progress:
            progress(len(batch))


def generate_batch(model: Any, tokenizer: Any, inputs: list[list[int]], max_new: int,
                   stop: tuple[str, ...], *, pad_id: int, device: torch.device,
                   options: dict[str, Any] | None = None) -> list[str]:
    """Greedy continuations of the token lists ``inputs``, decoded and cut at ``stop``; each
    a :class:`Generation`, truncated when its row used all ``max_new`` tokens without an
    end-of-sequence token or a stop string. ``options`` override the generation config
    (sampling, beams; ``num_return_sequences`` answers per input, input by input)."""
    import torch
    from transformers import GenerationConfig

    ids, mask = left_pad(inputs, pad_id, device)
    config = GenerationConfig(**{"max_new_tokens": max_new, "do_sample": False, "num_beams": 1,
                                 "pad_token_id": pad_id, "stop_strings": list(stop) or None,
                                 "eos_token_id": model.generation_config.eos_token_id
                                 or tokenizer.eos_token_id, **(options or {})})
    with torch.inference_mode():
        generated = model.generate(input_ids=ids, attention_mask=mask,
                                   generation_config=config, tokenizer=tokenizer)
    new = generated[:, ids.shape[1]:]
    eos = config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    out = []
    for row in new.tolist():
        # a row that finished early is padded to the batch's longest; one that ran out of
        # budget has max_new tokens and no end-of-sequence token or stop string among them
        end = next((i for i, token in enumerate(row) if token in eos_ids), None)
        text = tokenizer.decode(row[:end], skip_special_tokens=True)  # as continuous decoding
        ended = end is not None or any(s in text for s in stop)
        out.append(Generation(cut_at_stop(text, stop),
                              truncated=len(row) >= max_new and not ended))
    return out
