"""The one line ``ftguard train`` says about its data before training.

``10 rows in the file, 8 used for training, 2 for validation, 4 steps x 4 = 16 examples drawn
(~2 epochs)``: rows read, rows left for training (less dropped and held-out ones), validation
examples, and the schedule the Trainer will run: optimizer steps times the effective batch
(per-device batch x gradient accumulation x processes). Steps are what the Trainer computes:
``optim.max_steps``, else one pass over the planned example order (which already holds every
epoch), ``ceil(ceil(rows / (batch x processes)) / grad_accum)``, its last step short when the
rows do not fill it. Packed runs draw packed rows, each holding several examples.
"""

from __future__ import annotations

import math

from ftguard.train.config import TrainConfig
from ftguard.train.record import DataSummary


def schedule(cfg: TrainConfig, rows: int | None, world: int) -> tuple[int, int]:
    """(optimizer steps, effective batch) of a run over ``rows`` training rows (None:
    streamed, so ``optim.max_steps`` decides)."""
    optim = cfg.optim
    batch = optim.batch_size * optim.grad_accum * world
    if optim.max_steps or rows is None:
        return int(optim.max_steps or 0), batch
    micro_batches = math.ceil(rows / (optim.batch_size * world))
    return max(1, math.ceil(micro_batches / optim.grad_accum)), batch


def data_line(cfg: TrainConfig, summary: DataSummary, rows: int | None, world: int) -> str:
    """The line; ``rows`` is the length of the training dataset (packed rows when packing,
    None when streamed)."""
    files = "file" if len(summary.sources) == 1 else "files"
    read = sum(s.rows for s in summary.sources)
    val = f"{summary.validation_examples:,} for validation" + (
        f" (from {summary.validation.path})" if summary.validation else "")
    head = (f"streamed from the {files}" if rows is None else
            f"{read:,} rows in the {files}, {summary.train_rows or 0:,} used for training")
    steps, batch = schedule(cfg, rows, world)
    drawn = steps * batch if rows is None or cfg.optim.max_steps else rows
    last = drawn - (steps - 1) * batch  # one pass over the rows: its last step may be short
    times = f"{batch:,}" if last == batch else f"{batch:,} (the last {last:,})"
    what = "packed rows" if summary.packing else "examples"
    text = f"{head}, {val}, {steps:,} steps x {times} = {drawn:,} {what} drawn"
    per_row = summary.train_examples / summary.packed_rows if summary.packing and \
        summary.packed_rows else 1.0
    if summary.train_rows and rows is not None:
        epochs = drawn * per_row / summary.train_rows
        extra = f"~{drawn * per_row:,.0f} examples, " if summary.packing else ""
        text += f" ({extra}~{epochs:.3g} epochs)"
    return text
