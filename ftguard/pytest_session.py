"""The state behind ``pytest --ftguard``: options, suites, one evaluation, the comparison.

Imported only when ``--ftguard`` is given (see :mod:`ftguard.pytest_plugin`, whose hooks
delegate here). The flow per pytest session:

1. configure: options from the command line, else ``[tool.ftguard]`` in the rootdir's
   pyproject.toml (:mod:`ftguard.pytest_options`); the policy file is read (bad input =
   ``pytest.UsageError``);
2. collection (:mod:`ftguard.pytest_nodes`): every ``suite.yaml`` becomes a
   :class:`~ftguard.pytest_nodes.SuiteFile` with one ``TaskNode`` per task and one
   ``GateItem`` per gated check, i.e. per gate rule and (task, metric) row it selects:
   ``legal/suite.yaml::clause_type::accuracy[no_regression]``;
3. first item: the model is evaluated once on every suite that has selected items (one
   RunRecord, like ``ftguard eval``), compared with the accepted baseline by the same
   :func:`ftguard.compare.compare` as ``ftguard compare`` (so p-values are adjusted across
   the same rows), the baseline is accepted (``--ftguard-update-baseline``) and the HTML
   report written (``--ftguard-report``);
4. each item judges its own rule on its own row; the terminal summary prints the table
   (wording in :mod:`ftguard.pytest_text`; baselines found and stored by
   :mod:`ftguard.baseline`).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ftguard.errors import FtguardError, ModelError, UsageError
from ftguard.gate import Policy, PolicyFile
from ftguard.pytest_nodes import SUITE_FILE, GateItem, SuiteFile, suite_roots
from ftguard.pytest_options import GateOptions, read_options, refuse_xdist, resolve_suite_names
from ftguard.pytest_text import (
    NO_BASELINE_HINT,
    accepted,
    describe,
    failure_message,
    plugin_flag,
    summary_table,
)
from ftguard.record import Comparison, RunRecord
from ftguard.suite import Suite

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
        resolve_suite_names(config)
        try:
            options = read_options(config)
            policy = load_policy(options.policy) if options.policy else None
        except FtguardError as exc:
            raise pytest.UsageError(f"ftguard: {exc.worded(plugin_flag)}") from None
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
            for root in suite_roots(here / arg.split("::")[0], skip):
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
        try:
            self._check_tasks()
        except FtguardError as exc:
            raise pytest.UsageError(f"ftguard: {exc.worded(plugin_flag)}") from None
        if self.selected and not self.config.option.collectonly:
            try:
                self._check_model()
                self._check_files()
            except FtguardError as exc:
                raise pytest.UsageError(f"ftguard: {exc.worded(plugin_flag)}") from None

    def _check_tasks(self) -> None:
        """Every ``--ftguard-tasks`` name selects a task of the suites found; a baseline is
        not updated from some of a suite's tasks (it would replace the suite's whole one)."""
        from ftguard.engine.tasks import check_tasks, narrowed

        if self.options.tasks:
            check_tasks(self.options.tasks, list({s.name: s for s in self._suites.values()}
                                                 .values()))
        if self.options.update_baseline and (some := narrowed(self._chosen())):
            raise UsageError(f"--ftguard-update-baseline with {{--tasks}} ({', '.join(some)}): "
                             "a suite's baseline is replaced whole, so the baseline of its "
                             "other tasks would be lost.", option="tasks",
                             hint="Select whole suites (SUITE/*) or leave {--tasks} out.")

    def _chosen(self) -> list[Suite]:
        """The suites with selected items, with only their tasks ``--ftguard-tasks`` selects."""
        from ftguard.engine.tasks import select_tasks

        return select_tasks(list(self.selected.values()), self.options.tasks)

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
        from ftguard.models.registry import model_backend
        from ftguard.models.resolve import resolve_model

        load = self.load_options()
        spec = load.model
        if load.backend == "openai":
            return  # a served model id; the server is asked when the run starts
        if spec and model_backend(spec) != "fake" and spec != EMBEDDED_NAME and (
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
                    pytest.fail(f"ftguard: {self.failure.worded(plugin_flag)}", pytrace=False)
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
            self.run = evaluate(self._chosen(), load=self.load_options(),
                                settings=RunSettings(limit=self.options.limit))
            self._compare(self.run)
            if self.options.update_baseline:
                from ftguard.baseline import update

                root = self.options.baseline
                self.notes.append(accepted(self.run, root, update(self.run, root)))
                if partial := self.run.config.partial_reason():  # kept: gated with the same
                    self.notes.append(f"warning: the baseline is a partial run ({partial}); "
                                      "candidates are gated on its items only")
        except Exception as exc:  # noqa: BLE001 -- the first item reports it (a bug: traceback)
            self.failure = exc
            return
        if self.options.report:
            self._write_report()

    def _compare(self, run: RunRecord) -> None:
        from ftguard.baseline import find_baselines, only
        from ftguard.compare import IncomparableRunsError, compare
        from ftguard.engine.runner import display_path

        groups, missing = find_baselines(self.options.baseline, run)
        root = display_path(self.options.baseline)
        for name in missing:
            self.outcomes[name] = Outcome(skip=f"no baseline for suite {name} in {root}: "
                                               f"{NO_BASELINE_HINT}.")
        for base, entry, names in groups:
            described = describe(self.options.baseline, entry)
            try:
                kept = ({(s.name, t.name) for s in self._chosen() for t in s.tasks}
                        if self.options.tasks else None)  # the baseline's same tasks
                comparison = compare(only(base, names, kept), only(run, names), self.policy,
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
        from ftguard.engine.runner import display_path
        from ftguard.report.render import write_report
        from ftguard.train.record import discover_train_record

        assert self.options.report is not None and self.run is not None
        comparisons = list({id(o.comparison): o.comparison for o in self.outcomes.values()
                            if o.comparison is not None}.values())
        path = self.options.report
        try:
            if not comparisons:
                self.notes.append(f"wrote {display_path(write_report(self.run, path))} (results "
                                  "only: no baseline to compare with)")
            for i, comparison in enumerate(comparisons):
                target = path if i == 0 else path.with_name(f"{path.stem}-{i + 1}{path.suffix}")
                train = discover_train_record(comparison.tuned)
                self.notes.append(
                    f"wrote {display_path(write_report(comparison, target, train=train))}")
        except OSError as exc:
            warnings.warn(pytest.PytestWarning(f"ftguard: cannot write the report {path}: "
                                               f"{exc}"), stacklevel=2)

    # reporting

    def terminal_summary(self, tr: Any) -> None:
        if self.run is None and self.failure is None:
            return
        tr.write_sep("-", "ftguard")
        if self.failure is not None:
            text = (self.failure.worded(plugin_flag) if isinstance(self.failure, FtguardError)
                    else str(self.failure))
            tr.write_line(f"ftguard: not evaluated: {text.splitlines()[0]}")
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
                rows = [r for r in outcome.comparison.rows if (r.suite, r.task) in self.tasks
                        and (r.slice is None or r.gated or r.verdict != "unchanged")]
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


__all__ = ["GateSession", "Outcome"]
