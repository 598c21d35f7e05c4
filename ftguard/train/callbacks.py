"""What ftguard does between optimiser steps: record, show progress, evaluate, stop, save.

One Trainer callback, read top to bottom:

- ``on_log``: append the training loss / learning rate point to the TrainRecord and update
  the progress line (loss, lr, tokens/s, ETA);
- ``on_step_end``: every ``eval.every_steps`` steps and at the last step, compute the
  validation loss and run the suites on the checkpoint (main process only; the decision is
  broadcast to the other processes), then ask the Trainer to save a checkpoint; stop early
  on the configured rule; on Ctrl-C save a resumable checkpoint and stop.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ftguard.train.checkpoint_eval import CheckpointEvaluator, choose_best
from ftguard.train.config import TrainConfig
from ftguard.train.progress import TrainProgress
from ftguard.train.record import LogPoint, TrainRecord, ValidationPoint


@dataclass
class Interrupt:
    """Ctrl-C handling: the first press asks for a checkpoint and a clean stop, the second
    stops at once."""

    requested: bool = False
    _previous: Any = None

    def install(self) -> None:
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # a background job: keep it so
            self._previous = None
            return
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (e.g. a notebook worker): leave it alone
            self._previous = None

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nftguard: interrupt received; saving a checkpoint at the end of this step "
              "(press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@dataclass
class Session:
    """Mutable state shared by the run and its callback."""

    cfg: TrainConfig
    record: TrainRecord
    save_record: Any
    """Callable writing the record to disk (main process only)."""
    validation_loss: Any
    """Callable(model) -> float | None."""
    evaluator: CheckpointEvaluator | None
    is_main: bool
    progress: TrainProgress = field(default_factory=lambda: TrainProgress(enabled=False))
    started: float = field(default_factory=time.perf_counter)
    interrupt: Interrupt = field(default_factory=Interrupt)
    stop_reason: str | None = None
    eval_seconds: float = 0.0
    save_seconds: float = 0.0
    save_started: float | None = None
    _bad_evals: int = 0
    _best_val: float = float("inf")


def make_callback(session: Session, trainer_ref: list[Any]) -> Any:
    """The TrainerCallback bound to ``session``; ``trainer_ref[0]`` is set to the Trainer."""
    from transformers import TrainerCallback

    class FtguardCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
                   **kwargs: Any) -> None:
            if not logs or "loss" not in logs:
                return
            trainer = trainer_ref[0]
            elapsed = (time.perf_counter() - session.started - session.eval_seconds
                       - session.save_seconds)
            tokens = trainer.tokens_seen * args.world_size
            session.record.log.append(LogPoint(
                step=state.global_step, epoch=round(state.global_step / max(state.max_steps, 1), 4),
                loss=float(logs["loss"]), lr=float(logs.get("learning_rate", 0.0)),
                grad_norm=_float(logs.get("grad_norm")), tokens=tokens, elapsed=round(elapsed, 3)))
            done, total = state.global_step, max(state.max_steps, 1)
            session.progress.update(done, total, float(logs["loss"]),
                                    float(logs.get("learning_rate", 0.0)),
                                    tokens / max(elapsed, 1e-9),
                                    elapsed / max(done, 1) * (total - done))

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if session.save_started is not None:  # checkpoint writes are not training time
                session.save_seconds += time.perf_counter() - session.save_started
                session.save_started = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            session.progress.step(state.global_step)
            every = session.cfg.eval.every_steps
            last = state.global_step >= state.max_steps
            due = bool(every and state.global_step % every == 0) or last
            if session.interrupt.requested and not due:
                control.should_save = True
                session.save_started = time.perf_counter()
                control.should_training_stop = True
                session.stop_reason = "interrupted"
                return
            if not due:
                return
            stop = _evaluate(session, trainer_ref[0], state, last)
            control.should_save = True
            session.save_started = time.perf_counter()
            if session.interrupt.requested and not (stop or last):
                session.stop_reason = "interrupted"  # not a finished run: resumable, no export
            if stop or session.interrupt.requested:
                control.should_training_stop = True

    return FtguardCallback()


def _evaluate(session: Session, trainer: Any, state: Any, last: bool) -> bool:
    """Validation loss + suites at this step; return whether to stop (same on all processes)."""
    started = time.perf_counter()
    stop = False
    model = trainer.accelerator.unwrap_model(trainer.model)
    step = state.global_step
    if session.is_main:
        val = session.validation_loss(model)
        if val is not None:
            session.record.validation.append(ValidationPoint(step=step, loss=val))
        if session.evaluator is not None:
            point = session.evaluator.evaluate(model, step, checkpoint=f"checkpoints/checkpoint-{step}",
                                               val_loss=val)
            session.record.checkpoints.append(point)
            session.progress.message(_checkpoint_line(point))
            best = choose_best(session.record.checkpoints, session.cfg.eval.best)
            if best is not None:
                state.best_global_step = best.step  # the Trainer never rotates it away
        stop = _should_stop(session, val)
        _overfitting(session)
        session.record.steps = step
        session.save_record()
    stop = _broadcast(stop)
    session.eval_seconds += time.perf_counter() - started
    return stop and not last


def _should_stop(session: Session, val: float | None) -> bool:
    rule = session.cfg.eval.early_stopping
    if rule.watch == "val_loss" and val is not None:
        if val < session._best_val - rule.min_delta:
            session._best_val = val
            session._bad_evals = 0
        else:
            session._bad_evals += 1
        if session._bad_evals >= rule.patience:
            session.stop_reason = (f"validation loss did not improve by {rule.min_delta:g} for "
                                   f"{rule.patience} evaluations (best {session._best_val:.4f})")
            return True
    if rule.watch == "gate" and session.record.checkpoints:
        point = session.record.checkpoints[-1]
        lost = -point.alignment_tax if point.alignment_tax is not None else None
        if lost is not None and lost > rule.max_forgetting:
            session.stop_reason = (f"general ability fell {lost:.1%} at step "
                                   f"{point.step} (limit {rule.max_forgetting:.1%})")
            return True
        if point.gate_passed is False:
            session.stop_reason = (f"the gate failed at step {point.step}: "
                                   + "; ".join(point.gate_failures[:3]))
            return True
    return False


def _overfitting(session: Session) -> None:
    """Warn once when validation loss rose twice in a row while training loss fell."""
    val = session.record.validation
    if len(val) < 3 or not (val[-1].loss > val[-2].loss > val[-3].loss):
        return
    losses = [p for p in session.record.log if val[-3].step < p.step <= val[-1].step]
    before = [p.loss for p in session.record.log if p.step <= val[-3].step]
    if losses and before and losses[-1].loss < before[-1]:
        text = (f"possible overfitting: validation loss rose from {val[-3].loss:.4f} (step "
                f"{val[-3].step}) to {val[-1].loss:.4f} (step {val[-1].step}) while training "
                "loss fell")
        if not any(w.startswith("possible overfitting") for w in session.record.warnings):
            session.record.warnings.append(text)
            session.progress.message(f"warning: {text}")


def _broadcast(flag: bool) -> bool:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])
    return flag


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _checkpoint_line(point: Any) -> str:
    parts = [f"checkpoint {point.step}:"]
    if point.val_loss is not None:
        parts.append(f"val loss {point.val_loss:.4f}")
    if point.gain is not None:
        parts.append(f"gain {point.gain:+.1%}")
    if point.alignment_tax is not None:
        parts.append(f"alignment tax {point.alignment_tax:+.1%}")
    if point.gate_passed is not None:
        parts.append("gate pass" if point.gate_passed else "gate FAIL")
    return "  ".join(parts)
