"""The ``ftguard merge-adapter`` command: a LoRA adapter merged into its base model."""

from __future__ import annotations

import argparse
from typing import Any

from ftguard.errors import EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``merge-adapter`` on the main parser's subcommands."""
    merge = commands.add_parser(
        "merge-adapter", parents=[common], help="merge a LoRA adapter into its base model",
        description="Write base + adapter as one plain model folder (safetensors); it "
                    "evaluates like the base with the adapter applied.")
    merge.add_argument("adapter", metavar="ADAPTER", help="LoRA adapter folder")
    merge.add_argument("--out", "-o", metavar="DIR", required=True, help="folder to write")
    merge.add_argument("--model", metavar="SPEC",
                       help="base model (default: the one recorded in the adapter)")
    merge.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    merge.add_argument("--allow-pickle", action="store_true")
    merge.add_argument("--trust-remote-code", action="store_true")
    merge.set_defaults(handler=cmd_merge_adapter)


def cmd_merge_adapter(args: argparse.Namespace) -> int:
    from ftguard.outputs import output_dir
    from ftguard.train.merge import merge_adapter

    output_dir(args.out, "--out")
    path = merge_adapter(args.adapter, args.out, model=args.model, allow_pickle=args.allow_pickle,
                         trust_remote_code=args.trust_remote_code, overwrite=args.overwrite)
    print(f"wrote {path}")
    return EXIT_OK
