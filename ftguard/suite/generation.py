"""A ``generate`` task's decoding settings: greedy (the default), sampling or beam search.

Greedy decoding is what a task gets unless it says otherwise, and the settings added for
sampling and beam search (:data:`DECODING_FIELDS`) stay out of the suite hash and of the
recorded task settings while they hold their defaults (:meth:`GenerationSpec.defaulted`), so a
greedy suite hashes and records exactly as before they existed.

Combinations follow transformers' ``generate``: ``temperature``, ``top_p``, ``top_k`` and
``seed`` only mean something when sampling (``do_sample: true``); ``n`` answers per item
need sampling, or beam search with at least ``n`` beams (the ``n`` best beams). Beam search
combined with sampling (transformers' beam-search multinomial sampling) is refused: its draws
come from one global generator and could not be reproduced item by item.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DECODING_FIELDS: tuple[str, ...] = ("do_sample", "temperature", "top_p", "top_k", "n", "seed",
                                    "num_beams")
"""The fields beyond greedy decoding's ``max_new_tokens`` and ``stop``."""

DEFAULT_SEED = 1234
"""Seed of sampled answers when a task gives none."""


class GenerationSpec(BaseModel):
    """Decoding settings of a ``generate`` task: greedy unless ``do_sample`` or
    ``num_beams`` says otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_new_tokens: int = Field(default=64, ge=1, le=8192)
    """Most new tokens generated per item."""
    stop: list[str] = Field(default_factory=lambda: ["\n\n"])
    """Generation stops at the first of these strings, which is cut from the prediction."""
    do_sample: bool = False
    """Sample each next token from the model's distribution instead of taking the most likely
    one (greedy). Samples are seeded per item and answer (see ``seed``): the same settings
    give the same answers, whatever the batch size."""
    temperature: float | None = Field(default=None, gt=0, le=100)
    """Sampling only: divides the logits before sampling (default 1.0; lower is closer to
    greedy). Greedy decoding is ``do_sample: false``, not temperature 0."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Sampling only: nucleus sampling, draw from the smallest set of most likely tokens whose
    probability reaches ``top_p`` (default 1.0: every token)."""
    top_k: int | None = Field(default=None, ge=1)
    """Sampling only: draw from the ``top_k`` most likely tokens (default: every token; unlike
    transformers' own default of 50). OpenAI-compatible servers get it as vLLM's extension
    parameter ``top_k``."""
    n: int = Field(default=1, ge=1, le=1000)
    """Answers per item: samples (``do_sample``) or the ``n`` best beams (``num_beams >= n``).
    The record keeps them all (``predictions``); ``pass@k``, ``majority@n`` and ``mean@n`` read
    them, every other metric scores the first."""
    seed: int = Field(default=DEFAULT_SEED, ge=0, lt=2**63)
    """Sampling only: answer ``j`` of an item is drawn with a generator seeded from this seed,
    the exact text the model receives and ``j``, so base and tuned models draw with the same
    random numbers on every item (a paired comparison's common random numbers)."""
    num_beams: int = Field(default=1, ge=1, le=64)
    """Beam search with this many beams (1: none); the prediction is the best beam."""

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(s == "" for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @model_validator(mode="after")
    def _combination(self) -> GenerationSpec:
        errors = decoding_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def greedy(self) -> bool:
        """One answer per item, the most likely token at every step."""
        return not self.do_sample and self.num_beams == 1

    def defaulted(self) -> set[str]:
        """The :data:`DECODING_FIELDS` at their defaults: left out of the suite hash and of
        the recorded settings, so greedy tasks keep the hash and record they always had."""
        fields = type(self).model_fields
        return {k for k in DECODING_FIELDS if getattr(self, k) == fields[k].get_default()}

    def recorded(self) -> dict[str, object]:
        """The settings as a RunRecord's task settings record them."""
        return self.model_dump(exclude=self.defaulted())


def decoding_errors(g: GenerationSpec) -> list[str]:
    """What is wrong with the combination of decoding settings, each with its fix."""
    errors: list[str] = []
    if not g.do_sample:
        # by value, not by presence: a dumped spec (every default spelled out) validates again
        given = [k for k in ("temperature", "top_p", "top_k", "seed") if k not in g.defaulted()]
        if given:
            errors.append(f"{', '.join(given)} only apply to sampling: set do_sample: true, or "
                          f"remove {'it' if len(given) == 1 else 'them'} for greedy decoding")
    if g.do_sample and g.num_beams > 1:
        errors.append(f"num_beams {g.num_beams} with do_sample: beam search and sampling do not "
                      "combine here (transformers' beam-search multinomial sampling cannot be "
                      "seeded per item); use do_sample: true with n samples, or num_beams alone")
    if g.n > 1 and not g.do_sample and g.num_beams < g.n:
        errors.append(f"n {g.n} needs do_sample: true (n samples) or num_beams >= {g.n} (the n "
                      "best beams); greedy decoding gives one answer")
    return errors


def raw_n(task: object) -> int:
    """A raw suite.yaml task's ``generation.n`` (1 when missing or not a number: the schema
    reports why), for checking ``pass@k`` before the task validates."""
    generation = task.get("generation") if isinstance(task, dict) else None
    n = generation.get("n", 1) if isinstance(generation, dict) else 1
    return n if isinstance(n, int) and not isinstance(n, bool) else 1
