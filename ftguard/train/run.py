"""One training run, top to bottom.

1. check everything that can be wrong before writing anything: config, data files (every
   row), model, target modules, suites — a bad input leaves the output folder untouched;
2. print the memory estimate;
3. evaluate the base model on the suites (step 0);
4. train with the transformers Trainer; the callback evaluates checkpoints, stops early,
   saves on Ctrl-C;
5. export the chosen checkpoint (adapter or full model + tokenizer) and write the record.

Output folder::

    OUT/adapter/ or OUT/model/   the exported checkpoint, loadable with --adapter / --model
    OUT/config.yaml              the resolved config
    OUT/train_record.json        losses, schedule, checkpoint evaluations, timings, memory
    OUT/evals/step-N.json        RunRecords of the checkpoint evaluations (0 = base)
    OUT/checkpoints/             Trainer checkpoints (resumable), the best one kept
    OUT/report.html              loss curves, gain/alignment tax per checkpoint (self-contained)
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftguard.errors import UsageError
from ftguard.models.naming import folder_name
from ftguard.quiet import quiet as quiet_libraries
from ftguard.train.config import TrainConfig
from ftguard.train.record import TRAIN_RECORD, DataSummary, TrainRecord, write_train_record

CONFIG_FILE = "config.yaml"


@quiet_libraries(progress_bars=False)
def run_training(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
                 quiet: bool = False) -> TrainRecord:
    """Train as ``cfg`` says, the libraries quiet; return the TrainRecord (also in OUT)."""
    from ftguard.train import prepare_data
    from ftguard.train.model_setup import count_parameters, prepare_model

    t0 = time.perf_counter()
    out = _check_out(cfg, resume, overwrite)
    suites = _load_suites(cfg)
    timings: dict[str, float] = {}
    prepared = prepare_model(cfg)
    timings["model_load"] = round(time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    data = prepare_data.prepare(cfg, prepared.tokenizer)
    timings["data"] = round(time.perf_counter() - t1, 3)
    model = prepared.model
    trainable, total = count_parameters(model)
    state = _distributed_state()
    memory = _memory_estimate(cfg, model, prepared, data)
    if state["is_main"]:
        _say(quiet, f"{cfg.method}: {trainable:,} trainable of {total:,} parameters "
                    f"({trainable / max(total, 1):.2%})")
        _say(quiet, data.describe(cfg))
        from ftguard.train.memory import format_estimate

        _say(quiet, format_estimate(memory))
        for warning in data.warnings:
            _say(quiet, f"warning: {warning}")
    if overwrite and not resume and state["is_main"] and out.is_dir():
        _clear_out(out)
    out.mkdir(parents=True, exist_ok=True)
    base_info = _base_info(cfg, prepared)
    record = _start_record(cfg, out, resume, base_info, trainable, total, data.summary, memory,
                           data.warnings)
    if state["is_main"]:
        _write_config(cfg, out)

    def save_record() -> None:
        if state["is_main"]:
            write_train_record(record, out / TRAIN_RECORD)

    save_record()  # from here on OUT holds a run that --resume continues
    trainer: Any = None
    final = False  # whether the record on disk is the run's last word
    try:
        evaluator = _evaluator(cfg, suites, out, base_info, prepared)
        if evaluator is not None and state["is_main"]:
            t2 = time.perf_counter()
            if not (resume and evaluator.load_base()
                    and any(p.step == 0 for p in record.checkpoints)):
                _say(quiet, "evaluating the base model on " + ", ".join(s.name for s in suites))
                point = evaluator.evaluate(model, 0, checkpoint=None,
                                           val_loss=data.validation_loss(model), base=True)
                record.checkpoints = [point]
            timings["base_eval"] = round(time.perf_counter() - t2, 3)
        save_record()

        from ftguard.train.callbacks import Session, make_callback
        from ftguard.train.hf_trainer import make_trainer, training_arguments
        from ftguard.train.progress import TrainProgress

        session = Session(cfg=cfg, record=record, save_record=save_record,
                          validation_loss=data.validation_loss, evaluator=evaluator,
                          is_main=state["is_main"],
                          progress=TrainProgress(enabled=state["is_main"] and not quiet))
        args = training_arguments(cfg, str(out / "checkpoints"),
                                  use_cpu=prepared.device.type == "cpu", dtype=prepared.dtype,
                                  streaming=data.streaming)
        trainer_ref: list[Any] = []
        trainer = make_trainer(model, args, data.train_dataset, data.collator,
                               [make_callback(session, trainer_ref)], prepared.tokenizer)
        trainer_ref.append(trainer)
        record.planned_steps = data.planned_steps(cfg)
        checkpoint = _last_checkpoint(out) if resume else None
        if resume and checkpoint is None:
            _say(quiet, "no checkpoint to resume from; starting from the beginning")
        session.interrupt.install()
        session.progress.start(record.planned_steps)
        t3 = time.perf_counter()
        session.started = t3
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            session.progress.stop()
            session.interrupt.uninstall()
        train_seconds = time.perf_counter() - t3 - session.eval_seconds - session.save_seconds
        timings["train"] = round(train_seconds, 3)
        timings["eval"] = round(session.eval_seconds, 3)
        timings["checkpoints"] = round(session.save_seconds, 3)
        record.steps = trainer.state.global_step
        record.tokens_per_second = round(trainer.tokens_seen * args.world_size
                                         / max(train_seconds, 1e-9), 1)
        from ftguard.train.memory import peak_memory

        record.peak_memory = peak_memory(prepared.device)
        if session.stop_reason == "interrupted":
            record.status = "interrupted"
            record.stop_reason = "Ctrl-C; resume with --resume"
            save_record()
            final = True
            _say(False, f"interrupted at step {record.steps}; checkpoint saved. Continue with: "
                        f"ftguard train {out / CONFIG_FILE} --resume")
            return record
        if state["is_main"]:
            t4 = time.perf_counter()
            _export(cfg, out, record, trainer, prepared, evaluator is not None)
            timings["save"] = round(time.perf_counter() - t4, 3)
            record.status = "stopped_early" if session.stop_reason else "completed"
            record.stop_reason = session.stop_reason
            record.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
            timings["total"] = round(time.perf_counter() - t0, 3)
            record.timings = timings
            from ftguard.report.render import write_report

            write_report(record, out / "report.html")
            save_record()  # last: a finished record means every artefact is in place
            final = True
            _say(quiet, _summary(record, out))
        _barrier()
        return record
    except KeyboardInterrupt:  # a second Ctrl-C, or SIGTERM: no new checkpoint
        if state["is_main"] and not final:
            _record_interruption(record, trainer, out, save_record)
        raise


# -- checks before anything is written ------------------------------------------------------


def _check_out(cfg: TrainConfig, resume: bool, overwrite: bool) -> Path:
    if not cfg.out:
        raise UsageError("no output folder: set out: in the config or pass --out DIR.")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder.")
    from ftguard.atomic import check_output_dir

    check_output_dir(out)  # its parent a writable folder
    used = out.is_dir() and any(out.iterdir())
    if resume:
        if not (out / TRAIN_RECORD).is_file():
            raise UsageError(f"--resume: {out} holds no earlier run (no {TRAIN_RECORD}).",
                             hint="Drop --resume to start a new run.")
        return out
    if used and not overwrite:
        raise UsageError(f"--out {out}: the folder is not empty.",
                         hint="Pass --resume to continue the run saved there, --overwrite to "
                              "replace it, or choose another folder.")
    return out


def _clear_out(out: Path) -> None:
    """Remove an earlier run's outputs from OUT (``--overwrite``), once every input has been
    checked; SIGINT and SIGTERM wait until it is all gone (OUT never holds half a run)."""
    from ftguard.atomic import signals_held

    with signals_held():
        for name in ("adapter", "model", "checkpoints", "evals", TRAIN_RECORD, CONFIG_FILE,
                     "report.html"):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def _record_interruption(record: TrainRecord, trainer: Any, out: Path,
                         save_record: Any) -> None:
    """After a second Ctrl-C or SIGTERM before the record was finished: mark it interrupted
    and say how to resume (also with --quiet, like the graceful stop)."""
    if trainer is not None:
        record.steps = trainer.state.global_step
    checkpoint = _last_checkpoint(out)
    since = f"{checkpoint.name}" if checkpoint else "the start"
    record.status, record.finished = "interrupted", None
    record.stop_reason = f"stopped by a signal; --resume continues from {since}"
    save_record()
    _say(False, f"interrupted at step {record.steps}; --resume continues from {since}: "
                f"ftguard train {out / CONFIG_FILE} --resume")


def _load_suites(cfg: TrainConfig) -> list[Any]:
    if not cfg.eval.suites:
        return []
    from ftguard.api import check_task_subset, load_suites

    suites = load_suites(cfg.eval.suites)
    check_task_subset(cfg.eval.task_subset, suites)  # before anything is written
    return suites


def _distributed_state() -> dict[str, Any]:
    import os

    rank = int(os.environ.get("RANK", "0"))
    return {"is_main": rank == 0, "world": int(os.environ.get("WORLD_SIZE", "1"))}


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# -- record ------------------------------------------------------------------------------


def _base_info(cfg: TrainConfig, prepared: Any) -> Any:
    from ftguard.models.fingerprint import model_fingerprint
    from ftguard.record import ModelInfo

    dtype = str(prepared.dtype).removeprefix("torch.")
    return ModelInfo(spec=prepared.base_spec, backend="hf", path=str(prepared.base_path),
                     device=str(prepared.device), dtype=prepared.quantization or dtype,
                     # the loader's spelling of the dtype ("torch.float32"), so the base
                     # fingerprint equals ftguard eval's and its cached answers serve here
                     fingerprint=model_fingerprint(prepared.base_path, adapter_dir=None,
                                                   dtype=str(prepared.dtype),
                                                   quantization=prepared.quantization))


def _start_record(cfg: TrainConfig, out: Path, resume: bool, base: Any, trainable: int,
                  total: int, data: DataSummary, memory: Any, warnings: list[str]) -> TrainRecord:
    from ftguard.version import ftguard_version

    record = TrainRecord(ftguard_version=ftguard_version(),
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         method=cfg.method, base=base, config=cfg.model_dump(mode="json"),
                         trainable_params=trainable, total_params=total, data=data,
                         memory_estimate=memory, planned_steps=0, warnings=list(warnings))
    if resume:
        from ftguard.train.record import read_train_record

        earlier = read_train_record(out / TRAIN_RECORD)
        if earlier.config != record.config:
            changed = sorted(k for k in record.config if record.config[k] != earlier.config.get(k))
            raise UsageError(f"--resume: the config differs from the saved run in "
                             f"{', '.join(changed)}.",
                             hint=f"Resume with the saved config: ftguard train "
                                  f"{out / CONFIG_FILE} --resume")
        checkpoint = _last_checkpoint(out)
        step = int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else 0
        record.created = earlier.created
        record.log = [p for p in earlier.log if p.step <= step]
        record.validation = [p for p in earlier.validation if p.step <= step]
        record.checkpoints = [p for p in earlier.checkpoints if p.step <= step]
    return record


def _write_config(cfg: TrainConfig, out: Path) -> None:
    import yaml

    from ftguard.atomic import write_text_atomic

    text = ("# resolved by ftguard train: every default filled in, paths absolute\n"
            + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    write_text_atomic(text, out / CONFIG_FILE)


def _memory_estimate(cfg: TrainConfig, model: Any, prepared: Any, data: Any) -> Any:
    from ftguard.train.memory import available_memory, estimate_memory

    est = estimate_memory(model, method=cfg.method, batch_size=cfg.optim.batch_size,
                          seq_len=data.typical_length, optimizer=cfg.optim.optimizer,
                          gradient_checkpointing=cfg.optim.gradient_checkpointing,
                          dtype_bytes=prepared.dtype.itemsize, device=prepared.device)
    if est.available is None:
        free = available_memory(prepared.device)
        est = est.model_copy(update={"available": free,
                                     "fits": None if free is None else est.total <= free})
    return est


def _evaluator(cfg: TrainConfig, suites: list[Any], out: Path, base: Any, prepared: Any) -> Any:
    if not suites:
        return None
    from ftguard.engine.settings import RunSettings
    from ftguard.models.hf_load import max_length
    from ftguard.train.checkpoint_eval import CheckpointEvaluator

    return CheckpointEvaluator(suites, out, base, prepared.tokenizer,
                               settings=RunSettings(subset=cfg.eval.subset,
                                                    task_subset=cfg.eval.task_subset,
                                                    seed=cfg.seed),
                               batch_size=cfg.eval.batch_size,
                               max_length=max_length(prepared.model, prepared.tokenizer),
                               cache_base=cfg.eval.cache_base)


def _last_checkpoint(out: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = out / "checkpoints"
    found = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    return Path(found) if found else None


# -- export ------------------------------------------------------------------------------


def _export(cfg: TrainConfig, out: Path, record: TrainRecord, trainer: Any, prepared: Any,
            evaluated: bool) -> None:
    """Load the chosen checkpoint's weights (when not the last) and save them to OUT."""
    from ftguard.atomic import replace_dir
    from ftguard.train.checkpoint_eval import choose_best

    rule = cfg.eval.best if evaluated else ("val_loss" if record.validation else "last")
    best = choose_best(record.checkpoints, rule) if evaluated or record.validation else None
    model = trainer.accelerator.unwrap_model(trainer.model)
    last = trainer.state.global_step
    if best is None:
        from ftguard.train.record import BestCheckpoint

        best = BestCheckpoint(step=last, rule="last", reason="the last step (no evaluation)")
    if best.step != last:
        _load_checkpoint(model, out / "checkpoints" / f"checkpoint-{best.step}")
    record.best = best
    name = "model" if cfg.method == "full" else "adapter"
    with replace_dir(out / name) as tmp:
        if hasattr(model, "peft_config"):
            model.peft_config["default"].base_model_name_or_path = cfg.model
        model.save_pretrained(tmp, safe_serialization=True)
        prepared.tokenizer.save_pretrained(tmp)
    record.output = name


def _load_checkpoint(model: Any, folder: Path) -> None:
    from safetensors.torch import load_file

    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
        return
    state = load_file(str(folder / "model.safetensors"))
    model.load_state_dict(state, strict=False)


def _summary(record: TrainRecord, out: Path) -> str:
    lines = [f"trained {record.steps}/{record.planned_steps} steps ({record.status}"
             + (f": {record.stop_reason}" if record.stop_reason else "") + ")",
             (f"{record.tokens_per_second:,.0f} tokens/s; peak memory "
              f"{(record.peak_memory or 0) / 2**30:.2f} GiB")]
    if record.best:
        saved = out / (record.output or "")  # named as its records will be: runs/a/adapter: a
        lines.append(f"exported step {record.best.step} ({record.best.reason}) to {saved}, "
                     f"named {folder_name(saved)}")
    return "\n".join(lines)


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)
