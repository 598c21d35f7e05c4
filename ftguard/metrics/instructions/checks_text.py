"""Checkers on words, letters, keywords, case and punctuation, with IFEval's definitions.

Each checker is ``check(response, **kwargs) -> bool`` and decides one instruction on one
response text, exactly as IFEval (and lm-eval's ``ifeval`` task) decides it. Keyword
arguments arrive already validated (:mod:`ftguard.metrics.instructions.spec`).

Two IFEval details kept on purpose, because they change results:

- keywords are used as regular expressions, case-insensitively, and matched anywhere
  (``existence``, ``frequency``: "cat" counts inside "category"); only ``forbidden_words``
  wraps them in word boundaries;
- a word is a run of ``\\w`` characters (``don't`` is two words, ``3.5`` is two).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

LESS_THAN, AT_LEAST = "less than", "at least"
RELATIONS = (LESS_THAN, AT_LEAST)
"""IFEval's two comparison relations: ``count < n`` and ``count >= n``."""

_WORD = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.DOTALL)


def compare(count: int, relation: str, threshold: int) -> bool:
    """``count < threshold`` for "less than", ``count >= threshold`` for "at least"."""
    return count < threshold if relation == LESS_THAN else count >= threshold


def count_words(text: str) -> int:
    """IFEval's word count: the number of maximal runs of word characters."""
    return len(_WORD.findall(text))


def keyword_existence(response: str, *, keywords: Sequence[str]) -> bool:
    """keywords:existence: every keyword occurs (case-insensitive, anywhere)."""
    return all(re.search(keyword, response, flags=re.IGNORECASE) for keyword in keywords)


def keyword_frequency(response: str, *, keyword: str, frequency: int, relation: str) -> bool:
    """keywords:frequency: the keyword's occurrences compared with ``frequency``."""
    found = len(re.findall(keyword.strip(), response, flags=re.IGNORECASE))
    return compare(found, relation, frequency)


def forbidden_words(response: str, *, forbidden_words: Sequence[str]) -> bool:
    """keywords:forbidden_words: none of the words occurs as a whole word."""
    return not any(re.search(r"\b" + word + r"\b", response, flags=re.IGNORECASE)
                   for word in forbidden_words)


def letter_frequency(response: str, *, letter: str, let_frequency: int,
                     let_relation: str) -> bool:
    """keywords:letter_frequency: the letter's count (either case) against the threshold."""
    found = Counter(response.lower())[letter.strip().lower()]
    return compare(found, let_relation, let_frequency)


def number_words(response: str, *, num_words: int, relation: str) -> bool:
    """length_constraints:number_words: the word count against ``num_words``."""
    return compare(count_words(response), relation, num_words)


def number_paragraphs(response: str, *, num_paragraphs: int) -> bool:
    """length_constraints:number_paragraphs: exactly N parts separated by ``***``.

    Empty parts are allowed only first or last (a leading or trailing divider); an empty part
    in the middle (two dividers in a row) fails the instruction.
    """
    parts = re.split(r"\s?\*\*\*\s?", response)
    count = len(parts)
    for index, part in enumerate(parts):
        if not part.strip():
            if index not in (0, len(parts) - 1):
                return False
            count -= 1
    return count == num_paragraphs


_FIRST_WORD_STOPS = frozenset(".,?!'\"")


def nth_paragraph_first_word(response: str, *, num_paragraphs: int, nth_paragraph: int,
                             first_word: str) -> bool:
    """length_constraints:nth_paragraph_first_word: N paragraphs split by blank lines, and
    paragraph ``nth_paragraph`` starts with ``first_word`` (case-insensitive, up to the first
    punctuation mark).

    As in IFEval, empty paragraphs are left out of the count but not out of the numbering.
    """
    paragraphs = re.split(r"\n\n", response)
    count = sum(1 for paragraph in paragraphs if paragraph.strip())
    if nth_paragraph > count:
        return False
    paragraph = paragraphs[nth_paragraph - 1].strip()
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    letters = []
    for letter in word:
        if letter in _FIRST_WORD_STOPS:
            break
        letters.append(letter.lower())
    return count == num_paragraphs and "".join(letters) == first_word.lower()


def no_comma(response: str) -> bool:
    """punctuation:no_comma: the response holds no ASCII comma."""
    return "," not in response


def english_lowercase(response: str) -> bool:
    """change_case:english_lowercase: ``str.islower()`` (some cased letter, none upper).

    IFEval also asks langdetect whether the text is English; ftguard does not (see the
    package docstring).
    """
    return response.islower()


def english_capital(response: str) -> bool:
    """change_case:english_capital: ``str.isupper()`` (some cased letter, none lower).

    The language half of IFEval's check is left out, as for ``english_lowercase``.
    """
    return response.isupper()
