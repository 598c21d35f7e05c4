"""From the config's data section to what the Trainer consumes.

Reads and checks every source (all problems at once), holds out validation rows, plans the
training order (:mod:`ftguard.train.mixing`: seeded shuffles per epoch, or mixture draws
with annealing), packs when asked, and builds the collator and the validation-loss function.
Streamed sources are read lazily by :class:`ftguard.train.dataset.StreamingMixture`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftguard.errors import UsageError
from ftguard.train.config import MixSource, TrainConfig
from ftguard.train.record import DataSourceInfo, DataSummary
from ftguard.train.tokenize import Example


@dataclass
class PreparedData:
    """Training rows, validation examples and the functions that batch and score them."""

    train_dataset: Any
    collator: Any
    validation: list[Example]
    summary: DataSummary
    typical_length: int
    """Longest row the trainer will see (for the memory estimate)."""
    streaming: bool = False
    warnings: list[str] = field(default_factory=list)
    batch_size: int = 8

    def describe(self, cfg: TrainConfig) -> str:
        """``N rows in the file, M used for training, K for validation, S steps x B = E
        examples drawn (~X epochs)`` (:mod:`ftguard.train.data_line`)."""
        from ftguard.train.data_line import data_line

        return data_line(cfg, self.summary, self._rows(), _world())

    def planned_steps(self, cfg: TrainConfig) -> int:
        """Optimizer steps the Trainer will run (:func:`ftguard.train.data_line.schedule`)."""
        from ftguard.train.data_line import schedule

        return schedule(cfg, self._rows(), _world())[0]

    def _rows(self) -> int | None:
        return None if self.streaming else len(self.train_dataset)

    def validation_loss(self, model: Any) -> float | None:
        """Weighted validation loss (same masking as training) of ``model``; None when there
        are no validation examples."""
        if not self.validation:
            return None
        import torch

        from ftguard.train.collate import Collator
        from ftguard.train.hf_trainer import text_logits
        from ftguard.train.loss import weighted_nll_sums

        collate = Collator(self.collator.pad_id, packed=False)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        total = weight = 0.0
        try:
            with torch.no_grad():
                for start in range(0, len(self.validation), self.batch_size):
                    chunk = self.validation[start:start + self.batch_size]
                    batch = collate([e.to_feature() for e in chunk])
                    logits = model(input_ids=batch["input_ids"].to(device),
                                   attention_mask=batch["attention_mask"].to(device),
                                   use_cache=False).logits
                    nll, w = weighted_nll_sums(text_logits(logits, batch["labels"]),
                                               batch["labels"], batch["loss_weights"])
                    total += float(nll)
                    weight += float(w)
        finally:
            model.train(was_training)
        return round(total / weight, 6) if weight else None


def _sources(cfg: TrainConfig) -> list[MixSource]:
    data = cfg.data
    if data.mix:
        return list(data.mix)
    assert data.train is not None
    return [MixSource(path=data.train, ratio=1.0, format=data.format)]


def prepare(cfg: TrainConfig, tokenizer: Any) -> PreparedData:
    """Read, check, split, order and pack the training data of ``cfg``."""
    from ftguard.train.collate import Collator

    data = cfg.data
    seed = data.seed if data.seed is not None else cfg.seed
    sources = _sources(cfg)
    if data.streaming:
        return _prepare_streaming(cfg, tokenizer, sources, seed)
    from ftguard.train.dataset import load_source, split_validation
    from ftguard.train.mixing import mixture_order, planned_draws

    loaded: list[list[Example]] = []
    infos: list[DataSourceInfo] = []
    held: list[Example] = []
    for index, source in enumerate(sources):
        fmt = source.format if data.mix else data.format
        examples, info = load_source(source.path, fmt, tokenizer, data, source=index)
        if not data.validation and data.validation_fraction > 0:
            examples, val = split_validation(examples, data.validation_fraction, seed + index)
            held.extend(val)
        loaded.append(examples)
        infos.append(info.model_copy(update={
            "name": source.name or Path(source.path).stem,
            "ratio": source.ratio if data.mix else None,
            "final_ratio": source.final_ratio if data.mix else None}))
    val_info = None
    if data.validation:
        held, val_info = load_source(data.validation, data.format, tokenizer, data)
    sizes = [len(e) for e in loaded]
    ratios = [s.ratio for s in sources]
    finals = [s.final_ratio for s in sources] if data.mix and sources[0].final_ratio is not None \
        else None
    total = planned_draws(sizes, ratios, finals, cfg.optim.epochs)
    if cfg.optim.max_steps:
        per_step = cfg.optim.batch_size * cfg.optim.grad_accum * _world()
        mean_len = sum(i.tokens for i in infos) / max(sum(sizes), 1)
        per_row = max(1.0, data.max_length / max(mean_len, 1.0)) if data.packing else 1.0
        total = math.ceil(cfg.optim.max_steps * per_step * per_row * 1.1)
    order = mixture_order(sizes, ratios, finals, total, seed)
    examples = [loaded[s][i] for s, i in order]
    rows: list[dict[str, Any]]
    packed_rows = None
    if data.packing:
        from ftguard.train.packing import pack

        packed = pack(examples, data.max_length)
        rows = [p.to_feature() for p in packed]
        packed_rows = len(rows)
    else:
        rows = [e.to_feature() for e in examples]
    from ftguard.train.hf_trainer import ListDataset

    summary = DataSummary(sources=infos, validation=val_info, train_examples=len(examples),
                          train_rows=sum(sizes), validation_examples=len(held),
                          packing=data.packing,
                          packed_rows=packed_rows,
                          chat_template=_chat(tokenizer, data.chat_template),
                          prompt_loss_weight=data.prompt_loss_weight)
    longest = max(len(r["input_ids"]) for r in rows)
    return PreparedData(ListDataset(rows), Collator(_pad_id(tokenizer), packed=data.packing),
                        held, summary, longest, warnings=_length_warnings(infos, cfg),
                        batch_size=cfg.optim.batch_size)


def _prepare_streaming(cfg: TrainConfig, tokenizer: Any, sources: list[MixSource],
                       seed: int) -> PreparedData:
    from ftguard.train.collate import Collator
    from ftguard.train.dataset import StreamingMixture, file_sha256, load_source

    data = cfg.data
    if not cfg.optim.max_steps:
        raise UsageError("data.streaming needs optim.max_steps (--max-steps): the length of a "
                         "streamed file is not known in advance.")
    if data.packing or data.group_by_length:
        raise UsageError("data.streaming reads rows one at a time; it cannot be combined with "
                         "data.packing or data.group_by_length.",
                         hint="Turn streaming off for files that fit in memory.")
    total = cfg.optim.max_steps * cfg.optim.batch_size * cfg.optim.grad_accum * _world()
    dataset = StreamingMixture([s.path for s in sources],
                               [s.format if data.mix else data.format for s in sources],
                               tokenizer, data, [s.ratio for s in sources],
                               [s.final_ratio for s in sources] if sources[0].final_ratio
                               is not None else None, total, seed)
    held: list[Example] = []
    val_info = None
    warnings = []
    if data.validation:
        held, val_info = load_source(data.validation, data.format, tokenizer, data)
    else:
        warnings.append("streamed data has no held-out validation rows; give data.validation "
                        "for a validation loss")
    infos = [DataSourceInfo(name=s.name or Path(s.path).stem, path=s.path,
                            sha256=file_sha256(s.path), format=s.format, rows=0,
                            ratio=s.ratio if data.mix else None,
                            final_ratio=s.final_ratio if data.mix else None) for s in sources]
    summary = DataSummary(sources=infos, validation=val_info, train_examples=total,
                          validation_examples=len(held), packing=False,
                          chat_template=_chat(tokenizer, data.chat_template),
                          prompt_loss_weight=data.prompt_loss_weight)
    return PreparedData(dataset, Collator(_pad_id(tokenizer), packed=False), held, summary,
                        data.max_length, streaming=True, warnings=warnings,
                        batch_size=cfg.optim.batch_size)


def _length_warnings(infos: list[DataSourceInfo], cfg: TrainConfig) -> list[str]:
    out = []
    for info in infos:
        if info.truncated:
            out.append(f"{info.name}: {info.truncated} of {info.rows} examples were truncated "
                       f"to data.max_length={cfg.data.max_length} tokens")
        if info.dropped:
            out.append(f"{info.name}: {info.dropped} of {info.rows} examples were dropped "
                       f"(too long, or no response token within data.max_length)")
    return out


def _chat(tokenizer: Any, setting: str) -> bool:
    from ftguard.train.formats import use_chat_template

    return use_chat_template(tokenizer, setting)


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def _world() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))
