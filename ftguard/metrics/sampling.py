"""Metrics over the ``n`` answers per item of a sampled (or beam-searched) ``generate`` task.

- ``pass@K``: the unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models
  Trained on Code") of the chance that at least one of K answers drawn from the item's n is
  correct, ``1 - C(n-c, K) / C(n, K)`` with c correct answers, computed as the Codex paper's
  numpy snippet does (a product, no large binomials). ``K <= n`` is checked when the suite
  loads. lm-eval names it the same (its ``humaneval`` task reports ``pass@1``).
- ``majority@n``: the score of the answer most of the n answers agree on (lm-eval's gsm8k
  ``maj@k``). Answers are counted after the criterion's normalisation (SQuAD's for
  ``exact_match`` and ``f1``, outer whitespace stripped for the others); a tie goes to the
  tied answer that came first, as lm-eval's ``majority_vote`` filter (``Counter.most_common``)
  breaks it.
- ``mean@n``: the mean criterion score of the n answers.

Which answers are correct is decided by a criterion metric, ``exact_match`` unless the name
gives another in brackets: ``pass@5[exact_match_strict]``, ``mean@n[f1]``. ``pass@K`` counts
answers whose criterion is 1, so its criterion must be binary with higher better;
``majority@n`` and ``mean@n`` take any per-item generate metric and inherit its direction.
Each is a mean metric (one value per item), so intervals and paired tests apply unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ftguard.metrics.base import Metric

DEFAULT_CRITERION = "exact_match"
"""What makes an answer correct when a sampled metric's name does not say."""

FAMILIES: tuple[str, ...] = ("pass@k", "majority@n", "mean@n")
"""The sampled metric families, as help texts name them."""

_NAME = re.compile(r"(?:pass@(?P<k>\d+)|(?P<family>majority|mean)@n)(?:\[(?P<criterion>\w+)\])?")
_NOT_CRITERIA = frozenset({"refusal_margin", "compliance_margin"})  # scored from logprobs


@dataclass(frozen=True)
class SampledName:
    """A parsed sampled metric name: ``pass@5[exact_match]`` is ``("pass", 5, "exact_match")``."""

    family: str
    """``pass``, ``majority`` or ``mean``."""
    k: int | None
    """``pass@K``'s K (None for the others)."""
    criterion: str
    """The metric that scores each answer."""


def parse(name: str) -> SampledName | None:
    """The parts of a sampled metric name; None when ``name`` is not one."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    criterion = match.group("criterion") or DEFAULT_CRITERION
    if match.group("k") is not None:
        return SampledName("pass", int(match.group("k")), criterion)
    return SampledName(match.group("family"), None, criterion)


def is_sampled(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def criteria(names: Sequence[str]) -> list[str]:
    """The criterion metrics the sampled metrics among ``names`` need, in order."""
    return list(dict.fromkeys(p.criterion for n in names if (p := parse(n)) is not None))


def sampled_metric(name: str, metrics: Mapping[str, Metric]) -> Metric | None:
    """The definition of the sampled metric ``name`` (criteria looked up in ``metrics``, the
    registry's); None when it is not one. A criterion that cannot decide correctness raises
    ``KeyError`` as the registry does for an unknown name."""
    parsed = parse(name)
    if parsed is None:
        return None
    problem = _criterion_problem(parsed, metrics)
    if problem is not None:
        raise KeyError(f"metric {name!r}: {problem}")
    base = metrics[parsed.criterion]
    if parsed.family == "pass":
        return Metric(name, True, ("generate",), "mean", False,
                      f"pass@{parsed.k} over the n answers (Chen et al. 2021), each correct "
                      f"when its {parsed.criterion} is 1", bounds=(0.0, 1.0),
                      reference_free=base.reference_free)
    what = "majority answer's" if parsed.family == "majority" else "mean over the n answers of"
    return Metric(name, base.higher_is_better, ("generate",), "mean",
                  base.binary and parsed.family == "majority",
                  f"the {what} {parsed.criterion}", bounds=base.bounds,
                  reference_free=base.reference_free)


def _criterion_problem(parsed: SampledName, metrics: Mapping[str, Metric]) -> str | None:
    metric = metrics.get(parsed.criterion)
    usable = sorted(m.name for m in metrics.values() if "generate" in m.kinds
                    and m.aggregation == "mean" and m.name not in _NOT_CRITERIA)
    if metric is None or metric.name not in usable:
        return (f"{parsed.criterion!r} cannot score each answer; use a per-item generate "
                f"metric: {', '.join(usable)}")
    if parsed.family == "pass" and not (metric.binary and metric.higher_is_better):
        binary = [n for n in usable if metrics[n].binary and metrics[n].higher_is_better]
        return (f"pass@k counts correct answers, so its criterion must be 0/1 with 1 correct; "
                f"{parsed.criterion!r} is not (use one of: {', '.join(binary)})")
    return None


def metric_errors(names: Sequence[str], n: int, metrics: Mapping[str, Metric]) -> list[str]:
    """Load-time problems of a task's sampled metrics given its ``n`` answers per item."""
    errors: list[str] = []
    for name in names:
        parsed = parse(name) if isinstance(name, str) else None
        if parsed is None:
            continue
        if (problem := _criterion_problem(parsed, metrics)) is not None:
            errors.append(f"metric {name!r}: {problem}")
        elif parsed.k == 0:
            errors.append(f"metric {name!r}: k must be at least 1 (pass@1, pass@5, ...)")
        elif parsed.k is not None and parsed.k > n:
            errors.append(f"metric {name!r} needs {parsed.k} answers per item but the task "
                          f"generates {n}: set generation.n to at least {parsed.k} (with "
                          "do_sample: true), or lower k")
    return errors


# -- the estimators ------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n answers of which c are correct (the Codex paper's snippet:
    ``1 - prod(1 - k / arange(n - c + 1, n + 1))``)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def vote_key(answer: str, criterion: str) -> str:
    """What two answers must share to count as the same answer in ``majority@n``."""
    if criterion in ("exact_match", "f1"):
        from ftguard.metrics.qa import normalize_answer

        return normalize_answer(answer)
    return answer.strip()


def majority_index(answers: Sequence[str], criterion: str) -> int:
    """Index of the first answer of the most common kind; ties go to the kind seen first."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, answer in enumerate(answers):
        key = vote_key(answer, criterion)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    best = max(counts.values())
    return min(first[key] for key, count in counts.items() if count == best)


def sampled_scores(names: Sequence[str], answers: Sequence[str],
                   per_answer: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each sampled metric of ``names`` for one item, from its answers and each answer's
    criterion scores (``per_answer[j][criterion]``)."""
    out: dict[str, float] = {}
    n = len(answers)
    for name in names:
        parsed = parse(name)
        if parsed is None:
            continue
        values = [s[parsed.criterion] for s in per_answer]
        if parsed.family == "pass":
            assert parsed.k is not None
            out[name] = pass_at_k(n, sum(v == 1.0 for v in values), parsed.k)
        elif parsed.family == "majority":
            out[name] = values[majority_index(answers, parsed.criterion)]
        else:
            out[name] = float(np.mean(values))
    return out
