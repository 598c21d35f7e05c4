"""Writing records atomically (temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves a half-written record behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftguard.record.check import check_run
from ftguard.record.comparison import Comparison
from ftguard.record.run import RunRecord


def write_run(record: RunRecord, path: Path) -> Path:
    """Write ``record`` to ``path`` atomically; return the path. An invalid record (see
    :func:`~ftguard.record.check_run`) is refused, so nothing ftguard writes is refused when
    read back."""
    check_run(record, path)
    return write_json_atomic(record.model_dump(mode="json"), path)


def write_comparison(comparison: Comparison, path: Path) -> Path:
    """Write a Comparison atomically."""
    return write_json_atomic(comparison.model_dump(mode="json"), path)


def write_json_atomic(data: Any, path: Path) -> Path:
    """Serialise ``data`` as JSON next to ``path`` and rename it into place."""
    from ftguard.atomic import write_text_atomic

    return write_text_atomic(json.dumps(data, ensure_ascii=False, indent=1) + "\n", Path(path))
