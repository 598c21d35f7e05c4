"""The instruction types ftguard checks: ids as IFEval spells them, their kwargs, validation.

An instruction is an id plus a kwargs dict, as in IFEval's data files
(``{"instruction_id_list": [...], "kwargs": [{...}, ...]}``). ``None`` values are dropped
first (IFEval's files carry every key of every type, mostly ``None``). Where IFEval would
draw a missing or non-positive argument at random, ftguard refuses it: a check must mean
the same thing every run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ftguard.metrics.instructions import checks_format as fmt
from ftguard.metrics.instructions import checks_text as txt

Check = Callable[[str], bool]


@dataclass(frozen=True)
class InstructionType:
    """One verifiable instruction type."""

    id: str
    """IFEval's id, ``group:name`` (``length_constraints:number_words``)."""
    check: Callable[..., bool]
    """``check(response, **kwargs) -> bool``."""
    params: Mapping[str, str]
    """Each kwarg the type needs and its kind (see ``_KINDS``); all are required."""

    @property
    def description(self) -> str:
        """The first line of the checker's docstring."""
        return (self.check.__doc__ or "").strip().splitlines()[0]


def _positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be a whole number of at least 1"


def _relation(value: Any) -> str | None:
    return None if value in txt.RELATIONS else 'must be "less than" or "at least"'


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-blank string"


def _words(value: Any) -> str | None:
    if (isinstance(value, list) and value
            and all(isinstance(word, str) and word.strip() for word in value)):
        return None
    return "must be a non-empty list of non-blank strings"


def _letter(value: Any) -> str | None:
    ok = isinstance(value, str) and len(value) == 1 and "a" <= value.lower() <= "z"
    return None if ok else "must be one ASCII letter"


_KINDS: dict[str, Callable[[Any], str | None]] = {
    "count": _positive_int, "relation": _relation, "text": _text, "words": _words,
    "letter": _letter,
}

_RELATION = {"relation": "relation"}

INSTRUCTION_TYPES: dict[str, InstructionType] = {t.id: t for t in (
    InstructionType("keywords:existence", txt.keyword_existence, {"keywords": "words"}),
    InstructionType("keywords:frequency", txt.keyword_frequency,
                    {"keyword": "text", "frequency": "count", **_RELATION}),
    InstructionType("keywords:forbidden_words", txt.forbidden_words,
                    {"forbidden_words": "words"}),
    InstructionType("keywords:letter_frequency", txt.letter_frequency,
                    {"letter": "letter", "let_frequency": "count", "let_relation": "relation"}),
    InstructionType("length_constraints:number_words", txt.number_words,
                    {"num_words": "count", **_RELATION}),
    InstructionType("length_constraints:number_paragraphs", txt.number_paragraphs,
                    {"num_paragraphs": "count"}),
    InstructionType("length_constraints:nth_paragraph_first_word",
                    txt.nth_paragraph_first_word,
                    {"num_paragraphs": "count", "nth_paragraph": "count", "first_word": "text"}),
    InstructionType("detectable_content:number_placeholders", fmt.number_placeholders,
                    {"num_placeholders": "count"}),
    InstructionType("detectable_content:postscript", fmt.postscript,
                    {"postscript_marker": "text"}),
    InstructionType("detectable_format:number_bullet_lists", fmt.number_bullet_lists,
                    {"num_bullets": "count"}),
    InstructionType("detectable_format:constrained_response", fmt.constrained_response, {}),
    InstructionType("detectable_format:number_highlighted_sections",
                    fmt.number_highlighted_sections, {"num_highlights": "count"}),
    InstructionType("detectable_format:multiple_sections", fmt.multiple_sections,
                    {"section_spliter": "text", "num_sections": "count"}),
    InstructionType("detectable_format:json_format", fmt.json_format, {}),
    InstructionType("detectable_format:title", fmt.title, {}),
    InstructionType("combination:two_responses", fmt.two_responses, {}),
    InstructionType("combination:repeat_prompt", fmt.repeat_prompt,
                    {"prompt_to_repeat": "text"}),
    InstructionType("startend:end_checker", fmt.end_checker, {"end_phrase": "text"}),
    InstructionType("startend:quotation", fmt.quotation, {}),
    InstructionType("punctuation:no_comma", txt.no_comma, {}),
    InstructionType("change_case:english_lowercase", txt.english_lowercase, {}),
    InstructionType("change_case:english_capital", txt.english_capital, {}),
)}
"""Every supported type by id."""

UNSUPPORTED: dict[str, str] = {
    "language:response_language": "it needs langdetect, which is not installed and, unseeded "
                                  "as IFEval uses it, not deterministic",
    "length_constraints:number_sentences": "it needs NLTK's punkt sentence model, a data "
                                           "download that is not available offline",
    "change_case:capital_word_frequency": "it needs NLTK's punkt tokenizer data, a download "
                                          "that is not available offline",
}
"""IFEval ids ftguard knows but does not check, and why."""


def clean_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``kwargs`` without its ``None`` values (IFEval's files pad every key with ``None``)."""
    return {key: value for key, value in (kwargs or {}).items() if value is not None}


def kwargs_problems(instruction_id: str, kwargs: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with one instruction (empty when it can be checked)."""
    if instruction_id in UNSUPPORTED:
        return [(f"instruction {instruction_id!r} is not supported: "
                f"{UNSUPPORTED[instruction_id]}")]
    kind = INSTRUCTION_TYPES.get(instruction_id)
    if kind is None:
        return [(f"unknown instruction {instruction_id!r}; known: "
                f"{', '.join(sorted(INSTRUCTION_TYPES))}")]
    given = clean_kwargs(kwargs)
    problems = [f"{instruction_id}: unexpected kwarg {key!r}"
                for key in given if key not in kind.params]
    for key, param_kind in kind.params.items():
        if key not in given:
            problems.append(f"{instruction_id}: kwarg {key!r} is missing")
        elif (why := _KINDS[param_kind](given[key])) is not None:
            problems.append(f"{instruction_id}: kwarg {key!r} {why} (got {given[key]!r})")
    if (not problems and instruction_id == "length_constraints:nth_paragraph_first_word"
            and given["nth_paragraph"] > given["num_paragraphs"]):
        problems.append(f"{instruction_id}: nth_paragraph {given['nth_paragraph']} is beyond "
                        f"num_paragraphs {given['num_paragraphs']}")
    return problems


def bind(instruction_id: str, kwargs: Mapping[str, Any] | None) -> Check:
    """The check of one instruction on a response; ValueError naming the kwarg when invalid."""
    problems = kwargs_problems(instruction_id, kwargs)
    if problems:
        raise ValueError("; ".join(problems))
    return functools.partial(INSTRUCTION_TYPES[instruction_id].check, **clean_kwargs(kwargs))
