"""A Hugging Face tokenizer's chat template: applied here for the in-process backend and for
``ftguard suites show --render``, which loads the tokenizer alone (no weights)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftguard.errors import ModelError


def chat_text(tokenizer: Any, spec: str, messages: Sequence[dict[str, str]]) -> str:
    """``messages`` through the tokenizer's chat template with the assistant's turn opened;
    a ModelError with a fix when the model has no template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"model {spec} has no chat template, but a task sets "
                         "'chat_template: true'.",
                         hint="Set chat_template: false for this model, or use an instruct "
                              "model that ships one.")
    return str(tokenizer.apply_chat_template(list(messages), tokenize=False,
                                             add_generation_prompt=True))


class TokenizerChat:
    """The chat template of a model whose tokenizer alone is loaded."""

    def __init__(self, tokenizer: Any, spec: str) -> None:
        self.tokenizer, self.spec = tokenizer, spec

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return chat_text(self.tokenizer, self.spec, messages)
