"""Judge a candidate against its base, and choose among judged candidates.

Every surface that picks a model under the gate goes through here: checkpoint choice in
``ftguard train`` (:mod:`ftguard.train.checkpoint_eval`) and the merging-weight sweep
(:mod:`ftguard.merge.sweep`). :func:`judge` compares the candidate's run with its base's item
by item (:func:`ftguard.compare.compare`, under the policy every surface resolves) and keeps
what choosing needs; :func:`ranked` and :func:`least_taxed` order candidates the same way
wherever they come from.

``gain`` is the target suites' mean relative change and ``alignment_tax`` the general suites'
(:attr:`ftguard.record.Comparison.alignment_tax`): both are changes, positive = better, so a
negative alignment tax is general ability lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from ftguard.gate import Policy
    from ftguard.record import Comparison, RunRecord

Interval = tuple[float, float]


@dataclass(frozen=True)
class Judgement:
    """A candidate judged against its base."""

    comparison: Comparison
    """The item-by-item comparison the judgement comes from."""
    target_score: float | None
    """Mean headline of the candidate's target suites, oriented so that higher is better."""
    gain: float | None
    """Mean relative change of target headlines vs the base (positive = better)."""
    gain_ci: Interval | None
    """95% confidence interval of ``gain`` (None when unbounded or absent)."""
    alignment_tax: float | None
    """Mean relative change of general headlines vs the base (negative = ability lost)."""
    tax_ci: Interval | None
    """95% confidence interval of ``alignment_tax``."""
    failures: list[str]
    """Why it fails, one line per broken rule (or general row, with ``general_only``)."""

    @property
    def passed(self) -> bool:
        """Whether the candidate passes what it was judged on (no failure)."""
        return not self.failures


def judge(base: RunRecord, candidate: RunRecord, policy: Policy | None = None, *,
          resamples: int, seed: int, general_only: bool = False) -> Judgement:
    """Compare ``candidate`` with ``base`` under ``policy`` (None: the policy the candidate's
    suites resolve). With ``general_only`` only rows of general suites that a rule fails
    count (a sample stage that maximises the target and judges it later on whole suites)."""
    from ftguard.compare import compare
    from ftguard.record import target_score

    comparison = compare(base, candidate, policy, resamples=resamples, seed=seed)
    if general_only:
        failures = [r.reason for r in comparison.rows if r.role == "general" and r.failed]
    else:
        failures = [] if comparison.passed else list(comparison.failures) or ["the gate failed"]
    gain, tax = comparison.gain, comparison.alignment_tax
    return Judgement(
        comparison=comparison, target_score=target_score(candidate),
        gain=gain.value if gain else None,
        gain_ci=_interval(gain.ci_low, gain.ci_high) if gain else None,
        alignment_tax=tax.value if tax else None,
        tax_ci=_interval(tax.ci_low, tax.ci_high) if tax else None,
        failures=failures)


class Judged(Protocol):
    """What choosing reads of a judged candidate (a checkpoint, a merging weight)."""

    @property
    def gain(self) -> float | None: ...

    @property
    def target_score(self) -> float | None: ...

    @property
    def alignment_tax(self) -> float | None: ...

    @property
    def gate_passed(self) -> bool | None: ...


J = TypeVar("J", bound=Judged)


def score(candidate: Judged) -> float:
    """What choosing maximises: the gain, else (no base run) the target score."""
    value = candidate.gain if candidate.gain is not None else candidate.target_score
    return float("-inf") if value is None else value


def ranked(candidates: Sequence[J], *, distance: Callable[[J], float],
           passing_only: bool = True) -> list[J]:
    """Best first: highest :func:`score` among those whose gate passes (``gate_passed`` None,
    no base run, counts as passing) -- all of them without ``passing_only``; ties go to the
    candidate closer to the base (smaller ``distance``: fewer steps, smaller λ)."""
    chosen = [c for c in candidates if not passing_only or c.gate_passed is not False]
    return sorted(chosen, key=lambda c: (-score(c), distance(c)))


def least_taxed(candidates: Sequence[J], *, distance: Callable[[J], float]) -> J | None:
    """The candidate that lost least general ability (highest ``alignment_tax``; ties go to
    the one closer to the base); None when none has an alignment tax."""
    taxed = [c for c in candidates if c.alignment_tax is not None]
    return min(taxed, key=lambda c: (-(c.alignment_tax or 0.0), distance(c)), default=None)


def signed_percent(value: float | None, missing: str = "n/a") -> str:
    """A gain or alignment tax as text: ``+3.1%``, ``-0.5%``, ``missing`` when absent."""
    return missing if value is None else f"{value:+.1%}"


def _interval(low: float | None, high: float | None) -> Interval | None:
    return (low, high) if low is not None and high is not None else None
