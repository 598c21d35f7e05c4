"""The ``ftguard train`` command.

Every config key can also be given as a flag; a flag overrides the config file. Flags map
to dotted config keys in :data:`FLAGS`, so the two never drift apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ftguard.cli.options import finite_float, subset_arg
from ftguard.errors import EXIT_OK, EXIT_SIGINT

FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--model", "model", {"metavar": "SPEC", "help": "base model (default smollm2-135m-instruct)"}),
    ("--method", "method", {"choices": ("lora", "qlora", "full", "prefix", "prompt")}),
    ("--data", "data.train", {"metavar": "FILE", "help": "training JSONL"}),
    ("--validation", "data.validation", {"metavar": "FILE", "help": "validation JSONL"}),
    ("--max-length", "data.max_length", {"type": int, "metavar": "N"}),
    ("--prompt-loss-weight", "data.prompt_loss_weight", {"type": finite_float, "metavar": "W"}),
    ("--packing", "data.packing", {"action": "store_const", "const": True}),
    ("--epochs", "optim.epochs", {"type": finite_float, "metavar": "N"}),
    ("--max-steps", "optim.max_steps", {"type": int, "metavar": "N"}),
    ("--lr", "optim.lr", {"type": finite_float, "metavar": "LR"}),
    ("--batch-size", "optim.batch_size", {"type": int, "metavar": "N"}),
    ("--grad-accum", "optim.grad_accum", {"type": int, "metavar": "N"}),
    ("--optimizer", "optim.optimizer",
     {"choices": ("adamw", "adamw_8bit", "paged_adamw_8bit", "sgd")}),
    ("--gradient-checkpointing", "optim.gradient_checkpointing",
     {"action": "store_const", "const": True}),
    ("--lora-r", "lora.r", {"type": int, "metavar": "R"}),
    ("--lora-alpha", "lora.alpha", {"type": finite_float, "metavar": "A"}),
    ("--neftune-alpha", "neftune_alpha", {"type": finite_float, "metavar": "A"}),
    ("--eval-suites", "eval.suites", {"nargs": "+", "metavar": "SUITE"}),
    ("--eval-every", "eval.every_steps", {"type": int, "metavar": "N"}),
    ("--eval-subset", "eval.subset", {"type": subset_arg, "metavar": "N|F"}),
    ("--seed", "seed", {"type": int}),
    ("--device", "device", {}),
    ("--dtype", "dtype", {"choices": ("auto", "float32", "bfloat16", "float16")}),
]


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``train`` on the main parser's subcommands."""
    train = commands.add_parser(
        "train", parents=[common], help="fine-tune (LoRA, QLoRA, full, prefix, prompt) and "
                                        "evaluate checkpoints for gain and alignment tax",
        description="Train from CONFIG.yaml and/or flags (flags win). Writes OUT/adapter (or "
                    "OUT/model), OUT/train_record.json and the checkpoint RunRecords. Ctrl-C "
                    "saves a checkpoint; --resume continues it.")
    train.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="training config")
    train.add_argument("--out", "-o", metavar="DIR", help="output folder")
    for flag, _, options in FLAGS:
        train.add_argument(flag, dest=_dest(flag), default=None, **options)
    train.add_argument("--resume", action="store_true", help="continue the run saved in OUT")
    train.add_argument("--overwrite", action="store_true", help="replace a run saved in OUT")
    train.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    train.set_defaults(handler=cmd_train)


def _dest(flag: str) -> str:
    return "train_" + flag.lstrip("-").replace("-", "_")


def cmd_train(args: argparse.Namespace) -> int:
    from ftguard.train.config_file import load_train_config
    from ftguard.train.run import CONFIG_FILE, run_training

    config = Path(args.config) if args.config else None
    if config is None and args.resume and args.out and (Path(args.out) / CONFIG_FILE).is_file():
        config = Path(args.out) / CONFIG_FILE  # resume with the config the run saved
    overrides = {key: getattr(args, _dest(flag)) for flag, key, _ in FLAGS}
    overrides["out"] = args.out
    cfg = load_train_config(config, overrides)
    record = run_training(cfg, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    return EXIT_SIGINT if record.status == "interrupted" else EXIT_OK
