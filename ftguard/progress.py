"""A progress bar on stderr for the engine's Reporter protocol (rich)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from ftguard.models.base import Progress

if TYPE_CHECKING:
    from typing_extensions import Self


class ProgressBar:
    """One bar per task: label, count, rate and ETA. Silent when disabled."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._ids: dict[str, Any] = {}

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("eta"), TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=False)
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, label: str, total: int) -> Progress:
        if self._progress is None:
            return lambda n: None
        task_id = self._progress.add_task(label, total=total)
        self._ids[label] = task_id
        return lambda n: self._progress.advance(task_id, n)

    def done(self, label: str) -> None:
        if self._progress is not None and label in self._ids:
            task = self._ids[label]
            self._progress.update(task, completed=self._progress.tasks[task].total)
