"""The in-process Hugging Face backend: log-likelihoods, rolling perplexity and greedy text.

Scoring follows lm-eval's HF backend definitions so numbers match it (encoding:
:mod:`~ftguard.models.hf_encode`). It differs in how the work is done: identical inputs share
a row, rows are left-padded with explicit position ids (:mod:`~ftguard.models.hf_batching`),
only the positions being scored get logits (:mod:`~ftguard.models.hf_forward`), and
multi-token choices sharing a context share one row that holds the context once
(:mod:`~ftguard.models.hf_shared_context`); :mod:`~ftguard.models.hf_scoring` schedules it
all and :mod:`~ftguard.models.hf_generate` does greedy generation. Results do not depend on
the batch size or on context sharing (tests/test_batch_determinism.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ftguard.models import hf_encode
from ftguard.models.base import (
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
    RollingRequest,
    RollingResult,
)
from ftguard.models.hf_batching import LOGIT_BUDGET_BYTES, smaller_batch_after_oom
from ftguard.models.hf_chat import chat_text
from ftguard.models.hf_encode import Unit
from ftguard.models.hf_forward import Runner, Score, Scored, forward_rows
from ftguard.models.hf_generate import generate_all
from ftguard.models.hf_scoring import rolling_progress, score_units
from ftguard.models.hf_shared_context import TreeRow, context_groups, forward_tree
from ftguard.record import ModelInfo

__all__ = ["LOGIT_BUDGET_BYTES", "HFBackend", "Unit"]

T = TypeVar("T")


class HFBackend:
    """A transformers causal LM (optionally with a PEFT adapter) on one device."""

    def __init__(self, model: Any, tokenizer: Any, info: ModelInfo, *, batch_size: int | None,
                 max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.auto_batch = batch_size is None
        self.share_contexts = True  # choices of one context share a row (4D mask)
        self.tree_checked = False  # whether the model was seen to honour that mask
        self.continuous_decoding = True  # rows leave and join the decoding batch as they go
        self.batch_size = batch_size or _auto_batch_size()
        if _virtual_tokens(model):
            # prompt/prefix tuning prepend tokens before any padding and peft drops explicit
            # position ids, so a padded row would score differently: one row per pass
            self.batch_size, self.auto_batch, self.share_contexts = 1, False, False
            self.continuous_decoding = False
        self.max_length = max_length
        self.device = next(model.parameters()).device
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        forward = getattr(model, "get_base_model", lambda: model)().forward
        self._keep_arg = "logits_to_keep" in inspect.signature(forward).parameters
        self.pad_id = hf_encode.pad_id(tokenizer)
        self.prefix_id = hf_encode.prefix_id(tokenizer)
        self._prefix_text = hf_encode.prefix_text(tokenizer, self.prefix_id)

    # -- public API --------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        units = [self._encode_pair(r.context, r.continuation) for r in requests]
        scored = self._score_units(units, progress, share=True)
        return [LoglikelihoodResult(lp, greedy, n) for (lp, greedy), (_, n) in zip(scored, units)]

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        units, owners, counts = hf_encode.rolling_units(requests, self._encode, self.prefix_id,
                                                        self.max_length)
        scored = self._score_units(units, None, on_units=rolling_progress(owners, progress))
        nll = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, scored):
            nll[owner] -= logprob
        return [RollingResult(nll[i], counts[i]) for i in range(len(requests))]

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        return generate_all(self, requests, progress)

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return chat_text(self.tokenizer, self.info.spec, messages)

    # -- the parts, bound to this model -------------------------------------------------------

    def _encode(self, text: str, *, special: bool = True) -> list[int]:
        return hf_encode.encode(self.tokenizer, text, bos_text=self._prefix_text,
                                special=special)

    def _encode_pair(self, context: str, continuation: str) -> Unit:
        return hf_encode.encode_pair(self.tokenizer, context, continuation,
                                     prefix=self.prefix_id, bos_text=self._prefix_text,
                                     max_length=self.max_length)

    def _score_units(self, units: list[Unit], progress: Progress | None, *,
                     on_units: Callable[[list[int]], None] | None = None,
                     share: bool = False) -> list[Score]:
        return score_units(self, units, progress, on_units=on_units, share=share)

    def _context_groups(self, unique: list[Unit],
                        indices: list[int]) -> tuple[list[list[int]], list[int]]:
        return context_groups(unique, indices)

    def _runner(self) -> Runner:
        return Runner(self.model, self.device, self.pad_id, self._keep_arg)

    def _forward(self, unique: list[Unit], rows: list[list[int]]) -> list[Scored]:
        return forward_rows(self._runner(), unique, rows)

    def _forward_tree(self, unique: list[Unit], groups: list[list[int]],
                      rows: list[TreeRow]) -> list[Scored]:
        return forward_tree(self._runner(), unique, groups, rows)

    def _shrinking_on_oom(self, size: int, work: Callable[..., T], *args: Any,
                          **kwargs: Any) -> T | None:
        """Run one batch of ``size``; on out of memory, shrink the batch size (or raise
        ModelError, see ``smaller_batch_after_oom``) and return None to say: retry."""
        import torch

        try:
            return work(*args, **kwargs)
        except torch.OutOfMemoryError:
            pass  # retried outside the handler, which would keep the failed batch alive
        self.batch_size = smaller_batch_after_oom(size, auto=self.auto_batch,
                                                  device=self.device, spec=self.info.spec)
        return None


def _auto_batch_size() -> int:
    """Where ``--batch-size auto`` starts. On CUDA it starts high and halves on out of memory
    (the first batch is the longest, so that happens at once) down to the largest that
    fits; CPU memory does not fail that way, so CPU gets a size that saturates its cores."""
    import torch

    return 512 if torch.cuda.is_available() else 16


def _virtual_tokens(model: Any) -> int:
    """Virtual tokens a peft prompt-learning adapter adds to every input (0 for others)."""
    config = getattr(model, "peft_config", {}).get("default")
    return int(getattr(config, "num_virtual_tokens", 0) or 0)
