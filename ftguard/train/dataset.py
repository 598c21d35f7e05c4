"""Loading training files into tokenised examples, in memory or streamed.

:func:`load_source` reads a whole JSONL file, checks every row and raises one
:class:`~ftguard.errors.DataError` listing all problems with ``file:line``.
:func:`iter_source` streams a file line by line, forever (re-opening it), for files larger
than memory; :class:`StreamingMixture` (a torch ``IterableDataset``, created lazily so that
importing this module does not import torch) draws from several streamed sources following
the mixing schedule of :mod:`ftguard.train.mixing`.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftguard.errors import DataError, Problem
from ftguard.suite.jsonl import lines, parse_line, read_jsonl
from ftguard.train.config import DataConfig
from ftguard.train.formats import detect_format, extract, render, use_chat_template
from ftguard.train.mixing import shares
from ftguard.train.record import DataSourceInfo
from ftguard.train.tokenize import Example, encode

_LENGTH_HINT = ("Raise data.max_length, use data.overlong: truncate, or shorten the prompts so "
                "that some response tokens fit.")


@dataclass
class StreamStats:
    """Counters of a streamed source, updated as rows are read."""

    rows: int = 0
    """Rows read (all passes)."""
    truncated: int = 0
    """Examples cut to max_length."""
    dropped: int = 0
    """Examples dropped."""
    tokens: int = 0
    """Tokens of the examples yielded."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _example(fields: dict[str, Any], fmt: str, name: str, line: int | None, tokenizer: Any,
             chat: bool, cfg: DataConfig, source: int) -> tuple[Example | None, str, list[Problem]]:
    """One row -> (example, status, problems)."""
    clean, problems = extract(fields, fmt, name, line)
    if clean is None:
        return None, "error", problems
    try:
        text, spans = render(clean, fmt, tokenizer, chat)
    except DataError as exc:
        return None, "error", [Problem(name, line, None, str(exc))]
    example, status = encode(text, spans, tokenizer, cfg.max_length, cfg.overlong,
                             cfg.prompt_loss_weight)
    if example is not None:
        example.source = source
    return example, status, []


def load_source(path: str | Path, fmt: str, tokenizer: Any, data_cfg: DataConfig, *,
                display: str | None = None,
                source: int = 0) -> tuple[list[Example], DataSourceInfo]:
    """Read, check and tokenise a whole JSONL file; raise DataError listing every problem."""
    path = Path(path)
    name = display or str(path)
    rows, problems = read_jsonl(path, name)
    chat = use_chat_template(tokenizer, data_cfg.chat_template)
    resolved = fmt
    if fmt == "auto" and rows:
        found = detect_format(rows[0].fields, name, rows[0].line)
        if isinstance(found, Problem):
            raise DataError.from_problems([*problems, found])
        resolved = found
    examples: list[Example] = []
    counts = {"ok": 0, "truncated": 0, "dropped": 0}
    for row in rows:
        example, status, row_problems = _example(row.fields, resolved, name, row.line, tokenizer,
                                                 chat, data_cfg, source)
        problems.extend(row_problems)
        if example is not None:
            examples.append(example)
        if status in counts:
            counts[status] += 1
    if problems:
        hint = ("Fix the lines above; each line must hold one training row."
                if any(p.line for p in problems) else None)
        raise DataError.from_problems(problems, hint=hint)
    if not examples:
        raise DataError(f"{name}: all {len(rows)} examples were dropped (longer than "
                        f"data.max_length={data_cfg.max_length} with overlong: "
                        f"{data_cfg.overlong}, or no response token left after truncation).",
                        hint=_LENGTH_HINT)
    info = DataSourceInfo(name=path.stem, path=name, sha256=file_sha256(path), format=resolved,
                          rows=len(rows), truncated=counts["truncated"], dropped=counts["dropped"],
                          tokens=sum(len(e.input_ids) for e in examples))
    return examples, info


def split_validation(examples: Sequence[Example], fraction: float,
                     seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out a seeded ``fraction`` (at least 1 when fraction > 0 and there are 2 or more).

    Both parts keep the original order.
    """
    import numpy as np

    n = len(examples)
    if fraction <= 0 or n < 2:
        return list(examples), []
    k = min(n - 1, max(1, round(fraction * n)))
    held = set(np.random.default_rng(seed).permutation(n)[:k].tolist())
    train = [e for i, e in enumerate(examples) if i not in held]
    val = [e for i, e in enumerate(examples) if i in held]
    return train, val


def iter_source(path: str | Path, fmt: str, tokenizer: Any, data_cfg: DataConfig,
                source: int = 0, *, display: str | None = None,
                stats: StreamStats | None = None) -> Iterator[Example]:
    """Stream examples of a JSONL file line by line, cycling forever (re-opening the file).

    Dropped examples are skipped. The first bad row raises DataError with ``file:line``; so
    does a file that yields no example in a whole pass.
    """
    path = Path(path)
    name = display or str(path)
    chat = use_chat_template(tokenizer, data_cfg.chat_template)
    stats = stats if stats is not None else StreamStats()
    resolved = fmt
    while True:
        yielded = 0
        if not path.is_file():
            raise DataError(f"{name}: {'is not a regular file' if path.exists() else 'no such file'}"
                            "; training data is a JSONL file.")
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise DataError(f"{name}: cannot be read ({exc.strerror}).") from None
        with handle:
            for number, raw in lines(handle):
                fields = parse_line(raw, number == 1)
                if fields is None:
                    continue
                if isinstance(fields, str):
                    raise DataError(f"{name}:{number}: {fields}")
                stats.rows += 1
                if resolved == "auto":
                    found = detect_format(fields, name, number)
                    if isinstance(found, Problem):
                        raise DataError.from_problems([found])
                    resolved = found
                example, status, problems = _example(fields, resolved, name, number, tokenizer,
                                                     chat, data_cfg, source)
                if problems:
                    raise DataError.from_problems(problems)
                if status == "truncated":
                    stats.truncated += 1
                if example is None:
                    stats.dropped += 1
                    continue
                stats.tokens += len(example.input_ids)
                yielded += 1
                yield example
        if not yielded:
            raise DataError(f"{name}: no training example in the whole file (empty, or every "
                            "example dropped).", hint=_LENGTH_HINT)


@functools.cache
def _streaming_mixture_class() -> type:
    import numpy as np
    from torch.utils.data import IterableDataset, get_worker_info

    class StreamingMixture(IterableDataset):
        """Streamed sources drawn at (annealed) ratios; ``total`` examples per iteration.

        Draw ``t`` picks a source with the shares of :func:`ftguard.train.mixing.shares` and
        takes that source's next streamed example. Use it with ``num_workers=0`` (sources
        are read sequentially). ``stats[s]`` counts what source ``s`` has read.
        """

        def __init__(self, paths: Sequence[str | Path], formats: Sequence[str], tokenizer: Any,
                     data_cfg: DataConfig, ratios: Sequence[float],
                     final_ratios: Sequence[float | None] | None, total: int,
                     seed: int) -> None:
            self.paths = [Path(p) for p in paths]
            self.formats = list(formats)
            self.tokenizer = tokenizer
            self.data_cfg = data_cfg
            self.ratios = list(ratios)
            self.final_ratios = list(final_ratios) if final_ratios is not None else None
            self.total = total
            self.seed = seed
            self.stats = [StreamStats() for _ in self.paths]

        def __len__(self) -> int:
            return self.total

        def __iter__(self) -> Iterator[Example]:
            info = get_worker_info()
            if info is not None and info.num_workers > 1:
                raise DataError("streamed training data is read by one process.",
                                hint="Use num_workers=0 or 1 with data.streaming.")
            rng = np.random.default_rng(self.seed)
            streams = [iter_source(p, f, self.tokenizer, self.data_cfg, i, stats=s)
                       for i, (p, f, s) in enumerate(zip(self.paths, self.formats, self.stats))]
            for t in range(self.total):
                p = shares(self.ratios, self.final_ratios, t, self.total)
                yield next(streams[int(rng.choice(len(streams), p=p))])

    return StreamingMixture


def __getattr__(name: str) -> Any:
    # StreamingMixture subclasses torch's IterableDataset: build it on first use only.
    if name == "StreamingMixture":
        return _streaming_mixture_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
