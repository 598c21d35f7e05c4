"""The TrainRecord: what one ``ftguard train`` run did, written as ``train_record.json``.

It holds everything the report draws (loss and learning-rate curves, validation loss,
per-checkpoint gain and alignment tax, the chosen checkpoint) and what a reviewer needs to
trust the run (resolved config, data hashes and counts, memory, timings). Checkpoint
evaluations are full RunRecords stored beside it under ``evals/``; this record points to
them by relative path. Writing is atomic like every other record. The file is read only
here (``read_train_record``); ``discover_train_record`` finds the one an evaluated model's
adapter or model folder came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftguard.errors import RecordError
from ftguard.record import ModelInfo, write_json_atomic

TRAIN_RECORD = "train_record.json"
TRAIN_SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class DataSourceInfo(_Model):
    """One training or validation file as it was used."""

    name: str
    """Label (the mix source's name or the file's stem)."""
    path: str
    """File path as given."""
    sha256: str
    """Content hash of the file."""
    format: str
    """Detected or declared row format."""
    rows: int
    """Rows read (for streamed files: rows read until training stopped)."""
    truncated: int = 0
    """Examples cut to ``max_length``."""
    dropped: int = 0
    """Examples dropped (too long with ``overlong: drop``, or nothing left to learn)."""
    tokens: int = 0
    """Tokens of the kept examples."""
    ratio: float | None = None
    """Mixture share at the start (mix sources only)."""
    final_ratio: float | None = None
    """Mixture share at the end (annealed mix sources only)."""


class DataSummary(_Model):
    """The data a run trained and validated on."""

    sources: list[DataSourceInfo]
    """Training files (one, or the mix sources)."""
    validation: DataSourceInfo | None = None
    """Validation file, or None when rows were held out of training."""
    train_examples: int
    """Examples (or draws, with a mixture) in the training schedule."""
    train_rows: int | None = None
    """Rows of the training files left for training: read, less those dropped and those held
    out for validation (None: streamed, or a record written before ftguard counted them)."""
    validation_examples: int
    """Examples the validation loss is computed on."""
    packing: bool = False
    """Whether examples were packed into ``max_length`` rows."""
    packed_rows: int | None = None
    """Rows after packing."""
    chat_template: bool = False
    """Whether rows were formatted with the model's chat template."""
    prompt_loss_weight: float = 0.0
    """Weight of prompt tokens in the loss."""


class MemoryEstimate(_Model):
    """Bytes needed for training, per component, estimated before the run."""

    weights: int
    """Model weights (quantised size for qlora)."""
    gradients: int
    """Gradients of the trained parameters."""
    optimizer: int
    """Optimiser states."""
    activations: int
    """Activations kept for the backward pass (one micro-batch), logits included."""
    total: int
    """Sum of the above."""
    available: int | None = None
    """Free memory of the device when the run started (None when unknown)."""
    fits: bool | None = None
    """Whether ``total`` fits in ``available``."""
    device: str = "cpu"
    """Device the estimate is for."""


class LogPoint(_Model):
    """Training loss and schedule at one logging step."""

    step: int
    """Optimiser step."""
    epoch: float
    """Fraction of the planned epochs done."""
    loss: float
    """Mean training loss since the previous log point."""
    lr: float
    """Learning rate at this step."""
    grad_norm: float | None = None
    """Gradient norm before clipping."""
    tokens: int = 0
    """Training tokens seen so far (non-padding)."""
    elapsed: float = 0.0
    """Seconds since training started."""


class ValidationPoint(_Model):
    """Validation loss at one evaluation step."""

    step: int
    """Optimiser step."""
    loss: float
    """Mean validation loss (same masking and weighting as training)."""


class CheckpointEval(_Model):
    """Suites run on one checkpoint, compared with the base model's run."""

    step: int
    """Optimiser step of the checkpoint (0 = the base model before training)."""
    run: str
    """RunRecord of this evaluation, relative to the output folder (``evals/step-N.json``)."""
    checkpoint: str | None = None
    """Checkpoint folder relative to the output folder (None for step 0)."""
    headline: dict[str, float] = Field(default_factory=dict)
    """Each task's headline metric: ``suite/task/metric`` -> value."""
    target_score: float | None = None
    """Mean headline of the target suites, oriented so that higher is better."""
    gain: float | None = None
    """Mean relative change of target headlines vs the base (positive = better)."""
    alignment_tax: float | None = None
    """Mean relative change of general headlines vs the base (negative = ability lost), as
    :attr:`ftguard.record.Comparison.alignment_tax`. Records written before it read their
    ``forgetting`` (the same quantity, positive = worse) into it."""
    gate_passed: bool | None = None
    """Whether the gate passes against the base (None without a base run)."""
    gate_failures: list[str] = Field(default_factory=list)
    """Why the gate fails, one line per broken rule."""
    val_loss: float | None = None
    """Validation loss at this step, when computed."""
    seconds: float = 0.0
    """Time the evaluation took."""

    @model_validator(mode="before")
    @classmethod
    def _forgetting(cls, data: Any) -> Any:
        """Train records written before ``alignment_tax`` kept ``forgetting`` = -tax."""
        if isinstance(data, dict) and "forgetting" in data:
            data = dict(data)
            forgetting = data.pop("forgetting")
            if "alignment_tax" not in data and isinstance(forgetting, (int, float)):
                data["alignment_tax"] = -forgetting
        return data


class BestCheckpoint(_Model):
    """The checkpoint exported to the output folder."""

    step: int
    """Its optimiser step."""
    rule: str
    """The rule that chose it (``target_passing_gate``, ``target``, ``val_loss``, ``last``)."""
    reason: str
    """One sentence: why this one."""


class TrainRecord(_Model):
    """Everything one training run produced, except the weights themselves."""

    schema_version: int = TRAIN_SCHEMA_VERSION
    """Version of this record's schema."""
    ftguard_version: str
    """ftguard version that trained."""
    created: str
    """UTC time the run started (ISO 8601)."""
    finished: str | None = None
    """UTC time the run ended; None while running or after an interruption."""
    status: str = "running"
    """``running``, ``completed``, ``stopped_early``, ``interrupted``."""
    stop_reason: str | None = None
    """Why training stopped before the planned steps, if it did."""
    method: str
    """Training method."""
    base: ModelInfo
    """The base model."""
    config: dict[str, Any]
    """The resolved config (every default filled in)."""
    trainable_params: int
    """Parameters updated by training."""
    total_params: int
    """All parameters of the model (base + adapter)."""
    data: DataSummary
    """Training and validation data."""
    memory_estimate: MemoryEstimate
    """Memory estimated before training."""
    peak_memory: int | None = None
    """Measured peak: CUDA max allocated, or the process's peak RSS on CPU (bytes)."""
    planned_steps: int
    """Optimiser steps planned."""
    steps: int = 0
    """Optimiser steps done."""
    tokens_per_second: float | None = None
    """Training tokens (non-padding) per second of training time."""
    timings: dict[str, float] = Field(default_factory=dict)
    """Seconds per phase: model_load, data, train, eval, save, total."""
    log: list[LogPoint] = Field(default_factory=list)
    """Training loss / learning-rate curve."""
    validation: list[ValidationPoint] = Field(default_factory=list)
    """Validation-loss curve."""
    checkpoints: list[CheckpointEval] = Field(default_factory=list)
    """Suite evaluations of the base (step 0) and of checkpoints."""
    best: BestCheckpoint | None = None
    """The exported checkpoint."""
    output: str | None = None
    """Folder of the exported adapter or model, relative to the output folder."""
    warnings: list[str] = Field(default_factory=list)
    """Things the user should know (overfitting, truncated examples, fallbacks)."""


def write_train_record(record: TrainRecord, path: str | Path) -> Path:
    """Write ``record`` as JSON atomically; return the path."""
    return write_json_atomic(record.model_dump(mode="json"), Path(path))


def read_train_data(path: str | Path) -> Any:
    """The parsed JSON of the train_record.json at ``path``, not yet validated; RecordError
    when it cannot be read or is not JSON. The one place a train record's file is read."""
    from ftguard.json_file import read_json

    return read_json(Path(path), RecordError, what="train record",
                     hint="Give the train_record.json written by ftguard train.")


def read_train_record(path: str | Path) -> TrainRecord:
    """Read a train_record.json (or the folder holding one); raise RecordError when invalid."""
    path = Path(path)
    if path.is_dir():
        path = path / TRAIN_RECORD
    data = read_train_data(path)
    try:
        return TrainRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"{path}: not a train record ({where}: {first['msg']}).",
                          hint="Give the train_record.json written by ftguard train.") from None


def is_train_record_file(path: Path) -> bool:
    """Whether ``ftguard report PATH`` should read PATH as a TrainRecord: a training output
    folder, a file named train_record.json, or JSON holding ``planned_steps``."""
    path = Path(path)
    if path.is_dir():
        return (path / TRAIN_RECORD).is_file()
    if path.name == TRAIN_RECORD:
        return True
    if not path.is_file():
        return False  # the generic reader reports the problem
    try:
        data = read_train_data(path)
    except RecordError:
        return False  # the generic reader reports the problem
    return isinstance(data, dict) and "planned_steps" in data


# -- finding the record of an evaluated model --------------------------------------------------


def find_train_record(info: ModelInfo) -> Path | None:
    """The train_record.json that produced ``info``'s adapter (else its model folder), or None.

    Looks in the folder's parent (``OUT/adapter`` -> ``OUT/train_record.json``) and in the
    folder itself. A record in the parent counts only when its exported output is that folder
    (or has its name: the output folder may have moved). Missing, unreadable or invalid
    records give None: a report never fails because of a file it was not asked to read.
    """
    found = _discover(info)
    return found[0] if found else None


def discover_train_record(info: ModelInfo) -> TrainRecord | None:
    """The TrainRecord ``find_train_record`` finds, read; None when there is none. What a
    Comparison's report shows as its Training section when no record is given."""
    found = _discover(info)
    return found[1] if found else None


def _discover(info: ModelInfo) -> tuple[Path, TrainRecord] | None:
    for folder_text in (info.adapter, info.path):
        if not folder_text:
            continue
        folder = Path(folder_text)
        for candidate, beside in ((folder.parent / TRAIN_RECORD, True), (folder / TRAIN_RECORD, False)):
            record = _try_read(candidate)
            if record is not None and (not beside or _exported_to(record, candidate.parent, folder)):
                return candidate, record
    return None


def _try_read(path: Path) -> TrainRecord | None:
    try:
        if not path.is_file():
            return None
        return read_train_record(path)
    except (RecordError, OSError, ValueError):
        return None


def _exported_to(record: TrainRecord, out: Path, folder: Path) -> bool:
    """Whether ``folder`` is the output (or a checkpoint) this record's run wrote into ``out``."""
    exported = [record.output] + [c.checkpoint for c in record.checkpoints]
    if record.output is None:
        return True
    for rel in filter(None, exported):
        try:
            if (out / rel).resolve() == folder.resolve():
                return True
        except (OSError, RuntimeError):
            pass
    return Path(record.output).name == folder.name
