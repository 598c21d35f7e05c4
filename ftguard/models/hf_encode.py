"""Requests to token units, following lm-eval's HF backend so scores match it.

A unit is a token sequence and how many of its trailing tokens are scored. Contexts and
continuations are split as lm-eval splits them (the context's trailing spaces move into the
continuation), texts are encoded with the tokenizer's own special tokens unless they already
start with the BOS text, an empty context becomes the BOS (or EOS) token, and rolling windows
are lm-eval's ``get_rolling_token_windows`` with ``context_len=1``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ftguard.errors import ModelError
from ftguard.models.base import RollingRequest

Unit = tuple[tuple[int, ...], int]
"""Token sequence and how many trailing tokens of it are scored."""


def pad_id(tokenizer: Any) -> int:
    """The token that fills padding: pad, else EOS, else UNK, else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def prefix_id(tokenizer: Any) -> int | None:
    """The token an empty context is replaced by (and rolling windows start with): BOS or EOS."""
    bos = tokenizer.bos_token_id
    return bos if bos is not None else tokenizer.eos_token_id


def prefix_text(tokenizer: Any, prefix: int | None) -> str:
    """The prefix token as text ("" without one): texts starting with it get no BOS added."""
    return "" if prefix is None else str(tokenizer.decode(prefix))


def encode(tokenizer: Any, text: str, *, bos_text: str, special: bool = True) -> list[int]:
    """lm-eval's ``tok_encode``: with the tokenizer's own special tokens (the BOS that
    Llama, Gemma or Mistral tokenizers prepend; models score differently without it),
    except when the text already starts with the BOS text, as chat-template output does."""
    return list(tokenizer(text, add_special_tokens=adds_special(text, bos_text, special))
                ["input_ids"])


def adds_special(text: str, bos_text: str, special: bool = True) -> bool:
    """Whether :func:`encode` tokenises ``text`` with the tokenizer's special tokens."""
    return special and not (bos_text and text.startswith(bos_text))


def split_pair(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's split: the context's trailing spaces move into the continuation."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        return context[:-spaces], context[-spaces:] + continuation
    return context, continuation


def encode_pair(tokenizer: Any, context: str, continuation: str, *, prefix: int | None,
                bos_text: str, max_length: int) -> Unit:
    """One log-likelihood request as a unit, left-truncated to ``max_length + 1`` tokens."""
    context, continuation = split_pair(context, continuation)
    if not continuation:
        raise ModelError("a log-likelihood request has an empty continuation.")
    if context:
        whole = encode(tokenizer, context + continuation, bos_text=bos_text)
        context_ids = encode(tokenizer, context, bos_text=bos_text)
        continuation_ids = whole[len(context_ids):]
    else:
        continuation_ids = encode(tokenizer, continuation, bos_text=bos_text, special=False)
        if continuation_ids and continuation_ids[0] == prefix:
            # lm-eval: a continuation that starts with the BOS token is its own context
            context_ids, continuation_ids = continuation_ids[:1], continuation_ids[1:]
        else:
            context_ids = [prefix]
    if not continuation_ids:
        raise ModelError(f"continuation {continuation!r} encodes to no tokens.")
    full = (context_ids + continuation_ids)[-(max_length + 1):]
    return tuple(full), len(continuation_ids)


def rolling_windows(tokens: list[int], prefix: int, max_len: int) -> Iterator[Unit]:
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


def rolling_units(requests: Sequence[RollingRequest], encode_text: Callable[[str], list[int]],
                  prefix: int, max_length: int) -> tuple[list[Unit], list[int], list[int]]:
    """Every request's rolling windows: the units, the request each belongs to, and each
    request's token count."""
    units: list[Unit] = []
    owners: list[int] = []
    counts: list[int] = []
    for index, request in enumerate(requests):
        tokens = encode_text(request.text)
        window = min(request.max_length or max_length, max_length)
        mine = list(rolling_windows(tokens, prefix, window))
        units += mine
        owners += [index] * len(mine)
        counts.append(len(tokens))
    return units, owners, counts
