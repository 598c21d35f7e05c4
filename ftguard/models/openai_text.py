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
from ftguard.models.openai import first_choice, length_cut
from ftguard.models.openai_client import ServerClient, ServerError
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
        chat = [i for i, r in enumerate(requests) if r.context.startswith(CHAT)]
        plain = [i for i, r in enumerate(requests) if not r.context.startswith(CHAT)]
        out = [""] * len(requests)
        done = (lambda _: progress(1)) if progress else None
        answers = self.client.post_all("/v1/chat/completions", [
            {"model": self.model, "messages": json.loads(requests[i].context[len(CHAT):]),
             **_decoding(requests[i])} for i in chat], done)
        for i, answer in zip(chat, answers):
            choice = first_choice(answer)
            message = choice.get("message") or {}
            out[i] = Generation(cut_at_stop(str(message.get("content") or ""), requests[i].stop),
                                truncated=length_cut(choice))
        answers = self.client.post_all("/v1/completions", [
            {"model": self.model, "prompt": requests[i].context, **_decoding(requests[i])}
            for i in plain], done)
        for i, answer in zip(plain, answers):
            choice = first_choice(answer)
            out[i] = Generation(cut_at_stop(str(choice.get("text") or ""), requests[i].stop),
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


def _decoding(request: GenerateRequest) -> dict[str, Any]:
    return {"temperature": 0.0, "max_tokens": request.max_new_tokens, "n": 1,
            **({"stop": list(request.stop)} if request.stop else {})}
