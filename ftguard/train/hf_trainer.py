"""The transformers ``Trainer`` as ftguard drives it.

Two things differ from the stock Trainer, both visible here: the loss is ftguard's
token-weighted causal LM loss (prompt tokens weighted by ``prompt_loss_weight``), a mean
per micro-batch that the Trainer divides by the accumulation steps; and examples are taken
in the order ftguard planned (mixture draws, annealing, seeded shuffles), so the sampler is
sequential unless length grouping was asked for. Everything else (accumulation, clipping,
schedules, NEFTune, checkpoint save/resume, accelerate for several processes) is the
Trainer's own, so ``accelerate launch`` scales a run unchanged.

One more: a checkpoint is written into ``.checkpoint-N.tmp/`` beside the others and renamed
to ``checkpoint-N`` once every process has written its part, so an interrupted save never
leaves a ``checkpoint-N`` that ``--resume`` or the export would take as complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftguard.train.config import TrainConfig

OPTIMIZERS = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit",
              "paged_adamw_8bit": "paged_adamw_8bit", "sgd": "sgd"}
"""ftguard optimiser names -> transformers ``optim`` names."""


class ListDataset:
    """A map-style dataset over prepared rows (dicts of token lists)."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]


def training_arguments(cfg: TrainConfig, output_dir: str, *, use_cpu: bool, dtype: Any,
                       streaming: bool) -> Any:
    """TrainingArguments for ``cfg``; saving and evaluation are driven by ftguard's callback."""
    import torch
    from transformers import TrainingArguments

    optim = cfg.optim
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=optim.batch_size,
        gradient_accumulation_steps=optim.grad_accum,
        learning_rate=optim.lr,
        lr_scheduler_type=optim.scheduler,
        warmup_steps=optim.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=optim.weight_decay,
        max_grad_norm=optim.max_grad_norm if optim.max_grad_norm is not None else 0.0,
        num_train_epochs=1,  # the example order already holds every epoch
        max_steps=optim.max_steps or -1,
        optim=OPTIMIZERS[optim.optimizer],
        seed=cfg.seed,
        data_seed=cfg.data.seed if cfg.data.seed is not None else cfg.seed,
        bf16=dtype == torch.bfloat16 and not use_cpu,
        fp16=dtype == torch.float16 and not use_cpu,
        use_cpu=use_cpu,
        neftune_noise_alpha=cfg.neftune_alpha,
        train_sampling_strategy="group_by_length" if cfg.data.group_by_length else "sequential",
        logging_steps=cfg.logging_steps,
        save_strategy="no",  # ftguard's callback asks for saves at evaluations and on Ctrl-C
        save_total_limit=cfg.keep_checkpoints,
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        accelerator_config={"dispatch_batches": False} if streaming else None,
    )


def text_logits(logits: Any, labels: Any) -> Any:
    """The logits of the input tokens: prompt tuning prepends its virtual tokens' logits."""
    extra = logits.shape[1] - labels.shape[1]
    return logits[:, extra:] if extra > 0 else logits


def make_trainer(model: Any, args: Any, train_dataset: Any, collator: Any,
                 callbacks: list[Any], tokenizer: Any) -> Any:
    """A Trainer subclass instance computing ftguard's weighted loss and counting tokens."""
    from transformers import Trainer

    from ftguard.train.loss import weighted_causal_lm_loss

    class FtguardTrainer(Trainer):
        loss_is_scaled_for_ga = False  # a per-micro-batch mean; the Trainer divides by GA
        tokens_seen = 0

        _staging: str | None = None

        def _get_output_dir(self, trial: Any) -> str:
            return self._staging or super()._get_output_dir(trial)

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            save_checkpoint_atomically(self, lambda: super(FtguardTrainer, self)
                                       ._save_checkpoint(model, trial))

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            weights = inputs.pop("loss_weights")
            labels = inputs.pop("labels")
            tokens = inputs.pop("num_tokens", None)
            self.tokens_seen += int(tokens.sum()) if tokens is not None else labels.numel()
            # no KV cache: with one, transformers would not split packed rows into examples
            outputs = model(**inputs, use_cache=False)
            loss = weighted_causal_lm_loss(text_logits(outputs.logits, labels), labels, weights)
            return (loss, outputs) if return_outputs else loss

    trainer = FtguardTrainer(model=model, args=args, train_dataset=train_dataset,
                             data_collator=collator, callbacks=callbacks,
                             processing_class=tokenizer)
    trainer.model_accepts_loss_kwargs = False
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)  # ftguard prints its own progress line
    trainer.remove_callback(ProgressCallback)
    return trainer


def save_checkpoint_atomically(trainer: Any, save: Any) -> None:
    """Run the Trainer's checkpoint ``save`` into ``OUT/checkpoints/.checkpoint-N.tmp/`` and
    rename the result to ``checkpoint-N`` (main process, after every process has written),
    then keep the ``keep_checkpoints`` newest plus the best one."""
    from pathlib import Path

    from ftguard.atomic import move_dir_into_place, remove_tree

    run_dir = Path(trainer.args.output_dir)
    name = f"checkpoint-{trainer.state.global_step}"
    staging = run_dir / f".{name}.tmp"
    main = trainer.args.should_save
    try:
        if main:
            remove_tree(staging)  # left by a process killed outright
            staging.mkdir(parents=True)
        trainer.accelerator.wait_for_everyone()
        trainer._staging = str(staging)
        try:
            save()
        finally:
            trainer._staging = None
        trainer.accelerator.wait_for_everyone()
        if main:
            move_dir_into_place(staging / name, run_dir / name)
            _rotate(run_dir, trainer.args.save_total_limit, trainer.state.best_global_step)
    finally:
        if main:
            remove_tree(staging)


def _rotate(run_dir: Any, keep: int | None, best_step: int | None) -> None:
    """Remove the oldest checkpoints beyond ``keep``, never the newest nor the best."""
    from ftguard.atomic import remove_tree

    steps = sorted(int(p.name.rsplit("-", 1)[1]) for p in run_dir.glob("checkpoint-*")
                   if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit())
    if not keep or len(steps) <= keep:
        return
    protected = {steps[-1], best_step}
    removable = [s for s in steps if s not in protected]
    for step in removable[:max(0, len(steps) - max(keep, len(protected & set(steps))))]:
        remove_tree(run_dir / f"checkpoint-{step}")
