"""The suite.yaml schema: what a suite and its tasks may declare.

A suite is declarative: templates are rendered in a sandbox, there are no Python escapes.
Cross-field rules per task kind live in :meth:`TaskSpec._check_kind`; metric names are
checked against the registry by the loader so the error can list the valid ones.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftguard.suite.extract_spec import ExtractList
from ftguard.suite.generation import GenerationSpec  # its own module; importable here too

TaskKind = Literal["generate", "choice", "classify", "perplexity", "lm_eval"]
TASK_KINDS: tuple[str, ...] = ("generate", "choice", "classify", "perplexity", "lm_eval")
Role = Literal["target", "general"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: Metrics computed when a task lists none (``lm_eval`` tasks report what lm-eval reports).
DEFAULT_METRICS: dict[str, list[str]] = {
    "generate": ["exact_match", "f1"],
    "choice": ["acc", "acc_norm"],
    "classify": ["accuracy", "macro_f1"],
    "perplexity": ["perplexity", "word_perplexity", "bits_per_byte"],
}

#: Keys an ``lm_eval`` task may set; its lm-eval YAML defines data, prompts and metrics.
LMEVAL_KEYS: tuple[str, ...] = ("name", "kind", "description", "lm_eval_task", "lm_eval_include",
                                "num_fewshot", "chat_template", "lm_eval_aggregation")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class FewShotSpec(_Strict):
    """Few-shot examples prepended to every prompt of a task; they are never scored."""

    k: int = Field(ge=0, le=64)
    """Number of examples per prompt (fixed)."""
    data: str | None = None
    """JSONL file of examples, relative to the suite folder. Without it, examples are drawn
    from the task's own data, never including the item being asked."""
    seed: int = 1234
    """Seed of the example draw; the same seed always gives the same examples per item."""
    separator: str = "\n\n"
    """Text placed between examples and before the question."""


class VariantSpec(_Strict):
    """An alternative way of asking a task's items: another wording, format or answer order.
    It is evaluated on the same items as the task's own prompt, recorded as the task
    ``TASK@NAME``, and feeds the task's consistency metrics."""

    name: str
    """Variant name, unique in the task (letters, digits, ``_ - .``)."""
    description: str = ""
    """What the variant changes, one line."""
    prompt: str | None = None
    """Jinja2 template of the prompt; default: the task's own."""
    choice_order: Literal["reversed"] | list[int] | None = None
    """Choice and classify tasks: the order the answer options are offered in, ``reversed``
    or a permutation (``[2, 0, 1]``: the first option shown is the task's third). A
    ``choices_field`` list is reordered before the prompt is rendered, so a prompt that lists
    ``choices[0]``, ``choices[1]`` ... shows the new order. Predictions are compared by the
    chosen option's text, never its position."""
    target_delimiter: str | None = None
    """Placed between the prompt and the answer; default: the task's own."""
    chat_template: bool | None = None
    """Wrap the prompt in the model's chat template; default: the task's own."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"variant name {value!r} may only use letters, digits, '_', '-', "
                             "'.'")
        return value

    @field_validator("choice_order")
    @classmethod
    def _permutation(cls, value: object) -> object:
        if isinstance(value, list) and sorted(value) != list(range(len(value))):
            raise ValueError(f"choice_order {value} is not a permutation of 0..{len(value) - 1} "
                             "(each position once, 0-based)")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> VariantSpec:
        if self.model_fields_set <= {"name", "description"}:
            raise ValueError(f"variant {self.name!r} changes nothing: give a prompt, "
                             "choice_order, target_delimiter or chat_template")
        return self


class TaskSpec(_Strict):
    """One task of a suite: data, prompt, target and metrics."""

    name: str
    """Task name, unique in the suite (letters, digits, ``_ - .``)."""
    kind: TaskKind
    """``generate`` (generated text), ``choice`` (multiple choice by log-likelihood),
    ``classify`` (fixed label set by log-likelihood), ``perplexity`` (text corpus) or
    ``lm_eval`` (an lm-evaluation-harness task run on the same model)."""
    data: str | None = None
    """JSONL file of items, relative to the suite folder (every kind but ``lm_eval``)."""
    description: str = ""
    """What the task measures, one line."""
    id_field: str = "id"
    """Field holding each item's unique id; items without it get ``line-N``."""
    slice_field: str | list[str] | None = None
    """Item field(s) naming each item's slice: a string puts the item in one slice, a list of
    strings (tags) in several; items without the field are in none. Every metric is also
    reported per slice ``FIELD=VALUE`` (compare, report, gate ``suite/task[FIELD=VALUE]``)."""
    prompt: str | None = None
    """Jinja2 template of the prompt (sandboxed, undefined fields are errors). For
    ``perplexity`` tasks it renders the text to score. Every kind but ``lm_eval``."""
    target: str | None = None
    """Template of the answer: the reference text (generate), the correct choice's text
    (choice) or the label (classify)."""
    target_field: str | None = None
    """Field holding the reference(s) of a generate task: a string or a list of strings."""
    target_index: str | None = None
    """Template rendering the 0-based index of the correct choice or label."""
    choices: list[str] | None = None
    """Choice templates of a ``choice`` task, rendered per item."""
    choices_field: str | None = None
    """Field holding each item's list of choices (``choice`` tasks)."""
    labels: list[str] | None = None
    """The fixed label set of a ``classify`` task."""
    target_delimiter: str = " "
    """Placed between the prompt and the answer (choice, label, few-shot answer)."""
    chat_template: bool = False
    """Wrap the prompt in the model's chat template (few-shot examples become turns)."""
    few_shot: FewShotSpec | None = None
    """Few-shot examples, if any."""
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    """Decoding settings (``generate`` tasks)."""
    max_length: int | None = Field(default=None, ge=8)
    """Window length in tokens for ``perplexity`` tasks; default: the model's context size."""
    metrics: list[str] = Field(default_factory=list)
    """Metric names; default depends on the kind (see DEFAULT_METRICS). The
    instruction-following metrics (``prompt_level_strict_acc`` & co.) read each item's
    ``instruction_id_list`` and ``kwargs`` (IFEval's format) and need no target."""
    extract: ExtractList | None = None
    """Generate tasks: filters applied in order to the generated text before it is scored
    (``regex``, ``strip``, ``lowercase``, ``first_line``, ``number``, ``choice_letter``; see
    :mod:`ftguard.suite.extract_spec`). The record keeps the raw text beside the answer."""
    metric_args: dict[str, dict[str, Any]] | None = None
    """Arguments of metrics, by family or metric name (``bertscore: {model: ..., num_layers:
    ..., idf: false}``; a user metric's keyword arguments; an evaluate module's declaration):
    :mod:`ftguard.suite.metric_args`."""
    variants: list[VariantSpec] | None = None
    """Alternative prompts (wordings, formats, answer orders) evaluated on the same items;
    each is recorded as the task ``TASK@NAME`` and the task gets ``consistency``,
    ``mean_variant``, ``worst_variant`` and ``spread`` (choice, classify, generate)."""
    lm_eval_task: str | None = None
    """``lm_eval`` tasks: the lm-eval task name, local (in ``lm_eval_include``) or built-in
    (built-in names are checked offline against lm-eval's index, cached in ``$FTGUARD_HOME``;
    their datasets need the Hugging Face hub or its cache: a task whose dataset cannot be
    reached is recorded as skipped)."""
    lm_eval_include: str | None = None
    """``lm_eval`` tasks: folder of lm-eval task YAMLs, relative to the suite folder; when
    given, only it is indexed (not lm-eval's 14k built-in tasks)."""
    num_fewshot: int | None = Field(default=None, ge=0, le=64)
    """``lm_eval`` tasks: few-shot examples per prompt; default: the lm-eval task's own."""
    lm_eval_aggregation: Literal["mean"] | None = None
    """``lm_eval`` tasks: ``mean`` reports every metric as the mean of its per-item values
    instead of the task's own aggregation (tinyBenchmarks' IRT estimators, which need the
    ``tinyBenchmarks`` package and parameters it downloads); default: the task's own."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"task name {value!r} may only use letters, digits, '_', '-', '.'")
        return value

    @field_validator("metric_args")
    @classmethod
    def _valid_metric_args(cls, value: dict[str, dict[str, Any]] | None) -> object:
        from ftguard.suite.metric_args import check_metric_args

        return None if value is None else check_metric_args(value)

    @field_validator("slice_field")
    @classmethod
    def _slice_names(cls, value: str | list[str] | None) -> str | list[str] | None:
        from ftguard.slices import FIELD_NAME, slice_fields

        names = slice_fields(value)
        if value is not None and (not names or len(set(names)) != len(names)):
            raise ValueError("slice_field must name one field or a list of different fields")
        if bad := [n for n in names if not FIELD_NAME.match(n)]:
            raise ValueError(f"slice field {bad[0]!r} may only use letters, digits, '_', '-', "
                             "'.' (gate selectors name it as [FIELD=VALUE])")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> TaskSpec:
        errors = _kind_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics) or list(DEFAULT_METRICS.get(self.kind, []))


def _kind_errors(t: TaskSpec) -> list[str]:
    if t.kind == "lm_eval":
        return _lmeval_errors(t)
    errors: list[str] = [f"required key '{key}' is missing (every task kind but lm_eval needs it)"
                         for key in ("data", "prompt") if getattr(t, key) is None]
    errors += [f"'{key}' is for lm_eval tasks, not {t.kind}"
               for key in ("lm_eval_task", "lm_eval_include", "num_fewshot",
                           "lm_eval_aggregation")
               if getattr(t, key) is not None]
    n_target = sum(x is not None for x in (t.target, t.target_field, t.target_index))
    if t.kind == "perplexity":
        if n_target:
            errors.append("a perplexity task scores its prompt text and takes no target")
    elif t.kind == "generate":
        if t.target_index is not None:
            errors.append("target_index is for choice/classify tasks; use target or target_field")
        elif n_target > 1 or (n_target == 0 and not _reference_free(t)):
            errors.append("a generate task needs exactly one of 'target' or 'target_field' "
                          "(none when every metric is scored without a reference, e.g. "
                          "refusal_rate or prompt_level_strict_acc)")
    else:
        if t.target_field is not None:
            errors.append(f"target_field is for generate tasks; a {t.kind} task uses "
                          "'target' (answer text) or 'target_index'")
        elif n_target != 1:
            errors.append(f"a {t.kind} task needs exactly one of 'target' or 'target_index'")
    if t.kind == "choice":
        if (t.choices is None) == (t.choices_field is None):
            errors.append("a choice task needs exactly one of 'choices' or 'choices_field'")
    elif t.choices is not None or t.choices_field is not None:
        errors.append(f"'choices' is for choice tasks, not {t.kind}"
                      + (" (use 'labels')" if t.kind == "classify" else ""))
    if t.kind == "classify":
        if not t.labels or len(t.labels) < 2:
            errors.append("a classify task needs 'labels' with at least two labels")
        elif len(set(t.labels)) != len(t.labels):
            errors.append("'labels' contains duplicates")
    elif t.labels is not None:
        errors.append(f"'labels' is for classify tasks, not {t.kind}")
    if t.extract is not None and t.kind != "generate":
        errors.append(f"'extract' is for generate tasks (it filters generated text before "
                      f"scoring); a {t.kind} task scores fixed options and has no text to "
                      "extract from: remove the key")
    if t.kind == "perplexity" and t.few_shot is not None:
        errors.append("few_shot does not apply to perplexity tasks")
    return errors + _variant_errors(t)


def _variant_errors(t: TaskSpec) -> list[str]:
    if t.variants is None:
        return []
    if t.kind == "perplexity":
        return ["variants do not apply to perplexity tasks (there is no prediction to compare)"]
    if not t.variants:
        return ["variants is empty: list at least one variant, or leave the key out"]
    errors: list[str] = []
    names = [v.name for v in t.variants]
    errors += [f"variant name {n!r} is used twice" for n in dict.fromkeys(names)
               if names.count(n) > 1]
    n_options = len(t.labels or []) if t.kind == "classify" else len(t.choices or [])
    for v in t.variants:
        if v.choice_order is None:
            continue
        if t.kind == "generate":
            errors.append(f"variant {v.name!r}: choice_order is for choice and classify tasks")
        elif isinstance(v.choice_order, list) and n_options and len(v.choice_order) != n_options:
            errors.append(f"variant {v.name!r}: choice_order has {len(v.choice_order)} "
                          f"positions but the task has {n_options} "
                          f"{'labels' if t.kind == 'classify' else 'choices'}")
    return errors


def _reference_free(t: TaskSpec) -> bool:
    """Every metric is scored without a reference answer (``Metric.reference_free``)."""
    from ftguard.metrics.registry import get_metric
    from ftguard.metrics.sampling import parse  # pass@k & co.: as their criterion

    def free(name: str) -> bool:
        try:
            return get_metric(p.criterion if (p := parse(name)) else name).reference_free
        except KeyError:  # unknown, or not loadable: the metric check says why
            return False
    return bool(t.metrics) and all(map(free, t.metrics))


def _lmeval_errors(t: TaskSpec) -> list[str]:
    errors: list[str] = []
    if not t.lm_eval_task:
        errors.append("an lm_eval task needs 'lm_eval_task' (the lm-eval task name)")
    extra = sorted(t.model_fields_set - set(LMEVAL_KEYS))
    if extra:
        verb = "does" if len(extra) == 1 else "do"
        errors.append(f"{', '.join(repr(k) for k in extra)} {verb} not apply to lm_eval tasks: "
                      "the lm-eval task YAML defines data, prompts, targets and metrics "
                      f"(keys allowed here: {', '.join(LMEVAL_KEYS)})")
    return errors


class SuiteSpec(_Strict):
    """A suite: a named, versioned set of tasks with a role in the gate."""

    name: str
    """Suite name (letters, digits, ``_ - .``)."""
    version: str
    """Version of the suite; bump it when items or prompts change."""
    role: Role
    """``target`` = the skill being tuned; ``general`` = capability that must not be lost."""
    description: str = ""
    """What the suite measures."""
    tasks: list[TaskSpec] = Field(min_length=1)
    """The tasks."""
    train: str | None = None
    """Instruction data for fine-tuning on this suite's skill (JSONL, relative path)."""
    replay: str | None = None
    """General instruction data to mix into fine-tuning against forgetting (JSONL)."""
    gate: list[str | dict[str, Any]] | None = None
    """Gate rules for this suite, used by ``ftguard compare`` when it gets no policy: rules in
    the ``--fail-on`` grammar (``headline:noninferior(2%)``; without a selector a rule applies
    to this suite) or policy-file mappings. Not part of the suite hash."""

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"suite name {value!r} may only use letters, digits, '_', '-', '.'")
        return value

    @model_validator(mode="after")
    def _unique_tasks(self) -> SuiteSpec:
        seen: set[str] = set()
        for task in self.tasks:
            if task.name in seen:
                raise ValueError(f"task name {task.name!r} is used twice")
            seen.add(task.name)
        return self
