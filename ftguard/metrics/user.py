"""``@ftguard.metric``: declaring a metric in your own package.

::

    import ftguard

    @ftguard.metric(higher_is_better=True, binary=True)
    def citation_ok(prediction: str, references: list[str], item: dict) -> float:
        return float(all(c in KNOWN for c in cited(prediction)))

The function is called once per item with the parameters it names, by name:
``prediction`` (the generated text, or the chosen choice / label), ``references`` (the
reference answers, or the correct choice / label, as a list), ``item`` (the item's JSONL
fields) and ``id`` (its id); a task's ``metric_args`` entry for the metric is passed as
keyword arguments. It returns the item's score: a number (0 or 1 when ``binary``).

A *corpus* metric (``corpus=COMBINE``) returns instead a fixed-length list of sufficient
statistics per item; the task value is ``COMBINE(sum of the lists)``, so bootstrap intervals
and paired swap tests resample items exactly as for BLEU (``COMBINE`` gets one summed row,
shape ``(k,)``, and returns a number).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ftguard.metrics.base import Kind, Metric, ScoredItem

ATTRIBUTE = "__ftguard_metric__"
_ITEM_PARAMETERS = ("prediction", "references", "item", "id")


class ItemFailure(Exception):
    """A user metric raised, or returned something that is not a score, on one item."""

    def __init__(self, item_id: str, error: str) -> None:
        self.item_id = item_id
        self.error = error
        super().__init__(f"item {item_id!r}: {error}")


def metric(fn: Callable[..., Any] | None = None, *, higher_is_better: bool,
           binary: bool = False, name: str | None = None,
           kinds: Kind | tuple[Kind, ...] = ("generate",),
           corpus: Callable[[np.ndarray], float] | None = None,
           bounds: tuple[float, float] | None = None, description: str = "",
           reference_free: bool = False) -> Any:
    """Declare ``fn`` a metric (returned unchanged, its definition attached): its direction,
    whether its per-item scores are 0/1 (``binary``: Wilson intervals, McNemar's test), the
    task kinds it applies to (``generate``, ``choice``, ``classify``), optional ``corpus``
    combine function of summed statistics, ``bounds`` of its value (intervals are clipped
    to them) and whether it needs no reference (``reference_free``)."""
    kinds_ = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if "perplexity" in kinds_:
        raise ValueError("user metrics score answers: kinds may be generate, choice, classify")
    if corpus is not None and binary:
        raise ValueError("a corpus metric has statistics per item, not 0/1 scores")

    def declare(f: Callable[..., Any]) -> Callable[..., Any]:
        label = name or f.__name__
        call = _caller(f, label)
        definition = Metric(
            label, higher_is_better, kinds_, "corpus" if corpus else "mean", binary,
            description or (inspect.getdoc(f) or label).splitlines()[0],
            corpus_fn=_vectorised(corpus) if corpus else None,
            bounds=(0.0, 1.0) if binary and bounds is None else bounds,
            reference_free=reference_free, batch=_per_item(call, corpus is not None, binary))
        setattr(f, ATTRIBUTE, definition)
        return f
    return declare(fn) if fn is not None else declare


def definition_of(target: object) -> Metric | None:
    """The Metric a decorated function carries, or None."""
    found = getattr(target, ATTRIBUTE, None)
    return found if isinstance(found, Metric) else None


def _caller(f: Callable[..., Any], label: str) -> Callable[[ScoredItem, Mapping[str, Any]], Any]:
    parameters = inspect.signature(f).parameters
    wanted = [p for p in _ITEM_PARAMETERS if p in parameters]
    if not wanted:
        raise TypeError(f"metric {label!r}: the function takes none of "
                        f"{', '.join(_ITEM_PARAMETERS)}")

    def call(item: ScoredItem, args: Mapping[str, Any]) -> Any:
        given = {"prediction": item.prediction, "references": list(item.references),
                 "item": dict(item.fields), "id": item.id}
        return f(**{p: given[p] for p in wanted}, **args)
    return call


def _per_item(call: Callable[[ScoredItem, Mapping[str, Any]], Any], is_corpus: bool,
              binary: bool) -> Callable[..., dict[str, list[Any]]]:
    def batch(items: Sequence[ScoredItem], args: Mapping[str, Any],
              names: Sequence[str]) -> dict[str, list[Any]]:
        values, width = [], None
        for item in items:
            try:
                raw = call(item, args)
            except Exception as exc:  # user code: named, never a traceback
                from ftguard.errors import first_line

                raise ItemFailure(item.id, f"{type(exc).__name__}: {first_line(exc)}") from exc
            value = _statistics(raw, item.id) if is_corpus else _score(raw, item.id, binary)
            if is_corpus:
                width = width or len(value)
                if len(value) != width:
                    raise ItemFailure(item.id, f"returned {len(value)} statistics, earlier "
                                               f"items {width}")
            values.append(value)
        return {name: values for name in names}
    return batch


def _score(raw: object, item_id: str, binary: bool) -> float:
    if isinstance(raw, (bool, int, float, np.number)) and math.isfinite(float(raw)):
        value = float(raw)
        if binary and value not in (0.0, 1.0):
            raise ItemFailure(item_id, f"returned {value}, but the metric is declared binary "
                                       "(0 or 1)")
        return value
    raise ItemFailure(item_id, f"returned {raw!r}, not a finite number")


def _statistics(raw: object, item_id: str) -> list[float]:
    try:
        row = [float(x) for x in raw]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        row = []
    if not row or not all(math.isfinite(x) for x in row):
        raise ItemFailure(item_id, f"returned {raw!r}, not a non-empty list of finite "
                                   "statistics (a corpus metric)")
    return row


def _vectorised(combine: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    """``combine`` of one summed row, applied over leading axes (bootstrap: ``(B, k)``)."""
    def corpus_fn(stats: np.ndarray) -> np.ndarray:
        x = np.asarray(stats, dtype=np.float64)
        flat = x.reshape(-1, x.shape[-1])
        return np.array([float(combine(row)) for row in flat]).reshape(x.shape[:-1])
    return corpus_fn
