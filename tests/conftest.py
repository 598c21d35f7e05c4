"""Shared fixtures: offline environment, tiny models built on the spot, suite builders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

# Never touch the network; keep converted models in a cache that survives test runs.
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false")
os.environ.setdefault("FTGUARD_HOME", str(REPO / ".ftguard-cache"))

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: What is the capital of France?\nAnswer: Paris",
    "The contract shall be governed by the laws of the State of New York.",
    "Either party may terminate this Agreement upon thirty days written notice.",
    "Water boils at one hundred degrees. The sky is blue. Grass is green.",
    "positive negative neutral yes no true false one two three four five",
    "Review: I loved this film.\nSentiment: positive",
] * 20


def build_tiny_model(folder: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2,
                     chat_template: bool = True) -> Path:
    """Save a randomly initialised tiny Llama and a small trained BPE tokenizer to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    if chat_template:
        tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n"
                                   "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger weights than the default init make choices distinguishable
        for p in model.parameters():
            p.mul_(8.0 if p.dim() > 1 else 1.0)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def binary_run(spec: str, tasks: dict[tuple[str, str], Any], *, hash_suffix: str = "") -> Any:
    """A RunRecord with one 0/1 ``acc`` per item for each (suite, task); ``legal`` is the
    target suite, every other suite general."""
    import numpy as np

    from ftguard.record import (
        MetricResult,
        ModelInfo,
        RunRecord,
        SampleResult,
        SuiteResult,
        TaskResult,
    )

    suites: dict[str, list[TaskResult]] = {}
    for (suite, task), correct in tasks.items():
        samples = [SampleResult(id=f"{task}-{i}", prompt_hash=f"h{i}",
                                prediction="yes" if c else "no", target="yes",
                                scores={"acc": float(c)}, prompt=f"Question {i}?")
                   for i, c in enumerate(correct)]
        metric = MetricResult(value=float(np.mean(correct)), ci_low=0, ci_high=1, n=len(correct),
                              higher_is_better=True)
        suites.setdefault(suite, []).append(TaskResult(name=task, kind="choice",
                                                       metrics={"acc": metric}, samples=samples))
    return RunRecord(model=ModelInfo(spec=spec, fingerprint=f"sha256:{spec}", dtype="float32",
                                     backend="fake"),
                     suites=[SuiteResult(name=s, version="1", hash=f"{s}-hash{hash_suffix}",
                                         role="target" if s == "legal" else "general", tasks=t)
                             for s, t in suites.items()])


def flipped_pair(n: int = 1000, right_to_wrong: int = 40, wrong_to_right: int = 10,
                 seed: int = 0) -> tuple[Any, Any]:
    """0/1 correctness of a base run (70% right) and of a tuned run that flips exactly
    ``right_to_wrong`` correct items to wrong and ``wrong_to_right`` the other way."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.random(n) < 0.7
    tuned = base.copy()
    correct, wrong = np.flatnonzero(base), np.flatnonzero(~base)
    tuned[rng.choice(correct, right_to_wrong, replace=False)] = False
    tuned[rng.choice(wrong, wrong_to_right, replace=False)] = True
    return base, tuned


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama saved as safetensors (built once per session)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model_other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model with a different width (for adapter mismatch tests)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny2") / "model", seed=1, hidden=48)


@pytest.fixture(scope="session")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """ftguard's wheel installed into a fresh venv (tests/wheel_env.py; built once per session)."""
    from wheel_env import build_wheel_env

    return build_wheel_env(REPO, tmp_path_factory.mktemp("wheel"))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


MC_ROWS = [
    {"id": "q1", "question": "What is the capital of France?",
     "choices": ["Paris", "Berlin", "Madrid", "Rome"], "answer": 0},
    {"id": "q2", "question": "Which one is a colour?", "choices": ["blue", "dog", "four", "yes"],
     "answer": 0},
    {"id": "q3", "question": "How many legs does a dog have?",
     "choices": ["two", "three", "four", "five"], "answer": 2},
    {"id": "q4", "question": "Water boils at how many degrees?",
     "choices": ["one hundred", "ten", "zero", "fifty"], "answer": 0},
    {"id": "q5", "question": "Which word means the opposite of yes?",
     "choices": ["no", "true", "green", "fox"], "answer": 0},
    {"id": "q6", "question": "The quick brown fox jumps over the lazy what?",
     "choices": ["dog", "cat", "contract", "notice"], "answer": 0},
]

MC_TASK = """\
  - name: mc
    kind: choice
    data: data/mc.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    choices_field: choices
    target_index: "{{ answer }}"
"""
"""A multiple-choice task over ``data/mc.jsonl`` rows shaped like :data:`MC_ROWS`."""


def suite_yaml(name: str, role: str = "general", tasks: str = MC_TASK) -> str:
    """suite.yaml text with ``tasks`` (YAML list items, indented two spaces)."""
    return f"name: {name}\nversion: 1\nrole: {role}\ntasks:\n{tasks}"


SMOKE_SUITE = """\
name: smoke
version: 1
role: general
tasks:
  - name: mc
    kind: choice
    data: data/mc.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    choices_field: choices
    target_index: "{{ answer }}"
  - name: qa
    kind: generate
    data: data/qa.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target_field: answers
    generation: {max_new_tokens: 8, stop: ["\\n"]}
    metrics: [exact_match, f1, bleu]
  - name: sentiment
    kind: classify
    data: data/cls.jsonl
    prompt: "Review: {{ text }}\\nSentiment:"
    target: "{{ label }}"
    labels: [positive, negative]
  - name: corpus
    kind: perplexity
    data: data/ppl.jsonl
    prompt: "{{ text }}"
"""


SMOKE_FILES: dict[str, Any] = {
    "data/mc.jsonl": MC_ROWS,
    "data/qa.jsonl": [{"id": "a1", "question": "What is the capital of France?",
                       "answers": ["Paris"]},
                      {"id": "a2", "question": "What colour is the sky?",
                       "answers": ["blue", "light blue"]}],
    "data/cls.jsonl": [{"id": "c1", "text": "I loved this film.", "label": "positive"},
                       {"id": "c2", "text": "Dull and too long.", "label": "negative"},
                       {"id": "c3", "text": "A wonderful story.", "label": "positive"}],
    "data/ppl.jsonl": [{"id": "p1", "text": "The quick brown fox jumps over the lazy dog."},
                       {"id": "p2", "text": "Either party may terminate this Agreement."}],
}
"""The data files of :data:`SMOKE_SUITE`."""


def write_suite(root: Path, yaml: str = SMOKE_SUITE, files: dict[str, Any] | None = None) -> Path:
    """A suite folder at ``root``: ``yaml`` as suite.yaml, :data:`SMOKE_FILES`, then ``files``
    (name -> JSONL rows, text or bytes) on top."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(yaml, encoding="utf-8")
    for rel, content in {**SMOKE_FILES, **(files or {})}.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            write_jsonl(target, content)
    return root


@pytest.fixture
def make_suite(tmp_path: Path) -> Callable[..., Path]:
    """Write a suite folder; ``yaml`` replaces suite.yaml, ``files`` maps name -> rows/text."""

    def make(yaml: str = SMOKE_SUITE, files: dict[str, Any] | None = None,
             name: str = "suite") -> Path:
        return write_suite(tmp_path / name, yaml, files)

    return make


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``ftguard`` in-process; return (exit code, stdout, stderr)."""
    from ftguard.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def lora_adapters(base: Path, folder: Path, seeds: tuple[int, ...] = (5, 6)) -> list[Path]:
    """Random (non-zero) LoRA adapters of ``base``, one per seed, saved under ``folder``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapters = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"],
            init_lora_weights=False))
        model.save_pretrained(folder / f"adapter{seed}")
        adapters.append(folder / f"adapter{seed}")
    return adapters


def checkpoint_evaluator(suites: list[Any], out: Path, model_folder: Path) -> Any:
    """The trainer's evaluator of checkpoints on ``suites``, for a tiny model folder."""
    from transformers import AutoTokenizer

    from ftguard.engine.settings import RunSettings
    from ftguard.record import ModelInfo
    from ftguard.train.checkpoint_eval import CheckpointEvaluator

    info = ModelInfo(spec="tiny", fingerprint="sha256:tiny", dtype="float32", backend="hf")
    return CheckpointEvaluator(suites, out, info, AutoTokenizer.from_pretrained(model_folder),
                               settings=RunSettings(), batch_size=None, max_length=64)
