"""Decoding settings on OpenAI-compatible servers (``--backend openai``).

A greedy request is sent as it always was (``temperature: 0``, ``n: 1``). The ``n`` answers
of a sampled item go out as one request with ``n``, ``temperature``, ``top_p``, ``seed`` and,
when set, ``top_k`` (vLLM's extension parameter; a hosted API without it answers an error),
and choice ``j`` (by its ``index``) answers the request for sample ``j``. The seed is the
item's own (:meth:`~ftguard.models.base.Decoding.item_seed`: the decoding seed and the exact
prompt), so every item draws differently and a cache miss of one answer asks the same
request again. Servers honour ``seed`` as they can: vLLM reproduces its answers, hosted APIs
promise "best effort".

Beam search has no parameter in the OpenAI API: a task with ``num_beams`` is refused before
any request (:data:`UNSUPPORTED`, checked by :func:`ftguard.engine.answers.check_backend`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftguard.errors import ModelError
from ftguard.models.base import GenerateRequest

UNSUPPORTED: dict[str, str] = {
    "num_beams": "the OpenAI completions API has no beam search",
}
"""Decoding settings an OpenAI-compatible server cannot honour, with why."""


def answer_groups(requests: Sequence[GenerateRequest]) -> list[list[int]]:
    """Request indices asked together: a greedy request alone, the sampled answers of one
    context (same settings) in one group."""
    groups: dict[object, list[int]] = {}
    for i, r in enumerate(requests):
        key = (i,) if r.decoding is None else (r.context, r.max_new_tokens, r.stop, r.decoding)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def decoding_fields(request: GenerateRequest) -> dict[str, Any]:
    """The request body's decoding fields (without ``max_tokens`` and ``stop``)."""
    d = request.decoding
    if d is None:
        return {"temperature": 0.0, "n": 1}
    if d.num_beams > 1:
        raise ModelError(f"num_beams {d.num_beams}: {UNSUPPORTED['num_beams']}.",
                         hint="Evaluate beam search in-process (--backend hf).")
    return {"temperature": d.temperature, "top_p": d.top_p, "n": d.n,
            "seed": d.item_seed(request.context),
            **({"top_k": d.top_k} if d.top_k is not None else {})}


def indexed_choices(answer: Any) -> list[Any]:
    """A completion answer's ``choices`` by ``index``; ``[]`` when it has none readable."""
    try:
        return sorted(answer["choices"], key=lambda c: int(c.get("index", 0)))
    except (KeyError, TypeError, ValueError, AttributeError):
        return []


def sample_choices(answer: Any, request: GenerateRequest) -> list[dict[str, Any]]:
    """The choices of one completion request, by ``index``: ``n`` of them when sampled."""
    n = 1 if request.decoding is None else request.decoding.n
    choices = indexed_choices(answer)
    if len(choices) != n:
        raise ModelError(f"the server answered {len(choices)} choice(s) to a request for n={n}: "
                         f"{str(answer)[:200]}",
                         hint="The server must honour 'n' on /v1/completions (vLLM does).")
    return [dict(c) for c in choices]
