"""The suites ftguard ships (placeholder until the package-data move lands)."""

from __future__ import annotations

from pathlib import Path


def shipped_root() -> Path:
    """The folder holding the shipped suites."""
    return Path(__file__).resolve().parent.parent.parent / "suites"
