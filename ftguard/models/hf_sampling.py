"""Sampling and beam search for the HF backend (greedy decoding is :mod:`.hf_generate`'s).

Sampling runs inside continuous batching: each row draws its next token from its own logits
with its own generator, seeded from the decoding seed, the exact context text and the
answer's index (:meth:`~ftguard.models.base.Decoding.sample_seed`). A row's draws therefore
depend on nothing else in the batch: the same settings give the same answers at any batch
size (as greedy answers do, up to float rounding of the logits, which moves a draw only when
its uniform number falls within rounding of a boundary between two tokens). The warpers
follow transformers' order and definitions: temperature, then top-k, then top-p (the
smallest set of most likely tokens whose probability reaches ``top_p``, at least one). Unlike
transformers, top-k is off unless set (transformers' ``generate`` defaults to 50).

Models that cannot decode in continuous batches (:class:`~.hf_generate.NoPlainCache`) sample
one answer at a time through ``model.generate`` with torch's generator seeded from the same
per-answer seed: reproducible too, but not the same draws as continuous batching.

Beam search goes through ``model.generate`` (``num_beams``, ``num_return_sequences=n``):
once per distinct context, whose ``n`` best beams answer requests ``0..n-1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ftguard.models.base import Decoding, GenerateRequest, Progress

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ftguard.models.hf import HFBackend


class Greedy:
    """The most likely token of every row."""

    def admit(self, rows: Sequence[int]) -> None:
        """Rows (request indices) that start decoding from their prompt."""

    def __call__(self, logits: torch.Tensor, rows: Sequence[int]) -> list[int]:
        return logits.argmax(-1).tolist()


class Sampler(Greedy):
    """Each row's next token drawn with its own generator (one uniform number per step)."""

    def __init__(self, decoding: Decoding, requests: Sequence[GenerateRequest]) -> None:
        self.decoding = decoding
        self.requests = requests
        self.rngs: dict[int, np.random.Generator] = {}

    def admit(self, rows: Sequence[int]) -> None:
        import numpy as np

        for row in rows:  # also a row restarted after running out of memory: from its seed
            r = self.requests[row]
            self.rngs[row] = np.random.default_rng(self.decoding.sample_seed(r.context, r.sample))

    def __call__(self, logits: torch.Tensor, rows: Sequence[int]) -> list[int]:
        import torch

        probs = warped_probabilities(logits, self.decoding).double()
        cdf = probs.cumsum(-1)
        u = torch.tensor([self.rngs[r].random() for r in rows], dtype=torch.float64,
                         device=cdf.device)
        # first token whose cumulative probability exceeds u * total: never one of mass 0
        picked = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]
        return picked.clamp(max=cdf.shape[-1] - 1).tolist()


def warped_probabilities(logits: torch.Tensor, d: Decoding) -> torch.Tensor:
    """Next-token probabilities after temperature, top-k and top-p (transformers' order)."""
    import torch

    x = logits.float() / d.temperature
    if d.top_k is not None and d.top_k < x.shape[-1]:
        kth = torch.topk(x, d.top_k, dim=-1).values[:, -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    probs = torch.softmax(x, dim=-1)
    if d.top_p < 1.0:
        ordered, index = probs.sort(dim=-1, descending=True)
        before = ordered.cumsum(-1) - ordered  # mass of the more likely tokens
        ordered = ordered.masked_fill(before >= d.top_p, 0.0)  # the first is always kept
        probs = torch.zeros_like(probs).scatter(-1, index, ordered)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def picker(decoding: Decoding | None, requests: Sequence[GenerateRequest]) -> Greedy:
    return Sampler(decoding, requests) if decoding is not None and decoding.do_sample \
        else Greedy()


def sample_one_by_one(backend: HFBackend, requests: Sequence[GenerateRequest],
                      encoded: dict[int, list[int]], order: list[int], max_new: int,
                      stop: tuple[str, ...], decoding: Decoding, out: list[str],
                      progress: Progress | None, generate_batch: Callable[..., list[str]]) -> None:
    """Sampling without continuous batching: one answer per ``model.generate`` call
    (``generate_batch`` of :mod:`.hf_generate`), torch's generator seeded per answer."""
    import torch

    devices = [backend.device] if backend.device.type == "cuda" else []
    for i in order:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(decoding.sample_seed(requests[i].context, requests[i].sample))
            out[i] = generate_batch(backend.model, backend.tokenizer, [encoded[i]], max_new,
                                    stop, pad_id=backend.pad_id, device=backend.device,
                                    options=_sampling_options(decoding))[0]
        if progress:
            progress(1)


def _sampling_options(d: Decoding) -> dict[str, Any]:
    return {"do_sample": True, "temperature": d.temperature, "top_p": d.top_p,
            "top_k": d.top_k or 0}


def beam_search(backend: HFBackend, requests: Sequence[GenerateRequest],
                encoded: dict[int, list[int]], order: list[int], max_new: int,
                stop: tuple[str, ...], decoding: Decoding, out: list[str],
                progress: Progress | None, generate_batch: Callable[..., list[str]]) -> None:
    """The ``n`` best beams of each distinct context, answer ``j`` for request ``sample=j``."""

    by_context: dict[str, list[int]] = {}
    for i in order:
        by_context.setdefault(requests[i].context, []).append(i)
    contexts = list(by_context)
    n = decoding.n
    options = {"num_beams": decoding.num_beams, "num_return_sequences": n}
    while contexts:
        part = contexts[:max(1, backend.batch_size // decoding.num_beams)]
        firsts = [by_context[c][0] for c in part]
        beams = backend._shrinking_on_oom(len(part), generate_batch, backend.model,
                                          backend.tokenizer, [encoded[i] for i in firsts],
                                          max_new, stop, pad_id=backend.pad_id,
                                          device=backend.device, options=options)
        if beams is None:
            continue
        contexts = contexts[len(part):]
        for k, context in enumerate(part):
            for i in by_context[context]:
                out[i] = beams[k * n + requests[i].sample]
            if progress:
                progress(len(by_context[context]))

