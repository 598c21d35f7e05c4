"""The models being merged, opened lazily and read one tensor at a time.

The base is a full model folder (safetensors, one file or shards); each fine-tune is either a
full model folder of the same architecture or a LoRA adapter trained on that base. Nothing is
loaded whole: tensors are read from memory-mapped safetensors files when the merge reaches
them, so the peak memory is a few tensors, not several models.

Before anything is merged every input is checked against the base — architecture (config
``model_type``, ``architectures`` and the sizes that shape tensors), tokenizer (vocabulary and
added tokens), tensor names and shapes, and for adapters their recorded base — and a mismatch
is refused with the file and the difference: merging weights of different models produces a
model that runs but means nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ftguard.errors import UsageError
from ftguard.merge.methods import MergeSpec, merge_tensor
from ftguard.merge.safetensors_io import DTYPES, Entry, read_header, read_tensor
from ftguard.models.safetensors_check import check_safetensors

_SHAPE_KEYS = ("model_type", "architectures", "hidden_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size",
               "tie_word_embeddings")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<part>A|B|embedding_A|"
                       r"embedding_B)(?:\.weight)?$")


@dataclass
class TensorIndex:
    """Tensor name -> where its bytes are, for one model folder (one file or shards); each
    tensor is read on request into its own buffer (:mod:`ftguard.merge.safetensors_io`)."""

    folder: Path
    entries: dict[str, tuple[Path, Entry, int]]
    _open: dict[Path, BinaryIO] = field(default_factory=dict)

    @classmethod
    def of(cls, folder: Path, what: str) -> TensorIndex:
        shards = sorted(folder.glob("*.safetensors"))
        if not shards:
            raise UsageError(f"{what} {folder}: no *.safetensors weights in it.",
                             hint="Merge models saved with "
                                  "save_pretrained(safe_serialization=True).")
        entries: dict[str, tuple[Path, Entry, int]] = {}
        for shard in shards:
            try:
                header, start = read_header(shard, what)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{what} {shard}: not a readable safetensors file ({exc}).",
                                 hint="Save the model again with save_pretrained().") from None
            for name, entry in header.items():
                entries[name] = (shard, entry, start)
        return cls(folder, entries)

    @property
    def files(self) -> list[str]:
        """Tensor names in the order their bytes lie on disk."""
        return sorted(self.entries, key=lambda n: (self.entries[n][0], self.entries[n][1].start))

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1].shape

    def dtype(self, name: str) -> torch.dtype:
        return DTYPES[self.entries[name][1].dtype]

    def get(self, name: str) -> torch.Tensor:
        path, entry, start = self.entries[name]
        if path not in self._open:
            self._open[path] = path.open("rb")
        return read_tensor(self._open[path], entry, start)

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()


class Tuned:
    """One fine-tune: ``tensor(name, base)`` is its value of the base's tensor ``name``."""

    path: Path
    kind: str

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def touches(self, name: str) -> bool:
        """Whether its value of ``name`` may differ from the base's."""
        return True

    def close(self) -> None:
        pass


@dataclass
class FullModel(Tuned):
    path: Path
    index: TensorIndex
    kind: str = "full model"

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        return self.index.get(name)

    def close(self) -> None:
        self.index.close()


@dataclass
class LoraAdapter(Tuned):
    """A LoRA adapter: its update ``scale * B @ A`` added to the base (as peft merges it);
    modules saved whole (``modules_to_save``, biases, an adapted embedding's own weight)
    replace the base tensor, and an update of such a module applies to the saved weight."""

    path: Path
    deltas: dict[str, tuple[torch.Tensor, torch.Tensor, float, bool]]
    """base tensor name -> (A, B, scale, transpose)."""
    replaced: dict[str, torch.Tensor]
    kind: str = "LoRA adapter"

    def touches(self, name: str) -> bool:
        return name in self.replaced or name in self.deltas

    def tensor(self, name: str, base: torch.Tensor) -> torch.Tensor:
        start = self.replaced.get(name, base)
        if name not in self.deltas:
            return start
        a, b, scale, transpose = self.deltas[name]
        delta = (b.to(torch.float32) @ a.to(torch.float32)) * scale
        return start.to(torch.float32) + (delta.T if transpose else delta)


@dataclass
class Inputs:
    base: TensorIndex
    base_path: Path
    tuned: list[Tuned]
    names: list[str]
    """The base's tensors, in file order."""

    def tensors(self, name: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        base = self.base.get(name)
        return base, [t.tensor(name, base) for t in self.tuned]

    def touches(self, name: str) -> bool:
        """Whether any fine-tune changes ``name`` (else every merge keeps the base's)."""
        return any(t.touches(name) for t in self.tuned)

    def merged(self, spec: MergeSpec, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The base's tensor ``name`` and its merge under ``spec``: the base's own, bit for
        bit, when no fine-tune changes it."""
        if not self.touches(name):
            base = self.base.get(name)
            return base, base
        base, tuned = self.tensors(name)
        merged = merge_tensor(spec, name, base, tuned)
        if merged.is_floating_point() and not bool(torch.isfinite(merged).all()):
            bad = "the base" if not bool(torch.isfinite(base).all()) else (
                "a fine-tune" if any(not bool(torch.isfinite(t).all()) for t in tuned)
                else f"the merge ({spec.describe()})")
            raise UsageError(f"merging tensor {name} gives NaN or infinite values (they come "
                             f"from {bad}); nothing was written.",
                             hint="Check the inputs' weights and the merge's numbers "
                                  "(--weights, --lambda, --density).")
        return base, merged

    def close(self) -> None:
        self.base.close()
        for t in self.tuned:
            t.close()


def open_inputs(base: Path, tuned: Sequence[Path]) -> Inputs:
    """Open the base folder and every fine-tune, refusing any that does not match the base."""
    index = TensorIndex.of(base, "--base")
    config = _config(base, "--base")
    opened: list[Tuned] = []
    for path in tuned:
        if (path / "adapter_config.json").is_file():
            opened.append(_open_adapter(path, base, index))
        elif (path / "config.json").is_file():
            opened.append(_open_full(path, base, index, config))
        else:
            raise UsageError(f"{path}: neither a model folder (config.json) nor a LoRA adapter "
                             "(adapter_config.json).",
                             hint="Give folders written by save_pretrained() or by ftguard train.")
    return Inputs(index, base, opened, index.files)


def _config(folder: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"{what} {folder}: config.json cannot be read ({exc}).",
                         hint="Give a Hugging Face model folder.") from None
    return data if isinstance(data, dict) else {}


def _open_full(path: Path, base: Path, index: TensorIndex, config: dict[str, Any]) -> FullModel:
    other = _config(path, "model")
    for key in _SHAPE_KEYS:
        if other.get(key) != config.get(key):
            raise UsageError(f"{path}: a different architecture from the base {base} "
                             f"(config.json {key}: {other.get(key)!r} vs {config.get(key)!r}).",
                             hint="Merge only fine-tunes of the same base model.")
    _same_tokenizer(path, base)
    theirs = TensorIndex.of(path, "model")
    missing = [n for n in index.entries if n not in theirs.entries]
    extra = [n for n in theirs.entries if n not in index.entries]
    if missing or extra:
        name = (missing or extra)[0]
        raise UsageError(f"{path}: its tensors differ from the base's ({len(missing)} missing, "
                         f"{len(extra)} extra, e.g. {name}).",
                         hint="Merge only fine-tunes of the same base model, saved the same way.")
    for name in index.entries:
        if theirs.shape(name) != index.shape(name):
            raise UsageError(f"{path}: tensor {name} has shape {list(theirs.shape(name))}, the "
                             f"base's is {list(index.shape(name))}.",
                             hint="A resized vocabulary or another model size cannot be merged "
                                  "with this base.")
    return FullModel(path, theirs)


def _vocab(folder: Path) -> tuple[Any, Any] | None:
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    model = data.get("model") or {}
    added = [(t.get("id"), t.get("content")) for t in data.get("added_tokens") or []]
    return model.get("vocab"), added


def _same_tokenizer(path: Path, base: Path) -> None:
    mine, theirs = _vocab(base), _vocab(path)
    if mine is not None and theirs is not None and mine != theirs:
        part = "vocabulary" if mine[0] != theirs[0] else "added tokens"
        raise UsageError(f"{path}: its tokenizer differs from the base's ({part} of "
                         "tokenizer.json); the same token ids would mean different words.",
                         hint="Merge only fine-tunes that kept the base's tokenizer.")


def _open_adapter(path: Path, base: Path, index: TensorIndex) -> LoraAdapter:
    from safetensors.torch import load_file

    try:
        cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path}/adapter_config.json cannot be read ({exc}).",
                         hint="Give an adapter folder written by peft or ftguard train.") from None
    kind = str(cfg.get("peft_type", "")).upper()
    if kind != "LORA":
        raise UsageError(f"{path}: a {kind or 'unknown'} adapter; only LoRA adapters (and qlora "
                         "ones) are merged.",
                         hint="Prompt-learning adapters add virtual tokens instead of changing "
                              "weights.")
    if cfg.get("use_dora"):
        raise UsageError(f"{path}: a DoRA adapter (use_dora); its magnitude vectors are not a "
                         "weight update that can be merged tensor by tensor.",
                         hint="Merge it into its base first (ftguard merge-adapter) and merge "
                              "the full model.")
    _same_tokenizer(path, base)
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        raise UsageError(f"{path}: no adapter_model.safetensors.",
                         hint="ftguard merges safetensors adapters only.")
    check_safetensors(weights, "MODEL")
    saved = load_file(str(weights))  # adapters are small
    parts: dict[str, dict[str, torch.Tensor]] = {}
    replaced: dict[str, torch.Tensor] = {}
    for key, value in saved.items():
        match = _LORA_KEY.match(key)
        if match:
            parts.setdefault(match["module"], {})[match["part"]] = value
            continue
        name = key.removeprefix("base_model.model.")
        name = name.replace(".modules_to_save.default.", ".").replace(".modules_to_save.", ".")
        # an adapted embedding or lm_head saved whole (peft's save_embedding_layers): its
        # weight as the adapter saw it, which the LoRA update then applies to
        name = name.replace(".base_layer.", ".")
        _check_shape(path, name, tuple(value.shape), index)
        replaced[name] = value
    deltas = {}
    for module, ab in parts.items():
        embedding = "embedding_A" in ab
        a = ab.get("embedding_A" if embedding else "A")
        b = ab.get("embedding_B" if embedding else "B")
        if a is None or b is None:
            raise UsageError(f"{path}: module {module} has only one of its LoRA matrices.",
                             hint="The adapter file is incomplete; save it again.")
        name = f"{module}.weight"
        r = a.shape[0]
        alpha = _pattern(cfg.get("alpha_pattern") or {}, module, cfg.get("lora_alpha", r))
        r = _pattern(cfg.get("rank_pattern") or {}, module, r)
        scale = alpha / (r ** 0.5 if cfg.get("use_rslora") else r)
        transpose = embedding or bool(cfg.get("fan_in_fan_out"))
        shape = (b.shape[0], a.shape[1])
        _check_shape(path, name, shape[::-1] if transpose else shape, index)
        deltas[name] = (a, b, float(scale), transpose)
    _check_base(path, cfg, base)
    return LoraAdapter(path, deltas, replaced)


def _pattern(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """peft's rank_pattern / alpha_pattern: the value of the first key the module ends with."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def _check_shape(path: Path, name: str, shape: tuple[int, ...], index: TensorIndex) -> None:
    if name not in index.entries:
        raise UsageError(f"{path}: updates {name}, which the base has no tensor for.",
                         hint="The adapter was trained on another model; give that model as "
                              "--base.")
    if tuple(index.shape(name)) != tuple(shape):
        raise UsageError(f"{path}: its update of {name} has shape {list(shape)}, the base tensor "
                         f"is {list(index.shape(name))}.",
                         hint="The adapter was trained on another model; give that model as "
                              "--base.")


def _check_base(path: Path, cfg: dict[str, Any], base: Path) -> None:
    """Refuse an adapter whose recorded base (``base_model_name_or_path``, when it is a local
    folder) holds other files than the base given."""
    from ftguard.models.fingerprint import folder_digest

    declared = cfg.get("base_model_name_or_path")
    if (declared and Path(declared).is_dir() and Path(declared).resolve() != base.resolve()
            and folder_digest(Path(declared)) != folder_digest(base)):
        raise UsageError(f"{path}: trained on {declared}, which is not the base {base} (their "
                         "files differ).",
                         hint=f"Give --base {declared}, or merge adapters of this base only.")
