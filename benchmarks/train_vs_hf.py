"""ftguard train vs a plain transformers Trainer + peft script: speed and peak memory.

Both sides fine-tune the embedded SmolLM2-135M-Instruct (float32, CPU) on the same rows of
``suites/legal/train.jsonl`` (instruction/input/output), formatted with the tokenizer's chat
template, prompt masked (loss on the response only), truncated to ``--max-length`` tokens,
in the same order, with the same batch size, number of steps, optimiser (AdamW, lr 2e-4,
cosine, 3 % warm-up, clipping at 1.0) and seed:

* ``ftguard``: ``run_training`` with no suites, no validation split, ``quiet=True``;
* ``plain``: ``AutoModelForCausalLM`` (+ peft ``LoraConfig`` r=16, alpha=32, dropout 0.05 on
  q/k/v/o/gate/up/down for lora and qlora; + ``BitsAndBytesConfig`` nf4 with double
  quantisation and ``prepare_model_for_kbit_training`` for qlora), ``DataCollatorForSeq2Seq``
  and a stock ``Trainer`` with ``train_sampling_strategy="sequential"``.

Every run is its own subprocess, so its peak RSS (``ru_maxrss``) is that run's alone (model
load included). Speed counts real (non-padding) input tokens, from the rows each trainer
consumed (sequential sampler: step ``i`` takes rows ``i*B .. i*B+B-1``). Two figures:

* ``steady tok/s``: tokens of steps W+1..N over the wall time from the end of step W to the
  end of step N (a timing callback on both trainers); this is the headline ratio;
* ``train() tok/s``: tokens of all N steps over the whole ``trainer.train()`` call (first
  steps' warm-up, and whatever the trainer does at the end, included).

Both sides are checked to train on identical token ids (a hash of the consumed rows).
The packing comparison runs ftguard lora with ``data.packing: true``, same steps and batch
(a packed row holds several examples), and compares real tokens per second.

Run: ``.venv/bin/python benchmarks/train_vs_hf.py [--steps 6] [--methods lora,qlora,full]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false")
os.environ.setdefault("FTGUARD_HOME", str(REPO / ".ftguard-cache"))

DATA = REPO / "suites" / "legal" / "train.jsonl"
MODEL = "smollm2-135m-instruct"
LR = 2e-4
SEED = 1234
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps (8)")
    parser.add_argument("--qlora-steps", type=int, default=4,
                        help="steps for qlora, both sides (4: 4-bit matmuls are slow on CPU)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="first steps left out of the steady figure (2)")
    parser.add_argument("--batch-size", type=int, default=4, help="both sides (4)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per row (256)")
    parser.add_argument("--methods", default="lora,qlora,full",
                        help="comma-separated subset of lora,qlora,full")
    parser.add_argument("--no-packing", action="store_true", help="skip the packing comparison")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs per side, alternating the order; the best counts (2)")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    parser.add_argument("--worker", choices=["ftguard", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--packing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# -- measured in both workers ------------------------------------------------------------


def _timer_callback() -> Any:
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock time at the end of every optimiser step and after a save."""

        def __init__(self) -> None:
            self.step_end: list[float] = []
            self.saved: float | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.step_end.append(time.perf_counter())

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.saved = time.perf_counter()

    return StepTimer()


def _row_stats(rows: list[list[int]], steps: int, batch: int, warmup: int) -> dict[str, Any]:
    """Real and padded token counts of the rows consumed by ``steps`` sequential batches."""
    if len(rows) < steps * batch:
        raise SystemExit(f"only {len(rows)} rows for {steps} steps of {batch}")
    real = padded = steady = 0
    digest = hashlib.sha256()
    for step in range(steps):
        chunk = rows[step * batch:(step + 1) * batch]
        n = sum(len(r) for r in chunk)
        real += n
        padded += batch * max(len(r) for r in chunk)
        if step >= warmup:
            steady += n
        for r in chunk:
            digest.update(json.dumps(r).encode())
    return {"real_tokens": real, "padded_tokens": padded, "steady_tokens": steady,
            "rows_sha256": digest.hexdigest()[:16]}


def _finish(kind: str, timer: Any, train_s: float, stats: dict[str, Any], warmup: int,
            extra: dict[str, Any]) -> None:
    ends = timer.step_end
    steps = len(ends)
    steady_s = ends[-1] - ends[warmup - 1] if warmup else None
    result = {
        "side": kind, "steps": steps, "train_s": round(train_s, 3),
        "steady_s": round(steady_s, 3) if steady_s else None,
        "train_tok_s": round(stats["real_tokens"] / train_s, 1),
        "steady_tok_s": round(stats["steady_tokens"] / steady_s, 1) if steady_s else None,
        "save_after_last_step_s": round(timer.saved - ends[-1], 3) if timer.saved else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **stats, **extra}
    print("RESULT " + json.dumps(result), flush=True)


def run_ftguard(args: argparse.Namespace) -> None:
    from ftguard.train import hf_trainer
    from ftguard.train.config_file import load_train_config
    from ftguard.train.run import run_training

    steps = args.steps
    captured: dict[str, Any] = {}
    original = hf_trainer.make_trainer

    def make_trainer(model: Any, targs: Any, dataset: Any, *rest: Any) -> Any:
        trainer = original(model, targs, dataset, *rest)
        captured["timer"] = _timer_callback()
        trainer.add_callback(captured["timer"])  # after ftguard's own callback
        captured["rows"] = [list(dataset[i]["input_ids"]) for i in range(len(dataset))]
        return trainer

    hf_trainer.make_trainer = make_trainer  # run.py imports it at call time
    with tempfile.TemporaryDirectory(prefix="ftg-bench-") as out:
        cfg = load_train_config(None, {
            "model": MODEL, "method": args.method, "out": out, "seed": SEED,
            "data.train": str(DATA), "data.validation_fraction": 0.0,
            "data.max_length": args.max_length, "data.packing": args.packing,
            "optim.batch_size": args.batch_size, "optim.max_steps": steps,
            "optim.optimizer": "adamw", "optim.lr": LR, "logging_steps": 10_000,
            "eval.suites": []})
        record = run_training(cfg, quiet=True)
    timer = captured["timer"]
    stats = _row_stats(captured["rows"], steps, args.batch_size, args.warmup)
    train_s = record.timings["train"] + record.timings.get("eval", 0.0)  # trainer.train() wall
    _finish("ftguard", timer, train_s, stats, args.warmup, {
        "record_tokens_per_second": record.tokens_per_second,
        "record_train_s": record.timings["train"], "model_load_s": record.timings["model_load"],
        "examples": record.data.train_examples, "packed_rows": record.data.packed_rows})


def _plain_rows(tokenizer: Any, max_length: int, count: int) -> list[dict[str, list[int]]]:
    """The first ``count`` training rows in ftguard's order (a seeded shuffle of the file)."""
    from ftguard.train.mixing import mixture_order

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    order = mixture_order([len(rows)], [1.0], None, count, SEED)
    out = []
    for _, index in order:
        row = rows[index]
        user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        prompt_msgs = [{"role": "user", "content": user}]
        prompt = tokenizer.apply_chat_template(prompt_msgs, tokenize=False,
                                               add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            prompt_msgs + [{"role": "assistant", "content": row["output"]}], tokenize=False)
        ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_length]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        labels = [-100] * n_prompt + ids[n_prompt:]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                    "labels": labels[:len(ids)]})
    return out


def run_plain(args: argparse.Namespace) -> None:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    t0 = time.perf_counter()
    steps, batch = args.steps, args.batch_size
    set_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(args.model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if args.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.float32)
        kwargs["device_map"] = {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(args.model_path, **kwargs)
    if args.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if args.method == "qlora":  # no gradient checkpointing, like ftguard's default
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, target_modules=LORA_TARGETS, bias="none",
            task_type="CAUSAL_LM"))
    load_s = time.perf_counter() - t0
    rows = _plain_rows(tokenizer, args.max_length, math.ceil(steps * batch * 1.1))
    with tempfile.TemporaryDirectory(prefix="plain-bench-") as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
            learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0.03,
            weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", seed=SEED,
            use_cpu=True, report_to="none", disable_tqdm=True, logging_steps=10_000,
            save_strategy="no", train_sampling_strategy="sequential",
            dataloader_num_workers=0)
        timer = _timer_callback()
        trainer = Trainer(model=model, args=targs, train_dataset=rows,
                          data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest"),
                          callbacks=[timer])
        t1 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t1
    stats = _row_stats([r["input_ids"] for r in rows], steps, batch, args.warmup)
    _finish("plain", timer, train_s, stats, args.warmup, {"model_load_s": round(load_s, 3)})


# -- driver ------------------------------------------------------------------------------


def _spawn(args: argparse.Namespace, side: str, method: str, steps: int, model_path: str,
           packing: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", side, "--method", method,
           "--steps", str(steps), "--warmup", str(args.warmup),
           "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
           "--model-path", model_path] + (["--packing"] if packing else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{side} {method} failed (exit {proc.returncode})")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["process_s"] = round(time.perf_counter() - t0, 1)
    print(f"  {side:<7} {method:<5}{' packed' if packing else '':<7} done in "
          f"{result['process_s']:.0f} s", file=sys.stderr, flush=True)
    return result


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} -")
    return ", ".join(parts)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "ftguard":
        run_ftguard(args)
        return 0
    if args.worker == "plain":
        run_plain(args)
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - {"lora", "qlora", "full"}
    if unknown:
        raise SystemExit(f"--methods: unknown {', '.join(sorted(unknown))}")
    if min(args.steps, args.qlora_steps) <= args.warmup:
        raise SystemExit("--steps and --qlora-steps must exceed --warmup")
    from ftguard.models.resolve import resolve_model

    t0 = time.perf_counter()
    model_path = str(resolve_model(MODEL).path)  # converts from GGUF once (~30 s)
    print(f"model: {MODEL} at {model_path} ({time.perf_counter() - t0:.1f} s to resolve)")
    print(f"versions: python {sys.version.split()[0]}, {_versions()}; "
          f"{os.cpu_count()} CPUs, float32, CPU")
    print(f"data: {DATA.relative_to(REPO)}, chat template, prompt masked, truncated to "
          f"{args.max_length} tokens, ftguard's seeded order on both sides")
    print(f"settings: batch {args.batch_size}, steps {args.steps} (qlora {args.qlora_steps}), best of {args.repeats} alternating runs, "
          f"steady = steps {args.warmup + 1}..N, adamw lr {LR:g} cosine warm-up 3%, clip 1.0, "
          f"seed {SEED}; lora/qlora r=16 alpha=32 dropout 0.05 on {','.join(LORA_TARGETS)}; "
          "qlora nf4 + double quant, no gradient checkpointing")
    results: dict[str, Any] = {"settings": vars(args) | {"out": str(args.out)},
                               "versions": _versions(), "runs": {}}
    rows = []
    for i, method in enumerate(methods):
        steps = args.qlora_steps if method == "qlora" else args.steps
        order = ["ftguard", "plain"] if i % 2 == 0 else ["plain", "ftguard"]
        runs: dict[str, list[dict[str, Any]]] = {"ftguard": [], "plain": []}
        for repeat in range(args.repeats):  # alternate the order; keep each side's best
            for side in (order if repeat % 2 == 0 else order[::-1]):
                runs[side].append(_spawn(args, side, method, steps, model_path))
        pair = {side: max(rs, key=lambda r: r["steady_tok_s"]) for side, rs in runs.items()}
        f, p = pair["ftguard"], pair["plain"]
        results["runs"][method] = pair
        same = "yes" if f["rows_sha256"] == p["rows_sha256"] else "NO"
        rows.append([method, str(steps), f"{f['steady_tok_s']:.0f}", f"{p['steady_tok_s']:.0f}",
                     f"{f['steady_tok_s'] / p['steady_tok_s']:.2f}",
                     f"{f['train_tok_s']:.0f}", f"{p['train_tok_s']:.0f}",
                     f"{f['train_tok_s'] / p['train_tok_s']:.2f}",
                     f"{f['peak_rss_mib']:.0f}", f"{p['peak_rss_mib']:.0f}", same])
    print()
    print(_table(["method", "steps", "ftguard tok/s", "plain tok/s", "ratio",
                  "ftg train() tok/s", "plain train() tok/s", "ratio",
                  "ftguard RSS MiB", "plain RSS MiB", "same tokens?"], rows))
    print("tok/s = real (non-padding) tokens per second over steps "
          f"{args.warmup + 1}..N; train() = all steps over the whole trainer.train() call; "
          "ratio = ftguard / plain (>= 1: ftguard not slower)")
    for method, pair in results["runs"].items():
        f, p = pair["ftguard"], pair["plain"]
        print(f"{method}: {f['real_tokens']} real tokens in {f['steps']} steps "
              f"(padding {1 - f['real_tokens'] / f['padded_tokens']:.0%}); train() "
              f"{f['train_s']:.1f} s vs {p['train_s']:.1f} s; ftguard saves a checkpoint after "
              f"the last step: {f['save_after_last_step_s'] or 0:.1f} s; ftguard's own "
              f"record.tokens_per_second {f['record_tokens_per_second']:.0f}; "
              f"model load {f['model_load_s']:.1f} s vs {p['model_load_s']:.1f} s")
    if not args.no_packing:
        base = (results["runs"]["lora"]["ftguard"] if "lora" in results["runs"]
                else _spawn(args, "ftguard", "lora", args.steps, model_path))
        packed = _spawn(args, "ftguard", "lora", args.steps, model_path, packing=True)
        results["packing"] = {"unpacked": base, "packed": packed}
        prow = []
        for name, r in (("no", base), ("yes", packed)):
            prow.append([name, f"{r['real_tokens'] / r['steps'] / args.batch_size:.0f}",
                         f"{1 - r['real_tokens'] / r['padded_tokens']:.0%}",
                         f"{r['steady_tok_s']:.0f}", f"{r['train_tok_s']:.0f}",
                         f"{r['peak_rss_mib']:.0f}"])
        print()
        print(f"packing (ftguard lora, {args.steps} steps of {args.batch_size} rows, "
              f"max length {args.max_length}):")
        print(_table(["packing", "real tokens/row", "padding", "tok/s", "train() tok/s",
                      "RSS MiB"], prow))
        print(f"packing speed-up (real tokens/s): {packed['steady_tok_s'] / base['steady_tok_s']:.2f}x"
              f" steady, {packed['train_tok_s'] / base['train_tok_s']:.2f}x train(); "
              f"{packed['examples']} examples packed into {packed['packed_rows']} rows")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
