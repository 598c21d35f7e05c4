"""The state behind ``pytest --ftguard``: options, suites, one evaluation, the comparison.

Imported only when ``--ftguard`` is given (see :mod:`ftguard.pytest_plugin`, whose hooks
delegate here). The flow per pytest session:

1. configure: options from the command line, else ``[tool.ftguard]`` in the rootdir's
   pyproject.toml; the policy file is read (bad input = ``pytest.UsageError``);
2. collection: every ``suite.yaml`` becomes a :class:`SuiteFile` with one
   :class:`TaskNode` per task and one :class:`GateItem` per gated check, i.e. per gate rule
   and (task, metric) row it selects: ``legal/suite.yaml::clause_type::accuracy[no_regression]``;
3. first item: the model is evaluated once on every suite that has selected items (one
   RunRecord, like ``ftguard eval``), compared with the accepted baseline by the same
   :func:`ftguard.compare.compare` as ``ftguard compare`` (so p-values are adjusted across
   the same rows), the baseline is accepted (``--ftguard-update-baseline``) and the HTML
   report written (``--ftguard-report``);
4. each item judges its own rule on its own row; the terminal summary prints the table.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ftguard.errors import FtguardError, ModelError, UsageError
from ftguard.gate import Policy, PolicyFile, Rule
from ftguard.record import Comparison, ComparisonRow, RunRecord
from ftguard.suite import Suite

SUITE_FILE = "suite.yaml"
NO_BASELINE_HINT = "run with --ftguard-update-baseline to create it"
_FAKE = re.compile(r"^fake(?::\d+)?$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_KEYS = ("model", "adapter", "baseline", "policy", "report", "limit", "backend",
              "base_url", "api_key_env", "max_concurrency", "strict_power", "allow_unchecked")


# -- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateOptions:
    """The plugin's settings: ``--ftguard-*`` flags, else ``[tool.ftguard]`` keys."""

    model: str | None = None
    """Model SPEC (``--ftguard-model`` / ``model``); None = the embedded default."""
    adapter: str | None = None
    """PEFT adapter folder (``--ftguard-adapter`` / ``adapter``)."""
    baseline: Path = Path("baselines")
    """Baseline folder or RunRecord file (``--ftguard-baseline`` / ``baseline``)."""
    policy: Path | None = None
    """Gate policy YAML (``--ftguard-policy`` / ``policy``)."""
    report: Path | None = None
    """HTML report to write (``--ftguard-report`` / ``report``)."""
    limit: int | None = None
    """First N items per task (``--ftguard-limit`` / ``limit``)."""
    update_baseline: bool = False
    """Accept the current results as the baseline (``--ftguard-update-baseline``)."""
    backend: str = "hf"
    """``hf`` or ``openai`` (``--ftguard-backend`` / ``backend``)."""
    base_url: str | None = None
    """The server's API root (``--ftguard-base-url`` / ``base_url``)."""
    api_key_env: str | None = None
    """Environment variable with the API key (``--ftguard-api-key-env`` / ``api_key_env``)."""
    max_concurrency: int = 8
    """Requests in flight (``--ftguard-max-concurrency`` / ``max_concurrency``)."""
    strict_power: bool = False
    """Underpowered checks fail (``--ftguard-strict-power`` / ``strict_power``)."""
    allow_unchecked: tuple[str, ...] = ()
    """Rules whose rows may be uncomparable (``--ftguard-allow-unchecked`` / ``allow_unchecked``)."""


def read_options(config: pytest.Config) -> GateOptions:
    """Command-line flags win over ``[tool.ftguard]``; paths in the file are relative to it."""
    table, source = _pyproject_table(config.rootpath / "pyproject.toml")
    here = config.invocation_params.dir

    flags: set[str] = set()

    def pick(key: str) -> tuple[Any, Path] | None:
        flag = config.getoption(f"ftguard_{key}")
        if flag is not None:
            flags.add(key)
            return flag, here
        return (table[key], source.parent) if key in table else None

    def path(key: str) -> Path | None:
        got = pick(key)
        if got is None:
            return None
        value, base = got
        if not isinstance(value, str) or not value:
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a path string.")
        return base / value

    def model(key: str) -> str | None:  # a SPEC is a path only when it names one
        got = pick(key)
        if got is None:
            return None
        value, base = got
        if not isinstance(value, str) or not value:
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a string.")
        return str(base / value) if (base / value).exists() and base != here else value

    def text(key: str) -> str | None:
        got = pick(key)
        if got is not None and (not isinstance(got[0], str) or not got[0]):
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a string.")
        return got[0] if got else None

    def positive(key: str) -> int | None:
        got = pick(key)
        if got is not None and (isinstance(got[0], bool) or not isinstance(got[0], int)
                                or got[0] < 1):
            flag = "--ftguard-" + key.replace("_", "-")
            where = flag if key in flags else f"[tool.ftguard] {key} in {source}"
            raise UsageError(f"{where} {got[0]!r}: must be a positive integer.")
        return got[0] if got else None

    def flag(key: str) -> bool:
        got = pick(key)
        if got is not None and not isinstance(got[0], bool):
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be true or false.")
        return bool(got and got[0])

    def texts(key: str) -> tuple[str, ...]:
        got = pick(key)
        values = [] if got is None else [got[0]] if isinstance(got[0], str) else got[0]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"[tool.ftguard] {key} in {source}: must be a list of rules.")
        return tuple(values)

    backend = text("backend") or "hf"
    if backend not in ("hf", "openai"):
        raise UsageError(f"[tool.ftguard] backend in {source}: {backend!r}; use hf or openai.")
    return GateOptions(model=model("model"), adapter=model("adapter"),
                       baseline=path("baseline") or config.rootpath / "baselines",
                       policy=path("policy"), report=path("report"), limit=positive("limit"),
                       update_baseline=bool(config.getoption("ftguard_update_baseline")),
                       backend=backend, base_url=text("base_url"),
                       api_key_env=text("api_key_env"),
                       max_concurrency=positive("max_concurrency") or 8,
                       strict_power=flag("strict_power"),
                       allow_unchecked=texts("allow_unchecked"))


def _pyproject_table(path: Path) -> tuple[dict[str, Any], Path]:
    if not path.is_file():
        return {}, path
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return {}, path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc}).") from None
    table = data.get("tool", {}).get("ftguard", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.ftguard] must be a table.")
    # Other keys may configure the ftguard CLI; the plugin reads only its own.
    return {k.replace("-", "_"): v for k, v in table.items()
            if k.replace("-", "_") in _FILE_KEYS}, path


def refuse_xdist(config: pytest.Config) -> None:
    """The model is evaluated once per session; xdist workers would each evaluate it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER") or hasattr(config, "workerinput")
    requested = config.pluginmanager.hasplugin("xdist") and (
        bool(getattr(config.option, "numprocesses", None))
        or getattr(config.option, "dist", "no") not in ("no", None))
    if worker or requested:
        raise pytest.UsageError(
            "--ftguard does not run under pytest-xdist: the model is evaluated once per "
            "session and compared as a whole, and each worker would evaluate it again. Run the "
            "ftguard checks in one process (add -n 0 or -p no:xdist).")


# -- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One gated check: a rule applied to one (suite, task, metric) row."""

    suite: str
    task: str
    metric: str
    """Metric name; ``headline`` when the task's metrics are known only after evaluation."""
    rule: Rule
    name: str
    """Item name: the metric and the rule's condition, ``accuracy[not-regressed]``."""

    def row(self, comparison: Comparison) -> ComparisonRow | None:
        for row in comparison.rows:
            if (row.suite, row.task) == (self.suite, self.task) and (
                    row.metric == self.metric or (self.metric == "headline" and row.headline)):
                return row
        return None


def checks_of(suite: Suite, policy: Policy) -> list[Check]:
    """The gated checks of ``suite``: every (rule, task metric) pair the rule selects."""
    from ftguard.metrics.registry import expand_metric_names

    out: list[Check] = []
    for task in suite.tasks:
        spec = task.spec
        try:
            metrics = expand_metric_names(spec.kind, spec.metric_names, spec.labels)
        except (KeyError, ValueError):  # lm_eval tasks: metrics come from lm-eval's YAML
            metrics = []
        names: set[str] = set()
        for rule in policy.rules:
            if metrics:
                picked = [m for i, m in enumerate(metrics) if rule.selects(ComparisonRow.model_construct(
                    suite=suite.name, task=task.name, metric=m, role=suite.spec.role,
                    headline=i == 0))]
            else:
                picked = [rule.metric] if rule.selects(ComparisonRow.model_construct(
                    suite=suite.name, task=task.name, metric=rule.metric, role=suite.spec.role,
                    headline=True)) else []
            for metric in picked:
                name = _unique(f"{metric}[{rule.condition}]", names)
                out.append(Check(suite.name, task.name, metric, rule, name))
    return out


def _suite_roots(path: Path, skip: list[str]) -> list[Path]:
    import fnmatch

    if path.is_file():
        return [path.parent] if path.name == SUITE_FILE else []
    roots = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in skip))
        if SUITE_FILE in files:
            roots.append(Path(folder))
    return roots


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


# -- pytest nodes ------------------------------------------------------------------------


class SuiteFile(pytest.File):
    """A ``suite.yaml``: one :class:`TaskNode` per task that has gated checks."""

    gate: GateSession

    def collect(self) -> Iterator[pytest.Collector]:
        try:
            suite = self.gate.suite_at(self.path.parent)
        except FtguardError as exc:
            raise self.CollectError(f"ftguard: {exc}") from None
        checks = checks_of(suite, self.gate.policy)
        if not checks:
            self.warn(pytest.PytestWarning(
                f"ftguard: suite {suite.name} ({suite.spec.role}) has no gated checks under "
                f"the policy ({'; '.join(r.describe() for r in self.gate.policy.rules)}); add "
                "a gate: section to its suite.yaml or pass --ftguard-policy."))
        for task in dict.fromkeys(c.task for c in checks):
            node = TaskNode.from_parent(self, name=task)
            node.suite, node.checks = suite, [c for c in checks if c.task == task]
            yield node


class TaskNode(pytest.Collector):
    """A task of a suite: one :class:`GateItem` per gated check."""

    suite: Suite
    checks: list[Check]

    def collect(self) -> Iterator[pytest.Item]:
        for check in self.checks:
            yield GateItem.from_parent(self, name=check.name, check=check, suite=self.suite)


class GateItem(pytest.Item):
    """One gated check; its verdict comes from the session's single comparison."""

    def __init__(self, *, check: Check, suite: Suite, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check, self.suite = check, suite
        self.gate: GateSession = self.parent.parent.gate  # type: ignore[union-attr]
        self.extra_keyword_matches.update({check.suite, check.task, check.metric,
                                           check.rule.kind})

    def setup(self) -> None:
        self.gate.prepare(self)

    def runtest(self) -> None:
        self.gate.judge(self)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        c = self.check
        return self.path, None, f"ftguard {c.suite}/{c.task} {self.name}"


# -- the session -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one suite's items are judged on."""

    comparison: Comparison | None = None
    baseline: str = ""
    """The baseline in words: name, model and file."""
    skip: str | None = None
    """Why the suite is not gated (no baseline)."""
    error: str | None = None
    """Why it cannot be gated (incomparable baseline, unreadable index)."""


@dataclass
class GateSession:
    """Everything the hooks delegate to; lives in ``config.stash``."""

    config: pytest.Config
    options: GateOptions
    policy_file: PolicyFile | None = None
    selected: dict[str, Suite] = field(default_factory=dict)
    """Suites with selected items: the ones evaluated."""
    tasks: set[tuple[str, str]] = field(default_factory=set)
    """(suite, task) pairs with selected items: the ones in the summary table."""
    run: RunRecord | None = None
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    failure: BaseException | None = None
    failure_reported: bool = False
    suite_files: int = 0
    """suite.yaml files collected (none: --ftguard has nothing to gate)."""
    notes: list[str] = field(default_factory=list)
    _suites: dict[Path, Suite] = field(default_factory=dict)
    _policy: Policy | None = None
    _evaluated: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> GateSession:
        from ftguard.gate import load_policy

        refuse_xdist(config)
        try:
            options = read_options(config)
            policy = load_policy(options.policy) if options.policy else None
        except FtguardError as exc:
            raise pytest.UsageError(f"ftguard: {exc}") from None
        return cls(config, options, policy)

    # collection

    def collect_file(self, path: Path, parent: pytest.Collector) -> SuiteFile | None:
        if path.name != SUITE_FILE:
            return None
        node = SuiteFile.from_parent(parent, path=path)
        node.gate = self
        self.suite_files += 1
        return node

    def suite_at(self, root: Path) -> Suite:
        from ftguard.suite import load_suite

        key = root.resolve()
        if key not in self._suites:
            self._suites[key] = load_suite(key)
        return self._suites[key]

    @property
    def policy(self) -> Policy:
        """The policy ``ftguard compare`` would use (the one resolver): ``--ftguard-policy``,
        else the suites' ``gate:`` sections, else every headline must not regress; every rule
        resolved against the suites below the pytest arguments."""
        if self._policy is None:
            from ftguard.gate import (
                check_rules,
                gateables_of_suites,
                resolve_policy,
                suite_gates_of_suites,
            )

            suites = self._prescan()
            try:
                policy = resolve_policy(policy=self.policy_file,
                                        suite_gates=suite_gates_of_suites(suites),
                                        strict_power=self.options.strict_power or None,
                                        allow_unchecked=self.options.allow_unchecked)
                check_rules(policy.rules, gateables_of_suites(suites))
            except FtguardError as exc:
                raise pytest.UsageError(f"ftguard: {exc}") from None
            self._policy = policy
        return self._policy

    def _prescan(self) -> list[Suite]:
        """Every loadable suite below the pytest arguments, walked as pytest walks them
        (``norecursedirs`` pruned, so ``.venv`` and friends are not searched)."""
        here = self.config.invocation_params.dir
        skip = self.config.getini("norecursedirs")
        suites: list[Suite] = []
        for arg in self.config.args:
            for root in _suite_roots(here / arg.split("::")[0], skip):
                try:
                    suites.append(self.suite_at(root))
                except FtguardError:  # reported when pytest collects it
                    pass
        return list({s.name: s for s in suites}.values())

    def collection_finished(self, session: pytest.Session) -> None:
        for item in session.items:
            if isinstance(item, GateItem):
                self.selected.setdefault(item.check.suite, item.suite)
                self.tasks.add((item.check.suite, item.check.task))
        if not self.suite_files:
            where = " ".join(self.config.args) or str(self.config.invocation_params.dir)
            raise pytest.UsageError(f"ftguard: --ftguard found no suite.yaml under {where}, so "
                                    "nothing would be gated. Give the folders of your suites "
                                    "(pytest --ftguard suites/legal).")
        if self.selected and not self.config.option.collectonly:
            try:
                self._check_model()
                self._check_files()
            except FtguardError as exc:
                raise pytest.UsageError(f"ftguard: {_flags(str(exc))}") from None

    def _check_files(self) -> None:
        """The baseline is readable and the report can be written, before any evaluation."""
        from ftguard.outputs import output_file

        output_file(self.options.report, "--ftguard-report",
                    inputs={"--ftguard-baseline": self.options.baseline})
        baseline = self.options.baseline
        if self.options.update_baseline or not baseline.exists():
            return
        if baseline.is_dir():
            from ftguard.baseline import load_index

            load_index(baseline)
        else:
            from ftguard.record import read_run

            read_run(baseline)

    def _check_model(self) -> None:
        """Catch a missing model or adapter folder before any item runs (cheap checks
        only: hub ids and the embedded model are resolved when the model is loaded)."""
        from ftguard.models.embedded import EMBEDDED_NAME
        from ftguard.models.resolve import resolve_model

        load = self.load_options()
        spec = load.model
        if load.backend == "openai":
            return  # a served model id; the server is asked when the run starts
        if spec and not _FAKE.match(spec) and spec != EMBEDDED_NAME and (
                Path(spec).expanduser().exists() or not _HUB_ID.match(spec)):
            resolve_model(spec, allow_pickle=load.allow_pickle)
        if load.adapter and not Path(load.adapter).expanduser().is_dir():
            raise ModelError(f"--ftguard-adapter {load.adapter}: no such folder.",
                             hint="Give the folder written by save_pretrained() of a PEFT model.")

    def load_options(self) -> Any:  # -> LoadOptions
        from ftguard.models.load import LoadOptions

        o = self.options
        return LoadOptions(model=o.model, adapter=o.adapter, backend=o.backend,
                           base_url=o.base_url, api_key_env=o.api_key_env,
                           max_concurrency=o.max_concurrency)

    # running

    def prepare(self, item: GateItem) -> None:
        """Item setup: evaluate and compare once; skip or error when it cannot be gated."""
        if not self._evaluated:
            self._evaluated = True
            self._evaluate_and_compare()
        if self.failure is not None:
            if not self.failure_reported:
                self.failure_reported = True
                if isinstance(self.failure, FtguardError):
                    pytest.fail(f"ftguard: {_flags(str(self.failure))}", pytrace=False)
                raise self.failure  # a bug: show its traceback once
            pytest.fail("ftguard: the model was not evaluated (see the first ftguard error).",
                        pytrace=False)
        if self.options.update_baseline:
            return
        outcome = self.outcomes[item.check.suite]
        if outcome.error:
            pytest.fail(outcome.error, pytrace=False)
        if outcome.skip:
            pytest.skip(outcome.skip)

    def judge(self, item: GateItem) -> None:
        """Item call: the item's rule on its row; fail with the rule, the numbers and flips."""
        if self.options.update_baseline:
            return  # the results just became the baseline
        from ftguard.gate import row_outcome

        check, outcome = item.check, self.outcomes[item.check.suite]
        assert outcome.comparison is not None
        row = check.row(outcome.comparison)
        result = next(o for o in outcome.comparison.gate if o.rule == check.rule.text)
        if row is not None:
            item.user_properties += [
                ("base", row.base), ("tuned", row.tuned), ("delta", row.delta),
                ("ci_low", row.ci_low), ("ci_high", row.ci_high),
                ("p_adjusted", row.p_adjusted), ("n", row.n), ("mde", row.mde),
                ("verdict", row.verdict), ("rule", result.rule), ("origin", result.origin)]
        status, message = row_outcome(result, row, strict_power=self.policy.strict_power)
        if status == "fail":
            pytest.fail(failure_message(check, row, message, outcome) if row else message,
                        pytrace=False)
        if status == "skip":
            pytest.skip(message)

    def _evaluate_and_compare(self) -> None:
        from ftguard.api import evaluate
        from ftguard.engine.settings import RunSettings

        try:
            self.run = evaluate(list(self.selected.values()), load=self.load_options(),
                                settings=RunSettings(limit=self.options.limit))
            self._compare(self.run)
            if self.options.update_baseline:
                self.notes.append(accept_run(self.run, self.options.baseline))
        except Exception as exc:  # noqa: BLE001 -- the first item reports it (a bug: traceback)
            self.failure = exc
            return
        if self.options.report:
            self._write_report()

    def _compare(self, run: RunRecord) -> None:
        from ftguard.compare import IncomparableRunsError, compare

        groups, missing = find_baselines(self.options.baseline, run)
        root = _shown(self.options.baseline)
        for name in missing:
            self.outcomes[name] = Outcome(skip=f"no baseline for suite {name} in {root}: "
                                               f"{NO_BASELINE_HINT}.")
        for base, described, names in groups:
            try:
                comparison = compare(only(base, names), only(run, names), self.policy,
                                     check_rules=False)
                outcome = Outcome(comparison=comparison, baseline=described)
            except IncomparableRunsError as exc:
                text = str(exc).split("\nRe-run both")[0]
                outcome = Outcome(baseline=described, error=(
                    f"ftguard: the baseline {described} is not comparable with this run: "
                    f"{text}\nIf the suites or --ftguard-limit changed on purpose, run with "
                    "--ftguard-update-baseline to accept the current results as the new "
                    "baseline."))
            self.outcomes.update(dict.fromkeys(names, outcome))

    def _write_report(self) -> None:
        from ftguard.report.render import write_report
        from ftguard.train.record import discover_train_record

        assert self.options.report is not None and self.run is not None
        comparisons = list({id(o.comparison): o.comparison for o in self.outcomes.values()
                            if o.comparison is not None}.values())
        path = self.options.report
        try:
            if not comparisons:
                self.notes.append(f"wrote {_shown(write_report(self.run, path))} (results "
                                  "only: no baseline to compare with)")
            for i, comparison in enumerate(comparisons):
                target = path if i == 0 else path.with_name(f"{path.stem}-{i + 1}{path.suffix}")
                train = discover_train_record(comparison.tuned)
                self.notes.append(f"wrote {_shown(write_report(comparison, target, train=train))}")
        except OSError as exc:
            warnings.warn(pytest.PytestWarning(f"ftguard: cannot write the report {path}: "
                                               f"{exc}"), stacklevel=2)

    # reporting

    def terminal_summary(self, tr: Any) -> None:
        if self.run is None and self.failure is None:
            return
        tr.write_sep("-", "ftguard")
        if self.failure is not None:
            tr.write_line(f"ftguard: not evaluated: {_flags(str(self.failure)).splitlines()[0]}")
            return
        assert self.run is not None
        model = self.run.model
        tr.write_line(f"model: {model.spec} ({model.fingerprint[:19]}"
                      + (f", adapter {model.adapter}" if model.adapter else "") + ")")
        shown: set[int] = set()
        for name, outcome in self.outcomes.items():
            if id(outcome) in shown:
                continue
            shown.add(id(outcome))
            if outcome.comparison is not None:
                tr.write_line(f"baseline: {outcome.baseline}")
                rows = [r for r in outcome.comparison.rows if (r.suite, r.task) in self.tasks]
                for line in summary_table(rows):
                    tr.write_line(line)
                for line in outcome.comparison.underpowered:
                    tr.write_line(f"underpowered: {line}")
                for line in outcome.comparison.not_gated:
                    tr.write_line(f"not gated: {line}")
                for line in outcome.comparison.warnings:
                    tr.write_line(f"warning: {line}")
            elif outcome.error:
                tr.write_line(f"suite {name}: {outcome.error.splitlines()[0]}")
            elif outcome.skip and self.options.update_baseline:
                tr.write_line(f"suite {name}: no previous baseline to compare with")
            elif outcome.skip:
                tr.write_line(f"suite {name}: {outcome.skip}")
        for note in self.notes:
            tr.write_line(f"ftguard: {note}")


# -- baselines ---------------------------------------------------------------------------


def find_baselines(root: Path, run: RunRecord
                   ) -> tuple[list[tuple[RunRecord, str, list[str]]], list[str]]:
    """Group the run's suites by the baseline that covers them.

    One entry covering every suite (with matching hashes) is preferred, so the comparison and
    its multiple-testing adjustment are those of ``ftguard compare``. Otherwise each suite
    gets the newest entry with its hash, else the newest with its name (then compare lists
    what differs). Returns ``[(baseline run, description, suite names)]`` and the suites
    that have no baseline.
    """
    from ftguard.baseline import find_baseline

    hashes = {s.name: s.hash for s in run.suites}
    hit = find_baseline(root, hashes) if hashes else None
    if hit is not None and hashes.keys() <= {s.name for s in hit[0].suites}:
        return [(hit[0], _describe(root, hit[1]), list(hashes))], []
    groups: dict[tuple[str, bool], tuple[RunRecord, str, list[str]]] = {}
    missing: list[str] = []
    for name, digest in hashes.items():
        found = find_baseline(root, {name: digest}) or find_baseline(root, [name])
        if found is None or name not in {s.name for s in found[0].suites}:
            missing.append(name)
            continue
        base, entry = found
        key = (entry.file, entry.suites.get(name) == digest)
        groups.setdefault(key, (base, _describe(root, entry), []))[2].append(name)
    return list(groups.values()), missing


def accept_run(run: RunRecord, root: Path) -> str:
    """Store ``run`` as the baseline (a RunRecord file, or an entry of a baseline folder).

    Suites of the stored baseline that this run did not evaluate are kept when the model is
    the same (same fingerprint), so gating one suite does not drop another's baseline.
    """
    from ftguard.baseline import accept, baseline_name, find_baseline
    from ftguard.record import read_run, write_run

    if root.suffix == ".json" or root.is_file():
        old = read_run(root) if root.is_file() else None
        write_run(merged(old, run), root)
        return f"accepted {run.model.spec} as the baseline {_shown(root)}"
    name = baseline_name(run)
    found = find_baseline(root, [], name=name) if root.is_dir() else None
    with tempfile.TemporaryDirectory() as tmp:
        path = write_run(merged(found[0] if found else None, run), Path(tmp) / "run.json")
        entry = accept(path, root, name=name, force=True)
    return (f"accepted {run.model.spec} as baseline {entry.name} in {_shown(root)} "
            f"({entry.file}, suites {', '.join(entry.suites)})")


def merged(old: RunRecord | None, run: RunRecord) -> RunRecord:
    if old is None or old.model.fingerprint != run.model.fingerprint:
        return run
    names = {s.name for s in run.suites}
    return run.model_copy(update={"suites": run.suites + [s for s in old.suites
                                                          if s.name not in names]})


def only(run: RunRecord, names: list[str]) -> RunRecord:
    return run.model_copy(update={"suites": [s for s in run.suites if s.name in names]})


def _describe(root: Path, entry: Any) -> str:
    where = _shown(root) if root.is_file() else _shown(root / entry.file)
    return f"{entry.name} = {entry.model} ({entry.fingerprint[:19]}) from {where}"


def _flags(message: str) -> str:
    """Name the plugin's flags in messages written for the CLI's."""
    return re.sub(r"(?<![\w-])--(model|adapter)\b", r"--ftguard-\1", message)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# -- wording -----------------------------------------------------------------------------


def failure_message(check: Check, row: ComparisonRow, reason: str, outcome: Outcome,
                    flips: int = 5) -> str:
    """The gate rule, the numbers (delta, CI, p) and the items that flipped."""
    from ftguard.compare_output import _short

    assert outcome.comparison is not None
    lines = [reason, f"gate rule: {check.rule.text} ({check.rule.describe()}) [{check.rule.origin}]",
             f"baseline: {outcome.baseline}",
             (f"current:  {outcome.comparison.tuned.spec} "
              f"({outcome.comparison.tuned.fingerprint[:19]})")]
    task_flips = [f for f in outcome.comparison.flips
                  if (f.suite, f.task) == (check.suite, check.task)]
    lost = [f for f in task_flips if f.direction == "correct_to_wrong"]
    if task_flips:
        lines.append(f"{len(lost)} item(s) went correct -> wrong and "
                     f"{len(task_flips) - len(lost)} wrong -> correct on {task_flips[0].metric}"
                     + (", most decisive first:" if lost else "."))
        lines += [f"  - {f.id}: target {_short(f.target)}, baseline "
                  f"{_short(f.base_prediction)}, current {_short(f.tuned_prediction)}"
                  for f in lost[:flips]]
    return "\n".join(lines)


_HEADERS = ("task", "metric", "baseline", "current", "delta", "95% CI", "p adj", "verdict")


def summary_table(rows: list[ComparisonRow]) -> list[str]:
    """pytest-benchmark-style table of every compared row; ``*`` marks gated metrics."""
    from ftguard.gate import format_ci

    cells = [[f"{r.suite}/{r.task}", r.metric + ("*" if r.gated else ""), f"{r.base:.4g}",
              f"{r.tuned:.4g}", f"{r.delta:+.4g}", format_ci(r.ci_low, r.ci_high)
              if r.comparable else "-", "-" if r.p_adjusted is None else f"{r.p_adjusted:.3g}",
              r.verdict + (" FAIL" if r.failed else "")
              + (" (untestable)" if r.comparable and not r.testable else "")] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() for c in cells]
    return lines + ["(* = gated metric; p adjusted across gated rows)"]


__all__ = ["Check", "GateItem", "GateOptions", "GateSession", "Outcome", "SuiteFile",
           "TaskNode", "accept_run", "checks_of", "find_baselines", "read_options"]
