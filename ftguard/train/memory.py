"""Memory needed by a training run, estimated before it starts, and the peak measured after.

The estimate has four parts, each in bytes:

- **weights**: every parameter and buffer as stored. A bitsandbytes ``Params4bit`` reports its
  packed ``uint8`` storage (two 4-bit values per byte); its quantisation constants
  (``quant_state.absmax``, and the second-level ones with double quantisation) are added.
- **gradients**: one gradient per trainable parameter, in the parameter's dtype (PyTorch keeps
  ``.grad`` in the dtype of the parameter: 4 bytes with ftguard's float32 training on CPU,
  2 bytes for bf16/fp16 parameters on a GPU; peft keeps LoRA weights in float32).
- **optimizer**: AdamW keeps two moments per trainable parameter, allocated like the
  parameter (8 bytes for a float32 parameter); ``adamw_8bit`` / ``paged_adamw_8bit`` keep
  them in 8 bits (2 bytes; their per-block scales, 1/1024 of that, are ignored); ``sgd`` is
  assumed to run without momentum (no state). No float32 master copy of the weights is kept:
  ftguard trains the parameters in their own dtype, without a mixed-precision wrapper.
- **activations**: what one micro-batch keeps for the backward pass, from Korthikanti et al.
  2022 ("Reducing Activation Recomputation in Large Transformer Models"): per layer
  ``s·b·h·(34 + 5·a·s/h)`` bytes at 16 bits, scaled by ``dtype_bytes / 2``. With gradient
  checkpointing only each layer's input (``s·b·h`` values) is kept, plus one layer's full
  activations while it is recomputed. The logits add ``b·s·V·4·2`` bytes (float32 logits and
  their gradient). LoRA, QLoRA, prefix and prompt tuning are estimated like full training:
  the frozen layers still sit between the loss and the trained weights, so the backward
  pass runs through them and needs their activations (a frozen linear layer can skip saving
  its input, so these methods use somewhat less than the estimate). Prefix and prompt tuning
  lengthen every sequence by their virtual tokens, which the estimate adds.

The attention term assumes the ``s×s`` scores are materialised; fused kernels (SDPA, flash
attention) do not keep them, so the estimate errs high for long sequences, which is the safe
side for a "will it fit" check.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.errors import UsageError
from ftguard.train.config import METHODS
from ftguard.train.record import MemoryEstimate

if TYPE_CHECKING:
    import torch

OPTIMIZER_BYTES: dict[str, float] = {"adamw": 2.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0,
                                     "sgd": 0.0}
"""Optimiser state per trainable parameter: AdamW keeps 2 moments (each the size of the
parameter's element); the 8-bit variants keep 2 one-byte moments; SGD without momentum none."""

_EIGHT_BIT = ("adamw_8bit", "paged_adamw_8bit")
_GIB = 2**30
_MIB = 2**20


def estimate_memory(model: Any, *, method: str, batch_size: int, seq_len: int,
                    gradient_checkpointing: bool, optimizer: str, dtype_bytes: int,
                    device: str | torch.device) -> MemoryEstimate:
    """Estimate the bytes a training run of ``model`` needs (see the module docstring).

    ``model`` is the loaded model, already wrapped by peft for adapter methods and already
    quantised for qlora, so that its trainable parameters are the ones that will train.
    ``dtype_bytes`` is the size of one activation value (4 for float32, 2 for bf16/fp16).
    """
    if method not in METHODS:
        raise UsageError(f"method {method!r}: unknown training method; choose one of "
                         f"{', '.join(METHODS)}.")
    if optimizer not in OPTIMIZER_BYTES:
        raise UsageError(f"optim.optimizer {optimizer!r}: unknown optimiser; choose one of "
                         f"{', '.join(OPTIMIZER_BYTES)}.")
    if batch_size < 1 or seq_len < 1 or dtype_bytes < 1:
        raise UsageError("batch size, sequence length and dtype bytes must be positive "
                         f"(got {batch_size}, {seq_len}, {dtype_bytes}).")
    weights = weight_bytes(model)
    trainable = [p for p in _unique_parameters(model) if p.requires_grad]
    gradients = sum(p.numel() * p.element_size() for p in trainable)
    if optimizer in _EIGHT_BIT:
        optim = int(sum(p.numel() for p in trainable) * OPTIMIZER_BYTES[optimizer])
    else:
        optim = int(sum(p.numel() * p.element_size() for p in trainable)
                    * OPTIMIZER_BYTES[optimizer])
    seq = seq_len + (_virtual_tokens(model) if method in ("prefix", "prompt") else 0)
    activations = activation_bytes(model, batch_size=batch_size, seq_len=seq,
                                   gradient_checkpointing=gradient_checkpointing,
                                   dtype_bytes=dtype_bytes)
    total = weights + gradients + optim + activations
    name = _device_name(device)
    available = available_memory(name)
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer=optim,
                          activations=activations, total=total, available=available,
                          fits=None if available is None else total <= available, device=name)


def weight_bytes(model: Any) -> int:
    """Bytes of every parameter and buffer as stored (4-bit weights packed, plus their
    quantisation constants); tied parameters are counted once."""
    total = 0
    for param in _unique_parameters(model):
        total += param.numel() * param.element_size()
        total += _quant_state_bytes(getattr(param, "quant_state", None))
    seen: set[int] = set()
    for buffer in model.buffers():
        if id(buffer) not in seen:
            seen.add(id(buffer))
            total += buffer.numel() * buffer.element_size()
    return total


def activation_bytes(model: Any, *, batch_size: int, seq_len: int,
                     gradient_checkpointing: bool, dtype_bytes: int) -> int:
    """Activations one micro-batch keeps for the backward pass, logits included."""
    layers, hidden, heads, vocab = model_dims(model)
    s, b, h = seq_len, batch_size, hidden
    scale = dtype_bytes / 2  # the per-layer formula counts bytes at 16 bits
    full_layer = s * b * h * (34 + 5 * heads * s / h) * scale
    if gradient_checkpointing:
        # each layer's input (s·b·h values) is kept; one layer at a time is recomputed in full
        layer_total = layers * s * b * h * dtype_bytes + full_layer
    else:
        layer_total = layers * full_layer
    logits = b * s * vocab * 4 * 2  # float32 logits and their gradient
    return int(layer_total + logits)


def model_dims(model: Any) -> tuple[int, int, int, int]:
    """(layers, hidden size, attention heads, vocabulary) from the model's config, falling
    back to the embedding matrices when the config uses other names."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    layers = _config_int(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    hidden = _config_int(config, "hidden_size", "n_embd", "d_model", "dim")
    heads = _config_int(config, "num_attention_heads", "n_head", "num_heads", "n_heads")
    vocab = _config_int(config, "vocab_size")
    if hidden is None or vocab is None:
        embed = model.get_input_embeddings().weight
        vocab = vocab or int(embed.shape[0])
        hidden = hidden or int(embed.shape[1])
    if layers is None:
        layers = max((len(m) for m in model.modules() if type(m).__name__ == "ModuleList"),
                     default=1)
    if heads is None:
        heads = max(1, hidden // 64)  # the usual head width
    return layers, hidden, heads, vocab


def available_memory(device: str | torch.device) -> int | None:
    """Free bytes on ``device``: CUDA's free memory, or on CPU MemAvailable from
    /proc/meminfo (capped by a cgroup memory limit); None when unknown."""
    name = _device_name(device)
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(torch.device(name))
        return int(free)
    if name != "cpu":
        return None
    free = _meminfo_available()
    limit = _cgroup_free()
    if free is None:
        return limit
    return free if limit is None else min(free, limit)


def peak_memory(device: str | torch.device) -> int | None:
    """Peak bytes so far: CUDA's max allocated, or the process's peak RSS on CPU."""
    name = _device_name(device)
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.max_memory_allocated(torch.device(name)))
    if name != "cpu":
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # KiB on Linux


def format_estimate(est: MemoryEstimate) -> str:
    """A one- or two-line summary of ``est`` for the console."""
    unit, size = ("GiB", _GIB) if est.total >= _GIB else ("MiB", _MIB)

    def fmt(n: int) -> str:
        return f"{n / size:.2f}"

    line = (f"memory estimate: {fmt(est.total)} {unit} (weights {fmt(est.weights)}, "
            f"gradients {fmt(est.gradients)}, optimizer {fmt(est.optimizer)}, "
            f"activations {fmt(est.activations)})")
    if est.available is None:
        return f"{line} — free memory on {est.device} unknown"
    free = f"{est.available / _GIB:.1f} GiB free on {est.device}"
    if est.fits:
        return f"{line} — fits in {free}"
    return (f"{line} — does NOT fit in {free}.\n"
            "Lower optim.batch_size (raise optim.grad_accum to keep the effective batch) or "
            "data.max_length, turn on optim.gradient_checkpointing, or use method lora/qlora.")


def _unique_parameters(model: Any) -> list[Any]:
    """Parameters, each once (``parameters()`` already skips tied duplicates)."""
    return list(model.parameters())


def _quant_state_bytes(state: Any) -> int:
    """Bytes of a bitsandbytes QuantState's scales (absmax, nested absmax, code, offset)."""
    if state is None:
        return 0
    total = 0
    for attr in ("absmax", "code", "offset"):
        tensor = getattr(state, attr, None)
        if tensor is not None and hasattr(tensor, "element_size"):
            total += tensor.numel() * tensor.element_size()
    if getattr(state, "nested", False):
        total += _quant_state_bytes(getattr(state, "state2", None))
    return total


def _virtual_tokens(model: Any) -> int:
    """Virtual tokens a peft prefix/prompt-tuning model prepends (0 when not reachable)."""
    configs = getattr(model, "peft_config", None)
    if not isinstance(configs, dict):
        return 0
    return max((int(getattr(c, "num_virtual_tokens", 0) or 0) for c in configs.values()),
               default=0)


def _config_int(config: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _device_name(device: Any) -> str:
    name = str(device)
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024  # reported in kB
    return None


def _cgroup_free() -> int | None:
    """Bytes left under a cgroup v2 memory limit (containers), or None without a limit."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        used = (root / "memory.current").read_text().strip()
    except OSError:
        return None
    if not limit.isdigit() or not used.isdigit():
        return None  # "max": no limit
    return max(0, int(limit) - int(used))

