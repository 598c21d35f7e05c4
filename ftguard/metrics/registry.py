"""The metric registry: every metric ftguard computes, by name.

Names follow lm-eval, sacrebleu and rouge-score. ``precision`` and ``recall`` are
parametrised by a label (``precision[termination]``); a bare ``precision`` in a task's
metric list stands for one entry per label (see :func:`expand_metric_names`).
"""

from __future__ import annotations

import dataclasses
import re

from ftguard.metrics import (
    bleu_chrf,
    calibration,
    choice,
    classification,
    consistency,
    instruction_following,
    json_format,
    perplexity,
    qa,
    refusal,
    refusal_margin,
    rouge,
)
from ftguard.metrics.base import Metric, parametrised, registered
from ftguard.metrics.sampling import is_sampled, sampled_metric

_FAMILIES = (qa, rouge, json_format, instruction_following, bleu_chrf, refusal,
             refusal_margin, choice, classification, calibration, perplexity, consistency)
"""The metric families, in registry order; each defines its metrics with a decorator
(:func:`ftguard.metrics.base.mean_metric`, :func:`~ftguard.metrics.base.corpus_metric`)."""

_DEFINITIONS: tuple[Metric, ...] = tuple(m for family in _FAMILIES
                                         for m in registered(family.__name__))

METRICS: dict[str, Metric] = {m.name: m for m in _DEFINITIONS}
"""Every metric by base name."""

PARAMETRISED: frozenset[str] = parametrised()
"""Base names that take a label argument: ``precision[LABEL]``."""

KINDS: tuple[str, ...] = ("generate", "choice", "classify", "perplexity")

_PARAMETRISED_NAME = re.compile(r"(\w+)\[(.+)\]", re.DOTALL)


def split_name(name: str) -> tuple[str, str | None]:
    """``"precision[yes]"`` -> ``("precision", "yes")``; ``"f1"`` -> ``("f1", None)``."""
    match = _PARAMETRISED_NAME.fullmatch(name)
    return (match.group(1), match.group(2)) if match else (name, None)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; raises ``KeyError`` naming the known metrics."""
    if name in METRICS:
        return METRICS[name]
    if (sampled := sampled_metric(name, METRICS)) is not None:  # pass@k & co.
        return sampled
    base, arg = split_name(name)
    if arg is not None and base in PARAMETRISED:
        return dataclasses.replace(METRICS[base], name=name)
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")


def metric_names_for(kind: str) -> list[str]:
    """Base names of the metrics that apply to a task kind, in registry order."""
    if kind not in KINDS:
        raise KeyError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    return [m.name for m in _DEFINITIONS if kind in m.kinds]


def expand_metric_names(kind: str, metrics: list[str], labels: list[str] | None) -> list[str]:
    """Validate a task's metric list and expand bare ``precision``/``recall`` to one name per
    label. Unknown names raise ``KeyError``; a metric for another kind, or an unknown or
    missing label, raises ``ValueError``. Duplicates are dropped, order is kept."""
    valid = metric_names_for(kind)
    out: list[str] = []
    for name in metrics:
        if is_sampled(name):  # pass@k, majority@n, mean@n: over the n answers of an item
            if kind != "generate":
                raise ValueError(f"metric {name!r} scores the n answers of generate tasks, "
                                 f"not {kind} tasks")
            out.append(get_metric(name).name)
            continue
        base, arg = split_name(get_metric(name).name)
        if base not in valid:
            raise ValueError(f"metric {name!r} does not apply to {kind} tasks; "
                             f"use one of: {', '.join(valid)}")
        if base in PARAMETRISED:
            if labels is None:
                raise ValueError(f"metric {name!r} needs the task's labels")
            if arg is not None and arg not in labels:
                raise ValueError(f"metric {name!r}: label {arg!r} is not one of {labels}")
            out.extend([name] if arg is not None else [f"{base}[{lab}]" for lab in labels])
        else:
            out.append(name)
    return list(dict.fromkeys(out))
