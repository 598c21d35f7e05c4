"""Training progress on stderr: a live bar on a terminal, one line per log step otherwise.

Shows step / planned steps, loss, learning rate, training tokens per second and the time
left; checkpoint results and warnings are printed above the bar.
"""

from __future__ import annotations

import sys
from typing import Any


class TrainProgress:
    """Draws progress; silent when disabled (``--quiet`` or not the main process)."""

    def __init__(self, enabled: bool = True, live: bool | None = None) -> None:
        self.enabled = enabled
        self.live = sys.stderr.isatty() if live is None else live
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int) -> None:
        if not (self.enabled and self.live):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[stats]}"), TextColumn("eta"),
                             TimeRemainingColumn(), console=Console(stderr=True))
        self._task = self._bar.add_task("train", total=total, stats="")
        self._bar.start()

    def update(self, step: int, total: int, loss: float, lr: float, rate: float,
               eta: float) -> None:
        if not self.enabled:
            return
        stats = f"loss {loss:.4f}  lr {lr:.2e}  {rate:,.0f} tok/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=step, total=total, stats=stats)
        else:
            bar = "#" * int(20 * step / max(total, 1))
            print(f"[{bar:<20}] step {step}/{total}  {stats}  eta {_duration(eta)}",
                  file=sys.stderr, flush=True)

    def step(self, step: int) -> None:
        """Move the live bar without new statistics (between log steps)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=step)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
