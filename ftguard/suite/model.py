"""A loaded suite and its tasks (what :mod:`ftguard.suite.loader` returns)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftguard.suite.instances import Instance
from ftguard.suite.schema import SuiteSpec, TaskSpec, VariantSpec


@dataclass(frozen=True)
class Task:
    """A loaded task: its spec and its rendered instances."""

    spec: TaskSpec
    instances: list[Instance]
    lm_eval_include: Path | None = None
    """``lm_eval`` tasks: the resolved folder of lm-eval task YAMLs (instances stay empty)."""
    lm_eval_yaml: Path | None = None
    """``lm_eval`` tasks: the YAML file defining the lm-eval task (found offline)."""
    lm_eval_metrics: tuple[str, ...] = ()
    """``lm_eval`` tasks: the metrics lm-eval reports for it, first the headline."""
    variants: tuple[Task, ...] = ()
    """The task's variants (its ``variants:``), each a task named ``TASK@VARIANT`` whose
    instances are the same items in the same order, rendered the variant's way."""
    variant: VariantSpec | None = None
    """For a variant's task: its declaration (None for a task's own)."""

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Suite:
    """A loaded, validated suite."""

    spec: SuiteSpec
    root: Path
    """The suite folder."""
    tasks: list[Task]
    hash: str
    """sha256 of suite.yaml's parsed content and every data file it uses."""

    @property
    def name(self) -> str:
        return self.spec.name
