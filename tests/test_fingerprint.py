"""Model fingerprints: the same weights, tokenizer and settings give the same fingerprint
whatever library version wrote the settings files; every real change changes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftguard.models.fingerprint import model_fingerprint

CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 576, "num_hidden_layers": 30,
          "rms_norm_eps": 9.999999747378752e-06, "dtype": "float32",
          "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
          "transformers_version": "5.23.0", "vocab_size": 49152}
GENERATION = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
              "transformers_version": "5.23.0"}
TOKENIZER = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
             "tokenizer_class": "TokenizersBackend"}


def fingerprint(folder: Path, adapter: Path | None = None) -> str:
    return model_fingerprint(folder, adapter_dir=adapter, dtype="torch.float32", quantization=None)


def write_model(folder: Path, config: dict, generation: dict, tokenizer: dict, *,
                indent: int | None = 2) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\x08\x00weights" * 64)
    (folder / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}}}')
    for name, data in [("config.json", config), ("generation_config.json", generation),
                       ("tokenizer_config.json", tokenizer)]:
        (folder / name).write_text(json.dumps(data, indent=indent) + "\n")
    return folder


@pytest.fixture
def written_by_523(tmp_path: Path) -> Path:
    return write_model(tmp_path / "a", CONFIG, GENERATION, TOKENIZER)


def test_writer_version_key_order_and_whitespace_do_not_change_it(
        written_by_523: Path, tmp_path: Path) -> None:
    later = {"transformers_version": "5.25.0"}
    reordered = dict(reversed(list({**CONFIG, **later}.items())))
    other = write_model(tmp_path / "b", reordered, {**GENERATION, **later},
                        # transformers 5.25 writes how the tokenizer was loaded
                        {**TOKENIZER, "is_local": True, "local_files_only": True}, indent=None)
    assert (other / "config.json").read_bytes() != (written_by_523 / "config.json").read_bytes()
    assert fingerprint(other) == fingerprint(written_by_523)
    # transformers 4 wrote the dtype as torch_dtype and the path it loaded from
    old = {k: v for k, v in CONFIG.items() if k != "dtype"} | {
        "torch_dtype": "float32", "_name_or_path": "/home/someone/smollm2"}
    assert fingerprint(write_model(tmp_path / "c", old, GENERATION, TOKENIZER)) == \
        fingerprint(written_by_523)


@pytest.mark.parametrize(("file", "change"), [
    ("config.json", {"rms_norm_eps": 1e-05}),
    ("config.json", {"rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}),
    ("config.json", {"dtype": "bfloat16"}),
    ("config.json", {"use_cache": False}),  # a new key
    ("generation_config.json", {"eos_token_id": [2, 3]}),
    ("tokenizer_config.json", {"eos_token": "<|endoftext|>"}),
])
def test_a_real_setting_changes_it(written_by_523: Path, tmp_path: Path, file: str,
                                   change: dict) -> None:
    settings = {"config.json": CONFIG, "generation_config.json": GENERATION,
                "tokenizer_config.json": TOKENIZER}
    settings[file] = {**settings[file], **change}
    changed = write_model(tmp_path / "b", settings["config.json"],
                          settings["generation_config.json"], settings["tokenizer_config.json"])
    assert fingerprint(changed) != fingerprint(written_by_523)


def test_weights_and_tokenizer_are_hashed_byte_for_byte(written_by_523: Path,
                                                        tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(written_by_523, copy)
    assert fingerprint(copy) == fingerprint(written_by_523)
    (copy / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}} }')  # whitespace only
    assert fingerprint(copy) != fingerprint(written_by_523)


def test_a_settings_file_that_is_not_json_is_hashed_by_its_bytes(written_by_523: Path) -> None:
    before = fingerprint(written_by_523)
    (written_by_523 / "config.json").write_text("{not json")
    broken = fingerprint(written_by_523)
    (written_by_523 / "config.json").write_text("{not  json")
    assert len({before, broken, fingerprint(written_by_523)}) == 3


def test_adapter_settings_peft_version_base_path_and_module_order(
        written_by_523: Path, tmp_path: Path) -> None:
    def adapter(name: str, **config: object) -> Path:
        folder = tmp_path / f"adapter-{name}"
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(b"lora" * 32)
        base = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "peft_version": "0.21.2",
                "base_model_name_or_path": "/tmp/run-1/base",
                "target_modules": ["q_proj", "v_proj", "k_proj"]}
        (folder / "adapter_config.json").write_text(json.dumps({**base, **config}))
        return folder

    first = fingerprint(written_by_523, adapter("a"))
    # the same adapter saved by another peft, from another folder, its module set reordered
    assert fingerprint(written_by_523, adapter("b", peft_version="0.22.0",
                                               base_model_name_or_path="base",
                                               target_modules=["k_proj", "q_proj", "v_proj"])
                       ) == first
    assert fingerprint(written_by_523, adapter("c", r=8)) != first
    assert fingerprint(written_by_523, adapter("d", target_modules=["q_proj", "v_proj"])) != first
