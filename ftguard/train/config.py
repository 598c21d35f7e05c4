"""The training config: what ``ftguard train CONFIG.yaml`` (or its flags) may set.

Sections mirror the steps of a run: ``data`` (files, formats, masking, packing, mixing),
the method's own section (``lora``, ``qlora``, ``virtual_tokens``), ``optim`` (optimiser and
schedule) and ``eval`` (suites run on checkpoints, early stopping, best-checkpoint rule).
Like the suite schema this is pydantic with ``extra="forbid"`` and a docstring under every
field, so an unknown or out-of-range key is reported with its YAML line and the valid keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftguard.engine.subsets import check_subset

Method = Literal["lora", "qlora", "full", "prefix", "prompt"]
METHODS: tuple[str, ...] = ("lora", "qlora", "full", "prefix", "prompt")
DataFormat = Literal["auto", "instruction", "prompt_completion", "messages"]
BestRule = Literal["target_passing_gate", "target", "val_loss", "last"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class MixSource(_Strict):
    """One dataset of a training mixture."""

    path: str
    """JSONL file (relative to the config file's folder)."""
    ratio: float = Field(gt=0, le=1)
    """Share of training examples drawn from this file at the start of training."""
    final_ratio: float | None = Field(default=None, ge=0, le=1)
    """Share at the end of training; the share moves linearly from ``ratio`` to it
    (annealing, e.g. general replay 0.7 -> 0.1 while the domain goes 0.3 -> 0.9)."""
    name: str | None = None
    """Label in logs and the train record (default: the file's stem)."""
    format: DataFormat = "auto"
    """Row format of this file; ``auto`` detects it from the first row's keys."""


class DataConfig(_Strict):
    """Training data: files, formats, prompt masking, length handling, batching."""

    train: str | None = None
    """JSONL training file (instruction/input/output, prompt/completion, or chat
    ``messages``). Give ``train`` or ``mix``, not both."""
    mix: list[MixSource] | None = None
    """Several files drawn at fixed (or annealed) ratios, e.g. 50% domain, 50% general
    replay, which limits forgetting. Ratios must add up to 1 (so must final ratios)."""
    validation: str | None = None
    """JSONL validation file; without it ``validation_fraction`` of the training rows is held
    out (seeded)."""
    validation_fraction: float = Field(default=0.05, ge=0, le=0.5)
    """Share of training rows held out when no validation file is given (0 = none)."""
    format: DataFormat = "auto"
    """Row format of ``train`` and ``validation``; ``auto`` detects it from the keys."""
    chat_template: Literal["auto", "always", "never"] = "auto"
    """Format rows with the model's chat template: ``auto`` when the tokenizer has one."""
    max_length: int = Field(default=1024, ge=8, le=1_048_576)
    """Longest example in tokens; longer ones are handled by ``overlong``."""
    overlong: Literal["truncate", "drop"] = "truncate"
    """What to do with examples longer than ``max_length`` (the count is reported)."""
    prompt_loss_weight: float = Field(default=0.0, ge=0, le=1)
    """Weight of prompt tokens in the loss: 0 = only the response is learnt (default),
    1 = plain causal LM loss over every token."""
    packing: bool = False
    """Concatenate examples into rows of ``max_length`` tokens; attention and positions
    restart at each example, so nothing leaks between them."""
    group_by_length: bool = False
    """Batch examples of similar length together (less padding) instead of packing."""
    streaming: bool = False
    """Read training files lazily (files larger than memory); needs ``optim.max_steps``."""
    seed: int | None = None
    """Seed of the split and the mixture draw (default: the run's seed)."""

    @model_validator(mode="after")
    def _check_sources(self) -> DataConfig:
        if self.train and self.mix:
            raise ValueError("give either data.train or data.mix, not both")
        if self.mix:
            for key, values in (("ratio", [s.ratio for s in self.mix]),
                                ("final_ratio", [s.final_ratio for s in self.mix])):
                given = [v for v in values if v is not None]
                if key == "final_ratio" and given and len(given) != len(values):
                    raise ValueError("data.mix: set final_ratio on every source or on none")
                if given and abs(sum(given) - 1.0) > 1e-6:
                    raise ValueError(f"data.mix: the {key}s add up to {sum(given):g}; "
                                     "they must add up to 1")
        if self.packing and self.group_by_length:
            raise ValueError("data.packing and data.group_by_length exclude each other")
        return self


class LoraConfig(_Strict):
    """LoRA adapter settings (also used by ``qlora``)."""

    r: int = Field(default=16, ge=1, le=4096)
    """Rank of the update matrices."""
    alpha: float = Field(default=32, gt=0)
    """Scaling numerator: the update is scaled by alpha / r (alpha / sqrt(r) with rslora)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] | Literal["all-linear"] | None = None
    """Module names to adapt; None = a per-architecture default (attention and MLP
    projections), ``all-linear`` = every linear layer except the output head."""
    rslora: bool = False
    """Rank-stabilised scaling (alpha / sqrt(r))."""
    dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""
    modules_to_save: list[str] | None = None
    """Extra modules trained in full and saved with the adapter (e.g. ``lm_head``)."""


class QloraConfig(_Strict):
    """4-bit quantisation of the frozen base for ``qlora``."""

    quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type."""
    double_quant: bool = True
    """Quantise the quantisation constants too (saves ~0.4 bit per weight)."""
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """dtype of the matmuls; ``auto`` = the run's dtype."""


class VirtualTokensConfig(_Strict):
    """Settings of ``prefix`` and ``prompt`` tuning."""

    num_virtual_tokens: int = Field(default=20, ge=1, le=1024)
    """Number of trained virtual tokens."""
    init_text: str | None = None
    """``prompt`` only: initialise the virtual tokens from this text's embeddings."""


class OptimConfig(_Strict):
    """Optimiser, schedule and batch."""

    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "sgd"] = "adamw"
    """``adamw_8bit`` / ``paged_adamw_8bit`` keep optimiser states in 8 bits (bitsandbytes)."""
    lr: float = Field(default=2e-4, gt=0, le=1)
    """Peak learning rate."""
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate decay after warm-up."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Share of the optimiser steps spent warming up linearly from 0."""
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    """Decoupled weight decay."""
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    """Gradient clipping norm (None = no clipping)."""
    batch_size: int = Field(default=8, ge=1, le=65536)
    """Examples (or packed rows) per device per micro-batch."""
    grad_accum: int = Field(default=1, ge=1, le=65536)
    """Micro-batches accumulated per optimiser step."""
    epochs: float = Field(default=1.0, gt=0, le=1000)
    """Passes over the training data (over the first mix source with ``mix``)."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimiser steps (overrides ``epochs``)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% more compute."""


class EarlyStopConfig(_Strict):
    """When to stop before the planned number of steps."""

    watch: Literal["none", "val_loss", "gate"] = "none"
    """``val_loss``: no improvement of validation loss by ``min_delta`` for ``patience``
    evaluations; ``gate``: general ability fell by more than ``max_forgetting``."""
    patience: int = Field(default=3, ge=1)
    """Evaluations without improvement tolerated (``val_loss``)."""
    min_delta: float = Field(default=0.0, ge=0)
    """Smallest validation-loss decrease that counts as an improvement."""
    max_forgetting: float = Field(default=0.02, gt=0, le=1)
    """``gate``: stop once the general suites' mean relative drop exceeds this (0.02 = 2%)
    or the gate (the policy compare resolves) fails."""


class EvalConfig(_Strict):
    """Suites run on checkpoints during training, through the same engine as ftguard eval."""

    suites: list[str] = Field(default_factory=list)
    """Suite folders (relative to the config file): a target suite and a general suite."""
    every_steps: int | None = Field(default=None, ge=1)
    """Evaluate (and checkpoint) every N optimiser steps; always at the end too."""
    subset: int | float | None = None
    """Score a fixed random subset of each task, N items or a fraction 0 < F <= 1 of them
    (the same items at every checkpoint)."""
    task_subset: dict[str, int | float] = Field(default_factory=dict)
    """Per-task overrides of ``subset``, keyed ``task`` or ``suite/task`` (e.g.
    ``{clause_type: 1.0}`` scores a cheap classification task in full)."""
    base: bool = True
    """Evaluate the base model first, so each checkpoint has a gain and an alignment tax."""
    cache_base: bool = False
    """Answer the base evaluation from the response cache where it can (as ``ftguard eval
    --cache`` does): a base already evaluated on these items is not evaluated again."""

    @model_validator(mode="after")
    def _subset_is_a_count_or_fraction(self) -> EvalConfig:
        if self.subset is not None:
            check_subset(self.subset)
        for key, value in self.task_subset.items():
            try:
                check_subset(value)
            except ValueError as exc:
                raise ValueError(f"task_subset {key}: {exc}") from None
        return self
    early_stopping: EarlyStopConfig = Field(default_factory=EarlyStopConfig)
    """Early-stopping rule."""
    best: BestRule = "target_passing_gate"
    """Which checkpoint is exported: the best target score among those passing the general
    gate (default), the best target score, the lowest validation loss, or the last."""
    batch_size: int | None = Field(default=None, ge=1)
    """Evaluation batch size (None = automatic)."""


class TrainConfig(_Strict):
    """One training run."""

    model: str = "smollm2-135m-instruct"
    """Base model: local folder, hub id, or the embedded ``smollm2-135m-instruct``."""
    method: Method = "lora"
    """``lora``, ``qlora`` (4-bit base + LoRA), ``full``, ``prefix`` or ``prompt`` tuning."""
    out: str | None = None
    """Output folder (adapter or model, tokenizer, config, train_record.json, evals)."""
    data: DataConfig = Field(default_factory=DataConfig)
    """Training data."""
    lora: LoraConfig = Field(default_factory=LoraConfig)
    """LoRA settings (``lora`` and ``qlora``)."""
    qlora: QloraConfig = Field(default_factory=QloraConfig)
    """Quantisation settings (``qlora``)."""
    virtual_tokens: VirtualTokensConfig = Field(default_factory=VirtualTokensConfig)
    """Prefix / prompt tuning settings."""
    optim: OptimConfig = Field(default_factory=OptimConfig)
    """Optimiser and schedule."""
    eval: EvalConfig = Field(default_factory=EvalConfig)
    """Evaluation during training."""
    neftune_alpha: float | None = Field(default=None, gt=0, le=100)
    """NEFTune: uniform noise of scale alpha / sqrt(length * dim) added to input embeddings
    in training mode only (5 is the paper's usual value)."""
    seed: int = 1234
    """Seed of initialisation, data order and dropout."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``..."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Training dtype: ``auto`` = float32 on CPU, bfloat16 on GPUs that support it."""
    logging_steps: int = Field(default=10, ge=1)
    """Record training loss and learning rate every N optimiser steps."""
    keep_checkpoints: int = Field(default=3, ge=1)
    """Checkpoints kept on disk (the best one is always kept)."""
    allow_pickle: bool = False
    """Allow pickle (.bin) weights, which can execute code when loaded."""
    trust_remote_code: bool = False
    """Allow the model folder's own Python code to run."""

    @model_validator(mode="after")
    def _check_eval(self) -> TrainConfig:
        if self.eval.early_stopping.watch == "gate" and not self.eval.suites:
            raise ValueError("eval.early_stopping.watch: gate needs eval.suites (a target and a "
                             "general suite)")
        return self
