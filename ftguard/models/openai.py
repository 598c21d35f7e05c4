"""A model behind an OpenAI-compatible server (vLLM, SGLang...): ``--backend openai``.

Every text is tokenised by the server itself (``POST /tokenize``), and requests are sent as
token ids, so the tokens scored are exactly the server model's and are split exactly as the
in-process backend splits them (:mod:`ftguard.models.hf_encode`, lm-eval's rules):

- ``loglikelihood`` and ``loglikelihood_rolling``: ``/v1/completions`` with ``echo: true,
  logprobs: 1, max_tokens: 1`` (lm-eval's ``local-completions`` contract); the prompt's token
  log-probabilities are summed over the scored tokens, and a token is greedy when it is the
  most likely one (vLLM's rank 1, else the top log-probability);
- ``generate``: ``/v1/completions`` with ``temperature: 0``, the stop strings and
  ``max_tokens``, the answer cut at the first stop string as in-process; the choice's
  ``finish_reason`` says whether ``max_tokens`` cut it (``length``) or not (``stop``);
  sampled tasks ask an item's n answers in one request (:mod:`.openai_sampling`);
- ``apply_chat_template``: the server renders the messages with its own template
  (``/tokenize`` with ``messages``) and the tokens are turned back into the prompt text.

The empty-context prefix token (BOS, else EOS, as in-process) is read from the model's
``tokenizer_config.json`` (the folder the server reports in ``/v1/models`` when it is
readable here, or ``--tokenizer``) and mapped to an id by the server. A server without
``/tokenize`` gets :class:`ftguard.models.openai_text.OpenAITextBackend` instead (generation
only).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ftguard.errors import ModelError, UsageError
from ftguard.models import hf_encode
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
from ftguard.models.openai_client import ServerClient
from ftguard.models.openai_sampling import (
    answer_groups,
    decoding_fields,
    indexed_choices,
    sample_choices,
)
from ftguard.record import ModelInfo

Unit = hf_encode.Unit
PROMPTS_PER_REQUEST = 8
"""Prompts scored per /v1/completions request (a list of prompts): fewer round trips; the
server batches them with the other requests in flight. One with ``--max-concurrency 1``."""


def describe_server(client: ServerClient, model: str | None) -> tuple[ModelInfo, dict[str, Any]]:
    """The server's entry for ``model`` in ``/v1/models`` (the only one when None) and the
    ModelInfo it gives: the fingerprint covers the model id, its root (folder or hub id),
    parent (a LoRA's base) and context length, never the URL or the key."""
    listing = client.get("/v1/models")
    entries = listing.get("data", []) if isinstance(listing, dict) else []
    ids = [str(e.get("id")) for e in entries if isinstance(e, dict)]
    if model is None:
        if len(ids) != 1:
            raise UsageError(f"--base-url {client.base_url} serves {len(ids)} models "
                             f"({', '.join(ids) or 'none'}); name one with {{--model}}.", option="model")
        model = ids[0]
    entry = next((e for e in entries if isinstance(e, dict) and e.get("id") == model), None)
    if entry is None:
        raise UsageError(f"{{--model}} {model}: not served by {client.base_url} (it serves "
                         f"{', '.join(ids) or 'nothing'}).",
                         hint="Give one of the ids of the server's /v1/models.", option="model")
    # where the tokenizer config may be: the model's folder, else (a LoRA) its base model's
    parent = next((e for e in entries
                   if isinstance(e, dict) and e.get("id") == entry.get("parent")), {})
    entry = {**entry, "roots": [r for r in (entry.get("root"), parent.get("root")) if r]}
    identity = {k: entry.get(k) for k in ("id", "root", "parent", "max_model_len")}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    info = ModelInfo(spec=model, fingerprint=f"sha256:{digest}", dtype="server",
                     backend="openai", path=public_url(client.base_url), device="server")
    return info, entry


def public_url(url: str) -> str:
    """``url`` without user, password or query (which may carry credentials)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class OpenAIBackend:
    """Backend over ``client``; ``entry`` is the model's ``/v1/models`` entry."""

    def __init__(self, client: ServerClient, info: ModelInfo, entry: dict[str, Any], *,
                 tokenizer_dir: str | None = None) -> None:
        self.client = client
        self.info = info
        self.model = info.spec
        self.max_length = int(entry.get("max_model_len") or 2048) - 1  # room for max_tokens 1
        self.tokens = ServerTokenizer(client, self.model, _special_tokens(entry, tokenizer_dir))
        self.batch_size = client.max_concurrency

    # -- the Backend protocol ------------------------------------------------------------------

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        pairs = [hf_encode.split_pair(r.context, r.continuation) for r in requests]
        self.tokens.prefetch([t for c, k in pairs if c for t in (c + k, c)], special=True)
        self.tokens.prefetch([k for c, k in pairs if not c], special=False)
        prefix = self.tokens.prefix_id if any(not c for c, _ in pairs) else None
        units = [hf_encode.encode_pair(self.tokens, c, k, prefix=prefix,
                                       bos_text=self.tokens.bos_text, max_length=self.max_length)
                 for c, k in pairs]
        scored = self._score(units, progress)
        return [LoglikelihoodResult(lp, greedy, n) for (lp, greedy), (_, n) in zip(scored, units)]

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        self.tokens.prefetch([r.text for r in requests], special=True)
        prefix = self.tokens.prefix_id
        if prefix is None:
            raise ModelError(f"model {self.model}: perplexity needs the model's BOS or EOS "
                             "token, and no tokenizer_config.json was found for it.",
                             hint="Pass --tokenizer DIR (the model's folder, or any folder "
                                  "with its tokenizer_config.json).")
        units, owners, counts = hf_encode.rolling_units(requests, self._encode, prefix,
                                                        self.max_length)
        scored = self._score(units, None)
        nll = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, scored):
            nll[owner] -= logprob
        if progress:
            progress(len(requests))
        return [RollingResult(nll[i], counts[i]) for i in range(len(requests))]

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        self.tokens.prefetch([r.context for r in requests], special=True)
        groups = answer_groups(requests)  # a sampled item's n answers in one request
        payloads = []
        for group in groups:
            r = requests[group[0]]
            ids = self._encode(r.context)[-max(1, self.max_length - r.max_new_tokens):]
            payloads.append({"model": self.model, "prompt": ids, **decoding_fields(r),
                             "max_tokens": r.max_new_tokens,
                             **({"stop": list(r.stop)} if r.stop else {})})
        done = (lambda g: progress(len(groups[g]))) if progress else None
        answers = self.client.post_all("/v1/completions", payloads, done)
        out: list[str] = [""] * len(requests)
        for answer, group in zip(answers, groups):
            choices = sample_choices(answer, requests[group[0]])
            for i in group:
                choice, r = choices[requests[i].sample], requests[i]
                out[i] = Generation(cut_at_stop(str(choice["text"]), r.stop),
                                    truncated=length_cut(choice))
        return out

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        ids = self.tokens.chat(messages)
        return self.tokens.decode(ids)

    # -- parts ------------------------------------------------------------------------------------

    def _encode(self, text: str, *, special: bool = True) -> list[int]:
        return hf_encode.encode(self.tokens, text, bos_text=self.tokens.bos_text, special=special)

    def _score(self, units: list[Unit], progress: Progress | None) -> list[tuple[float, bool]]:
        # --max-concurrency 1 means one prompt at a time, also within a request
        per = 1 if self.client.max_concurrency == 1 else PROMPTS_PER_REQUEST
        chunks = [units[i:i + per] for i in range(0, len(units), per)]
        payloads = [{"model": self.model, "prompt": [list(tokens) for tokens, _ in chunk],
                     "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0.0}
                    for chunk in chunks]
        done = (lambda i: progress(len(chunks[i]))) if progress else None
        answers = self.client.post_all("/v1/completions", payloads, done)
        out = []
        for answer, chunk in zip(answers, chunks):
            choices = _choices(answer, len(chunk))
            out += [_prompt_score(c, tokens, n) for c, (tokens, n) in zip(choices, chunk)]
        return out


class ServerTokenizer:
    """The server's tokenizer, shaped like the part of a Hugging Face tokenizer that
    :mod:`ftguard.models.hf_encode` uses; every answer is remembered."""

    def __init__(self, client: ServerClient, model: str, special: dict[str, str]) -> None:
        self.client = client
        self.model = model
        self._ids: dict[tuple[str, bool], list[int]] = {}
        self.pad_token_id = self.unk_token_id = None
        self.bos_token_id = self._special_id(special.get("bos_token"))
        self.eos_token_id = self._special_id(special.get("eos_token"))
        self.prefix_id = hf_encode.prefix_id(self)
        self.bos_text = special.get("bos_token", "") if self.bos_token_id is not None else ""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        key = (text, add_special_tokens)
        if key not in self._ids:
            self._fetch([key])
        return {"input_ids": list(self._ids[key])}

    def prefetch(self, texts: Sequence[str], *, special: bool) -> None:
        """Tokenise ``texts`` now, concurrently, as ``hf_encode.encode(..., special=special)``
        will ask for them (with the BOS rule)."""
        self._fetch([(t, hf_encode.adds_special(t, self.bos_text, special)) for t in texts])

    def _fetch(self, keys: Sequence[tuple[str, bool]]) -> None:
        todo = list(dict.fromkeys(k for k in keys if k not in self._ids))
        answers = self.client.post_all("/tokenize", [
            {"model": self.model, "prompt": t, "add_special_tokens": a} for t, a in todo])
        for key, answer in zip(todo, answers):
            self._ids[key] = [int(t) for t in answer["tokens"]]

    def chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        answer = self.client.post("/tokenize", {"model": self.model, "messages": list(messages),
                                                "add_generation_prompt": True,
                                                "add_special_tokens": False})
        return [int(t) for t in answer["tokens"]]

    def decode(self, ids: int | Sequence[int]) -> str:
        tokens = [ids] if isinstance(ids, int) else list(ids)
        answer = self.client.post("/detokenize", {"model": self.model, "tokens": tokens})
        return str(answer["prompt"])

    def _special_id(self, text: str | None) -> int | None:
        if not text:
            return None
        ids = self(text, add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 else None


def _special_tokens(entry: dict[str, Any], tokenizer_dir: str | None) -> dict[str, str]:
    """BOS and EOS token texts from tokenizer_config.json: in ``tokenizer_dir``, else in the
    folder the server loaded (its ``root``; for a LoRA, also its base's) when readable here."""
    for folder in (tokenizer_dir, *entry.get("roots", [])):
        if not folder:
            continue
        path = Path(os.path.expanduser(str(folder))) / "tokenizer_config.json"
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            if folder == tokenizer_dir:
                raise UsageError(f"--tokenizer {tokenizer_dir}: no readable "
                                 "tokenizer_config.json in it.") from None
            continue
        return {k: v["content"] if isinstance(v, dict) else v for k in ("bos_token", "eos_token")
                if isinstance(v := config.get(k), (str, dict))}
    return {}


def first_choice(answer: Any) -> dict[str, Any]:
    """The one choice of a completion of one prompt."""
    return _choices(answer, 1)[0]


def length_cut(choice: dict[str, Any]) -> bool | None:
    """Whether a completion choice stopped because ``max_tokens`` ran out: its
    ``finish_reason`` is ``length`` (True), ``stop`` (an end-of-sequence token or a stop
    string: False), anything else or missing (None, unknown)."""
    reason = choice.get("finish_reason")
    return True if reason == "length" else False if reason == "stop" else None


def _choices(answer: Any, n: int) -> list[dict[str, Any]]:
    """The ``n`` choices of a completion of ``n`` prompts, in prompt order."""
    choices = indexed_choices(answer)
    if len(choices) != n:
        raise ModelError(f"the server answered {len(choices)} completion(s) for {n} prompt(s): "
                         f"{str(answer)[:200]}",
                         hint="The server must accept a list of prompts in one "
                              "/v1/completions request (vLLM does).")
    return [dict(c) for c in choices]


def _prompt_score(choice: dict[str, Any], tokens: Sequence[int], n: int) -> tuple[float, bool]:
    """Summed log-probability of the last ``n`` prompt tokens, and whether each was the most
    likely token, from an echoed completion's choice."""
    logprobs = choice.get("logprobs") or {}
    values = (logprobs.get("token_logprobs") or [])[:len(tokens)]
    if len(values) != len(tokens) or any(v is None for v in values[-n:]):
        raise ModelError(f"the server echoed {len(values)} prompt log-probabilities for "
                         f"{len(tokens)} prompt tokens.",
                         hint="The server must support echo with logprobs on /v1/completions "
                              "(vLLM does; llama.cpp's server shifts them and is refused).")
    scored = values[-n:]
    ranks = choice.get("prompt_logprobs")
    if isinstance(ranks, list) and len(ranks) >= len(tokens):
        greedy = all(_rank(ranks[i], tokens[i]) == 1 for i in range(len(tokens) - n, len(tokens)))
    else:
        tops = (logprobs.get("top_logprobs") or [])[:len(tokens)][-n:]
        greedy = all(isinstance(top, dict) and top and v >= max(top.values()) - 1e-6
                     for v, top in zip(scored, tops))
    return float(sum(scored)), bool(greedy)


def _rank(entry: Any, token: int) -> int | None:
    if not isinstance(entry, dict):
        return None
    found = entry.get(str(token))
    return found.get("rank") if isinstance(found, dict) else None


def _ticker(progress: Progress | None) -> Callable[[int], None] | None:
    return (lambda _: progress(1)) if progress else None
