"""Train/eval leakage: which evaluation items overlap the fine-tuning data.

Both sides are compared as *normalised word tokens*: Unicode NFKC, case-folded, every run of
letters/digits a token, punctuation, symbols and whitespace only separating them (so case,
punctuation and spacing differences never hide a copy).

* A **training example**'s text is every string value of its JSONL row joined in order
  (instruction/input/output, prompt/completion, chat ``messages`` contents, and any extra
  fields; chat ``role`` names are left out).
* An **evaluation item**'s text is every string value of its own data row (question, choices,
  answers, passage, clause ...), recursively through lists and objects, without the id field.
  It is *not* the rendered prompt: few-shot examples and instruction boilerplate appear in
  every prompt and would make every item look leaked. Few-shot files are not checked (they
  are never scored). The item's **main text** is its longest string value (the question,
  clause or passage).

Two kinds of overlap are reported:

* **exact** -- the item's main text, of at least :data:`MIN_EXACT_TOKENS` tokens, appears
  verbatim (as a contiguous run of tokens) inside a training example's text; or a shorter
  main text of at least :data:`MIN_FIELD_TOKENS` tokens equals a whole string field of a
  training example (``"What is the capital of France?"`` as an instruction).
* **13-gram** -- the item's text and a training example's text share a run of
  :data:`NGRAM` tokens (the GPT-3 / lm-eval decontamination rule). Items shorter than that
  can only be exact matches.

Training n-grams are indexed once in dictionaries (n-gram -> example numbers), so checking is
one dictionary look-up per evaluation n-gram.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftguard.errors import DataError
from ftguard.suite.jsonl import read_jsonl

NGRAM = 13
"""Length of the shared token run that counts as a 13-gram overlap."""
MIN_EXACT_TOKENS = 8
"""A main text this long or longer is an exact overlap when it occurs inside a training text."""
MIN_FIELD_TOKENS = 3
"""A shorter main text is an exact overlap only when it equals a whole training field."""

_TOKEN = re.compile(r"[^\W_]+")
_SKIP_TRAINING_KEYS = frozenset({"role"})

Tokens = tuple[str, ...]


def normalize(text: str) -> Tokens:
    """Word tokens of ``text``: NFKC, case-folded, punctuation/symbols/whitespace dropped."""
    return tuple(_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()))


def string_values(value: Any, skip: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string inside ``value`` (recursively through lists and dicts), in order; dict keys
    in ``skip`` are left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in skip:
                yield from string_values(inner, skip)
    elif isinstance(value, list):
        for inner in value:
            yield from string_values(inner, skip)


def _ngrams(tokens: Tokens, n: int) -> Iterator[Tokens]:
    for start in range(len(tokens) - n + 1):
        yield tokens[start:start + n]


# --------------------------------------------------------------------------- training side


@dataclass(frozen=True)
class TrainingExample:
    """One normalised training row."""

    file: str
    """The training file, as given."""
    line: int
    """1-based line of the row in its file."""
    tokens: Tokens
    """Normalised tokens of all its string fields joined."""


@dataclass
class TrainingIndex:
    """Training examples with their n-grams indexed for look-up."""

    examples: list[TrainingExample] = field(default_factory=list)
    """Every non-blank row of every training file, in order."""
    files: dict[str, int] = field(default_factory=dict)
    """Rows read per training file."""
    ngrams: dict[Tokens, list[int]] = field(default_factory=lambda: defaultdict(list))
    """:data:`NGRAM`-gram -> numbers of the examples containing it."""
    prefixes: dict[Tokens, list[int]] = field(default_factory=lambda: defaultdict(list))
    """:data:`MIN_EXACT_TOKENS`-gram -> numbers of the examples containing it (exact checks)."""
    fields: dict[Tokens, list[int]] = field(default_factory=lambda: defaultdict(list))
    """A whole normalised string field -> numbers of the examples having it."""

    def add(self, file: str, line: int, strings: Iterable[str]) -> None:
        """Index one training row given its string values."""
        number = len(self.examples)
        parts = [normalize(s) for s in strings]
        tokens = tuple(t for part in parts for t in part)
        self.examples.append(TrainingExample(file, line, tokens))
        for table, n in ((self.ngrams, NGRAM), (self.prefixes, MIN_EXACT_TOKENS)):
            for gram in set(_ngrams(tokens, n)):
                table[gram].append(number)
        for part in set(parts):
            if len(part) >= MIN_FIELD_TOKENS:
                self.fields[part].append(number)


def load_training(paths: Sequence[str | Path]) -> TrainingIndex:
    """Read and index the training JSONL files; raise DataError naming file:line on bad input."""
    index = TrainingIndex()
    problems = []
    for path in map(Path, paths):
        rows, found = read_jsonl(path, str(path))
        problems += found
        index.files[str(path)] = len(rows)
        for row in rows:
            index.add(str(path), row.line, string_values(row.fields, _SKIP_TRAINING_KEYS))
    if problems:
        shown = " ".join(str(p) for p in problems[:5])
        more = f" ({len(problems) - 5} more problems not shown.)" if len(problems) > 5 else ""
        raise DataError(f"training data cannot be read: {shown}{more}",
                        hint="Each line must be one JSON object, e.g. {\"instruction\": ..., "
                             "\"input\": ..., \"output\": ...}, {\"prompt\": ..., \"completion\": "
                             "...} or {\"messages\": [{\"role\": ..., \"content\": ...}]}.")
    return index


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Match:
    """One training example that overlaps one evaluation item."""

    file: str
    """Training file."""
    line: int
    """Line of the training example in that file."""
    exact: bool
    """The item's main text occurs inside (or equals a field of) this example."""
    ngram: bool
    """The item and this example share at least one :data:`NGRAM`-token run."""
    shared: str
    """The longest shared text found (normalised tokens joined by spaces)."""


@dataclass(frozen=True)
class ItemLeak:
    """An evaluation item that overlaps the training data."""

    id: str
    """The item's id in its task."""
    line: int
    """Line of the item in the task's data file."""
    matches: tuple[Match, ...]
    """Every overlapping training example, in training order."""

    @property
    def exact(self) -> bool:
        return any(m.exact for m in self.matches)

    @property
    def ngram(self) -> bool:
        return any(m.ngram for m in self.matches)


@dataclass(frozen=True)
class TaskLeakage:
    """Overlap of one task's items with the training data."""

    suite: str
    """Suite name."""
    task: str
    """Task name."""
    data: str
    """The task's data file."""
    items: int
    """Items checked."""
    leaks: tuple[ItemLeak, ...]
    """Items with any overlap, in data order."""

    @property
    def exact(self) -> int:
        """Items with an exact overlap."""
        return sum(leak.exact for leak in self.leaks)

    @property
    def ngram(self) -> int:
        """Items sharing a 13-gram with a training example."""
        return sum(leak.ngram for leak in self.leaks)


@dataclass(frozen=True)
class LeakageReport:
    """The result of :func:`check_leakage`."""

    training: dict[str, int]
    """Training file -> rows read."""
    tasks: tuple[TaskLeakage, ...]
    """One entry per task of every suite checked."""
    ngram: int = NGRAM
    """n of the n-gram rule."""
    min_exact_tokens: int = MIN_EXACT_TOKENS
    """Minimum length of a main text for the contained-in rule."""

    @property
    def clean(self) -> bool:
        """True when no evaluation item overlaps any training example."""
        return not any(t.leaks for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "clean": self.clean, "ngram": self.ngram, "min_exact_tokens": self.min_exact_tokens,
            "training": [{"file": f, "rows": n} for f, n in self.training.items()],
            "tasks": [{"suite": t.suite, "task": t.task, "data": t.data, "items": t.items,
                       "exact": t.exact, "ngram": t.ngram, "leaked": len(t.leaks),
                       "leaks": [{"id": leak.id, "line": leak.line, "exact": leak.exact,
                                  "ngram": leak.ngram,
                                  "matches": [{"file": m.file, "line": m.line, "exact": m.exact,
                                               "ngram": m.ngram, "shared": m.shared}
                                              for m in leak.matches]}
                                 for leak in t.leaks]}
                      for t in self.tasks],
        }


# --------------------------------------------------------------------------- checking


def check_item(strings: Sequence[str], index: TrainingIndex) -> tuple[Match, ...]:
    """Training examples overlapping one evaluation item, given the item's string values."""
    parts = [normalize(s) for s in strings]
    tokens = tuple(t for part in parts for t in part)
    main = max(parts, key=len, default=())
    exact = _exact_matches(main, index)
    hits: dict[int, list[int]] = defaultdict(list)  # example -> start positions of shared grams
    for start, gram in enumerate(_ngrams(tokens, NGRAM)):
        for number in index.ngrams.get(gram, ()):
            hits[number].append(start)
    matches = []
    for number in sorted(exact | hits.keys()):
        example = index.examples[number]
        shared = main if number in exact else _longest_run(tokens, hits[number])
        matches.append(Match(example.file, example.line, number in exact, number in hits,
                             " ".join(shared)))
    return tuple(matches)


def _exact_matches(main: Tokens, index: TrainingIndex) -> set[int]:
    if len(main) < MIN_FIELD_TOKENS:
        return set()
    found = set(index.fields.get(main, ()))
    if len(main) >= MIN_EXACT_TOKENS:
        needle = " " + " ".join(main) + " "
        for number in index.prefixes.get(main[:MIN_EXACT_TOKENS], ()):
            if needle in " " + " ".join(index.examples[number].tokens) + " ":
                found.add(number)
    return found


def _longest_run(tokens: Tokens, starts: list[int]) -> Tokens:
    """The longest stretch of ``tokens`` covered by shared n-grams at consecutive starts."""
    best = (0, 0)
    run_start = previous = starts[0]
    for start in [*starts[1:], None]:
        if start is not None and start == previous + 1:
            previous = start
            continue
        if previous + NGRAM - run_start > best[1] - best[0]:
            best = (run_start, previous + NGRAM)
        if start is not None:
            run_start = previous = start
    return tokens[best[0]:best[1]]


def check_leakage(train: Sequence[str | Path], suites: Sequence[str | Path]) -> LeakageReport:
    """Compare every item of every task of ``suites`` with the training files ``train``.

    Raises DataError for unreadable training data and SuiteError for bad suites.
    """
    from ftguard.suite import find_suites, load_suite

    index = load_training(train)
    results = []
    for root in find_suites([Path(p) for p in suites]):
        suite = load_suite(root)
        for task in suite.tasks:
            if task.spec.data is None:  # lm_eval tasks: their data is lm-eval's business
                continue
            data = suite.root / task.spec.data
            rows, _ = read_jsonl(data.resolve(), str(data))  # already validated by load_suite
            by_line = {row.line: row.fields for row in rows}
            skip = frozenset({task.spec.id_field})
            leaks = []
            for item in task.instances:
                matches = check_item(list(string_values(by_line[item.line], skip)), index)
                if matches:
                    leaks.append(ItemLeak(item.id, item.line, matches))
            results.append(TaskLeakage(suite.name, task.name, _display(data),
                                       len(task.instances), tuple(leaks)))
    return LeakageReport(dict(index.files), tuple(results))


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- rendering


def render_leakage(report: LeakageReport, fmt: str = "text", *, show: int = 10) -> str:
    """The report as ``text`` (a table, then up to ``show`` offending items per task) or
    ``json`` (everything)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=1, ensure_ascii=False)
    trained = ", ".join(f"{f} ({n} rows)" for f, n in report.training.items())
    header = ("suite", "task", "items", "exact", f"{report.ngram}-gram")
    rows = [(t.suite, t.task, str(t.items), str(t.exact), str(t.ngram)) for t in report.tasks]
    rows.append(("total", "", str(sum(t.items for t in report.tasks)),
                 str(sum(t.exact for t in report.tasks)), str(sum(t.ngram for t in report.tasks))))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"training data: {trained}", ""]
    for r in [header, *rows]:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    for task in report.tasks:
        if task.leaks:
            lines += ["", f"{task.suite}/{task.task} ({task.data}): "
                          + f"{len(task.leaks)} item(s) overlap the training data"]
            lines += [_leak_line(leak) for leak in task.leaks[:show]]
            if len(task.leaks) > show:
                lines.append(f"  ... and {len(task.leaks) - show} more (--format json lists all)")
    lines.append("")
    if report.clean:
        lines.append("clean: no evaluation item overlaps the training data.")
    else:
        leaked = sum(len(t.leaks) for t in report.tasks)
        lines.append(f"leakage: {leaked} evaluation item(s) overlap the training data; reword or "
                     "drop those training examples (or the items) and check again.")
    return "\n".join(lines)


def _leak_line(leak: ItemLeak, limit: int = 3) -> str:
    where = ", ".join(f"{m.file}:{m.line}" for m in leak.matches[:limit])
    if len(leak.matches) > limit:
        where += f" (+{len(leak.matches) - limit} more)"
    kind = "+".join(k for k, on in (("exact", leak.exact), (f"{NGRAM}-gram", leak.ngram)) if on)
    shared = max((m.shared for m in leak.matches), key=lambda s: len(s.split()))
    if len(shared) > 100:
        shared = shared[:97] + "..."
    return f"  {leak.id} (line {leak.line}) [{kind}] {where}: \"{shared}\""
