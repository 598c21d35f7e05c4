"""Strict and loose instruction following of one response, and IFEval's four aggregates.

Strict: the check on the response as it is (an empty or blank response follows nothing).
Loose (IFEval's upper bound): the check passes on any of eight variants: the response, and
the response with its first line, its last line, or both removed (each then stripped), each
of those four with every ``*`` removed as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftguard.metrics.instructions.spec import Check, bind


def loose_variants(response: str) -> list[str]:
    """IFEval's eight loose variants of ``response``, in its order."""
    lines = response.split("\n")
    cut_first = "\n".join(lines[1:]).strip()
    cut_last = "\n".join(lines[:-1]).strip()
    cut_both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), cut_first, cut_last, cut_both,
            cut_first.replace("*", ""), cut_last.replace("*", ""), cut_both.replace("*", "")]


def _passes(check: Check, text: str) -> bool:
    return bool(text.strip()) and check(text)


def follow(response: str, instruction_ids: Sequence[str],
           kwargs: Sequence[Mapping[str, Any] | None]) -> tuple[list[bool], list[bool]]:
    """Per instruction: (strict results, loose results); ValueError on an invalid kwarg."""
    if len(kwargs) != len(instruction_ids):
        raise ValueError(f"{len(instruction_ids)} instructions but {len(kwargs)} kwargs dicts")
    checks = [bind(instruction_id, args) for instruction_id, args in zip(instruction_ids, kwargs)]
    variants = loose_variants(response)
    strict = [_passes(check, response) for check in checks]
    loose = [any(_passes(check, text) for text in variants) for check in checks]
    return strict, loose


@dataclass
class TypeTally:
    """How often one instruction type was followed."""

    n: int = 0
    strict: int = 0
    loose: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "strict_acc": self.strict / self.n, "loose_acc": self.loose / self.n}


@dataclass
class Aggregate:
    """IFEval's four accuracies over a set of prompts, and a per-type breakdown."""

    prompt_level_strict_acc: float
    """Share of prompts whose every instruction is followed, strictly."""
    prompt_level_loose_acc: float
    """The same, loosely."""
    inst_level_strict_acc: float
    """Share of all instructions (over all prompts) followed, strictly."""
    inst_level_loose_acc: float
    """The same, loosely."""
    n_prompts: int
    n_instructions: int
    by_type: dict[str, TypeTally] = field(default_factory=dict)
    """Per instruction id: its count and strict / loose accuracies."""


def aggregate(results: Iterable[tuple[Sequence[str], Sequence[bool], Sequence[bool]]]
              ) -> Aggregate:
    """IFEval's aggregates from ``(instruction_ids, strict, loose)`` per prompt."""
    prompts = prompt_strict = prompt_loose = 0
    by_type: dict[str, TypeTally] = {}
    for ids, strict, loose in results:
        prompts += 1
        prompt_strict += all(strict)
        prompt_loose += all(loose)
        for instruction_id, ok_strict, ok_loose in zip(ids, strict, loose, strict=True):
            tally = by_type.setdefault(instruction_id, TypeTally())
            tally.n += 1
            tally.strict += ok_strict
            tally.loose += ok_loose
    if not prompts:
        raise ValueError("no prompts to aggregate")
    instructions = sum(t.n for t in by_type.values())
    if not instructions:
        raise ValueError("the prompts hold no instructions")
    return Aggregate(
        prompt_level_strict_acc=prompt_strict / prompts,
        prompt_level_loose_acc=prompt_loose / prompts,
        inst_level_strict_acc=sum(t.strict for t in by_type.values()) / instructions,
        inst_level_loose_acc=sum(t.loose for t in by_type.values()) / instructions,
        n_prompts=prompts, n_instructions=instructions,
        by_type=dict(sorted(by_type.items())))
