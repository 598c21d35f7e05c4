"""The in-process Hugging Face backend: log-likelihoods, rolling perplexity and greedy text.

Scoring follows lm-eval's HF backend definitions (context/continuation split with the
context's trailing spaces moved into the continuation, texts encoded with the tokenizer's
own special tokens unless they already start with the BOS text, an empty context replaced
by the BOS/EOS token, rolling windows as ``get_rolling_token_windows``) so numbers match it.
Like lm-eval, requests whose inputs are identical (e.g. the one-token choices of a question)
share one row. It differs in how the work is done: rows are left-padded with explicit
position ids and only the positions being scored get logits (``logits_to_keep``), which
skips most of the vocabulary projection and the log-softmax that dominates small models.
Choices of more than one token that share a context (a classify item's labels) are scored
from one cached pass over that context: the continuations alone run against its KV cache.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ftguard.errors import ModelError
from ftguard.models.base import (
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
    RollingRequest,
    RollingResult,
    cut_at_stop,
)
from ftguard.record import ModelInfo

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
Unit = tuple[tuple[int, ...], int]
"""Token sequence and how many trailing tokens of it are scored."""

LOGIT_BUDGET_BYTES = 512 * 2**20
"""Most memory one batch's float32 logits may take; long rows get smaller batches."""

PREFIX_MIN_TOKENS = 8
"""Shortest context worth one cached pass shared by its multi-token continuations."""


class _NoSharedCache(Exception):
    """The model's KV cache is not a plain DynamicCache; score rows whole instead."""


class HFBackend:
    """A transformers causal LM (optionally with a PEFT adapter) on one device."""

    def __init__(self, model: Any, tokenizer: Any, info: ModelInfo, *, batch_size: int | None,
                 max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.auto_batch = batch_size is None
        self.share_contexts = True  # one cached pass per context shared by continuations
        self.batch_size = batch_size or self._auto_batch_size()
        if _virtual_tokens(model):
            # prompt/prefix tuning prepend tokens before any padding and peft drops explicit
            # position ids, so a padded row would score differently: one row per pass
            self.batch_size, self.auto_batch, self.share_contexts = 1, False, False
        self.max_length = max_length
        self.device = next(model.parameters()).device
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        forward = getattr(model, "get_base_model", lambda: model)().forward
        self._keep_arg = "logits_to_keep" in inspect.signature(forward).parameters
        self.pad_id = _pad_id(tokenizer)
        bos = tokenizer.bos_token_id
        self.prefix_id = bos if bos is not None else tokenizer.eos_token_id
        self._prefix_text = ("" if self.prefix_id is None
                             else str(tokenizer.decode(self.prefix_id)))

    # -- public API --------------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        units = [self._encode_pair(r.context, r.continuation) for r in requests]
        scored = self._score_units(units, progress, share=True)
        return [LoglikelihoodResult(lp, greedy, n) for (lp, greedy), (_, n) in zip(scored, units)]

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        owners: list[int] = []
        units: list[Unit] = []
        counts: list[int] = []
        for index, request in enumerate(requests):
            tokens = self._encode(request.text)
            window = min(request.max_length or self.max_length, self.max_length)
            mine = list(_rolling_windows(tokens, self.prefix_id, window))
            units += mine
            owners += [index] * len(mine)
            counts.append(len(tokens))
        remaining = [owners.count(i) for i in range(len(requests))]

        def advance(done_units: list[int]) -> None:
            finished = 0
            for u in done_units:
                remaining[owners[u]] -= 1
                finished += remaining[owners[u]] == 0
            if progress and finished:
                progress(finished)

        scored = self._score_units(units, None, on_units=advance)
        nll = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, scored):
            nll[owner] -= logprob
        return [RollingResult(nll[i], counts[i]) for i in range(len(requests))]

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        out: list[str] = [""] * len(requests)
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.max_new_tokens, request.stop), []).append(index)
        for (max_new, stop), indices in groups.items():
            encoded = {i: self._encode(requests[i].context)[-(self.max_length - max_new):]
                       for i in indices}
            order = sorted(indices, key=lambda i: -len(encoded[i]))
            while order:
                batch = order[:self.batch_size]
                texts = self._shrinking_on_oom(len(batch), self._generate_batch,
                                               [encoded[i] for i in batch], max_new, stop)
                if texts is None:
                    continue
                order = order[len(batch):]
                for i, text in zip(batch, texts):
                    out[i] = text
                if progress:
                    progress(len(batch))
        return out

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelError(f"model {self.info.spec} has no chat template, but a task sets "
                             "'chat_template: true'.",
                             hint="Set chat_template: false for this model, or use an instruct "
                                  "model that ships one.")
        return str(self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                      add_generation_prompt=True))

    # -- encoding ----------------------------------------------------------------------------

    def _encode(self, text: str, *, special: bool = True) -> list[int]:
        """lm-eval's ``tok_encode``: with the tokenizer's own special tokens (the BOS that
        Llama, Gemma or Mistral tokenizers prepend; models score differently without it),
        except when the text already starts with the BOS text, as chat-template output does."""
        add = special and not (self._prefix_text and text.startswith(self._prefix_text))
        return list(self.tokenizer(text, add_special_tokens=add)["input_ids"])

    def _encode_pair(self, context: str, continuation: str) -> Unit:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        if not continuation:
            raise ModelError("a log-likelihood request has an empty continuation.")
        if context:
            whole = self._encode(context + continuation)
            context_ids = self._encode(context)
            continuation_ids = whole[len(context_ids):]
        else:
            continuation_ids = self._encode(continuation, special=False)
            if continuation_ids and continuation_ids[0] == self.prefix_id:
                # lm-eval: a continuation that starts with the BOS token is its own context
                context_ids, continuation_ids = continuation_ids[:1], continuation_ids[1:]
            else:
                context_ids = [self.prefix_id]
        if not continuation_ids:
            raise ModelError(f"continuation {continuation!r} encodes to no tokens.")
        full = (context_ids + continuation_ids)[-(self.max_length + 1):]
        return tuple(full), len(continuation_ids)

    # -- batched scoring ---------------------------------------------------------------------

    def _score_units(self, units: list[Unit], progress: Progress | None, *,
                     on_units: Any = None, share: bool = False) -> list[tuple[float, bool]]:
        unique = list(dict.fromkeys(units))
        where = {unit: i for i, unit in enumerate(unique)}
        users: dict[int, list[int]] = {}
        for position, unit in enumerate(units):
            users.setdefault(where[unit], []).append(position)
        scores: list[tuple[float, bool]] = [(0.0, False)] * len(unique)

        def finish(scored: list[tuple[int, tuple[float, bool]]]) -> None:
            for i, score in scored:
                scores[i] = score
            done = [p for i, _ in scored for p in users[i]]
            if progress:
                progress(len(done))
            if on_units:
                on_units(done)

        rest = list(range(len(unique)))
        if share and self.share_contexts:
            groups, rest = self._context_groups(unique, rest)
            rest += self._score_contexts(unique, groups, finish)
        self._score_rows(unique, rest, finish)
        return [scores[where[unit]] for unit in units]

    def _context_groups(self, unique: list[Unit],
                        indices: list[int]) -> tuple[list[list[int]], list[int]]:
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

    def _score_rows(self, unique: list[Unit], indices: list[int],
                    finish: Callable[[list[tuple[int, tuple[float, bool]]]], None]) -> None:
        # Units with the same input (every token but the last) share one row of one forward
        # pass, as in lm-eval's one-token-continuation cache: all the single-token choices of
        # a question are scored from a single row.
        shared: dict[tuple[int, ...], list[int]] = {}
        for i in indices:
            shared.setdefault(unique[i][0][:-1], []).append(i)
        rows = list(shared.values())
        order = sorted(range(len(rows)), key=lambda r: -len(unique[rows[r][0]][0]))
        keeps = [max(unique[i][1] for i in row) for row in rows]
        while order:
            batch = next(self._batches(order, keeps))
            members = [rows[r] for r in batch]
            scored = self._shrinking_on_oom(len(batch), self._forward, unique, members)
            if scored is None:
                continue
            order = order[len(batch):]
            finish(scored)

    def _score_contexts(self, unique: list[Unit], groups: list[list[int]],
                        finish: Callable[[list[tuple[int, tuple[float, bool]]]], None],
                        ) -> list[int]:
        """Score each group from one pass over its context; returns units left unscored
        (all remaining ones, should the model's cache not allow reusing a context)."""
        context_len = [len(unique[g[0]][0]) - unique[g[0]][1] for g in groups]
        order = sorted(range(len(groups)), key=lambda g: -context_len[g])
        ones = [1] * len(groups)
        while order:
            batch = next(self._batches(order, ones))
            try:
                scored = self._shrinking_on_oom(len(batch), self._forward_contexts, unique,
                                                [groups[g] for g in batch])
            except _NoSharedCache:
                self.share_contexts = False
                return [i for g in order for i in groups[g]]
            if scored is None:
                continue
            order = order[len(batch):]
            finish(scored)
        return []

    def _forward_contexts(self, unique: list[Unit],
                          groups: list[list[int]]) -> list[tuple[int, tuple[float, bool]]]:
        """One pass over the groups' contexts (keeping their KV cache and last logits, which
        score every continuation's first token), then the continuations' other tokens in
        right-padded batches attending to the cached contexts."""
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        contexts = [unique[g[0]][0][:-unique[g[0]][1]] for g in groups]
        ids, mask = _left_pad(contexts, self.pad_id, self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs: dict[str, Any] = {"logits_to_keep": 1} if self._keep_arg else {}
        out: list[tuple[int, tuple[float, bool]]] = []
        with torch.inference_mode():
            result = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                use_cache=True, **kwargs)
            cache, last = result.past_key_values, result.logits[:, -1, :]
            del result
            if (type(cache) is not DynamicCache
                    or any(type(layer) is not DynamicLayer for layer in cache.layers)):
                raise _NoSharedCache
            saved = [(layer.keys, layer.values) for layer in cache.layers]
            del cache
            first = torch.log_softmax(last.float(), dim=-1)
            best = first.argmax(-1).tolist()
            # continuation rows: (context row, input tokens) for choices of 2+ tokens
            rows: dict[tuple[int, tuple[int, ...]], list[int]] = {}
            for r, group in enumerate(groups):
                for i in group:
                    tokens, n = unique[i]
                    if n == 1:
                        out.append((i, (float(first[r, tokens[-1]].double()),
                                        best[r] == tokens[-1])))
                    else:
                        rows.setdefault((r, tokens[-n:-1]), []).append(i)
            keys = list(rows)
            order = sorted(range(len(keys)), key=lambda k: -len(keys[k][1]))
            widths = [len(k[1]) for k in keys]
            lengths = mask.sum(-1)
            for batch in self._batches(order, widths):
                width = max(widths[k] for k in batch)
                owner = torch.tensor([keys[k][0] for k in batch], device=self.device)
                cont = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                cont_mask = torch.zeros((len(batch), width), dtype=torch.long)
                for b, k in enumerate(batch):
                    cont[b, :widths[k]] = torch.tensor(keys[k][1], dtype=torch.long)
                    cont_mask[b, :widths[k]] = 1
                cont, cont_mask = cont.to(self.device), cont_mask.to(self.device)
                past = DynamicCache(ddp_cache_data=[(k.index_select(0, owner),
                                                     v.index_select(0, owner))
                                                    for k, v in saved])
                step = torch.arange(width, device=self.device)
                logits = self.model(
                    input_ids=cont,
                    attention_mask=torch.cat([mask.index_select(0, owner), cont_mask], dim=1),
                    position_ids=lengths.index_select(0, owner)[:, None] + step[None, :],
                    past_key_values=past, use_cache=True).logits
                del past
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                for b, k in enumerate(batch):
                    r = keys[k][0]
                    for i in rows[keys[k]]:
                        tokens, n = unique[i]
                        target = torch.tensor(tokens[-n + 1:], device=self.device)
                        scored = logprobs[b, :n - 1, :]
                        picked = scored.gather(-1, target[:, None]).squeeze(-1)
                        total = float(first[r, tokens[-n]].double() + picked.double().sum())
                        greedy = best[r] == tokens[-n] and bool(
                            (scored.argmax(-1) == target).all())
                        out.append((i, (total, greedy)))
        return out

    def _shrinking_on_oom(self, size: int, work: Callable[..., T], *args: Any) -> T | None:
        """Run one batch; on out-of-memory halve the batch size and return None (retry).

        With ``--batch-size auto`` this finds the largest batch that fits; a fixed batch size
        that does not fit is an error that says what to do.
        """
        import torch

        try:
            return work(*args)
        except torch.OutOfMemoryError:
            if not self.auto_batch or size == 1:
                raise ModelError(
                    f"out of memory on {self.device} with a batch of {size} "
                    f"(model {self.info.spec}).",
                    hint="Use --batch-size auto, a smaller --batch-size, or a shorter "
                         "max_length.") from None
            self.batch_size = max(1, size // 2)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return None

    def _batches(self, order: list[int], keeps: list[int]) -> Iterator[list[int]]:
        """Rows in ``order``, at most batch_size per batch and within the logit budget."""
        batch: list[int] = []
        keep = 0
        for r in order:
            n = keeps[r]
            size = len(batch) + 1
            if batch and (size > self.batch_size
                          or size * max(keep, n) * self.vocab_size * 4 > LOGIT_BUDGET_BYTES):
                yield batch
                batch, keep = [], 0
            batch.append(r)
            keep = max(keep, n)
        if batch:
            yield batch

    def _forward(self, unique: list[Unit],
                 rows: list[list[int]]) -> list[tuple[int, tuple[float, bool]]]:
        """Score every unit of ``rows`` (units sharing one input per row) in one pass."""
        import torch

        inputs = [unique[row[0]][0][:-1] for row in rows]
        keep = max(unique[i][1] for row in rows for i in row)
        ids, mask = _left_pad(inputs, self.pad_id, self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs: dict[str, Any] = {"logits_to_keep": keep} if self._keep_arg else {}
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                use_cache=False, **kwargs).logits[:, -keep:, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for r, row in enumerate(rows):
            for i in row:
                tokens, n = unique[i]
                target = torch.tensor(tokens[-n:], device=self.device)
                scored = logprobs[r, keep - n:, :]
                picked = scored.gather(-1, target[:, None]).squeeze(-1)
                greedy = bool((scored.argmax(-1) == target).all())
                out.append((i, (float(picked.double().sum()), greedy)))
        return out

    # -- generation --------------------------------------------------------------------------

    def _generate_batch(self, inputs: list[list[int]], max_new: int,
                        stop: tuple[str, ...]) -> list[str]:
        import torch
        from transformers import GenerationConfig

        ids, mask = _left_pad(inputs, self.pad_id, self.device)
        config = GenerationConfig(max_new_tokens=max_new, do_sample=False, num_beams=1,
                                  pad_token_id=self.pad_id, stop_strings=list(stop) or None,
                                  eos_token_id=self.model.generation_config.eos_token_id
                                  or self.tokenizer.eos_token_id)
        with torch.inference_mode():
            generated = self.model.generate(input_ids=ids, attention_mask=mask,
                                            generation_config=config, tokenizer=self.tokenizer)
        new = generated[:, ids.shape[1]:]
        return [cut_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), stop)
                for row in new]

    def _auto_batch_size(self) -> int:
        import torch

        return 64 if torch.cuda.is_available() else 16


def _left_pad(rows: list[Sequence[int]], pad_id: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


def _virtual_tokens(model: Any) -> int:
    """Virtual tokens a peft prompt-learning adapter adds to every input (0 for others)."""
    config = getattr(model, "peft_config", {}).get("default")
    return int(getattr(config, "num_virtual_tokens", 0) or 0)


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def _rolling_windows(tokens: list[int], prefix: int, max_len: int) -> Iterator[Unit]:
    """lm-eval's get_rolling_token_windows (context_len=1) as (sequence, n scored) units."""
    if not tokens:
        return
    first = min(max_len, len(tokens))
    yield tuple([prefix] + tokens[:first]), first
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_len)
        end = predicted + n
        yield tuple(tokens[max(0, end - max_len - 1):end]), n
        predicted += n
