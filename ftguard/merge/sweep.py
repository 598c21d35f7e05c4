"""``ftguard merge --sweep``: choose the merging weight λ under the gate.

The base model is loaded once and evaluated; then for every λ of the grid the merge is applied
in memory (:class:`ftguard.merge.live.LiveMerge`) and evaluated on the sweep's sample of each
task (the subset stage), and compared item by item with the base on the same items. Among the
λ whose general-capability gate passes, the one with the best target gain (ties: the smaller
λ, closer to the base) is evaluated on the whole suites (the full stage) and compared with the
base's full run under every gate rule; when that fails, the next best is tried, up to
``FULL_TRIES``. Every run goes through the response and result caches, so an interrupted sweep
resumes and a second one re-evaluates nothing. Each RunRecord, the final Comparison and
``sweep.json`` are written to the records folder as they are made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ftguard.engine.settings import Reporter, RunSettings
from ftguard.gate import Policy
from ftguard.judge import least_taxed, ranked, signed_percent
from ftguard.merge.live import LiveMerge
from ftguard.merge.methods import MergeSpec
from ftguard.merge.sweep_record import SweepPoint, SweepRecord, write_sweep
from ftguard.record import Comparison, RunRecord, write_comparison
from ftguard.suite import Suite

FULL_TRIES = 2
"""Most merging weights evaluated on the whole suites before the sweep gives up."""
SUBSET_RESAMPLES = 2000
"""Bootstrap resamples of the subset stage's comparisons (the full stage uses 10,000)."""


@dataclass
class SweepPlan:
    spec: MergeSpec
    """The merge; its ``lam`` is replaced by each λ of the grid."""
    lambdas: Sequence[float]
    suites: Sequence[Suite]
    subset: RunSettings
    """What every λ is evaluated on."""
    full: RunSettings
    """What the chosen λ is evaluated on."""
    policy: Callable[[RunRecord], Policy]
    """The gate policy for a candidate's run (its suites' rules, or the user's)."""
    records: Path
    """Folder for the RunRecords, comparison.json and sweep.json."""


@dataclass
class SweepResult:
    record: SweepRecord
    comparison: Comparison | None
    """The chosen λ's full comparison; without a choice, the last one made (None if none)."""


def run_sweep(live: LiveMerge, plan: SweepPlan, models: Sequence[str],
              reporter: Reporter | None = None,
              say: Callable[[str], None] = lambda line: None) -> SweepResult:
    merge = plan.spec.settings()
    record = SweepRecord(
        base=live.base.info, models=list(models), method=merge["method"],
        weights=merge["weights"], density=merge["density"], seed=merge["seed"],
        lambdas=list(plan.lambdas),
        subset={"subset": plan.subset.subset, "task_subset": dict(plan.subset.task_subset)})
    say("evaluating the base model on the sweep's sample")
    base_sub = _evaluate(plan, live.base, plan.subset, reporter, "base-subset.json")
    comparisons: dict[float, Comparison] = {}
    for lam in plan.lambdas:
        say(f"lambda {lam:g}: merging in memory and evaluating the sample")
        point, comparisons[lam] = _point(plan, live, lam, base_sub, "subset", reporter)
        record.points.append(point)
        write_sweep(record, plan.records / "sweep.json")
        say(f"lambda {lam:g}: {_summary(point)}")
    passing = rank(record.points)
    best = ranked(record.points, distance=_lam, passing_only=False)[0]
    shown: Comparison | None = comparisons[best.lam]
    if not passing:
        record.reason = ("no merging weight passes the general-capability gate on the sample; "
                         + _least_taxed(record.points))
    base_full: RunRecord | None = None
    for point in passing[:FULL_TRIES]:
        if base_full is None:
            say("evaluating the base model on the whole suites")
            base_full = _evaluate(plan, live.restore(), plan.full, reporter, "base.json")
        say(f"lambda {point.lam:g}: evaluating the whole suites")
        full, shown = _point(plan, live, point.lam, base_full, "full", reporter)
        record.full.append(full)
        say(f"lambda {point.lam:g} (full): {_summary(full)}")
        if full.gate_passed:
            record.chosen = point.lam
            record.reason = (f"best target gain among the {len(passing)} of {len(record.points)} "
                             "merging weights that pass the general gate on the sample, and "
                             "it passes every gate rule on the whole suites")
            break
    if passing and record.chosen is None:
        tried = ", ".join(f"{p.lam:g}" for p in record.full)
        record.reason = (f"the best merging weights on the sample ({tried}) fail the gate on "
                         "the whole suites")
    if shown is not None:
        write_comparison(shown, plan.records / "comparison.json")
    write_sweep(record, plan.records / "sweep.json")
    return SweepResult(record, shown)


def rank(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """The points whose gate passes, best target gain first; ties go to the smaller λ."""
    return ranked(points, distance=_lam)


def run_name(lam: float, stage: str) -> str:
    return f"lambda-{lam:g}{'-subset' if stage == 'subset' else ''}.json"


def _point(plan: SweepPlan, live: LiveMerge, lam: float, base: RunRecord, stage: str,
           reporter: Reporter | None) -> tuple[SweepPoint, Comparison]:
    """Evaluate λ and judge it against the base: on the whole suites under every rule of the
    resolved policy; on the sample, only rows of general suites that a rule fails count (the
    target is what the sweep maximises, judged on the whole suites)."""
    from ftguard.judge import judge

    started = time.perf_counter()
    settings = plan.subset if stage == "subset" else plan.full
    run = _evaluate(plan, live.apply(replace(plan.spec, lam=lam)), settings, reporter,
                    run_name(lam, stage))
    judged = judge(base, run, plan.policy(run), seed=settings.seed,
                   resamples=SUBSET_RESAMPLES if stage == "subset" else 10_000,
                   general_only=stage == "subset")
    return SweepPoint(
        lam=lam, stage=stage, run=run_name(lam, stage),  # type: ignore[arg-type]
        target_score=judged.target_score, gain=judged.gain, gain_ci=judged.gain_ci,
        alignment_tax=judged.alignment_tax, tax_ci=judged.tax_ci,
        gate_passed=judged.passed, gate_failures=judged.failures,
        seconds=round(time.perf_counter() - started, 3)), judged.comparison


def _evaluate(plan: SweepPlan, backend: object, settings: RunSettings,
              reporter: Reporter | None, name: str) -> RunRecord:
    from ftguard.api import evaluate

    return evaluate(plan.suites, backend=backend, settings=settings,  # type: ignore[arg-type]
                    reporter=reporter, cache=True, out=plan.records / name)


def _lam(point: SweepPoint) -> float:
    return point.lam


def _least_taxed(points: Sequence[SweepPoint]) -> str:
    best = least_taxed(points, distance=_lam)
    if best is None or best.alignment_tax is None:
        return "no general suite was evaluated"
    return (f"the least alignment tax was {best.alignment_tax:+.1%} at lambda {best.lam:g}; "
            "try smaller merging weights")


def _summary(point: SweepPoint) -> str:
    gain, tax = signed_percent(point.gain), signed_percent(point.alignment_tax)
    gate = "passes" if point.gate_passed else "FAILS"
    return f"target gain {gain}, alignment tax {tax}, gate {gate}"
