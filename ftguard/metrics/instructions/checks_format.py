"""Checkers on layout, markers and fixed phrases, with IFEval's definitions.

Same contract as :mod:`ftguard.metrics.instructions.checks_text`: ``check(response,
**kwargs) -> bool``, keyword arguments already validated. Markers given by a prompt
(``section_spliter``, ``postscript_marker``) are regular expressions, as in IFEval.
"""

from __future__ import annotations

import json
import re

CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
"""The three answers ``detectable_format:constrained_response`` accepts."""

_BULLET_STAR = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_BULLET_DASH = re.compile(r"^\s*-.*$", re.MULTILINE)
_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_BOLD = re.compile(r"\*\*[^\n\*]*\*\*")
_TITLE = re.compile(r"<<[^\n]+>>")
_PLACEHOLDER = re.compile(r"\[.*?\]")
_FENCE_OPENERS = ("```json", "```Json", "```JSON", "```")


def number_bullet_lists(response: str, *, num_bullets: int) -> bool:
    """detectable_format:number_bullet_lists: exactly N lines that start (after blanks) with
    ``*`` not followed by another ``*``, or with ``-`` (so a ``---`` rule counts too)."""
    found = len(_BULLET_STAR.findall(response)) + len(_BULLET_DASH.findall(response))
    return found == num_bullets


def constrained_response(response: str) -> bool:
    """detectable_format:constrained_response: one of the fixed answers appears somewhere."""
    text = response.strip()
    return any(option in text for option in CONSTRAINED_OPTIONS)


def number_highlighted_sections(response: str, *, num_highlights: int) -> bool:
    """detectable_format:number_highlighted_sections: at least N non-empty ``*...*`` spans on
    one line; each ``**...**`` span counts once more (IFEval's double count)."""
    found = sum(1 for span in _HIGHLIGHT.findall(response) if span.strip("*").strip())
    found += sum(1 for span in _BOLD.findall(response)
                 if span.removeprefix("**").removesuffix("**").strip())
    return found >= num_highlights


def multiple_sections(response: str, *, section_spliter: str, num_sections: int) -> bool:
    """detectable_format:multiple_sections: at least N markers ``SPLITER <number>``."""
    pattern = r"\s?" + section_spliter.strip() + r"\s?\d+\s?"
    return len(re.split(pattern, response)) - 1 >= num_sections


def json_format(response: str) -> bool:
    """detectable_format:json_format: the text parses as JSON (any value), after stripping
    blanks and a Markdown fence (an opening ```` ```json ````, ```` ```Json ````, ```` ```JSON ````
    and ```` ``` ```` are each removed in turn, then one closing ```` ``` ````)."""
    text = response.strip()
    for opener in _FENCE_OPENERS:  # one after the other, as IFEval chains removeprefix
        text = text.removeprefix(opener)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def title(response: str) -> bool:
    """detectable_format:title: some ``<<title>>`` on one line with a non-blank title."""
    return any(found.lstrip("<").rstrip(">").strip() for found in _TITLE.findall(response))


def number_placeholders(response: str, *, num_placeholders: int) -> bool:
    """detectable_content:number_placeholders: at least N ``[...]`` spans (shortest match)."""
    return len(_PLACEHOLDER.findall(response)) >= num_placeholders


def postscript(response: str, *, postscript_marker: str) -> bool:
    """detectable_content:postscript: a line holds the marker (case-insensitive).

    ``P.S.`` and ``P.P.S`` are matched loosely (``p. s.``, ``p.p. s``); any other marker is
    a regular expression.
    """
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, response.lower(), flags=re.MULTILINE))


def two_responses(response: str) -> bool:
    """combination:two_responses: two different non-empty answers separated by ``******``
    (empty parts allowed only at the very start or end)."""
    parts = response.split("******")
    answers = []
    for index, part in enumerate(parts):
        if part.strip():
            answers.append(part)
        elif index not in (0, len(parts) - 1):
            return False
    return len(answers) == 2 and answers[0].strip() != answers[1].strip()


def repeat_prompt(response: str, *, prompt_to_repeat: str) -> bool:
    """combination:repeat_prompt: the response starts with the request (case-insensitive)."""
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


def end_checker(response: str, *, end_phrase: str) -> bool:
    """startend:end_checker: the text, without outer blanks and double quotes, ends with the
    phrase (case-insensitive)."""
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(response: str) -> bool:
    """startend:quotation: the stripped text starts and ends with ``"`` (two at least)."""
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'
