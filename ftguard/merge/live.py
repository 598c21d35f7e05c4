"""A merge applied in memory to a loaded base model, for evaluating many merging weights.

The base is loaded once; for each merge the tensors the fine-tunes change are merged one at a
time (the same :func:`ftguard.merge.methods.merge_tensor` that ``ftguard merge`` writes) and
copied into the model's parameters, cast to the dtype the merged model would be saved in, so
the evaluated model is the one ``--out`` receives. Each merge gets its own fingerprint, so the
response and result caches keep the answers of every merging weight apart and resume them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from ftguard.errors import UsageError
from ftguard.merge.inputs import Inputs
from ftguard.merge.methods import MergeSpec
from ftguard.models.base import Backend
from ftguard.models.fingerprint import folder_digest
from ftguard.record import ModelInfo


class LiveMerge:
    """The base model of ``inputs`` loaded as ``backend``, whose weights ``apply`` replaces."""

    def __init__(self, backend: Any, inputs: Inputs, *, save_dtype: torch.dtype | None) -> None:
        self.base = backend
        self.inputs = inputs
        self.save_dtype = save_dtype
        self._params = _parameters(backend.model, inputs.names)
        recast = save_dtype is not None and any(inputs.base.dtype(n) != save_dtype
                                                for n in inputs.names)
        # the tensors a merge rewrites: those a fine-tune changes, and every one when the
        # merged model is saved in another dtype (its unchanged tensors are rounded too)
        self._rewritten = [n for n in inputs.names if recast or inputs.touches(n)]
        self._models = [folder_digest(t.path) for t in inputs.tuned]

    def apply(self, spec: MergeSpec) -> Backend:
        """A backend evaluating the merge ``spec`` (the base's weights overwritten)."""
        with torch.no_grad():
            for name in self._rewritten:
                base, merged = self.inputs.merged(spec, name)
                self._params[name].copy_(merged.to(self.save_dtype or base.dtype))
        return self._backend(self.info(spec))

    def restore(self) -> Backend:
        """The base model again (its own tensors copied back)."""
        with torch.no_grad():
            for name in self._rewritten:
                self._params[name].copy_(self.inputs.base.get(name))
        return self._backend(self.base.info)

    def info(self, spec: MergeSpec) -> ModelInfo:
        """The ModelInfo of a merge: the base's, with the merge as spec and fingerprint."""
        parts = {"base": self.base.info.fingerprint, "models": self._models,
                 **spec.settings(), "saved_dtype": str(self.save_dtype)}
        blob = json.dumps(parts, sort_keys=True).encode()
        names = ", ".join(t.path.name for t in self.inputs.tuned)
        return self.base.info.model_copy(update={
            "spec": f"{spec.method} merge of {names} (lambda {spec.lam:g})",
            "fingerprint": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "path": None, "adapter": None})

    def _backend(self, info: ModelInfo) -> Backend:
        from ftguard.models.hf import HFBackend

        b = self.base
        return HFBackend(b.model, b.tokenizer, info, batch_size=None if b.auto_batch
                         else b.batch_size, max_length=b.max_length)


def _parameters(model: Any, names: list[str]) -> dict[str, torch.Tensor]:
    """The model's tensor for each saved tensor name (state_dict tensors share storage with
    the parameters; a name saved with or without the base-model prefix is found either way)."""
    state = model.state_dict()
    prefix = getattr(model, "base_model_prefix", "") or ""
    found: dict[str, torch.Tensor] = {}
    for name in names:
        for key in (name, f"{prefix}.{name}", name.removeprefix(f"{prefix}.")):
            if key in state:
                found[name] = state[key]
                break
        else:
            raise UsageError(f"--base: the loaded model has no tensor '{name}' of its "
                             "safetensors files, so merges cannot be evaluated in memory.",
                             hint="Save the base with save_pretrained() from the same "
                                  "transformers version, or merge without --sweep/--suites "
                                  "and evaluate the written model with ftguard eval.")
    return found

