"""The RunRecord: what one evaluation of one model on some suites produced.

Records are typed pydantic models; :func:`~ftguard.record.write_run` /
:func:`~ftguard.record.read_run` are symmetric, and writing is atomic (temporary file in the
same folder, then ``os.replace``) so an interrupted run never leaves a half-written record
behind.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ftguard.record.config import RunConfig, RunEnvironment
from ftguard.record.instructions import InstructionResult, InstructionTypeResult

SCHEMA_VERSION = 1


class RecordModel(BaseModel):
    """Base of record models: unknown keys are refused, fields documented by the docstring
    under them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ModelInfo(RecordModel):
    """Identity of the evaluated model."""

    spec: str
    """What the user asked for: a folder, a hub id or ``smollm2-135m-instruct``."""
    fingerprint: str
    """sha256 over weights, config, tokenizer, adapter, dtype and quantisation."""
    dtype: str
    """Weights dtype used for evaluation (float32, bfloat16, nf4, int8...)."""
    backend: str
    """Backend that ran it: ``hf`` or ``fake``."""
    path: str | None = None
    """Local folder the weights were read from."""
    adapter: str | None = None
    """PEFT adapter folder applied on top, if any."""
    device: str = "cpu"
    """Device it ran on."""


class MetricResult(RecordModel):
    """Aggregate of one metric over a task's samples."""

    value: float
    """The metric over all samples (mean, or the corpus-level value)."""
    ci_low: float
    """Lower end of the 95% confidence interval."""
    ci_high: float
    """Upper end of the 95% confidence interval."""
    n: int
    """Number of samples."""
    higher_is_better: bool
    """Direction of the metric."""
    stderr: float | None = None
    """Standard error (mean metrics)."""
    aggregation: str = "mean"
    """``mean`` of per-sample scores, ``corpus`` (recomputed from summed ``stats``) or ``set``
    (recomputed from the ``stats`` rows themselves: ``ece``)."""
    ci_method: str = ""
    """How the interval was computed: wilson, t, or bootstrap."""


class SampleResult(RecordModel):
    """One scored item; paired statistics need these."""

    id: str
    """Item id, unique within its task."""
    prompt_hash: str
    """Hash of the exact prompt (and choices) the model saw."""
    prediction: str
    """Generated text (after the task's ``extract`` filters, if any), or the chosen choice /
    label."""
    raw_prediction: str | None = None
    """Generate tasks with ``extract``: the generated text before extraction (``prediction``
    is the answer the filters extracted from it and that was scored), set for every sample
    of such a task, also where extraction left the text as it was. None for tasks without
    ``extract`` and in records written before ftguard had it."""
    target: str | list[str]
    """Reference answer(s), or the correct choice / label."""
    scores: dict[str, float] = Field(default_factory=dict)
    """Per-sample value of each mean metric (and per-document values where meaningful)."""
    stats: dict[str, list[float]] = Field(default_factory=dict)
    """Per-sample sufficient statistics of corpus metrics (summed, then the corpus function)."""
    loglikelihoods: list[float] | None = None
    """Summed log-likelihood of each choice / label (choice and classify tasks)."""
    gold: int | None = None
    """Index of the correct choice / label (choice and classify tasks)."""
    prompt: str | None = None
    """The item's own prompt as rendered, without few-shot examples (for reports)."""
    context: str | None = None
    """The exact text the model received before its answer: the few-shot block and the
    prompt, wrapped in the model's chat template for chat tasks (choice and classify tasks
    then score ``target_delimiter`` + each choice after it). None for perplexity tasks (the
    scored text is the rendered prompt) and in records written before ftguard kept it."""
    truncated: bool | None = None
    """Generate tasks: whether generation stopped because ``max_new_tokens`` ran out (True),
    or at an end-of-sequence token or stop string (False); None when unknown (other task
    kinds, a backend that does not report it, or an answer from an older response cache)."""
    instructions: list[InstructionResult] | None = None
    """Instruction-following tasks: each of the item's instructions and whether the prediction
    followed it, strictly and loosely (None for other tasks)."""
    predictions: list[str] | None = None
    """Generate tasks with ``generation.n`` above 1: every answer (samples, or beams best
    first); ``prediction`` is the first. None when the task asks one answer per item."""
    slices: list[str] = Field(default_factory=list)
    """The item's slices, ``FIELD=VALUE`` (its task's ``slice_field``; empty when it is in
    none, and in records written before ftguard sliced tasks)."""


class GenerationHealth(RecordModel):
    """How a generate task's predictions ended: empty ones and ones cut by the token budget."""

    n: int
    """Number of predictions."""
    empty: float
    """Share (0-1) of predictions that are empty after stripping whitespace."""
    truncated: float | None
    """Share (0-1) of predictions cut at ``max_new_tokens``, among those whose ending is
    known; None when no prediction's is (see ``unknown``)."""
    max_new_tokens: int
    """The task's token budget per prediction."""
    unknown: int = 0
    """Predictions whose truncation is unknown (answers from a response cache written before
    ftguard recorded it, or a backend that does not report it)."""


class MetricSource(RecordModel):
    """Where a metric from outside ftguard comes from (a user metric, an evaluate module)."""

    module: str
    """Its Python module (``mypkg.scoring``), or an evaluate module's resolved path or id."""
    package: str | None = None
    """The distribution that installs the module; None for a module on PYTHONPATH or a local
    evaluate module."""
    version: str | None = None
    """That distribution's version, or a local evaluate module's content hash."""
    args: dict[str, Any] | None = None
    """The task's ``metric_args`` entry for it (an evaluate module's declaration: key,
    direction, corpus), so that ``compare`` can load it again from the record."""


class TaskResult(RecordModel):
    """Results of one task."""

    name: str
    """Task name."""
    kind: str
    """Task kind."""
    metrics: dict[str, MetricResult]
    """Aggregates by metric name."""
    samples: list[SampleResult]
    """Every scored item."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Settings that change the predictions (generation, few-shot, delimiter, chat template)."""
    signatures: dict[str, str] = Field(default_factory=dict)
    """Metric signatures (sacrebleu) by metric name."""
    health: GenerationHealth | None = None
    """Generate tasks: shares of empty and of truncated predictions (None for other kinds and
    in records written before ftguard measured it)."""
    instruction_types: dict[str, InstructionTypeResult] | None = None
    """Instruction-following tasks: per instruction type, its count and strict / loose shares
    over the samples (None for other tasks)."""
    metric_sources: dict[str, MetricSource] | None = None
    """Metrics from outside ftguard (user metrics, evaluate modules), by name: their module
    and package version (None when the task has none, and in records written before)."""
    variant_of: str | None = None
    """A variant's result (named ``TASK@VARIANT``): the task whose items it asks another way;
    None for a task's own result."""
    slices: dict[str, dict[str, MetricResult]] | None = None
    """Sliced tasks (``slice_field``): each slice ``FIELD=VALUE``'s metrics over its items,
    aggregated and bounded like the task's own; None for a task without slices (and for
    variants' results, which are not sliced)."""


class SkippedTask(RecordModel):
    """A task that could not run on the evaluating machine; compare and gate report every
    rule that selects it as ``unchecked``, never as passed."""

    name: str
    """Task name."""
    kind: str
    """Task kind."""
    reason: str
    """Why it did not run (a dataset not reachable, a package not installed)."""
    metrics: list[str] = Field(default_factory=list)
    """The metrics it would have reported, first the headline (empty when unknown)."""


class SuiteResult(RecordModel):
    """Results of one suite."""

    name: str
    """Suite name."""
    version: str
    """Suite version."""
    hash: str
    """Content hash of suite.yaml and its data files."""
    role: str
    """``target`` or ``general``."""
    path: str | None = None
    """Folder the suite was loaded from."""
    gate: list[Any] = Field(default_factory=list)
    """The suite's own gate rules (its ``gate:`` section), used when compare gets no policy."""
    tasks: list[TaskResult]
    """Results per task."""
    skipped: list[SkippedTask] = Field(default_factory=list)
    """Tasks that could not run here, with the reason (absent from ``tasks``)."""


class RunRecord(RecordModel):
    """One evaluation of one model on some suites."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True,
                              validate_assignment=True)  # record.config = {...} types it

    schema_version: int = SCHEMA_VERSION
    """Version of this format."""
    ftguard_version: str = ""
    """ftguard version that wrote the record."""
    created: str = ""
    """UTC time the evaluation finished (ISO 8601)."""
    model: ModelInfo
    """The evaluated model."""
    config: RunConfig = Field(default_factory=RunConfig)
    """Evaluation settings: seed, batch size, limit, dtype, device, quantisation."""
    environment: RunEnvironment = Field(default_factory=RunEnvironment)
    """Package versions, platform, device, git revision."""
    suites: list[SuiteResult]
    """Results per suite."""
    timings: dict[str, float] = Field(default_factory=dict)
    """Wall times in seconds (model load, each task, total)."""


def target_score(run: RunRecord) -> float | None:
    """Mean headline (first) metric of the target suites' tasks, negated where lower is
    better; None without target tasks."""
    values = [(m.value if m.higher_is_better else -m.value) for s in run.suites
              if s.role == "target" for t in s.tasks for m in list(t.metrics.values())[:1]]
    return sum(values) / len(values) if values else None

