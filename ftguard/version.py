"""Installed package versions, for records, reports and ``--version``."""

from __future__ import annotations

from importlib import metadata


def package_version(name: str) -> str | None:
    """Version of an installed distribution, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def ftguard_version() -> str:
    """ftguard's own version (``0+unknown`` when run from a source tree not installed)."""
    return package_version("ftguard") or "0+unknown"
