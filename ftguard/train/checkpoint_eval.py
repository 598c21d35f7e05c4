"""Evaluation during training: suites run on checkpoints, compared with the base model.

Each evaluation goes through the same engine as ``ftguard eval`` and is written as a full
RunRecord under ``OUT/evals/step-NNNNNN.json``; step 0 is the base model before training.
Every later checkpoint is judged against it by :func:`ftguard.judge.judge` under the
policy every surface resolves (:func:`ftguard.gate.resolve_policy`: the suites' own gate
rules, else the default: no headline may regress significantly), which gives its gain
(target suites), alignment tax (general suites) and whether the gate passes.
:func:`choose_best` then picks the checkpoint to export, ranking them as the merge sweep
ranks merging weights (:func:`ftguard.judge.ranked`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftguard.engine.settings import RunSettings
from ftguard.record import ModelInfo, RunRecord, read_run, target_score, write_run
from ftguard.suite import Suite
from ftguard.train.record import BestCheckpoint, CheckpointEval


def eval_path(step: int) -> str:
    """RunRecord path of the evaluation at ``step``, relative to the output folder."""
    return f"evals/step-{step:06d}.json"


class CheckpointEvaluator:
    """Runs the configured suites on the model being trained."""

    def __init__(self, suites: Sequence[Suite], out: Path, base: ModelInfo, tokenizer: Any, *,
                 settings: RunSettings, batch_size: int | None, max_length: int,
                 cache_base: bool = False) -> None:
        self.suites = list(suites)
        self.cache_base = cache_base
        self.out = out
        self.base_info = base
        self.tokenizer = tokenizer
        self.settings = settings
        self.batch_size = batch_size
        self.max_length = max_length
        self.base_run: RunRecord | None = None

    def load_base(self) -> bool:
        """Reuse the base evaluation of an earlier, interrupted run of the same output."""
        path = self.out / eval_path(0)
        if path.is_file():
            self.base_run = read_run(path)
            return True
        return False

    def evaluate(self, model: Any, step: int, *, checkpoint: str | None,
                 val_loss: float | None, base: bool = False) -> CheckpointEval:
        """Evaluate ``model`` now (eval mode, no gradients, training RNG untouched)."""
        import contextlib

        import torch

        from ftguard.api import evaluate
        from ftguard.models.hf import HFBackend

        started = time.perf_counter()
        info = self.base_info if base else self._info(model, step)
        rng = torch.get_rng_state()
        was_training = model.training
        model.eval()
        off = model.disable_adapter() if base and hasattr(model, "disable_adapter") \
            else contextlib.nullcontext()
        try:
            with off, torch.no_grad():
                backend = HFBackend(model, self.tokenizer, info, batch_size=self.batch_size,
                                    max_length=self.max_length)
                run = evaluate(self.suites, backend=backend, settings=self.settings,
                               cache=base and self.cache_base)
        finally:
            model.train(was_training)
            torch.set_rng_state(rng)
        run.config.train_step = step
        write_run(run, self.out / eval_path(step))
        if base:
            self.base_run = run
        result = self._summarise(run, step, checkpoint, val_loss)
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    def _info(self, model: Any, step: int) -> ModelInfo:
        digest = hashlib.sha256(self.base_info.fingerprint.encode())
        for name, param in model.named_parameters():
            if param.requires_grad:
                digest.update(name.encode())
                digest.update(param.detach().float().cpu().numpy().tobytes())
        return self.base_info.model_copy(update={
            "spec": f"{self.base_info.spec}@step-{step}",
            "fingerprint": "sha256:" + digest.hexdigest(),
            "adapter": None, "path": str(self.out / "checkpoints" / f"checkpoint-{step}")})

    def _summarise(self, run: RunRecord, step: int, checkpoint: str | None,
                   val_loss: float | None) -> CheckpointEval:
        headline = {f"{suite.name}/{task.name}/{name}": metric.value
                    for suite in run.suites for task in suite.tasks
                    for name, metric in list(task.metrics.items())[:1]}
        result = CheckpointEval(step=step, run=eval_path(step), checkpoint=checkpoint,
                                headline=headline, val_loss=val_loss,
                                target_score=target_score(run))
        if self.base_run is not None and step > 0:
            self._judge(run, result)
        return result

    def _judge(self, run: RunRecord, result: CheckpointEval) -> None:
        from ftguard.judge import judge

        assert self.base_run is not None
        # the policy every surface resolves: the suites' gate: sections, else the default
        judged = judge(self.base_run, run, resamples=2000, seed=self.settings.seed)
        result.gain = judged.gain
        result.alignment_tax = judged.alignment_tax
        result.gate_failures = judged.failures
        result.gate_passed = judged.passed


def choose_best(checkpoints: Sequence[CheckpointEval], rule: str) -> BestCheckpoint | None:
    """The checkpoint to export under ``rule``; None when there is no trained checkpoint.

    ``target_passing_gate``: highest gain (target score without a base run) among the
    checkpoints whose gate passes; when none passes, the one with the least alignment tax.
    ``target``: highest gain. ``val_loss``: lowest validation loss. ``last``: the last one.
    Ties go to the earlier checkpoint (fewer steps away from the base).
    """
    from ftguard.judge import least_taxed, ranked, signed_percent

    trained = [c for c in checkpoints if c.step > 0]
    if not trained:
        return None

    def steps(c: CheckpointEval) -> float:
        return c.step

    if rule == "last":
        best = trained[-1]
        return BestCheckpoint(step=best.step, rule=rule, reason="the last checkpoint")
    if rule == "val_loss":
        scored = [c for c in trained if c.val_loss is not None]
        if scored:
            best = min(scored, key=lambda c: (c.val_loss, c.step))
            return BestCheckpoint(step=best.step, rule=rule,
                                  reason=f"lowest validation loss ({best.val_loss:.4f})")
        best = trained[-1]
        return BestCheckpoint(step=best.step, rule=rule,
                              reason="no validation loss was computed; the last checkpoint")
    if rule == "target_passing_gate":
        passing = ranked(trained, distance=steps)
        if not passing:
            best = least_taxed(trained, distance=steps) or trained[0]
            return BestCheckpoint(step=best.step, rule=rule, reason=(
                "no checkpoint passed the gate; exported the one with the least alignment "
                f"tax ({signed_percent(best.alignment_tax)})"))
        best = passing[0]
        return BestCheckpoint(step=best.step, rule=rule, reason=(
            f"best target score among the {len(passing)} of {len(trained)} checkpoints that "
            f"pass the gate (gain {signed_percent(best.gain)}, alignment tax "
            f"{signed_percent(best.alignment_tax)})"))
    best = ranked(trained, distance=steps, passing_only=False)[0]
    return BestCheckpoint(step=best.step, rule=rule,
                          reason=f"best target score (gain {signed_percent(best.gain)})")



