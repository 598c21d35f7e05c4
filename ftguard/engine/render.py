"""The exact text a model receives for an item: one function used by the runner (and so the
record) and by ``ftguard suites show --render``."""

from __future__ import annotations

from collections.abc import Sequence

from ftguard.models.base import ChatTemplater
from ftguard.suite import Instance, TaskSpec


def model_inputs(instances: Sequence[Instance], backend: ChatTemplater | None) -> list[str]:
    """Each item's context as sent: few-shot block and prompt, wrapped in ``backend``'s chat
    template for chat tasks (``backend`` may be None when no instance uses chat turns). The
    model's tokenizer may still add special tokens such as BOS in front."""
    if backend is None and any(i.messages is not None for i in instances):
        raise ValueError("a chat-template task needs the model's backend to render its prompts")
    return [i.context if i.messages is None else backend.apply_chat_template(i.messages)  # type: ignore[union-attr]
            for i in instances]


def continuations(spec: TaskSpec, instance: Instance) -> list[str]:
    """What is scored after the context for each choice or label (choice, classify)."""
    return [spec.target_delimiter + choice for choice in instance.choices]
