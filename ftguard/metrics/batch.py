"""The batch hook of the scoring path: metrics scored over all of a task's items at once.

User metrics, evaluate modules and BERTScore carry a ``batch`` hook
(:class:`~ftguard.metrics.base.Metric`); after the per-sample scorers of
:mod:`ftguard.metrics.score`, :func:`score_batch` calls each hook once per task (metrics of
one family, such as the three BERTScore metrics, in one call: one pass of the encoder) and
writes each item's value into its sample's ``scores`` (mean metrics) or ``stats`` (corpus
metrics). A hook that raises is an :class:`MetricError` naming the metric, the task, the
item and the exception: exit 2, no traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ftguard.errors import FtguardError
from ftguard.metrics.base import Metric, ScoredItem
from ftguard.metrics.registry import get_metric


class MetricError(FtguardError):
    """A metric failed while scoring a task (user code, an evaluate module, an encoder)."""


class Answered(Protocol):
    """What a scored sample offers a batch hook (a record's SampleResult)."""

    id: str
    prediction: str
    target: str | list[str]
    scores: dict[str, float]
    stats: dict[str, list[float]]


def batch_metrics(names: Sequence[str]) -> list[Metric]:
    """The metrics among ``names`` scored by a batch hook."""
    return [m for m in map(get_metric, names) if m.batch is not None]


def references(sample: Answered) -> tuple[str, ...]:
    """A sample's references as a tuple (a record keeps one as a string)."""
    return tuple(sample.target) if isinstance(sample.target, list) else (sample.target,)


def score_batch(label: str, names: Sequence[str], samples: Sequence[Answered],
                fields: Sequence[Mapping[str, Any]],
                metric_args: Mapping[str, Mapping[str, Any]]) -> None:
    """Score the batch metrics among ``names`` on ``samples`` (task ``label``,
    ``suite/task``), ``fields`` the items' JSONL fields in the same order."""
    groups: dict[tuple[int, str], list[Metric]] = {}
    for metric in batch_metrics(names):
        groups.setdefault((id(metric.batch), metric.family or metric.name), []).append(metric)
    if not groups:
        return
    items = [ScoredItem(s.id, s.prediction, references(s), f) for s, f in zip(samples, fields)]
    for (_, family), metrics in groups.items():
        hook = metrics[0].batch
        assert hook is not None
        group = [m.name for m in metrics]
        values = _run(hook, items, metric_args.get(family, {}), group, label)
        for metric in metrics:
            if metric.recompute is not None:
                continue  # recomputed from the answers themselves, nothing per item
            into = "scores" if metric.aggregation == "mean" else "stats"
            for sample, value in zip(samples, values[metric.name], strict=True):
                getattr(sample, into)[metric.name] = value


def _run(hook: Any, items: list[ScoredItem], args: Mapping[str, Any], names: list[str],
         label: str) -> dict[str, list[Any]]:
    from ftguard.metrics.user import ItemFailure

    shown = ", ".join(repr(n) for n in names)
    try:
        return hook(items, args, names)
    except FtguardError:
        raise
    except ItemFailure as failure:
        raise MetricError(f"Metric {shown} failed on task {label}, item {failure.item_id!r}: "
                          f"{failure.error}.", hint="Fix the metric (or the item); --debug "
                                                    "shows the traceback.") from failure
    except Exception as exc:
        from ftguard.errors import first_line

        raise MetricError(f"Metric {shown} failed on task {label} ({len(items)} items): "
                          f"{type(exc).__name__}: {first_line(exc)}.",
                          hint="Fix the metric or its metric_args; --debug shows the "
                               "traceback.") from exc


def identities(names: Sequence[str], metric_args: Mapping[str, Mapping[str, Any]], *,
               sources: bool = False) -> dict[str, str]:
    """Each metric's identity under the task's args (BERTScore's encoder), by name: what the
    record keeps as its signature; with ``sources``, also the module and version of each
    metric from outside ftguard (what the result cache keys)."""
    out = {}
    for name in names:
        metric = get_metric(name)
        if metric.identity is not None:
            out[name] = metric.identity(metric_args.get(metric.family or metric.name, {}))
        elif sources and metric.source is not None:
            source = metric.source
            out[name] = f"{source.module} {source.package or '-'} {source.version or '-'}"
    return out


def sources(names: Sequence[str], metric_args: Mapping[str, Mapping[str, Any]]
            ) -> dict[str, dict[str, Any]] | None:
    """Module, distribution, version and args of each metric from outside ftguard among
    ``names`` (what the record names); None when there is none."""
    out = {}
    for name in names:
        source = get_metric(name).source
        if source is not None:
            args = metric_args.get(name)
            out[name] = {"module": source.module, "package": source.package,
                         "version": source.version, "args": dict(args) if args else None}
    return out or None
