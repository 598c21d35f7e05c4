"""ftguard train end to end on tiny models: each method learns and reloads, checkpoints are
evaluated and the right one exported, Ctrl-C resumes to the same weights, two processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, build_tiny_model, write_jsonl

WORDS = ["fox", "dog", "sky", "blue", "green", "water", "Paris", "contract", "party", "notice"]
ROWS = [{"instruction": f"Repeat the word {w}.", "output": f"{w} {w} {w}"} for w in WORDS]

TARGET_SUITE = """\
name: repeat
version: 1
role: target
tasks:
  - name: repeat
    kind: generate
    data: data.jsonl
    prompt: "Repeat the word {{ w }}."
    chat_template: true
    target: "{{ w }} {{ w }} {{ w }}"
    generation: {max_new_tokens: 8, stop: ["\\n"]}
    metrics: [f1, exact_match]
"""

GENERAL_SUITE = """\
name: general
version: 1
role: general
tasks:
  - name: corpus
    kind: perplexity
    data: data.jsonl
    prompt: "{{ text }}"
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    build_tiny_model(root / "tiny")
    build_tiny_model(root / "tiny64", hidden=64)  # bitsandbytes' 4-bit CPU kernels need >= 64
    write_jsonl(root / "train.jsonl", ROWS)
    (root / "target").mkdir()
    (root / "target" / "suite.yaml").write_text(TARGET_SUITE)
    write_jsonl(root / "target" / "data.jsonl", [{"id": w, "w": w} for w in WORDS])
    (root / "general").mkdir()
    (root / "general" / "suite.yaml").write_text(GENERAL_SUITE)
    write_jsonl(root / "general" / "data.jsonl", [
        {"id": "a", "text": "The quick brown fox jumps over the lazy dog."},
        {"id": "b", "text": "Either party may terminate this Agreement upon written notice."},
        {"id": "c", "text": "Water boils at one hundred degrees. The sky is blue."}])
    return root


def train(workspace: Path, out: str, **settings: Any) -> Any:
    from ftguard.train.config_file import load_train_config
    from ftguard.train.run import run_training

    overrides = {"model": str(workspace / "tiny"), "data.train": str(workspace / "train.jsonl"),
                 "data.validation_fraction": 0.0, "optim.lr": 0.01, "optim.batch_size": 5,
                 "optim.epochs": 6, "logging_steps": 2, "out": str(workspace / out)}
    overrides.update(settings)
    cfg = load_train_config(None, overrides)
    return run_training(cfg, quiet=True, overwrite=True)


def response_logprob(workspace: Path, **load: Any) -> float:
    """Mean log-probability of the training responses after their chat prompts."""
    from ftguard.models.base import LoglikelihoodRequest
    from ftguard.models.load import LoadOptions, load_backend

    backend = load_backend(LoadOptions(device="cpu", **{"model": str(workspace / "tiny"), **load}))
    requests = [LoglikelihoodRequest(
        backend.apply_chat_template([{"role": "user", "content": r["instruction"]}]), r["output"])
        for r in ROWS]
    results = backend.loglikelihood(requests)
    return sum(r.logprob for r in results) / len(results)


@pytest.mark.parametrize(("method", "lr", "epochs", "reload"), [
    ("lora", 0.01, 6, {}),
    ("full", 0.003, 6, {}),
    ("prompt", 0.3, 20, {}),  # virtual tokens alone learn slowly on a random tiny model
    ("prefix", 0.3, 6, {}),
    ("qlora", 0.01, 6, {"load_in_4bit": True}),
])
def test_each_method_learns_and_reloads(workspace: Path, method: str, lr: float, epochs: int,
                                        reload: dict[str, Any]) -> None:
    model = "tiny64" if method == "qlora" else "tiny"
    record = train(workspace, f"out-{method}", method=method, model=str(workspace / model),
                   **{"optim.lr": lr, "optim.epochs": epochs})
    losses = [p.loss for p in record.log]
    assert record.status == "completed"
    assert record.steps == record.planned_steps == epochs * len(ROWS) // 5
    assert losses[-1] < 0.85 * losses[0], losses
    out = workspace / f"out-{method}"
    assert (out / "train_record.json").is_file() and (out / "config.yaml").is_file()
    if method == "full":
        assert (out / "model" / "model.safetensors").is_file()
        loaded = {"model": str(out / "model")}
    else:
        assert (out / "adapter" / "adapter_model.safetensors").is_file()
        loaded = {"adapter": str(out / "adapter"), **reload}
    base = response_logprob(workspace, model=str(workspace / model), **reload)
    tuned = response_logprob(workspace, **{"model": str(workspace / model), **loaded})
    assert tuned > base + 1.0, (base, tuned)  # the exported weights are the trained ones
    assert 0 < record.trainable_params <= record.total_params


@pytest.mark.parametrize("settings", [
    {"lora.dora": True}, {"lora.rslora": True}, {"optim.optimizer": "adamw_8bit"},
    {"optim.gradient_checkpointing": True}, {"data.group_by_length": True},
    {"data.streaming": True}, {"data.prompt_loss_weight": 0.5},
    {"optim.scheduler": "linear", "optim.warmup_ratio": 0.2, "optim.grad_accum": 2},
], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_lora_variants_train(workspace: Path, settings: dict[str, Any]) -> None:
    record = train(workspace, "out-variant", **{"optim.max_steps": 8, "logging_steps": 1,
                                                **settings})
    assert record.status == "completed" and record.steps == 8
    first, last = record.log[0].loss, record.log[-1].loss
    assert last < first, [p.loss for p in record.log]
    saved = json.loads((workspace / "out-variant" / "adapter" / "adapter_config.json").read_text())
    assert saved["use_dora"] is settings.get("lora.dora", False)
    assert saved["use_rslora"] is settings.get("lora.rslora", False)
    if "optim.warmup_ratio" in settings:  # 20% of 8 steps warm up linearly from 0
        assert record.log[0].lr < record.log[1].lr


def test_lora_trains_only_the_adapter_and_records_the_run(workspace: Path) -> None:
    record = train(workspace, "out-record", **{"lora.r": 4, "lora.target_modules": ["q_proj",
                                                                                    "v_proj"]})
    # r * (in + out) per adapted matrix: q is 32x32, v is 32x16 (2 of 4 heads are kv heads)
    assert record.trainable_params == 2 * 4 * ((32 + 32) + (32 + 16))
    assert record.data.sources[0].rows == 10 and record.data.train_examples == 60
    assert record.memory_estimate.total > 0 and record.peak_memory
    assert record.tokens_per_second and record.tokens_per_second > 0
    assert [p.step for p in record.log] == list(range(2, 13, 2))
    assert record.log[0].lr > record.log[-1].lr  # cosine decay
    saved = json.loads((workspace / "out-record" / "adapter" / "adapter_config.json").read_text())
    assert sorted(saved["target_modules"]) == ["q_proj", "v_proj"] and saved["r"] == 4


def test_checkpoints_are_evaluated_and_the_chosen_one_exported(workspace: Path) -> None:
    from ftguard.record import read_run

    record = train(workspace, "out-eval", **{
        "eval.suites": [str(workspace / "target"), str(workspace / "general")],
        "eval.every_steps": 4, "eval.subset": 6, "eval.best": "target",
        "data.validation_fraction": 0.2, "optim.epochs": 8})
    out = workspace / "out-eval"
    assert "gain versus alignment tax" in (out / "report.html").read_text()
    steps = [c.step for c in record.checkpoints]
    # 8 training rows (2 held out) x 8 epochs / 5 per step = 13 steps; every 4 and the last
    assert record.planned_steps == 13 and steps == [0, 4, 8, 12, 13]
    for point in record.checkpoints:
        run = read_run(out / point.run)
        assert run.config.train_step == point.step
        assert len(run.suites[0].tasks[0].samples) == 6  # fixed subset of 10 items
        ids = [s.id for s in run.suites[0].tasks[0].samples]
        assert ids == [s.id for s in read_run(out / record.checkpoints[0].run)
                       .suites[0].tasks[0].samples]
    trained = [c for c in record.checkpoints if c.step > 0]
    assert all(c.gate_passed is not None and c.alignment_tax is not None for c in trained)
    assert all(c.val_loss is not None for c in record.checkpoints)
    best = max(trained, key=lambda c: (c.target_score, -c.step))
    assert record.best is not None and record.best.step == best.step
    # the exported adapter holds the chosen checkpoint's weights
    from safetensors.torch import load_file

    exported = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    chosen = load_file(str(out / "checkpoints" / f"checkpoint-{best.step}" /
                            "adapter_model.safetensors"))
    assert exported.keys() == chosen.keys()
    assert all((exported[k] == chosen[k]).all() for k in exported)


def _point(step: int, gain: float | None, forgetting: float | None, passed: bool | None,
           val: float | None = None) -> Any:
    from ftguard.train.record import CheckpointEval

    return CheckpointEval(step=step, run=f"evals/step-{step:06d}.json", gain=gain,
                          alignment_tax=None if forgetting is None else -forgetting,
                          gate_passed=passed, val_loss=val,
                          target_score=gain)


def test_best_checkpoint_rules_on_a_constructed_case() -> None:
    from ftguard.train.checkpoint_eval import choose_best

    points = [_point(0, None, None, None, 2.0), _point(100, 0.05, 0.0, True, 1.5),
              _point(200, 0.12, 0.01, True, 1.2), _point(300, 0.20, 0.06, False, 1.3),
              _point(400, 0.15, 0.08, False, 1.4)]
    assert choose_best(points, "target_passing_gate").step == 200  # 300 gains more but fails
    assert choose_best(points, "target").step == 300
    assert choose_best(points, "val_loss").step == 200
    assert choose_best(points, "last").step == 400
    failing = [points[0], *(p.model_copy(update={"gate_passed": False}) for p in points[1:])]
    chosen = choose_best(failing, "target_passing_gate")
    assert chosen.step == 100 and "least alignment tax" in chosen.reason
    assert choose_best(points[:1], "target") is None


def test_gate_early_stopping_and_overfitting_warning() -> None:
    from ftguard.train.callbacks import Session, _overfitting, _should_stop
    from ftguard.train.config import TrainConfig
    from ftguard.train.record import LogPoint, ValidationPoint

    cfg = TrainConfig.model_validate({"eval": {"suites": ["x"], "early_stopping": {
        "watch": "gate", "max_forgetting": 0.05}}})
    record: Any = type("R", (), {})()
    record.checkpoints, record.warnings = [_point(100, 0.1, 0.03, True)], []
    session = Session(cfg=cfg, record=record, save_record=None, validation_loss=None,
                      evaluator=None, is_main=True)
    assert not _should_stop(session, None)
    record.checkpoints.append(_point(200, 0.2, 0.07, True))
    assert _should_stop(session, None) and "7.0%" in session.stop_reason
    record.checkpoints[-1] = _point(200, 0.2, 0.01, False)
    assert _should_stop(session, None) and "gate failed" in session.stop_reason

    record.validation = [ValidationPoint(step=s, loss=v) for s, v in
                         [(10, 1.0), (20, 1.1), (30, 1.2)]]
    record.log = [LogPoint(step=s, epoch=0, loss=v, lr=0) for s, v in
                  [(10, 2.0), (20, 1.5), (30, 1.0)]]
    _overfitting(session)
    assert record.warnings and record.warnings[0].startswith("possible overfitting")


def test_val_loss_early_stopping(workspace: Path) -> None:
    record = train(workspace, "out-stop", **{
        "data.validation_fraction": 0.3, "eval.every_steps": 1, "optim.lr": 0.5,
        "optim.scheduler": "constant", "eval.early_stopping": {"watch": "val_loss", "patience": 2}})
    assert record.status == "stopped_early" and "validation loss" in record.stop_reason
    assert record.steps < record.planned_steps
    assert record.best is not None and record.best.rule == "last"


def test_ctrl_c_saves_and_resume_reaches_the_same_weights(workspace: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    from ftguard.train import hf_trainer
    from ftguard.train.config_file import load_train_config
    from ftguard.train.run import run_training

    full = train(workspace, "out-straight", **{"eval.every_steps": 4})
    assert full.status == "completed"

    from transformers import TrainerCallback

    class PressCtrlC(TrainerCallback):  # a real SIGINT to this process after step 5
        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 5:
                os.kill(os.getpid(), signal.SIGINT)

    original = hf_trainer.make_trainer
    monkeypatch.setattr(hf_trainer, "make_trainer",
                        lambda m, a, d, c, cbs, t: original(m, a, d, c, [PressCtrlC(), *cbs], t))
    stopped = train(workspace, "out-resumed", **{"eval.every_steps": 4})
    assert stopped.status == "interrupted" and stopped.steps == 6
    out = workspace / "out-resumed"
    assert (out / "checkpoints" / "checkpoint-6").is_dir() and not (out / "adapter").exists()
    monkeypatch.setattr(hf_trainer, "make_trainer", original)

    cfg = load_train_config(out / "config.yaml", {})
    resumed = run_training(cfg, resume=True, quiet=True)
    assert resumed.status == "completed" and resumed.steps == 12
    assert [p.step for p in resumed.log] == [p.step for p in full.log]
    for a, b in zip(resumed.log, full.log):
        assert a.loss == pytest.approx(b.loss, rel=1e-4)
    straight = load_file(str(workspace / "out-straight" / "adapter" / "adapter_model.safetensors"))
    again = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    for key, value in straight.items():
        assert (again[key] - value).abs().max() < 1e-5


def test_neftune_noise_only_in_training_mode(workspace: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import TrainerCallback

    from ftguard.train import hf_trainer

    seen: dict[str, bool] = {}

    class Probe(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None,
                        **kw: Any) -> None:
            embed = model.get_input_embeddings()
            ids = torch.tensor([[1, 2, 3, 4, 5]])
            clean = torch.nn.functional.embedding(ids, embed.weight)
            was = embed.training
            embed.train()
            seen["train_noisy"] = not torch.allclose(embed(ids), clean)
            embed.eval()
            seen["eval_clean"] = torch.equal(embed(ids), clean)
            embed.train(was)

    original = hf_trainer.make_trainer
    monkeypatch.setattr(hf_trainer, "make_trainer",
                        lambda m, a, d, c, cbs, t: original(m, a, d, c, [Probe(), *cbs], t))
    train(workspace, "out-neftune", neftune_alpha=5.0, **{"optim.max_steps": 2})
    assert seen == {"train_noisy": True, "eval_clean": True}


def test_packing_and_mixture(workspace: Path) -> None:
    write_jsonl(workspace / "replay.jsonl", [{"prompt": f"Say {w}:", "completion": f" {w}."}
                                             for w in WORDS * 3])
    record = train(workspace, "out-mix", **{
        "data.train": None, "data.packing": True, "data.max_length": 64,
        "data.mix": [{"path": str(workspace / "train.jsonl"), "ratio": 0.5, "name": "domain"},
                     {"path": str(workspace / "replay.jsonl"), "ratio": 0.5}]})
    data = record.data
    assert [s.name for s in data.sources] == ["domain", "replay"]
    assert [s.format for s in data.sources] == ["instruction", "prompt_completion"]
    assert data.packing and data.packed_rows is not None
    assert data.packed_rows < data.train_examples  # several examples per row
    assert [p.loss for p in record.log][-1] < record.log[0].loss


def test_accelerate_launch_two_processes(workspace: Path) -> None:
    """Two real processes (torchrun under accelerate, gloo on CPU) train one LoRA."""
    config = workspace / "ddp.yaml"
    config.write_text(f"model: {workspace / 'tiny'}\ndata:\n  train: {workspace / 'train.jsonl'}\n"
                      "  validation_fraction: 0\noptim:\n  batch_size: 5\n  epochs: 6\n"
                      f"eval:\n  suites: [{workspace / 'target'}, {workspace / 'general'}]\n"
                      "  every_steps: 3\nlogging_steps: 2\n")
    out = workspace / "out-ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port, so parallel runs do not collide on 29500
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    accelerate = Path(sys.executable).with_name("accelerate")
    result = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
         "-m", "ftguard", "train",
         str(config), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "train_record.json").read_text())
    # 60 examples, 5 per process per step, 2 processes: 6 steps instead of 12
    assert record["planned_steps"] == record["steps"] == 6
    assert record["status"] == "completed"
    assert [c["step"] for c in record["checkpoints"]] == [0, 3, 6]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert record["log"][-1]["loss"] < record["log"][0]["loss"]


@pytest.mark.parametrize(("optim", "line"), [
    ({"optim.batch_size": 2, "optim.grad_accum": 2, "optim.epochs": 2},
     "4 steps x 4 = 16 examples drawn (~2 epochs)"),
    ({"optim.batch_size": 3, "optim.epochs": 2},  # 16 draws: 5 full steps and one of 1
     "6 steps x 3 (the last 1) = 16 examples drawn (~2 epochs)"),
    ({"optim.batch_size": 3, "optim.max_steps": 3}, "3 steps x 3 = 9 examples drawn (~1.12 epochs)"),
])
def test_train_says_rows_split_steps_and_examples_drawn(workspace: Path, optim: dict[str, Any],
                                                        line: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from ftguard.train.config_file import load_train_config
    from ftguard.train.run import run_training

    rows = len((workspace / "train.jsonl").read_text().splitlines())  # 10
    cfg = load_train_config(None, {
        "model": str(workspace / "tiny"), "data.train": str(workspace / "train.jsonl"),
        "data.validation_fraction": 0.2, "optim.lr": 0.01, "logging_steps": 100,
        "out": str(workspace / "out-line"), **optim})
    record = run_training(cfg, overwrite=True)
    said = [ln for ln in capsys.readouterr().err.splitlines() if "rows in the file" in ln]
    assert said == [f"{rows} rows in the file, {rows - 2} used for training, 2 for validation, "
                    + line]
    steps = int(line.split()[0])
    assert record.steps == record.planned_steps == steps  # the Trainer ran what was said
    assert record.data.train_rows == rows - 2 and record.data.validation_examples == 2


def test_the_effective_batch_counts_accumulation_and_processes() -> None:
    from ftguard.train.config import TrainConfig
    from ftguard.train.data_line import schedule

    cfg = TrainConfig.model_validate({"data": {"train": "t.jsonl"},
                                      "optim": {"batch_size": 2, "grad_accum": 3}})
    # 25 rows over 2 processes: 7 micro-batches of 2 each, 3 of them per step -> 3 steps
    assert schedule(cfg, 25, world=2) == (3, 12)
    assert schedule(cfg, 25, world=1) == (5, 6)  # 13 micro-batches of 2, 3 per step
