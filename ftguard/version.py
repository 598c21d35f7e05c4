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


def git_revision() -> str | None:
    """The working directory's git commit, or None outside a git checkout."""
    import subprocess

    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None
