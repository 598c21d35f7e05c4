"""Multiple choice by log-likelihood, as lm-eval 0.4.13 scores ``multiple_choice`` tasks.

``acc`` takes the argmax of the summed continuation log-likelihoods; ``acc_norm`` divides
each by the length in characters of the choice text itself (without the space lm-eval puts
before it as target delimiter). Ties go to the first choice (``np.argmax``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftguard.metrics.base import mean_metric


# stacked decorators register bottom-up: acc first
@mean_metric("acc_norm", higher_is_better=True, kind="choice", binary=True,
             description="as acc, log-likelihood divided by the choice's length in "
                         "characters (lm-eval)")
@mean_metric("acc", higher_is_better=True, kind="choice", binary=True,
             description="argmax of summed continuation log-likelihood is the gold choice")
def predict_choice(loglikelihoods: Sequence[float], choices: Sequence[str], *,
                   normalize: bool) -> int:
    """Index of the chosen answer; ``normalize`` divides by ``len(choice)`` (acc_norm)."""
    if len(loglikelihoods) != len(choices) or not choices:
        raise ValueError(f"{len(loglikelihoods)} log-likelihoods for {len(choices)} choices")
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    if not normalize:
        return int(np.argmax(lls))
    lengths = np.array([float(len(c)) for c in choices])
    # An empty choice divides by zero exactly as lm-eval does (-inf, or nan for ll == 0).
    with np.errstate(divide="ignore", invalid="ignore"):
        return int(np.argmax(lls / lengths))
