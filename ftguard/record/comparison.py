"""The Comparison: base vs tuned, every paired row, aggregates, flips and the gate verdict."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftguard.record.instructions import InstructionTypeChange
from ftguard.record.run import SCHEMA_VERSION, ModelInfo, RecordModel


class ComparisonRow(RecordModel):
    """Base vs tuned on one (suite, task, metric), paired item by item."""

    suite: str
    """Suite name."""
    task: str
    """Task name."""
    metric: str
    """Metric name."""
    role: str
    """Role of the suite: ``target`` or ``general``."""
    slice: str | None = None
    """The slice ``FIELD=VALUE`` the row compares (its items only), None for the whole task.
    Slice rows are corrected within their task and metric, and enter neither the task-level
    families nor the aggregates (alignment tax, gain, forgetting)."""
    base: float
    """Metric of the base run on the compared items."""
    tuned: float
    """Metric of the tuned run on the compared items."""
    delta: float
    """tuned - base."""
    ci_low: float | None
    """Lower end of the 95% confidence interval of the delta; None when too few items bound it
    (or the row was not compared item by item)."""
    ci_high: float | None
    """Upper end of the 95% confidence interval of the delta; None as for ``ci_low``."""
    p_value: float | None
    """Two-sided p-value of the paired test (no change); None when not compared."""
    p_adjusted: float | None
    """p-value adjusted for multiple comparisons (Holm or Benjamini-Hochberg); None when not
    compared."""
    method: str
    """Test: mcnemar-exact, sign-flip-exact, sign-flip-mc, paired-t, swap-exact, swap-mc (or
    ``none`` when the row could not be compared item by item)."""
    n: int
    """Number of paired items."""
    higher_is_better: bool
    """Direction of the metric."""
    headline: bool = False
    """Whether this is the task's headline metric (its first listed metric)."""
    verdict: str = "unchanged"
    """``improved``, ``regressed`` (significant after correction), ``unchanged``, or
    ``not-compared`` (no per-item scores, e.g. corpus-only metrics imported from lm-eval)."""
    comparable: bool = True
    """Whether the row was compared item by item (False: no per-item scores)."""
    testable: bool = True
    """Whether any outcome on ``n`` items could reach significance at alpha."""
    mde: float | None = None
    """Minimum detectable change at this n and alpha with 80% power, in the metric's units;
    None when no change is detectable at this n."""
    spread: float | None = None
    """What ``mde`` is computed from: the discordance assumed (0/1 metrics), the standard
    deviation of per-item differences (means) or of jackknife pseudo-values (corpus)."""
    items_needed: int | None = None
    """When not ``testable``: the fewest items with which the test could reach significance."""
    gated: bool = False
    """Whether a gate rule checks this row."""
    rules: list[str] = Field(default_factory=list)
    """The gate rules (as written in the grammar) that check this row."""
    failed: bool = False
    """Whether a gate rule failed on this row."""
    underpowered: bool = False
    """Whether a rule checking this row could not have detected what it asks for."""
    reason: str = ""
    """Why a gate rule failed on this row, or why it was not compared (one line)."""


class RuleResult(RecordModel):
    """One gate rule and its outcome."""

    rule: str
    """The rule as written in the grammar: ``general:headline:not-regressed``."""
    origin: str
    """Where it was written: ``--fail-on``, ``gate.yaml:7``, ``suites/legal/suite.yaml:30``,
    ``default``."""
    description: str
    """The rule in words."""
    outcome: str
    """``passed``, ``failed``, ``unchecked`` (a row could not be compared item by item) or
    ``underpowered`` (a row could not have detected what the rule asks for)."""
    fails: bool
    """Whether this outcome fails the gate (``unchecked`` unless allowed, ``underpowered`` with
    strict power)."""
    rows: list[str] = Field(default_factory=list)
    """The rows it checked: ``suite/task metric``."""
    failures: list[str] = Field(default_factory=list)
    """Why each failing row failed."""
    unchecked: list[str] = Field(default_factory=list)
    """Rows that could not be compared item by item."""
    underpowered: list[str] = Field(default_factory=list)
    """Rows that could not have detected what the rule asks for, with the items they need."""
    allowed_unchecked: bool = False
    """Whether ``--allow-unchecked`` (or the policy's ``allow_unchecked``) names the rule."""


class AggregateChange(RecordModel):
    """Mean of per-task relative changes of the headline metrics over some tasks."""

    value: float
    """Mean relative change (0.02 = tasks got 2% better on average; negative = worse)."""
    ci_low: float | None
    """Lower end of its 95% confidence interval; None when a task's interval is unbounded
    (too few items to bound it)."""
    ci_high: float | None
    """Upper end of its 95% confidence interval; None as for ``ci_low``."""

    def ci_text(self) -> str:
        """``-3.1% to +2.0%``, or ``unbounded`` when a task had too few items."""
        if self.ci_low is None or self.ci_high is None:
            return "unbounded (too few items in a task)"
        return f"{self.ci_low:+.1%} to {self.ci_high:+.1%}"
    tasks: list[str]
    """The ``suite/task`` names averaged."""


class Flip(RecordModel):
    """An item whose correctness changed between the runs."""

    suite: str
    """Suite name."""
    task: str
    """Task name."""
    metric: str
    """The 0/1 metric that flipped."""
    id: str
    """Item id."""
    direction: str
    """``correct_to_wrong`` or ``wrong_to_correct``."""
    target: str | list[str]
    """Reference answer(s)."""
    base_prediction: str
    """What the base model answered."""
    tuned_prediction: str
    """What the tuned model answered."""
    base_raw_prediction: str | None = None
    """The base model's generated text before the task's ``extract`` filters (None without
    them)."""
    tuned_raw_prediction: str | None = None
    """The tuned model's generated text before the task's ``extract`` filters."""
    prompt: str | None = None
    """The item's prompt, when the run recorded it."""
    severity: float = 0.0
    """How decisive the flip is (log-likelihood margin swing for choice tasks, else 0)."""


class CalibrationCurve(RecordModel):
    """Base and tuned reliability bins of one task with ``ece``, over the compared items."""

    suite: str
    """Suite name."""
    task: str
    """Task name."""
    n: int
    """Compared items."""
    base_ece: float
    tuned_ece: float
    base_bins: list[list[float]]
    """Equal-mass bins of the base run: ``[mean confidence, accuracy, items]``, lowest
    confidence first (:func:`ftguard.metrics.calibration.reliability_bins`)."""
    tuned_bins: list[list[float]]
    """The tuned run's bins, as ``base_bins``."""


class Comparison(RecordModel):
    """Base vs tuned: every paired row, aggregates, flips and the gate verdict."""

    schema_version: int = SCHEMA_VERSION
    """Version of this format."""
    ftguard_version: str = ""
    """ftguard version that wrote it."""
    created: str = ""
    """UTC time of the comparison (ISO 8601)."""
    base: ModelInfo
    """The base model."""
    tuned: ModelInfo
    """The tuned (candidate) model."""
    passed: bool
    """Whether the gate passed: at least one row gated and no rule outcome that fails."""
    failures: list[str] = Field(default_factory=list)
    """One line per failing row of a failing rule (and per unchecked rule not allowed)."""
    rules: list[str] = Field(default_factory=list)
    """The gate rules applied, as written in the grammar."""
    gate: list[RuleResult] = Field(default_factory=list)
    """Each gate rule with where it came from and its outcome."""
    policy_source: str = ""
    """Where the rules came from: ``--fail-on``, ``--policy FILE``, suites' ``gate:``
    sections, or the default."""
    underpowered: list[str] = Field(default_factory=list)
    """Rows of rules that could not have detected what the rule asks for (with the items they
    would need); failures only with ``strict_power``."""
    not_gated: list[str] = Field(default_factory=list)
    """Significant changes that no gate rule checks, in words."""
    warnings: list[str] = Field(default_factory=list)
    """Generation health problems (empty or truncated predictions) of either run."""
    rows: list[ComparisonRow]
    """Every compared (suite, task, metric)."""
    alignment_tax: AggregateChange | None = None
    """Aggregate change over role-general suites (negative = ability lost)."""
    gain: AggregateChange | None = None
    """Aggregate change over role-target suites."""
    forgetting: dict[str, AggregateChange] = Field(default_factory=dict)
    """Aggregate change per general suite."""
    calibration: list[CalibrationCurve] = Field(default_factory=list)
    """Reliability bins of base and tuned per task with ``ece`` (the report's overlay)."""
    flips: list[Flip] = Field(default_factory=list)
    """Items that changed correctness, most damaging first."""
    instruction_types: list[InstructionTypeChange] = Field(default_factory=list)
    """Instruction-following tasks: each instruction type's shares followed, base vs tuned."""
    notes: list[str] = Field(default_factory=list)
    """What the comparison had to do (e.g. compare only the intersection of items)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Statistical settings: alpha, correction, resamples, seed."""

