"""Row formats of training files and how a row becomes text with response spans.

Three formats are understood:

- ``instruction``: ``instruction``, optional ``input``, ``output``;
- ``prompt_completion``: ``prompt``, ``completion``;
- ``messages``: ``messages``, a list of ``{role, content}`` with roles system/user/assistant
  and at least one assistant turn.

:func:`render` turns a row into the full text and the character spans that are learnt
(the "response"), with the model's chat template or with a plain layout. The tokenizer's
EOS token closes every response span so the model learns to stop.
"""

from __future__ import annotations

from typing import Any

from ftguard.errors import DataError, Problem

FORMATS: tuple[str, ...] = ("instruction", "prompt_completion", "messages")
KEYS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "input", "output"),
    "prompt_completion": ("prompt", "completion"),
    "messages": ("messages",),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "messages": ("messages",),
}
ROLES: tuple[str, ...] = ("system", "user", "assistant")
_EXPECTED = ('one of {"instruction", "input" (optional), "output"}, {"prompt", "completion"} '
             'or {"messages": [{"role": ..., "content": ...}, ...]}')

Span = tuple[int, int]


def detect_format(row: dict[str, Any], path: str, line: int | None = None) -> str | Problem:
    """The format of ``row`` from its keys, or a Problem naming ``path:line`` and the keys."""
    if "messages" in row:
        return "messages"
    if "instruction" in row:
        return "instruction"
    if "prompt" in row:
        return "prompt_completion"
    keys = ", ".join(repr(k) for k in row) or "none"
    return Problem(path, line, None, f"cannot tell the row format from its keys ({keys}); "
                                     f"expected {_EXPECTED}, or set data.format.")


def extract(row: dict[str, Any], fmt: str, path: str,
            line: int | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check ``row`` against ``fmt``; return its normalised fields or the problems found.

    The fields are ``{"messages": [...]}`` for ``messages`` and the format's string keys
    otherwise (``input`` becomes ``""`` when absent or null).
    """
    def problem(message: str, key: str | None = None) -> list[Problem]:
        return [Problem(path, line, key, message)]

    if fmt not in FORMATS:
        return None, problem(f"unknown row format {fmt!r}; use one of {', '.join(FORMATS)}.")
    expected = ", ".join(repr(k) + ("" if k in _REQUIRED[fmt] else " (optional)")
                         for k in KEYS[fmt])
    for key in _REQUIRED[fmt]:
        if key not in row:
            return None, problem(f"missing key {key!r}: a {fmt} row needs {expected} "
                                 f"(this row has {', '.join(repr(k) for k in row) or 'no keys'}).",
                                 key)
    if fmt == "messages":
        return _extract_messages(row["messages"], path, line)
    fields: dict[str, Any] = {}
    for key in KEYS[fmt]:
        value = row.get(key)
        if value is None and key == "input":
            value = ""
        if not isinstance(value, str):
            return None, problem(f"{key!r} must be a string, not {type(value).__name__}; "
                                 f"a {fmt} row needs {expected} as strings.", key)
        fields[key] = value
    return fields, []


def _extract_messages(messages: Any, path: str,
                      line: int | None) -> tuple[dict[str, Any] | None, list[Problem]]:
    how = ('"messages" must be a list like [{"role": "user", "content": "..."}, '
           '{"role": "assistant", "content": "..."}]')
    if not isinstance(messages, list) or not messages:
        return None, [Problem(path, line, "messages", f"{how}.")]
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        key = f"messages[{i}]"
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return None, [Problem(path, line, key, f"each message needs 'role' and 'content'; {how}.")]
        role, content = message["role"], message["content"]
        if role not in ROLES:
            return None, [Problem(path, line, f"{key}.role",
                                  f"role {role!r} is not one of {', '.join(ROLES)}.")]
        if not isinstance(content, str):
            return None, [Problem(path, line, f"{key}.content",
                                  f"content must be a string, not {type(content).__name__}.")]
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in clean):
        return None, [Problem(path, line, "messages",
                              "has no assistant turn, so there is nothing to learn; add at "
                              'least one {"role": "assistant", "content": ...} message.')]
    return {"messages": clean}, []


def use_chat_template(tokenizer: Any, setting: str) -> bool:
    """Whether rows are formatted with the chat template (``auto``/``always``/``never``)."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if setting == "never":
        return False
    if setting == "always" and not has:
        raise DataError("data.chat_template is 'always' but the model's tokenizer has no chat "
                        "template.", hint="Set data.chat_template: auto or never, or use a model "
                                          "whose tokenizer_config.json has a chat_template.")
    return has


def as_messages(fields: dict[str, Any], fmt: str) -> list[dict[str, str]]:
    """The row as a chat: instruction (+ input) or prompt as user, output/completion as assistant."""
    if fmt == "messages":
        return list(fields["messages"])
    if fmt == "instruction":
        user = fields["instruction"] + (f"\n\n{fields['input']}" if fields.get("input") else "")
        return [{"role": "user", "content": user},
                {"role": "assistant", "content": fields["output"]}]
    return [{"role": "user", "content": fields["prompt"]},
            {"role": "assistant", "content": fields["completion"]}]


def render(fields: dict[str, Any], fmt: str, tokenizer: Any,
           use_chat_template: bool) -> tuple[str, list[Span]]:
    """The row's full text and its response spans (character ranges learnt with weight 1).

    Raises DataError when the chat template does not render conversations prefix-stably
    (then the assistant turns cannot be located).
    """
    if use_chat_template:
        text, spans = _render_chat(as_messages(fields, fmt), tokenizer)
    else:
        text, spans = _render_plain(fields, fmt)
    return _add_eos(text, spans, getattr(tokenizer, "eos_token", None))


def _render_plain(fields: dict[str, Any], fmt: str) -> tuple[str, list[Span]]:
    if fmt == "instruction":
        prompt = fields["instruction"] + "\n\n"
        if fields.get("input"):
            prompt += fields["input"] + "\n\n"
        return prompt + fields["output"], [(len(prompt), len(prompt) + len(fields["output"]))]
    if fmt == "prompt_completion":
        prompt, completion = fields["prompt"], fields["completion"]
        return prompt + completion, [(len(prompt), len(prompt) + len(completion))]
    text, spans = "", []
    for i, message in enumerate(fields["messages"]):
        text += ("\n" if i else "") + f"{message['role']}: "
        if message["role"] == "assistant":
            spans.append((len(text), len(text) + len(message["content"])))
        text += message["content"]
    return text, spans


def _render_chat(messages: list[dict[str, str]], tokenizer: Any) -> tuple[str, list[Span]]:
    def apply(msgs: list[dict[str, str]], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(msgs, tokenize=False,
                                             add_generation_prompt=generation_prompt)

    full = apply(messages, False)
    spans: list[Span] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = apply(messages[:i], True) if i else _generation_prefix(tokenizer, apply)
        upto = apply(messages[: i + 1], False)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise DataError(
                f"the model's chat template is not prefix-stable: rendering the first {i} "
                f"message(s) with a generation prompt is not a prefix of rendering {i + 1}, so "
                "the assistant turns cannot be located for prompt masking.",
                hint="Set data.chat_template: never to train on a plain text layout.")
        spans.append((len(prefix), len(upto)))
    return full, spans


def _generation_prefix(tokenizer: Any, apply: Any) -> str:
    # An assistant turn first: some templates refuse an empty conversation.
    try:
        return apply([], True)
    except Exception:  # noqa: BLE001 - any template error means "no prefix"
        return ""


def _add_eos(text: str, spans: list[Span], eos: str | None) -> tuple[str, list[Span]]:
    """Insert ``eos`` at the end of each response span that does not already end with it."""
    if not eos:
        return text, spans
    out, shift, new_spans, last = [], 0, [], 0
    for start, end in spans:
        out.append(text[last:end])
        if text[start:end].rstrip().endswith(eos):
            new_spans.append((start + shift, end + shift))
        else:
            out.append(eos)
            new_spans.append((start + shift, end + shift + len(eos)))
            shift += len(eos)
        last = end
    out.append(text[last:])
    return "".join(out), new_spans
