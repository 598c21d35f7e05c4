"""Greedy generation for the HF backend: batched, left-padded, cut at stop strings.

Requests with the same token limit and stop strings run together, longest prompt first; the
attention mask marks the left padding so ``generate`` derives each row's position ids from
its real tokens, and a padded row decodes exactly as it would alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ftguard.models.base import GenerateRequest, Progress, cut_at_stop
from ftguard.models.hf_batching import left_pad

if TYPE_CHECKING:
    import torch

    from ftguard.models.hf import HFBackend


def generate_all(backend: HFBackend, requests: Sequence[GenerateRequest],
                 progress: Progress | None) -> list[str]:
    """Every request's greedy continuation, in request order."""
    out: list[str] = [""] * len(requests)
    groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault((request.max_new_tokens, request.stop), []).append(index)
    for (max_new, stop), indices in groups.items():
        encoded = {i: backend._encode(requests[i].context)[-(backend.max_length - max_new):]
                   for i in indices}
        order = sorted(indices, key=lambda i: -len(encoded[i]))
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
    return out


def generate_batch(model: Any, tokenizer: Any, inputs: list[list[int]], max_new: int,
                   stop: tuple[str, ...], *, pad_id: int, device: torch.device) -> list[str]:
    """Greedy continuations of the token lists ``inputs``, decoded and cut at ``stop``."""
    import torch
    from transformers import GenerationConfig

    ids, mask = left_pad(inputs, pad_id, device)
    config = GenerationConfig(max_new_tokens=max_new, do_sample=False, num_beams=1,
                              pad_token_id=pad_id, stop_strings=list(stop) or None,
                              eos_token_id=model.generation_config.eos_token_id
                              or tokenizer.eos_token_id)
    with torch.inference_mode():
        generated = model.generate(input_ids=ids, attention_mask=mask,
                                   generation_config=config, tokenizer=tokenizer)
    new = generated[:, ids.shape[1]:]
    return [cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), stop) for row in new]
