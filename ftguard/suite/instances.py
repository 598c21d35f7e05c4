"""Turning a task's rows into instances: the exact prompt, choices and answer of each item."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

from ftguard.errors import Problem
from ftguard.suite.jsonl import Row
from ftguard.suite.schema import TaskSpec
from ftguard.suite.templates import TemplateError, compile_template, render

Message = dict[str, str]


@dataclass(frozen=True)
class Instance:
    """One scored item, fully rendered."""

    id: str
    """Unique id of the item within its task."""
    line: int
    """Line of the item in its data file."""
    context: str
    """Prompt text, few-shot examples included (used when ``messages`` is None)."""
    messages: tuple[Message, ...] | None
    """Chat turns, when the task uses the model's chat template."""
    choices: tuple[str, ...]
    """Choice texts (choice) or labels (classify); empty for other kinds."""
    gold: int | None
    """Index of the correct choice or label."""
    references: tuple[str, ...]
    """Reference answers (generate)."""
    prompt: str = ""
    """The item's own rendered prompt, without few-shot examples (for reports)."""

    @property
    def prompt_hash(self) -> str:
        payload = json.dumps([self.context, self.messages, self.choices], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class _Parts:
    prompt: str
    choices: tuple[str, ...]
    gold: int | None
    references: tuple[str, ...]

    def answer(self) -> str:
        if self.gold is not None:
            return self.choices[self.gold]
        return self.references[0] if self.references else ""


class _Renderer:
    """Renders one task's templates for a row; raises TemplateError with the reason."""

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self.prompt = compile_template(task.prompt)
        self.target = compile_template(task.target) if task.target is not None else None
        self.target_index = (compile_template(task.target_index)
                             if task.target_index is not None else None)
        self.choices = [compile_template(c) for c in task.choices or []]

    def parts(self, fields: dict[str, Any]) -> _Parts:
        prompt = render(self.prompt, fields)
        kind = self.task.kind
        if kind == "perplexity":
            if not prompt.strip():
                raise TemplateError("the text to score is empty")
            return _Parts(prompt, (), None, ())
        if kind == "generate":
            return _Parts(prompt, (), None, self._references(fields))
        choices = self._choices(fields) if kind == "choice" else tuple(self.task.labels or ())
        return _Parts(prompt, choices, self._gold(fields, choices), ())

    def _references(self, fields: dict[str, Any]) -> tuple[str, ...]:
        if self.target is not None:
            return (render(self.target, fields),)
        name = self.task.target_field or ""
        if name not in fields:
            raise TemplateError(f"target_field '{name}' is missing from this item")
        value = fields[name]
        refs = [value] if isinstance(value, str) else value
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise TemplateError(f"field '{name}' must be a string or a non-empty list of strings")
        return tuple(refs)

    def _choices(self, fields: dict[str, Any]) -> tuple[str, ...]:
        if self.choices:
            values = [render(c, fields) for c in self.choices]
        else:
            name = self.task.choices_field or ""
            if name not in fields:
                raise TemplateError(f"choices_field '{name}' is missing from this item")
            values = fields[name]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise TemplateError(f"field '{name}' must be a list of strings")
        if len(values) < 2:
            raise TemplateError("an item needs at least two choices")
        if any(not v for v in values):
            raise TemplateError("a choice is empty")
        return tuple(values)

    def _gold(self, fields: dict[str, Any], choices: tuple[str, ...]) -> int:
        what = "choice" if self.task.kind == "choice" else "label"
        if self.target_index is not None:
            text = render(self.target_index, fields).strip()
            try:
                index = int(text)
            except ValueError:
                raise TemplateError(f"target_index rendered {text!r}, not an integer") from None
            if not 0 <= index < len(choices):
                raise TemplateError(f"target_index {index} is out of range for {len(choices)} "
                                    f"{what}s (0-based)")
            return index
        assert self.target is not None
        text = render(self.target, fields)
        matches = [i for i, c in enumerate(choices) if c == text]
        if not matches:
            matches = [i for i, c in enumerate(choices) if c.strip() == text.strip()]
        if len(matches) != 1:
            shown = ", ".join(repr(c) for c in choices[:8])
            problem = "matches none" if not matches else "matches more than one"
            raise TemplateError(f"target {text!r} {problem} of the {what}s ({shown})")
        return matches[0]


def item_id(row: Row, id_field: str) -> str:
    value = row.fields.get(id_field)
    return f"line-{row.line}" if value is None else str(value)


def build_instances(task: TaskSpec, rows: list[Row], shots: list[Row] | None, *,
                    data_name: str, shots_name: str | None) -> tuple[list[Instance], list[Problem]]:
    """Render every row of a task; return the instances and every problem found.

    ``shots`` is the few-shot pool (a separate file), or None to draw from ``rows`` themselves
    (never the item being asked).
    """
    renderer = _Renderer(task)
    problems: list[Problem] = []

    def parts_of(rs: list[Row], name: str) -> dict[int, _Parts]:
        out: dict[int, _Parts] = {}
        for row in rs:
            try:
                out[row.line] = renderer.parts(row.fields)
            except TemplateError as exc:
                if len(problems) < 20:
                    problems.append(Problem(name, row.line, f"task {task.name}", str(exc)))
        return out

    parts = parts_of(rows, data_name)
    pool_rows = shots if shots is not None else rows
    pool_parts = parts_of(shots, shots_name or data_name) if shots is not None else parts
    if problems:
        return [], problems
    instances = []
    for row in rows:
        own = parts[row.line]
        shot_parts: list[_Parts] = []
        if task.few_shot and task.few_shot.k:
            candidates = [r for r in pool_rows if shots is not None or r.line != row.line]
            rng = random.Random(f"{task.few_shot.seed}:{item_id(row, task.id_field)}")
            chosen = rng.sample(candidates, min(task.few_shot.k, len(candidates)))
            shot_parts = [pool_parts[r.line] for r in chosen]
        context, messages = _assemble(task, own, shot_parts)
        instances.append(Instance(item_id(row, task.id_field), row.line, context, messages,
                                  own.choices, own.gold, own.references, own.prompt))
    return instances, problems


def _assemble(task: TaskSpec, own: _Parts,
              shots: list[_Parts]) -> tuple[str, tuple[Message, ...] | None]:
    if task.chat_template:
        turns: list[Message] = []
        for shot in shots:
            turns += [{"role": "user", "content": shot.prompt},
                      {"role": "assistant", "content": shot.answer()}]
        turns.append({"role": "user", "content": own.prompt})
        return own.prompt, tuple(turns)
    separator = task.few_shot.separator if task.few_shot else ""
    texts = [shot.prompt + task.target_delimiter + shot.answer() for shot in shots]
    return separator.join([*texts, own.prompt]), None
