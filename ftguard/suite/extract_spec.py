"""The ``extract:`` key of a generate task: filters applied in order to the generated text
before it is scored (answer extraction, like lm-eval's ``filter_list``).

A filter is written as its name (``- strip``) or as a mapping of its name to its options
(``- regex: {pattern: '#### (\\-?[0-9.,]+)', match: last}``). The filters themselves are
:mod:`ftguard.engine.extract`; this module only declares and validates them, so a bad
pattern or an unknown filter is a located suite error before anything runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

FILTER_NAMES: tuple[str, ...] = ("regex", "strip", "lowercase", "first_line", "number",
                                 "choice_letter")
"""Every filter, in the order the README describes them."""
DEFAULT_FALLBACK = "[invalid]"
"""What a filter that finds nothing returns (lm-eval's ``RegexFilter`` default)."""


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class NoOptions(_Options):
    """``strip``, ``lowercase`` and ``first_line`` take no options."""


class RegexOptions(_Options):
    """``regex``: the text of one match of a regular expression."""

    pattern: str
    """Python regular expression (``re`` syntax), searched anywhere in the text. ``(?i)`` at its
    start ignores case; ``(?s)`` lets ``.`` match line breaks."""
    group: int | str | None = None
    """Group whose text is extracted, by number (0: the whole match) or name. Default, as
    lm-eval's ``regex`` filter: the whole match when the pattern has no group, the group when it
    has one, the first non-empty group when it has several. A group that took no part in the
    match gives ``fallback``."""
    match: Literal["first", "last"] = "first"
    """Which match: ``first`` (lm-eval's ``group_select: 0``) or ``last`` (``group_select:
    -1``)."""
    fallback: str = DEFAULT_FALLBACK
    """Text returned when the pattern does not match; it is scored like any other answer."""

    @model_validator(mode="after")
    def _compiles(self) -> RegexOptions:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"pattern {self.pattern!r} is not a valid regular expression: "
                             f"{exc}. Backslashes are easiest inside single quotes in YAML "
                             r"('\d+'); inside double quotes write them twice") from None
        if isinstance(self.group, int) and not 0 <= self.group <= compiled.groups:
            raise ValueError(f"group {self.group} does not exist: pattern {self.pattern!r} has "
                             f"{compiled.groups} group(s)")
        if isinstance(self.group, str) and self.group not in compiled.groupindex:
            named = ", ".join(compiled.groupindex) or "none"
            raise ValueError(f"group {self.group!r} is not a named group of {self.pattern!r} "
                             f"(named groups: {named}; name one with (?P<name>...))")
        return self


class NumberOptions(_Options):
    """``number``: a number in the text, GSM8K style, in canonical form (README, answer
    extraction): sign, digits with optional thousands commas, optional decimals."""

    match: Literal["first", "last"] = "last"
    """Which number: the ``last`` in the text (a worked answer ends with its result) or the
    ``first``."""
    fallback: str = DEFAULT_FALLBACK
    """Text returned when the text holds no number."""


class ChoiceLetterOptions(_Options):
    """``choice_letter``: the letter of a multiple-choice answer (``The answer is (B)`` ->
    ``B``), by the rule in the README (answer extraction)."""

    letters: str = "ABCDE"
    """The answer letters, capitals in any order (``ABCD`` for four options)."""
    fallback: str = DEFAULT_FALLBACK
    """Text returned when no answer letter is found."""

    @field_validator("letters")
    @classmethod
    def _capitals(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]+", value) or len(set(value)) != len(value):
            raise ValueError(f"letters {value!r} must be distinct capital letters A-Z, e.g. "
                             "ABCD")
        return value


FILTER_OPTIONS: dict[str, type[_Options]] = {
    "regex": RegexOptions, "strip": NoOptions, "lowercase": NoOptions, "first_line": NoOptions,
    "number": NumberOptions, "choice_letter": ChoiceLetterOptions}
"""The options model of each filter."""


class FilterStep(_Options):
    """One filter of ``extract:``: exactly one of these keys, the filter's name."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              json_schema_extra={"minProperties": 1, "maxProperties": 1})

    regex: RegexOptions | None = None
    """The text of the first or last match of a regular expression (lm-eval's ``regex``)."""
    strip: NoOptions | None = None
    """Surrounding whitespace removed (lm-eval's ``remove_whitespace``)."""
    lowercase: NoOptions | None = None
    """Lower-cased (lm-eval's ``lowercase``)."""
    first_line: NoOptions | None = None
    """The first line holding anything but whitespace, as written (empty when none does)."""
    number: NumberOptions | None = None
    """The last (or first) number, in canonical form: ``$1,234.50.`` -> ``1234.5``."""
    choice_letter: ChoiceLetterOptions | None = None
    """The answer letter: ``The answer is (B)`` -> ``B``."""

    @property
    def name(self) -> str:
        """The filter's name."""
        return next(n for n in FILTER_NAMES if getattr(self, n) is not None)

    @property
    def options(self) -> Any:
        """The filter's options."""
        return getattr(self, self.name)

    @model_serializer(mode="plain")
    def _compact(self) -> dict[str, Any]:
        # as written: {name: options}, so adding a filter later changes no suite's hash
        return {self.name: self.options.model_dump()}


def _written_form(value: object) -> object:
    """``strip`` -> ``{"strip": {}}``; a one-key mapping with its options (null: none)."""
    if isinstance(value, FilterStep):
        return value
    if isinstance(value, str):
        if value not in FILTER_NAMES:
            raise ValueError(_unknown(value))
        return {value: {}}
    if isinstance(value, dict) and len(value) == 1:
        name, options = next(iter(value.items()))
        if name not in FILTER_NAMES:
            raise ValueError(_unknown(str(name)))
        if options is not None and not isinstance(options, (dict, BaseModel)):
            form = ("- regex: {pattern: '...'}" if name == "regex"
                    else f"- {name}: {{...}}, or - {name} alone for its defaults")
            raise ValueError(f"the options of {name!r} are a mapping ({form}); got {options!r}")
        return {name: {} if options is None else options}
    raise ValueError("a filter is its name (- strip) or one mapping of its name to its "
                     "options (- regex: {pattern: '...'}); got "
                     + (f"the keys {', '.join(map(str, value))}" if isinstance(value, dict)
                        else repr(value)))


def _unknown(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, FILTER_NAMES, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown filter {name!r}.{hint} Filters: {', '.join(FILTER_NAMES)}"


ExtractFilter = Annotated[
    FilterStep,
    BeforeValidator(_written_form,
                    json_schema_input_type=Literal["strip", "lowercase", "first_line", "number",
                                                   "choice_letter"] | FilterStep)]
"""One entry of ``extract:`` as written in suite.yaml."""

ExtractList = Annotated[list[ExtractFilter], Field(min_length=1)]
"""``extract:``: at least one filter."""
