"""The model to train: base weights (4-bit for qlora) plus the method's trainable part.

``full`` trains every weight; ``lora``/``qlora`` wrap the base with a peft LoRA adapter
(DoRA and rsLoRA are switches of the same config); ``prefix``/``prompt`` add peft virtual
tokens. Target modules default per architecture to the attention and MLP projections;
names that match no module are reported with the model's linear layers listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftguard.errors import UsageError
from ftguard.models.resolve import resolve_model
from ftguard.train.config import TrainConfig

_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: Attention and MLP projections of common decoder architectures (``model_type`` keys).
DEFAULT_TARGETS: dict[str, list[str]] = {
    **{name: list(_LLAMA_LIKE) for name in ("llama", "mistral", "mixtral", "qwen2", "qwen3",
                                            "gemma", "gemma2", "gemma3_text", "olmo", "olmo2",
                                            "granite", "smollm3")},
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "opt": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


@dataclass
class Prepared:
    """The model ready for the Trainer, and what it is."""

    model: Any
    """The (possibly peft-wrapped) model."""
    tokenizer: Any
    """Its tokenizer, with a pad token."""
    base_path: Path
    """Folder of the base weights."""
    base_spec: str
    """The model SPEC as the user gave it."""
    dtype: Any
    """torch dtype of training."""
    device: Any
    """torch device."""
    quantization: str | None
    """``nf4``/``fp4`` for qlora, else None."""

    @property
    def is_peft(self) -> bool:
        return hasattr(self.model, "peft_config")


def prepare_model(cfg: TrainConfig) -> Prepared:
    """Load the base model and tokenizer and attach the trainable part for ``cfg.method``."""
    from transformers import set_seed

    from ftguard.models.hf_load import load_tokenizer, resolve_device, resolve_dtype

    set_seed(cfg.seed)  # adapter initialisation draws from the global RNG
    resolved = resolve_model(cfg.model, allow_pickle=cfg.allow_pickle)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)  # float32 on CPU, bf16 on GPUs that support it
    tokenizer = load_tokenizer(resolved.path, cfg.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    quant = cfg.qlora.quant_type if cfg.method == "qlora" else None
    model = _load_base(cfg, resolved.path, device, dtype, quant)
    if cfg.method == "full":
        model.requires_grad_(True)
    elif cfg.method in ("lora", "qlora"):
        model = _with_lora(cfg, model, quant is not None)
    else:
        model = _with_virtual_tokens(cfg, model, resolved.path)
    if cfg.optim.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
        model.config.use_cache = False
    return Prepared(model, tokenizer, resolved.path, resolved.spec, dtype, device, quant)


def _load_base(cfg: TrainConfig, path: Path, device: Any, dtype: Any, quant: str | None) -> Any:
    from ftguard.models.hf_load import load_causal_lm

    model = load_causal_lm(path, device=device, dtype=dtype,
                           quantization_config=_bnb_4bit(cfg, dtype) if quant else None,
                           allow_pickle=cfg.allow_pickle, trust_remote_code=cfg.trust_remote_code)
    if quant:
        from peft import prepare_model_for_kbit_training

        for module in model.modules():  # evaluations between steps must not repack weights
            if hasattr(module, "support_avx512bf16_for_cpu"):  # in place for CPU inference
                module.support_avx512bf16_for_cpu = False

        return prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.optim.gradient_checkpointing)
    return model


def _bnb_4bit(cfg: TrainConfig, dtype: Any) -> Any:
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise UsageError("--method qlora needs bitsandbytes, which is not installed.",
                         hint="pip install bitsandbytes, or use --method lora.") from None
    import torch

    compute = dtype if cfg.qlora.compute_dtype == "auto" else getattr(torch, cfg.qlora.compute_dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.qlora.quant_type,
                              bnb_4bit_use_double_quant=cfg.qlora.double_quant,
                              bnb_4bit_compute_dtype=compute)


def linear_layer_names(model: Any) -> list[str]:
    """Distinct last-name components of the model's linear layers (the output head excluded)."""
    import torch

    names: dict[str, None] = {}
    output = model.get_output_embeddings()
    for full, module in model.named_modules():
        linear = isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
        if linear and module is not output:  # bitsandbytes' layers subclass nn.Linear
            names[full.rsplit(".", 1)[-1]] = None
    return list(names)


def target_modules(cfg: TrainConfig, model: Any) -> list[str] | str:
    """The LoRA target modules: configured, ``all-linear``, or the architecture default."""
    available = linear_layer_names(model)
    wanted = cfg.lora.target_modules
    if wanted == "all-linear":
        return "all-linear"
    if wanted is None:
        default = DEFAULT_TARGETS.get(getattr(model.config, "model_type", ""), [])
        present = [name for name in default if name in available]
        return present or "all-linear"
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise UsageError(f"lora.target_modules: {', '.join(unknown)} match no linear layer of "
                         f"this model. Its linear layers are: {', '.join(available)}.",
                         hint="Pick names from that list, or use all-linear.")
    return list(wanted)


def _with_lora(cfg: TrainConfig, model: Any, quantized: bool) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=target_modules(cfg, model), use_rslora=lora.rslora,
                        use_dora=lora.dora, modules_to_save=lora.modules_to_save,
                        bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except (ValueError, NotImplementedError) as exc:
        raise UsageError(f"lora: peft cannot build this adapter ({str(exc).splitlines()[0]}).",
                         hint="Check lora.target_modules / lora.dora for this model"
                              + (" (DoRA on a 4-bit base needs a recent peft)." if quantized
                                 else ".")) from None


def _with_virtual_tokens(cfg: TrainConfig, model: Any, path: Path) -> Any:
    from peft import (
        PrefixTuningConfig,
        PromptTuningConfig,
        PromptTuningInit,
        get_peft_model,
    )

    vt = cfg.virtual_tokens
    if cfg.method == "prefix":
        config: Any = PrefixTuningConfig(task_type="CAUSAL_LM",
                                         num_virtual_tokens=vt.num_virtual_tokens)
    elif vt.init_text:
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=vt.num_virtual_tokens,
                                    prompt_tuning_init=PromptTuningInit.TEXT,
                                    prompt_tuning_init_text=vt.init_text,
                                    tokenizer_name_or_path=str(path))
    else:
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=vt.num_virtual_tokens)
    return get_peft_model(model, config)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their unpacked size."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if type(param).__name__ == "Params4bit":
            n *= 2  # two 4-bit values per stored byte
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
