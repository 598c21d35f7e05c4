"""The metric registry: every metric ftguard computes, by name.

Names follow lm-eval, sacrebleu and rouge-score. ``precision`` and ``recall`` are
parametrised by a label (``precision[termination]``); a bare ``precision`` in a task's
metric list stands for one entry per label (see :func:`expand_metric_names`).

The registry is open: besides ftguard's own families it holds the metrics named by the
entry-point group ``ftguard.metrics``, by an import path ``mypkg.scoring:citation_ok`` and
by ``evaluate:PATH_OR_ID`` (:mod:`ftguard.metrics.external`), resolved on first use and then
looked up like any other.
"""

from __future__ import annotations

import dataclasses
import re

from ftguard.metrics import (
    bertscore,
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

_FAMILIES = (qa, rouge, json_format, instruction_following, bleu_chrf, bertscore, refusal,
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

EXTERNAL: dict[str, Metric] = {}
"""Metrics resolved from outside ftguard (entry points, import paths, evaluate modules), by
the name a suite writes; filled by :func:`register_external` and :func:`get_metric`."""


def split_name(name: str) -> tuple[str, str | None]:
    """``"precision[yes]"`` -> ``("precision", "yes")``; ``"f1"`` -> ``("f1", None)``."""
    match = _PARAMETRISED_NAME.fullmatch(name)
    return (match.group(1), match.group(2)) if match else (name, None)


def get_metric(name: str) -> Metric:
    """The metric called ``name``; raises ``KeyError`` naming the known metrics (a name from
    outside ftguard that cannot be loaded: ``KeyError`` saying why)."""
    if name in METRICS:
        return METRICS[name]
    if (sampled := sampled_metric(name, METRICS)) is not None:  # pass@k & co.
        return sampled
    base, arg = split_name(name)
    if arg is not None and base in PARAMETRISED:
        return dataclasses.replace(METRICS[base], name=name)
    if name in EXTERNAL:
        return EXTERNAL[name]
    from ftguard.metrics.base import MetricLoadError
    from ftguard.metrics.external import is_external, resolve

    if is_external(name):
        try:
            return register_external(resolve(name, None))
        except MetricLoadError as exc:
            raise KeyError(str(exc)) from None
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")


def register_external(metric: Metric) -> Metric:
    """Register a metric resolved from outside ftguard under its name; ``ValueError`` when
    the name already stands for another definition in this process (two suites whose
    ``evaluate:metrics/x`` are different folders)."""
    known = EXTERNAL.get(metric.name)
    if known is not None and known.source != metric.source:
        raise ValueError(f"metric {metric.name!r} already stands for {known.source} in this "
                         f"run, not {metric.source}; give one of them another path")
    if known is not None and not _same_declaration(known, metric):
        raise ValueError(f"metric {metric.name!r} is declared differently by two tasks "
                         "(direction, aggregation or key): declare it once, the same way")
    return EXTERNAL.setdefault(metric.name, metric)


def _same_declaration(a: Metric, b: Metric) -> bool:
    return (a.higher_is_better, a.aggregation, a.binary, a.description) == (
        b.higher_is_better, b.aggregation, b.binary, b.description)


def metric_names_for(kind: str) -> list[str]:
    """Base names of the metrics that apply to a task kind, in registry order: ftguard's
    own, then those of the ``ftguard.metrics`` entry points that load."""
    if kind not in KINDS:
        raise KeyError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")
    from ftguard.metrics.external import entry_point_metrics

    installed = []
    for metric in entry_point_metrics():
        try:
            installed.append(register_external(metric))
        except ValueError:  # its name stands for another metric in this run
            continue
    return [m.name for m in (*_DEFINITIONS, *installed) if kind in m.kinds]


def expand_metric_names(kind: str, metrics: list[str], labels: list[str] | None) -> list[str]:
    """Validate a task's metric list and expand bare ``precision``/``recall`` to one name per
    label. Unknown names raise ``KeyError``; a metric for another kind, or an unknown or
    missing label, raises ``ValueError``. Duplicates are dropped, order is kept."""
    out: list[str] = []
    for name in metrics:
        if is_sampled(name):  # pass@k, majority@n, mean@n: over the n answers of an item
            if kind != "generate":
                raise ValueError(f"metric {name!r} scores the n answers of generate tasks, "
                                 f"not {kind} tasks")
            out.append(get_metric(name).name)
            continue
        metric = get_metric(name)
        base, arg = split_name(metric.name)
        if kind not in metric.kinds:
            raise ValueError(f"metric {name!r} does not apply to {kind} tasks; "
                             f"use one of: {', '.join(metric_names_for(kind))}")
        if base in PARAMETRISED:
            if labels is None:
                raise ValueError(f"metric {name!r} needs the task's labels")
            if arg is not None and arg not in labels:
                raise ValueError(f"metric {name!r}: label {arg!r} is not one of {labels}")
            out.extend([name] if arg is not None else [f"{base}[{lab}]" for lab in labels])
        else:
            out.append(name)
    return list(dict.fromkeys(out))
