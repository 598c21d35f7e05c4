"""Loading a task's variants: each one's items rendered its way, at load, so a variant whose
template fails on an item is a located problem (file, task, variant) before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ftguard.errors import Problem
from ftguard.suite.instances import Instance, build_instances
from ftguard.suite.jsonl import Row
from ftguard.suite.model import Task
from ftguard.suite.schema import TaskSpec, VariantSpec
from ftguard.suite.yaml_lines import KeyPath, format_key, line_of
from ftguard.variant_names import variant_task_name

_OWN_KEYS = ("prompt", "choice_order", "target_delimiter", "chat_template")
"""Keys a variant may set; a problem with any other key is at the task's own line."""


def variant_spec(task: TaskSpec, variant: VariantSpec) -> TaskSpec:
    """The task as the variant asks it: named ``TASK@VARIANT``, the variant's prompt,
    delimiter and chat setting over the task's own (not validated again: the task was)."""
    update: dict[str, object] = {"name": variant_task_name(task.name, variant.name),
                                 "variants": None}
    for key in ("prompt", "target_delimiter", "chat_template"):
        if getattr(variant, key) is not None:
            update[key] = getattr(variant, key)
    if variant.description:
        update["description"] = variant.description
    return task.model_copy(update=update)


def load_variants(task: TaskSpec, rows: Sequence[Row], shots: Sequence[Row] | None,
                  own: Sequence[Instance], *, data_name: str, shots_name: str | None,
                  yaml_path: Path, lines: dict[KeyPath, int], base: KeyPath,
                  problems: list[Problem]) -> tuple[Task, ...]:
    """Every variant of ``task`` rendered on ``rows`` (few-shot examples from ``shots``, or
    the rows, each rendered the variant's way too); problems go to ``problems``."""
    out = []
    before = len(problems)
    for j, variant in enumerate(task.variants or []):
        spec = variant_spec(task, variant)

        def locate(key: str, j: int = j, variant: VariantSpec = variant) -> tuple[
                str, int | None, str]:
            loc: KeyPath = ((*base, "variants", j, key) if key in _OWN_KEYS and
                            key in variant.model_fields_set else (*base, key))
            return str(yaml_path), line_of(lines, loc), format_key(loc)

        instances, found = build_instances(spec, iter(rows), iter(shots) if shots is not None
                                           else None, data_name=data_name,
                                           shots_name=shots_name, locate=locate,
                                           order=variant.choice_order)
        # every problem says which variant it is about, wherever it is located
        problems += [replace(p, message=f"variant {variant.name!r} of task {task.name}: "
                                        f"{p.message}") for p in found]
        if not found:
            assert [i.id for i in instances] == [i.id for i in own]  # same rows, same order
            out.append(Task(spec, instances, variant=variant))
    return tuple(out) if len(problems) == before else ()


def headline_problem(task: TaskSpec, yaml_path: Path, lines: dict[KeyPath, int],
                     base: KeyPath) -> Problem | None:
    """A task with variants needs a per-item (mean) headline: ``worst_variant`` and
    ``spread`` compare the headline's per-item scores under every template."""
    from ftguard.metrics.registry import expand_metric_names, get_metric

    if not task.variants:
        return None
    try:
        headline = expand_metric_names(task.kind, task.metric_names, task.labels)[0]
    except (KeyError, ValueError, IndexError):  # an unknown metric, reported on its own
        return None
    if get_metric(headline).aggregation == "mean":
        return None
    loc: KeyPath = (*base, "variants")
    return Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                   f"task {task.name}: variants need a per-item headline metric (the first of "
                   f"'metrics'), but {headline!r} is a {get_metric(headline).aggregation} "
                   "metric. Put a per-item metric such as accuracy, acc or exact_match first.")
