"""Where ftguard keeps converted models and caches: ``$FTGUARD_HOME``."""

from __future__ import annotations

import os
from pathlib import Path


def ftguard_home() -> Path:
    """Where ftguard keeps converted models and caches (``$FTGUARD_HOME``)."""
    return Path(os.environ.get("FTGUARD_HOME") or Path.home() / ".cache" / "ftguard")
