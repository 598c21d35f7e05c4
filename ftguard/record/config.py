"""A RunRecord's ``config`` (the evaluation settings) and ``environment`` (versions, machine).

Both are typed but open: keys ftguard does not know (those of records imported from lm-eval,
or written by another ftguard version) are kept as they are. A record reads and writes back
byte for byte: a key is written only when it was given (read from the file or passed when the
record was made), in the order it was given; keys set later follow.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)


class OpenSection(BaseModel):
    """A free-form section of a record with typed known keys: unknown keys are kept, only the
    keys given are written, in the order given."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)
    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        section = handler(data)
        if isinstance(data, dict) and isinstance(section, OpenSection):
            section._order = list(data)
        return section

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        return {k: out[k] for k in self._keys() if k in out}

    def _keys(self) -> list[str]:
        """The keys given (known ones set, and every unknown one), in the order given."""
        keys = [*(k for k in type(self).model_fields if k in self.model_fields_set),
                *(self.__pydantic_extra__ or {})]
        order = {k: i for i, k in enumerate(self._order)}
        return sorted(keys, key=lambda k: order.get(k, len(order)))  # keys set later follow

    def given(self) -> dict[str, Any]:
        """The keys given and their values (Python objects, not serialised), in order: the
        dict this section is written as."""
        extra = self.__pydantic_extra__ or {}
        return {k: extra[k] if k in extra else getattr(self, k) for k in self._keys()}

    def __eq__(self, other: object) -> bool:
        """Equal when the keys given and their values are, order aside (as the dicts they
        are written as would be)."""
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, OpenSection)
        return self.given() == other.given()


class RunConfig(OpenSection):
    """Evaluation settings: seed, batch size, limit, dtype, device, quantisation. Records
    imported from lm-eval also keep lm-eval's own settings (``random_seed``, ``numpy_seed``,
    ``gen_kwargs``, ``bootstrap_iters``, ``chat_template``...) as further keys."""

    seed: int | None = None
    """Random seed of subsets, bootstrap resampling and the model (lm-eval: its numpy seed)."""
    limit: int | float | None = None
    """At most this many items per task (None: all)."""
    subset: int | float | None = None
    """Fixed random subset of each task: N items or a fraction 0 < F < 1 (None: all)."""
    task_subset: dict[str, int | float] | None = None
    """Per-task overrides of ``subset``, keyed ``task`` or ``suite/task`` (written only when
    given)."""
    tasks: list[str] | None = None
    """``suite/task`` of the tasks evaluated when ``--tasks`` left some of the suites' tasks
    out (written only then): a partial run, see :meth:`partial_reason`."""
    batch_size: int | str | None = None
    """Batch size the backend ran with (None: no model was needed; lm-eval may say
    ``auto``)."""
    device: str | None = None
    """Device the model ran on."""
    dtype: str | None = None
    """Weights dtype used for evaluation."""
    load_in_4bit: bool | None = None
    """Whether the weights were quantised to 4 bits (bitsandbytes nf4)."""
    load_in_8bit: bool | None = None
    """Whether the weights were quantised to 8 bits (bitsandbytes int8)."""
    bootstrap_resamples: int | None = None
    """Bootstrap resamples for corpus metrics' confidence intervals."""
    cached_suites: list[str] | None = None
    """Suites answered from the result cache instead of being evaluated, sorted."""
    server_requests: dict[str, Any] | None = None
    """Server backends (``--backend openai``): requests sent, retries and why (written only
    when a server answered)."""
    processes: int | None = None
    """Processes the evaluation was sharded over (written only when more than one)."""
    train_step: int | None = None
    """Evaluations during training: the optimizer step of the evaluated checkpoint."""

    def partial_reason(self) -> str | None:
        """Why this run may not have evaluated every item of every task of its suites
        (``--limit``, ``--subset``, ``--tasks``), in words; None for a full run. Such a run
        pairs only with runs of the same settings, and is no full baseline."""
        why = []
        if self.limit is not None:
            why.append(f"at most {self.limit} items per task (--limit {self.limit})")
        if not _whole(self.subset):
            why.append(f"a seeded sample of {_share(self.subset)} of each task "
                       f"(--subset {self.subset})")
        sampled = {k: v for k, v in (self.task_subset or {}).items() if not _whole(v)}
        if sampled:
            why.append("a seeded sample of task(s) " + ", ".join(
                f"{k} ({_share(v)})" for k, v in sampled.items()) + " (--subset TASK=N|F)")
        if self.tasks:
            why.append(f"only the task(s) {', '.join(self.tasks)} (--tasks)")
        return "; ".join(why) or None


def _whole(subset: object) -> bool:
    """Whether a subset setting keeps every item (None, or the fraction 1.0)."""
    return subset is None or (isinstance(subset, float) and subset == 1.0)


def _share(subset: object) -> str:
    if isinstance(subset, float):
        return f"{subset:.0%}"
    return f"{subset} item" + ("" if subset == 1 else "s")


class RunEnvironment(OpenSection):
    """Package versions, platform, device, git revision. Records imported from lm-eval hold
    ``source``, ``imported_from``, ``lm_eval_version`` and ``transformers_version`` (besides
    ``git_revision`` and ``device``) as further keys."""

    python: str | None = None
    """Python version."""
    platform: str | None = None
    """Operating system and machine, as ``platform.platform()`` words it."""
    packages: dict[str, str] | None = None
    """Versions of the installed packages that change results (ftguard, torch,
    transformers...)."""
    device: str | None = None
    """Device the model ran on."""
    device_name: str | None = None
    """Name of that device (GPU model, or the CPU's machine type)."""
    git_revision: str | None = None
    """Git commit of the working folder the evaluation ran in, if any."""
