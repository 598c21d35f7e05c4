"""Items whose headline 0/1 metric changed between base and tuned (``Comparison.flips``).

``pairs`` are compare's paired tasks (``suite``, ``base``/``tuned`` task results and their
samples in the same item order); variant tasks (``TASK@NAME``) repeat their task's items and
are left out.
"""

from __future__ import annotations

from typing import Any

from ftguard.record import Flip, SampleResult
from ftguard.variant_names import is_variant_task


def item_flips(pairs: list[Any]) -> list[Flip]:
    """Items whose headline 0/1 metric changed; correct -> wrong first, most decisive first."""
    flips: list[Flip] = []
    for pair in pairs:
        metric = next(iter(pair.base.metrics), None)
        if metric is None or is_variant_task(pair.base.name):
            continue
        for b, t in zip(pair.base_samples, pair.tuned_samples):
            before, after = b.scores.get(metric), t.scores.get(metric)
            if before not in (0.0, 1.0) or after not in (0.0, 1.0) or before == after:
                continue
            flips.append(Flip(
                suite=pair.suite, task=pair.base.name, metric=metric, id=b.id,
                direction="correct_to_wrong" if before == 1.0 else "wrong_to_correct",
                target=b.target, base_prediction=b.prediction, tuned_prediction=t.prediction,
                base_raw_prediction=b.raw_prediction, tuned_raw_prediction=t.raw_prediction,
                prompt=t.prompt or b.prompt, severity=_severity(b, t)))
    flips.sort(key=lambda f: (f.direction != "correct_to_wrong", -f.severity))
    return flips


def _severity(base: SampleResult, tuned: SampleResult) -> float:
    """Swing of the gold answer's log-likelihood margin over the best other choice."""

    def margin(sample: SampleResult) -> float | None:
        lls, gold = sample.loglikelihoods, sample.gold
        if not lls or gold is None or len(lls) < 2:
            return None
        return lls[gold] - max(v for i, v in enumerate(lls) if i != gold)

    a, b = margin(base), margin(tuned)
    return abs(a - b) if a is not None and b is not None else 0.0
