"""The RunRecord: what one evaluation of one model on some suites produced.

Records are typed pydantic models; :func:`write_run` / :func:`read_run` are symmetric, and
writing is atomic (temporary file in the same folder, then ``os.replace``) so an interrupted
run never leaves a half-written record behind.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftguard.errors import RecordError

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ModelInfo(_Model):
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


class MetricResult(_Model):
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
    """``mean`` of per-sample scores, or ``corpus`` (recomputed from summed ``stats``)."""
    ci_method: str = ""
    """How the interval was computed: wilson, t, or bootstrap."""


class SampleResult(_Model):
    """One scored item; paired statistics need these."""

    id: str
    """Item id, unique within its task."""
    prompt_hash: str
    """Hash of the exact prompt (and choices) the model saw."""
    prediction: str
    """Generated text, or the chosen choice / label."""
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
    """The item's own prompt as rendered, without few-shot examples."""
    truncated: bool | None = None
    """Generate tasks: whether generation stopped because ``max_new_tokens`` ran out (True),
    or at an end-of-sequence token or stop string (False); None when unknown (other task
    kinds, a backend that does not report it, or an answer from an older response cache)."""


class GenerationHealth(_Model):
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


class TaskResult(_Model):
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


class SuiteResult(_Model):
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


class RunRecord(_Model):
    """One evaluation of one model on some suites."""

    schema_version: int = SCHEMA_VERSION
    """Version of this format."""
    ftguard_version: str = ""
    """ftguard version that wrote the record."""
    created: str = ""
    """UTC time the evaluation finished (ISO 8601)."""
    model: ModelInfo
    """The evaluated model."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Evaluation settings: seed, batch size, limit, dtype, device, quantisation."""
    environment: dict[str, Any] = Field(default_factory=dict)
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


def write_run(record: RunRecord, path: Path) -> Path:
    """Write ``record`` to ``path`` atomically; return the path. An invalid record (see
    :func:`check_run`) is refused, so nothing ftguard writes is refused when read back."""
    check_run(record, path)
    return write_json_atomic(record.model_dump(mode="json"), path)


def check_run(record: RunRecord, path: Path | str) -> None:
    """Raise RecordError naming ``path``, suite/task and item when ``record`` cannot be
    compared soundly: two suites of one name, two tasks of one name in a suite, two items of
    one id in a task, a NaN or infinite number (a score, statistic, metric, timing or
    setting; only a log-likelihood may be -inf), or free-form settings nested too deep."""
    _check_plain(path, "", {"config": record.config, "environment": record.environment})
    bad_timings = [k for k, v in record.timings.items() if not math.isfinite(v)]
    if bad_timings:
        raise RecordError(f"{path}: timing(s) {', '.join(map(_short, bad_timings))} non-finite "
                          "(NaN or infinite); records hold finite numbers only.")
    suites: set[str] = set()
    for suite in record.suites:
        if suite.name in suites:
            raise RecordError(f"{path}: suite {suite.name!r} appears twice; a run holds each "
                              "suite once.", hint="Evaluate suites with different names (the "
                                                  "'name:' in suite.yaml), or split the run.")
        suites.add(suite.name)
        _check_plain(path, f"{suite.name}: ", {"gate": suite.gate})
        tasks: set[str] = set()
        for task in suite.tasks:
            where = f"{path}: {suite.name}/{task.name}"
            if task.name in tasks:
                raise RecordError(f"{where}: the task appears twice in suite {suite.name}.")
            tasks.add(task.name)
            _check_plain(path, f"{suite.name}/{task.name}: ", {"settings": task.settings})
            for name, metric in task.metrics.items():
                odd = [k for k in ("value", "ci_low", "ci_high", "stderr")
                       if not math.isfinite(getattr(metric, k) or 0.0)]
                if odd:
                    raise RecordError(f"{where}: metric {name!r} has a non-finite (NaN or "
                                      f"infinite) {', '.join(odd)}; records hold finite "
                                      "numbers only.", hint=_RERUN)
            ids: set[str] = set()
            for sample in task.samples:
                if sample.id in ids:
                    raise RecordError(f"{where}: item id {sample.id!r} appears twice; paired "
                                      "statistics need unique ids within a task.",
                                      hint="Give every JSONL row its own 'id'.")
                ids.add(sample.id)
                bad = [k for k, v in sample.scores.items() if not math.isfinite(v)] + [
                    k for k, v in sample.stats.items() if not all(map(math.isfinite, v))] + [
                    "loglikelihoods" for v in sample.loglikelihoods or ()
                    if math.isnan(v) or v == math.inf][:1]
                if bad:
                    raise RecordError(f"{where}: item {sample.id!r} has a non-finite (NaN or "
                                      f"infinite) value of {', '.join(sorted(set(bad)))}.",
                                      hint=_RERUN)


_RERUN = ("Re-run the evaluation; a metric that cannot be computed for an item must not be "
          "recorded as NaN.")
MAX_DEPTH = 100
"""Deepest nesting of free-form settings (config, environment, gate, task settings)."""


def _check_plain(path: Path | str, where: str, fields: dict[str, Any]) -> None:
    """Free-form values hold finite numbers and nest at most :data:`MAX_DEPTH` levels (deeper
    ones would exhaust Python's recursion limit in code that dumps or compares them)."""
    stack: list[tuple[Any, str, int]] = [(v, k, 1) for k, v in fields.items()]
    while stack:
        value, key, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise RecordError(f"{path}: {where}{_short(key)} is non-finite ({value}); records "
                              "hold finite numbers only.")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise RecordError(f"{path}: {where}{_short(key)} is nested more than "
                                  f"{MAX_DEPTH} levels deep.")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]",
                          depth + 1) for k, v in items)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_run(path: Path) -> RunRecord:
    """Read a RunRecord; raise RecordError naming the file and the problem."""
    text = _read_text(path, "run record", "`ftguard eval SUITE --out FILE`")
    data, odd = _parse_json(text, path)
    return _run_from(data, path, odd, text)


def read_record(path: Path) -> RunRecord | Comparison:
    """Read a RunRecord or a Comparison, told apart by their keys (the file is read once)."""
    text = _read_text(path, "file", "`ftguard eval --out` or `ftguard compare --out`")
    data, odd = _parse_json(text, path)
    if isinstance(data, dict) and {"rows", "passed", "base", "tuned"} <= data.keys():
        return _comparison_from(data, path)
    if isinstance(data, dict) and {"model", "suites"} <= data.keys():
        return _run_from(data, path, odd, text)
    raise RecordError(f"{path}: neither an ftguard Comparison (keys rows, passed, base, tuned) "
                      "nor a RunRecord (keys model, suites).",
                      hint="Create one with `ftguard compare --out` or `ftguard eval --out`.")


def _load_json(path: Path, what: str, how: str) -> Any:
    """The JSON value in ``path`` (NaN and infinities read as floats); RecordError naming the
    file (and line) when it cannot be read."""
    return _parse_json(_read_text(path, what, how), path)[0]


def _read_text(path: Path, what: str, how: str) -> str:
    from ftguard.json_file import read_text

    return read_text(path, RecordError, what=what, hint=f"Create one with {how}, or write it "
                                                         "again if it is damaged.")


class _NonFinite(float):
    """A ``NaN``, ``Infinity`` or ``-Infinity`` literal (json.loads accepts them); ``n`` counts
    such literals before it in the file, to find its line."""

    n: int
    literal: str


def _parse_json(text: str, path: Path) -> tuple[Any, list[_NonFinite]]:
    odd: list[_NonFinite] = []

    def constant(literal: str) -> _NonFinite:
        value = _NonFinite(literal)
        value.n, value.literal = len(odd), literal
        odd.append(value)
        return value

    try:
        return json.loads(text, parse_constant=constant), odd
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).",
                          hint="The file may be truncated; write it again.") from None
    except RecursionError:
        raise RecordError(f"{path}:{_line_deeper_than(text, MAX_DEPTH)}: not valid JSON (nested "
                          "deeper than Python's JSON reader allows).",
                          hint="ftguard never writes such a file; write it again.") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise RecordError(f"{path}: not valid JSON ({_short(str(exc), 120)}).") from None


_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'


def _line_deeper_than(text: str, limit: int) -> int:
    """Line where brackets (outside strings) first nest deeper than ``limit``."""
    depth = 0
    for match in re.finditer(_STRING + r"|([\[{])|[\]}]", text):
        if match.group(1):
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif match.group() in ("]", "}"):
            depth -= 1
    return 1


def _line_of_literal(text: str, n: int) -> int:
    """Line of the ``n``-th NaN/Infinity literal (outside strings) of ``text``."""
    found = (m for m in re.finditer(_STRING + r"|(-?Infinity|NaN)", text) if m.group(1))
    for i, match in enumerate(found):
        if i == n:
            return text.count("\n", 0, match.start()) + 1
    return 1


def _refuse_literals(data: Any, odd: list[_NonFinite], text: str, path: Path) -> None:
    """A run record holds finite numbers, except a log-likelihood of -inf (a choice the model
    gives no probability); refuse the first other NaN/Infinity literal, naming its line,
    suite/task, item and key."""
    wanted = {id(v) for v in odd}
    first: tuple[_NonFinite, tuple[Any, ...]] | None = None
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, key = stack.pop()
        if isinstance(value, dict | list):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((v, (*key, k)) for k, v in items)
        elif id(value) in wanted and isinstance(value, _NonFinite):
            allowed = (len(key) == 8 and key[::2] == ("suites", "tasks", "samples",
                                                      "loglikelihoods")
                       and value.literal == "-Infinity")
            if not allowed and (first is None or value.n < first[0].n):
                first = (value, key)
    if first is None:
        return
    value, key = first
    where, rest = "", key
    if key[:1] == ("suites",) and len(key) >= 4 and key[2] == "tasks":
        suite, task = _get(data, key[:2]), _get(data, key[:4])
        where = f"{_short(_get(suite, ('name',)))}/{_short(_get(task, ('name',)))}: "
        rest = key[4:]
        if len(key) >= 6 and key[4] == "samples":
            where += f"item {_short(repr(_get(data, (*key[:6], 'id'))))}: "
            rest = key[6:]
    dotted = ".".join(f"[{k}]" if isinstance(k, int) else _short(str(k), 40) for k in rest)
    raise RecordError(f"{path}:{_line_of_literal(text, value.n)}: {where}non-finite value "
                      f"{value.literal} of {dotted.replace('.[', '[')}; records hold finite "
                      "numbers only.", hint=_RERUN)


def _get(data: Any, key: tuple[Any, ...]) -> Any:
    for k in key:
        try:
            data = data[k]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _run_from(data: Any, path: Path, odd: list[_NonFinite] | None = None,
              text: str = "") -> RunRecord:
    if not isinstance(data, dict) or "schema_version" not in data:
        raise RecordError(f"{path}: not an ftguard run record (no 'schema_version').")
    if data["schema_version"] != SCHEMA_VERSION:
        raise RecordError(f"{path}: run record schema {_short(data['schema_version'])} is not "
                          f"supported by this ftguard (schema {SCHEMA_VERSION}).",
                          hint="Re-run the evaluation with this version of ftguard.")
    if odd:
        _refuse_literals(data, odd, text, path)
    _require_scores(data, path)
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        raise _invalid(path, "run record", exc) from None
    check_run(record, path)
    return record


def _require_scores(data: dict[str, Any], path: Path) -> None:
    """Every sample carries ``scores`` (possibly empty): paired statistics need them."""
    for suite in _list(data.get("suites")):
        for task in _list(suite.get("tasks")) if isinstance(suite, dict) else []:
            for sample in _list(task.get("samples")) if isinstance(task, dict) else []:
                if isinstance(sample, dict) and "scores" not in sample:
                    raise RecordError(
                        f"{path}: {_short(suite.get('name'))}/{_short(task.get('name'))}: item "
                        f"{_short(repr(sample.get('id')))} has no 'scores'; every sample must carry "
                        "its per-item scores for paired statistics.",
                        hint="Re-create the record with `ftguard eval --out`.")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _comparison_from(data: Any, path: Path) -> Comparison:
    try:
        comparison = Comparison.model_validate(data)
    except ValidationError as exc:
        raise _invalid(path, "comparison", exc) from None
    _check_plain(path, "", {"settings": comparison.settings})
    return comparison


def _invalid(path: Path, what: str, exc: ValidationError) -> RecordError:
    first = exc.errors()[0]
    where = ".".join(_short(str(p), 40) for p in first["loc"])
    return RecordError(f"{path}: invalid {what} at '{where}': {first['msg']} "
                       f"({exc.error_count()} problem(s)).")


def write_json_atomic(data: Any, path: Path) -> Path:
    """Serialise ``data`` as JSON next to ``path`` and rename it into place."""
    from ftguard.atomic import write_text_atomic

    return write_text_atomic(json.dumps(data, ensure_ascii=False, indent=1) + "\n", Path(path))


# -- Comparison ---------------------------------------------------------------------------


class ComparisonRow(_Model):
    """Base vs tuned on one (suite, task, metric), paired item by item."""

    suite: str
    """Suite name."""
    task: str
    """Task name."""
    metric: str
    """Metric name."""
    role: str
    """Role of the suite: ``target`` or ``general``."""
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


class RuleResult(_Model):
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


class AggregateChange(_Model):
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


class Flip(_Model):
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
    prompt: str | None = None
    """The item's prompt, when the run recorded it."""
    severity: float = 0.0
    """How decisive the flip is (log-likelihood margin swing for choice tasks, else 0)."""


class Comparison(_Model):
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
    flips: list[Flip] = Field(default_factory=list)
    """Items that changed correctness, most damaging first."""
    notes: list[str] = Field(default_factory=list)
    """What the comparison had to do (e.g. compare only the intersection of items)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Statistical settings: alpha, correction, resamples, seed."""


def write_comparison(comparison: Comparison, path: Path) -> Path:
    """Write a Comparison atomically."""
    return write_json_atomic(comparison.model_dump(mode="json"), path)


def read_comparison(path: Path) -> Comparison:
    """Read a Comparison; raise RecordError naming the file."""
    return _comparison_from(_load_json(path, "comparison file", "`ftguard compare --out`"), path)
