"""Output paths, checked before any work starts.

Every command that writes calls :func:`output_file` or :func:`output_dir` for each of its
outputs first, so a run never ends (after minutes of evaluation) in an error about where
its result should go, and never replaces something that is not a previous result: a
folder, a FIFO or device, or one of the command's own inputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ftguard.atomic import check_output_dir, check_output_file
from ftguard.errors import RecordError, UsageError


def output_file(text: str | Path | None, flag: str, *,
                inputs: Mapping[str, str | Path | None] | None = None) -> Path | None:
    """The file ``flag`` names, checked: a regular file or nothing there yet, in a folder
    that exists or can be made, and none of ``inputs`` (what -> path). None stays None."""
    if text is None:
        return None
    path = _non_empty(text, flag, "a file path such as results/run.json")
    _as_flag(check_output_file, path, flag)
    for what, other in (inputs or {}).items():
        if other is not None and _same(path, Path(other)):
            raise UsageError(f"{flag} {path}: is also the {what}; writing the result there "
                             "would replace its own input.", hint="Choose another file.")
    return path


def output_dir(text: str | Path | None, flag: str) -> Path | None:
    """The folder ``flag`` names, checked: a folder or nothing there yet, whose parent exists
    or can be made. Whether a non-empty folder may be replaced is the command's business."""
    if text is None:
        return None
    path = _non_empty(text, flag, "a folder path such as runs/merged")
    _as_flag(check_output_dir, path, flag)
    return path


def _as_flag(check: Callable[[Path], Path], path: Path, flag: str) -> None:
    """The atomic writers' own check of ``path``, its message led by ``flag``."""
    try:
        check(path)
    except RecordError as exc:
        raise UsageError(f"{flag} {exc.message}", hint=exc.hint) from None


def distinct(outputs: Mapping[str, Path | None]) -> None:
    """Refuse two outputs (flag -> path) that are the same file: one would replace the other."""
    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        key = os.path.abspath(path)
        if key in seen:
            raise UsageError(f"{seen[key]} and {flag} are the same file ({path}); the second "
                             "write would replace the first.", hint="Give them different paths.")
        seen[key] = flag


def _non_empty(text: str | Path, flag: str, example: str) -> Path:
    if not str(text).strip():
        raise UsageError(f"{flag} is empty; give {example}.")
    return Path(text).expanduser()


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
