"""Answer extraction: a generate task's ``extract:`` filters applied to each generated text
before it is scored (declared and validated in :mod:`ftguard.suite.extract_spec`).

Every filter maps text to text, so the output of one is the input of the next; a filter that
finds nothing returns its ``fallback`` (``[invalid]`` by default, as lm-eval's), which later
filters see like any other text. The response cache keeps the raw generation: a changed filter
re-scores cached answers without generating again.

- ``regex``: lm-eval's ``RegexFilter`` followed by ``take_first`` (the same text for the same
  pattern, ``match: first`` = ``group_select: 0``, ``last`` = ``-1``), the match stripped of
  surrounding whitespace; an explicit ``group`` picks that group instead.
- ``number``: the last (or first) number; see :data:`NUMBER` and :func:`canonical_number`.
- ``choice_letter``: the answer letter; see :func:`choice_letter`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from ftguard.suite.extract_spec import (
    ChoiceLetterOptions,
    FilterStep,
    NumberOptions,
    RegexOptions,
)

NUMBER = re.compile(r"(?<![\w.])(?:([-+\u2212])(?=\.?\d))?"
                    r"((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?!\d)")
"""A number: an optional sign (``-``, ``+``, ``−``), then digits, either plain or grouped in
threes by commas (``1,234,567``), then an optional decimal part (``.5``; a bare ``.5`` too).
It does not start inside a word or right after a digit or ``.`` (``H2O``, ``v1.2``, ``x3`` hold
none; in ``5-7`` the ``-`` is not a sign), and a sign counts only right before the number.
Currency and unit marks around it (``$``, ``%``, ``km``) are not part of it; exponents
(``1e6`` reads ``1``), fractions (``3/4`` holds ``3`` and ``4``) and decimal commas
(``3,5`` reads ``3`` and ``5``) are not read as one number."""


def apply_filters(text: str, steps: Sequence[FilterStep] | None) -> str:
    """``text`` through every filter of ``steps`` in order (unchanged when there are none)."""
    for step in steps or ():
        text = _FILTERS[step.name](text, step.options)
    return text


def regex_filter(text: str, options: RegexOptions) -> str:
    """The text of the first or last match of ``options.pattern``, stripped; ``fallback``
    when there is none (or when the chosen group took no part in it)."""
    pattern = _compiled(options.pattern)
    matches = list(pattern.finditer(text))
    if not matches:
        return options.fallback
    found = matches[0] if options.match == "first" else matches[-1]
    if options.group is not None:
        value = found.group(options.group)
        return options.fallback if value is None else value.strip()
    if pattern.groups == 0:
        return found.group(0).strip()
    if pattern.groups == 1:  # what re.findall gives: '' for a group that did not take part
        return (found.group(1) or "").strip()
    first = next((g for g in found.groups() if g), None)  # lm-eval: first non-empty group
    return options.fallback if first is None else first.strip()


def number_filter(text: str, options: NumberOptions) -> str:
    """The last (or first) :data:`NUMBER` of ``text`` in canonical form; ``fallback`` when
    there is none."""
    matches = list(NUMBER.finditer(text))
    if not matches:
        return options.fallback
    found = matches[-1] if options.match == "last" else matches[0]
    return canonical_number(found.group(1) or "", found.group(2))


def canonical_number(sign: str, digits: str) -> str:
    """One spelling per value: no thousands commas, no leading zeros, no trailing decimal
    zeros, no ``+``, ``-`` for a negative value (``−`` included), a zero never negative
    (``+1,200.50`` -> ``1200.5``, ``007`` -> ``7``, ``.5`` -> ``0.5``, ``-0.0`` -> ``0``)."""
    whole, _, fraction = digits.replace(",", "").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    value = whole + (f".{fraction}" if fraction else "")
    negative = sign in ("-", "\u2212") and value != "0"
    return f"-{value}" if negative else value


def choice_letter(text: str, options: ChoiceLetterOptions) -> str:
    """The answer letter of a multiple-choice reply, upper-cased; the first rule that finds
    one decides:

    1. the last statement ``answer`` [``is`` | ``would be`` | ``should be`` | ``will be``]
       [``:`` ``=`` ``-`` ``*``] [``option`` | ``choice``] followed by a letter, either in
       brackets (``(B)``, ``[b]``, either case) or a capital standing alone (``Answer: C``,
       ``the correct answer is **D**.``); ``answer`` in any case;
    2. a reply that opens with the letter: in brackets (``(B) because ...``) or a capital
       followed by ``)`` ``.`` ``:`` ``,`` ``]`` or the end of its line (``B. Because``,
       ``C``); an opening word such as ``A contract ...`` is not a letter;
    3. the last capital letter in brackets anywhere (``... so (C) fits``).

    Only ``options.letters`` count; ``fallback`` when no rule finds one."""
    stated, opening, anywhere = _letter_rules(options.letters)
    for rule, pick in ((stated, -1), (opening, 0), (anywhere, -1)):
        found = list(rule.finditer(text))
        if found:
            return next(g for g in found[pick].groups() if g).upper()
    return options.fallback


@lru_cache(maxsize=32)
def _letter_rules(letters: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    upper, either = f"[{letters}]", f"[{letters}{letters.lower()}]"
    bracketed = rf"[(\[]\s*({either})\s*[)\]]"
    stated = re.compile(r"(?i:\banswer)\b[\s:=*\-]*"
                        r"(?:(?i:is|would\s+be|should\s+be|will\s+be)\b[\s:=*\-]*)?"
                        r"(?:(?i:option|choice)\s*)?"
                        rf"(?:{bracketed}|({upper})(?!\w))")
    opening = re.compile(rf"^\s*(?:{bracketed}|({upper})(?=[).:,\]]|[^\S\n]*(?:\n|$)))")
    anywhere = re.compile(rf"[(\[]\s*({upper})\s*[)\]]")
    return stated, opening, anywhere


def first_line(text: str, options: object = None) -> str:
    """The first line (``str.splitlines``) holding anything but whitespace, as written;
    ``""`` when no line does."""
    return next((line for line in text.splitlines() if line.strip()), "")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_FILTERS = {
    "regex": regex_filter,
    "strip": lambda text, _: text.strip(),
    "lowercase": lambda text, _: text.lower(),
    "first_line": first_line,
    "number": number_filter,
    "choice_letter": choice_letter,
}
