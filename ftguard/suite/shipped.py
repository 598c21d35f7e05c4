"""The suites shipped inside the package (``ftguard/suites/``) and lookup by name.

They are package data, so they are found the same way in a source checkout (where the
repository's ``suites`` is a link to ``ftguard/suites``) and in an installed wheel. Wherever a
SUITE argument is accepted, a value that is not an existing path but names a shipped suite
(``legal``, ``general``) means that suite; an existing path always wins.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ftguard.errors import Problem

SUITE_FILE = "suite.yaml"


def shipped_root() -> Path:
    """The folder holding the shipped suites (one sub-folder per suite)."""
    return Path(__file__).resolve().parent.parent / "suites"


def shipped_suites() -> dict[str, Path]:
    """Shipped suite name (its folder's name) -> its folder, sorted by name."""
    root = shipped_root()
    if not root.is_dir():
        return {}
    return {folder.name: folder for folder in sorted(root.iterdir())
            if (folder / SUITE_FILE).is_file()}


def looks_like_name(value: str) -> bool:
    """A bare word (no folder separator, no suite.yaml): what a suite name looks like."""
    return "/" not in value and "\\" not in value and value not in ("", ".", "..") \
        and not value.endswith(".yaml")


def resolve_suite_argument(path: Path) -> Path | None:
    """``path`` itself when it exists, else the shipped suite it names, else None."""
    if path.exists():
        return path
    return shipped_suites().get(str(path)) if looks_like_name(str(path)) else None


def unknown_suite_problem(value: str) -> Problem:
    """The problem for a SUITE argument that is neither an existing path nor a shipped name."""
    names = list(shipped_suites())
    listed = ", ".join(names) if names else "none found"
    if looks_like_name(value):
        close = difflib.get_close_matches(value, names, n=1)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        return Problem(value, None, None,
                       f"is neither an existing path nor a shipped suite (shipped: {listed}).{guess} "
                       f"Give a shipped suite's name, or the path of a suite folder containing "
                       f"{SUITE_FILE} (or of a folder above it).")
    return Problem(value, None, None,
                   f"does not exist; give a suite folder containing {SUITE_FILE}, or the name of "
                   f"a shipped suite ({listed}).")
