"""Turning a task's rows into instances: the exact prompt, choices and answer of each item."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ftguard.errors import Problem
from ftguard.suite.jsonl import Row
from ftguard.suite.schema import TaskSpec
from ftguard.suite.templates import TemplateError, compile_template, render

if TYPE_CHECKING:  # the metrics package loads numpy; the CLI's cheap paths never need it
    from ftguard.metrics.instruction_following import Instructions

Message = dict[str, str]


@dataclass(frozen=True, slots=True)
class Layout:
    """How a task puts few-shot examples before the question; one object per task."""

    chat: bool = False
    """Examples become chat turns (``messages``) instead of text before the prompt."""
    separator: str = ""
    """Text between examples and before the question."""
    delimiter: str = " "
    """Text between an example's prompt and its answer."""


_PLAIN = Layout()


@dataclass(frozen=True, slots=True)
class Instance:
    """One scored item.

    Its few-shot examples are kept as references to the examples' own rendered parts and
    assembled into ``context`` / ``messages`` when asked for: a task of a million items
    with five shots each holds each rendered prompt once, not six times.
    """

    id: str
    """Unique id of the item within its task."""
    line: int
    """Line of the item in its data file."""
    prompt: str
    """The item's own rendered prompt, without few-shot examples (for reports)."""
    choices: tuple[str, ...]
    """Choice texts (choice) or labels (classify); empty for other kinds."""
    gold: int | None
    """Index of the correct choice or label."""
    references: tuple[str, ...]
    """Reference answers (generate)."""
    shots: tuple[Instance, ...] = ()
    """The few-shot examples asked before this item, in order (never the item itself)."""
    layout: Layout = _PLAIN
    """How ``shots`` and ``prompt`` are put together."""
    instructions: Instructions = ()
    """Instruction-following tasks: the item's ``(instruction id, kwargs)`` pairs."""
    fields: dict[str, Any] | None = None
    """The item's JSONL fields, kept for tasks with metrics from outside ftguard (they may
    read any field); None otherwise."""
    slices: tuple[str, ...] = ()
    """The item's slices, ``FIELD=VALUE`` (its task's ``slice_field``; :mod:`ftguard.slices`)."""

    @property
    def answer(self) -> str:
        """The answer shown when this item is a few-shot example."""
        if self.gold is not None:
            return self.choices[self.gold]
        return self.references[0] if self.references else ""

    @property
    def context(self) -> str:
        """Prompt text, few-shot examples included (used when ``messages`` is None)."""
        if self.layout.chat or not self.shots:
            return self.prompt
        texts = [shot.prompt + self.layout.delimiter + shot.answer for shot in self.shots]
        return self.layout.separator.join([*texts, self.prompt])

    @property
    def messages(self) -> tuple[Message, ...] | None:
        """Chat turns, when the task uses the model's chat template."""
        if not self.layout.chat:
            return None
        turns: list[Message] = []
        for shot in self.shots:
            turns += [{"role": "user", "content": shot.prompt},
                      {"role": "assistant", "content": shot.answer}]
        turns.append({"role": "user", "content": self.prompt})
        return tuple(turns)

    @property
    def prompt_hash(self) -> str:
        payload = json.dumps([self.context, self.messages, self.choices], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class _Renderer:
    """Renders one task's templates for a row; raises TemplateError with the reason."""

    def __init__(self, task: TaskSpec, order: ChoiceOrder = None) -> None:
        self.task = task
        self.order = order
        few_shot = task.few_shot
        self.layout = Layout(task.chat_template, few_shot.separator if few_shot else "",
                             task.target_delimiter)
        self.prompt = compile_template(task.prompt)
        self.target = compile_template(task.target) if task.target is not None else None
        self.target_index = (compile_template(task.target_index)
                             if task.target_index is not None else None)
        self.choices = [compile_template(c) for c in task.choices or []]
        from ftguard.metrics.instruction_following import uses_instructions

        self.instructed = task.kind == "generate" and uses_instructions(task.metric_names)
        from ftguard.metrics.external import is_external

        # user metrics may read any field of the item
        self.keep_fields = any(map(is_external, task.metric_names))

    def instance(self, row: Row) -> Instance:
        """The row's instance; a TemplateError carries the task key (``.key``) at fault."""
        fields = row.fields
        self.key = "prompt"
        prompt = render(self.prompt, fields)
        kind = self.task.kind
        choices: tuple[str, ...] = ()
        gold, references = None, ()
        if kind == "perplexity":
            if not prompt.strip():
                raise TemplateError("the text to score is empty")
        elif kind == "generate":
            self.key = "target" if self.target is not None else "target_field"
            references = (self._references(fields)
                          if self.target is not None or self.task.target_field else ())
        else:
            self.key = "choices" if self.choices else "choices_field"
            choices = self._choices(fields) if kind == "choice" else tuple(self.task.labels or ())
            self.key = "target_index" if self.target_index is not None else "target"
            gold = self._gold(fields, choices)
            if self.order is not None:
                self.key = "choice_order"
                prompt, choices, gold = self._reordered(fields, prompt, choices, gold)
        return Instance(item_id(row, self.task.id_field), row.line, prompt, choices, gold,
                        references, layout=self.layout,
                        instructions=_instructions(fields) if self.instructed else (),
                        fields=fields if self.keep_fields else None,
                        slices=_slices(self.task, fields))

    def _reordered(self, fields: dict[str, Any], prompt: str, choices: tuple[str, ...],
                   gold: int) -> tuple[str, tuple[str, ...], int]:
        """Prompt, options and gold index with the options in ``order``; a ``choices_field``
        list is reordered before the prompt is rendered again, so the prompt shows the order
        that is scored."""
        perm = permutation(self.order, len(choices))
        name = self.task.choices_field
        if self.task.kind == "choice" and name:
            self.key = "prompt"
            prompt = render(self.prompt, {**fields, name: [fields[name][j] for j in perm]})
        return prompt, tuple(choices[j] for j in perm), perm.index(gold)

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


class ItemProblem(Exception):
    """A field of one item is wrong (not a template): reported at the item's line and key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


def _instructions(fields: dict[str, Any]) -> Instructions:
    """The item's IFEval instructions; ItemProblem naming each bad key."""
    from ftguard.metrics.instructions.data import instruction_problems
    from ftguard.metrics.instructions.spec import clean_kwargs

    problems = instruction_problems(fields)
    if problems:
        raise ItemProblem(problems)
    return tuple((instruction_id, clean_kwargs(args)) for instruction_id, args
                 in zip(fields["instruction_id_list"], fields["kwargs"], strict=True))


def _slices(task: TaskSpec, fields: dict[str, Any]) -> tuple[str, ...]:
    """The item's ``FIELD=VALUE`` slices; ItemProblem naming each bad field."""
    if task.slice_field is None:
        return ()
    from ftguard.slices import item_slices

    found, problems = item_slices(task.slice_field, fields)
    if problems:
        raise ItemProblem(problems)
    return found


ChoiceOrder = str | list[int] | None
"""A variant's order of the answer options: ``reversed``, a permutation, or None (as given)."""


def permutation(order: ChoiceOrder, n: int) -> list[int]:
    """Original positions of ``n`` options in ``order``; TemplateError when a permutation
    has another length."""
    if order is None:
        return list(range(n))
    if order == "reversed":
        return list(range(n - 1, -1, -1))
    assert isinstance(order, list)
    if len(order) != n:
        raise TemplateError(f"choice_order has {len(order)} positions but this item has {n} "
                            "options")
    return list(order)


def item_id(row: Row, id_field: str) -> str:
    value = row.fields.get(id_field)
    return f"line-{row.line}" if value is None else str(value)


def build_instances(task: TaskSpec, rows: Iterable[Row], shots: Iterable[Row] | None, *,
                    data_name: str, shots_name: str | None,
                    locate: Locate | None = None,
                    order: ChoiceOrder = None) -> tuple[list[Instance], list[Problem]]:
    """Render every row of a task; return the instances and every problem found (rendering
    stops after :data:`MAX_PROBLEMS` items that fail).

    ``shots`` is the few-shot pool (a separate file), or None to draw from ``rows`` themselves
    (never the item being asked). Both are read once, in order, so an iterator that lets go
    of each row once it is rendered keeps only the rendered items in memory. ``locate``
    maps a task key (``prompt``) to its place in suite.yaml: a template that fails the same
    way on many items is then one problem there, listing the items' lines. ``order`` puts
    each item's answer options in a variant's order (:func:`permutation`).
    """
    renderer = _Renderer(task, order)
    problems: list[Problem] = []
    pool = (_render_all(renderer, shots, shots_name or data_name, problems, locate)
            if shots is not None else None)
    instances = _render_all(renderer, rows, data_name, problems, locate)
    if problems:
        return [], problems
    if task.few_shot and task.few_shot.k:
        draw = _Draw(task.few_shot.k, task.few_shot.seed, pool if pool is not None else instances,
                     own=pool is None)
        instances = [replace(i, shots=draw(i.id, index)) for index, i in enumerate(instances)]
    return instances, problems


MAX_PROBLEMS = 20
"""Items that fail to render before a task's rendering stops (a template that fails on every
item of a large file would otherwise cost a jinja traceback per item)."""


Locate = Callable[[str], tuple[str, int | None, str]]
"""A task key -> (suite.yaml path, line, dotted key) of where the template is written."""


def _render_all(renderer: _Renderer, rows: Iterable[Row], name: str,
                problems: list[Problem], locate: Locate | None = None) -> list[Instance]:
    out: list[Instance] = []
    where = f"task {renderer.task.name}"
    failed: dict[tuple[str, str], list[int]] = {}
    examples: dict[tuple[str, str], str] = {}
    own = 0  # items whose own fields are wrong (ItemProblem)
    for row in rows:
        if sum(map(len, failed.values())) + own >= MAX_PROBLEMS:
            problems.extend(_grouped(failed, examples, name, where, locate))
            problems.append(Problem(name, None, where, f"{MAX_PROBLEMS} items failed to render, "
                                    f"the rest from line {row.line} on were not checked; fix "
                                    "these first."))
            return out
        try:
            out.append(renderer.instance(row))
        except ItemProblem as exc:  # the item's own data: its line and key, never grouped
            problems.extend(Problem(name, row.line, key, message) for key, message in exc.problems)
            own += 1
        except TemplateError as exc:
            stem, _, detail = str(exc).partition(" (fields of this item")
            group = (renderer.key, stem)
            failed.setdefault(group, []).append(row.line)
            examples.setdefault(group, f"fields of line {row.line}{detail[:-1]}" if detail else "")
    problems.extend(_grouped(failed, examples, name, where, locate))
    return out


def _grouped(failed: dict[tuple[str, str], list[int]], examples: dict[tuple[str, str], str],
             name: str, where: str, locate: Locate | None) -> list[Problem]:
    """One problem per (task key, reason) that several items share, at the template's line
    in suite.yaml (with ``locate``); an item's own problem stays at its line."""
    out = []
    for (key, stem), lines in failed.items():
        example = f"; {examples[(key, stem)]}" if examples[(key, stem)] else ""
        if locate is None or len(lines) == 1:
            out += [Problem(name, line, where, f"{stem}{example}") for line in lines]
            continue
        file, line, dotted = locate(key)
        shown = ", ".join(map(str, lines[:8])) + (", ..." if len(lines) > 8 else "")
        what = "" if key == "choice_order" else f"{key} template: "  # a list, not a template
        out.append(Problem(file, line, dotted, f"{what}{stem} on {len(lines)} "
                                               f"item(s) of {name} (line(s) {shown}{example})."))
    return out


class _Draw:
    """Each item's seeded draw of ``k`` examples from ``pool``; from its own task's items
    (``own``), every item but the one asked. ``random.sample`` over the candidates'
    positions picks what it would pick from the candidates themselves, in O(k) per item
    rather than O(pool)."""

    def __init__(self, k: int, seed: int, pool: list[Instance], own: bool) -> None:
        self.k, self.seed, self.pool, self.own = k, seed, pool, own
        self.positions = range(len(pool) - own)
        self.rng = random.Random()

    def __call__(self, item_id: str, index: int) -> tuple[Instance, ...]:
        self.rng.seed(f"{self.seed}:{item_id}")
        picks = self.rng.sample(self.positions, min(self.k, len(self.positions)))
        if self.own:
            picks = [j + 1 if j >= index else j for j in picks]
        return tuple([self.pool[j] for j in picks])
