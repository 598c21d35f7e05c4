"""Generation only, through an OpenAI-compatible server that cannot tokenise for ftguard.

A server without ``/tokenize`` (llama.cpp's server, TGI's OpenAI route, hosted APIs) can
still answer ``generate`` tasks: plain prompts go to ``/v1/completions`` as text, and tasks
with ``chat_template: true`` go to ``/v1/chat/completions`` as messages, rendered by the
server's own template. Scoring tasks (choice, classify, perplexity) are refused: they need
the server's tokens and echoed prompt log-probabilities to be exact. The answers are the
server's; they match the in-process backend only as far as the server tokenises and
templates as the model's own tokenizer does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ftguard.errors import ModelError
from ftguard.models.base import (
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
    RollingRequest,
    RollingResult,
    cut_at_stop,
)
from ftguard.models.openai import length_cut
from ftguard.models.openai_client import ServerClient, ServerError
from ftguard.models.openai_sampling import answer_groups, decoding_fields, sample_choices
from ftguard.record import ModelInfo

CHAT = "\x00ftguard-chat\x00"
"""Prefix of a chat prompt kept as its messages (JSON), sent to /v1/chat/completions."""


def has_tokenize(client: ServerClient, model: str) -> bool:
    """Whether the server tokenises for ftguard (``POST /tokenize``, as vLLM and SGLang do)."""
    try:
        client.post("/tokenize", {"model": model, "prompt": "a", "add_special_tokens": False})
    except ServerError as exc:
        if exc.status in (404, 405):
            return False
        raise
    return True


class OpenAITextBackend:
    """``generate`` through a server's completion and chat-completion routes."""

    def __init__(self, client: ServerClient, info: ModelInfo) -> None:
        self.client = client
        self.info = info.model_copy(update={"dtype": "server-text"})
        self.model = info.spec
        self.batch_size = client.max_concurrency

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        raise self._no_scoring()

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        raise self._no_scoring()

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        groups = answer_groups(requests)  # a sampled item's n answers in one request
        chat = [g for g in groups if requests[g[0]].context.startswith(CHAT)]
        plain = [g for g in groups if not requests[g[0]].context.startswith(CHAT)]
        out = [""] * len(requests)
        for path, part in (("/v1/chat/completions", chat), ("/v1/completions", plain)):
            done = (lambda g, part=part: progress(len(part[g]))) if progress else None
            answers = self.client.post_all(path, [_payload(self.model, requests[g[0]])
                                                  for g in part], done)
            for group, answer in zip(part, answers):
                choices = sample_choices(answer, requests[group[0]])
                for i in group:
                    choice, r = choices[requests[i].sample], requests[i]
                    text = ((choice.get("message") or {}).get("content") if r.context.startswith(
                        CHAT) else choice.get("text"))
                    out[i] = Generation(cut_at_stop(str(text or ""), r.stop),
                                        truncated=length_cut(choice))
        return out

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return CHAT + json.dumps(list(messages), ensure_ascii=False, sort_keys=True)

    def _no_scoring(self) -> ModelError:
        return ModelError(f"{self.client.url('/tokenize')}: the server has no /tokenize "
                          "endpoint, so it can answer generate tasks only. Scoring tasks "
                          "(choice, classify, perplexity) need the served model's own tokens "
                          "and their echoed log-probabilities to be exact.",
                          hint="Serve the model with vLLM or SGLang (both have /tokenize), "
                               "evaluate it in-process (--backend hf), or give only suites of "
                               "generate tasks.")


def _payload(model: str, request: GenerateRequest) -> dict[str, Any]:
    """A chat request (messages) or a completion request (the text) for ``request``."""
    ask: dict[str, Any] = ({"messages": json.loads(request.context[len(CHAT):])}
                           if request.context.startswith(CHAT) else {"prompt": request.context})
    return {"model": model, **ask, **decoding_fields(request),
            "max_tokens": request.max_new_tokens,
            **({"stop": list(request.stop)} if request.stop else {})}
