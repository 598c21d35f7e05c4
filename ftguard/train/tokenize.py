"""Tokenising rendered rows into training examples with per-token loss weights.

``weights[i]`` is the loss weight of *predicting* token ``i`` (from the tokens before it):
1.0 for tokens of a response span, ``prompt_loss_weight`` elsewhere. Token 0 is never
predicted, so its weight is always 0 (which also keeps packed examples independent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ftguard.errors import DataError

Status = Literal["ok", "truncated", "dropped"]


@dataclass
class Example:
    """One tokenised training example."""

    input_ids: list[int]
    """Token ids, BOS first when the tokenizer has one."""
    weights: list[float]
    """Loss weight of predicting each token (1.0 response, prompt_loss_weight otherwise)."""
    source: int = 0
    """Index of the file (mix source) it came from."""

    def to_feature(self) -> dict[str, Any]:
        """The example as a collator feature."""
        return {"input_ids": self.input_ids, "weights": self.weights}


def _check_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("training needs a fast tokenizer (tokenizer.json) to locate the "
                        "response tokens; this model's tokenizer is a slow one.",
                        hint="Install `tokenizers` and save the tokenizer with a tokenizer.json.")


def encode(text: str, spans: list[tuple[int, int]], tokenizer: Any, max_length: int,
           overlong: str, prompt_loss_weight: float) -> tuple[Example | None, Status]:
    """Tokenise ``text``; weight 1 on tokens overlapping a response span.

    Returns ``(example, "ok")``, ``(example, "truncated")`` when it was cut to
    ``max_length`` tokens, or ``(None, "dropped")`` when it is too long with
    ``overlong="drop"`` or no response token is left after truncation (nothing to learn).
    """
    _check_fast(tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in enc["offset_mapping"]]
    weights = [1.0 if _overlaps(o, spans) else float(prompt_loss_weight) for o in offsets]
    bos_id, bos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "bos_token", None)
    if bos_id is not None and not (bos and text.startswith(bos)):
        ids.insert(0, bos_id)
        weights.insert(0, 0.0)
    if weights:
        weights[0] = 0.0
    status: Status = "ok"
    if len(ids) > max_length:
        if overlong == "drop":
            return None, "dropped"
        ids, weights, status = ids[:max_length], weights[:max_length], "truncated"
    if not any(w == 1.0 for w in weights[1:]):
        return None, "dropped"
    return Example(ids, weights), status


def _overlaps(offset: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    start, end = offset
    if end <= start:  # zero-width tokens (none in practice) follow their start position
        return any(s <= start < e for s, e in spans)
    return any(start < e and end > s for s, e in spans)
