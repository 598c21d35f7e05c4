"""The ``ftguard merge`` command: combine fine-tunes of one base model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftguard.errors import UsageError


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``merge`` on the main parser."""
    from ftguard.merge import METHODS

    merge = commands.add_parser(
        "merge", parents=[common],
        help="combine fine-tunes of one base (linear, task arithmetic, TIES, DARE, SLERP)",
        description="Merge full fine-tunes or LoRA adapters of one base model, tensor by "
                    "tensor (safetensors, streaming). Inputs of another architecture, "
                    "tokenizer or base are refused.")
    merge.add_argument("models", nargs="+", metavar="MODEL",
                       help="fine-tuned model folders or LoRA adapter folders of --base")
    merge.add_argument("--base", required=True, metavar="SPEC",
                       help="the base model (folder, hub id or smollm2-135m-instruct)")
    merge.add_argument("--method", choices=METHODS, default="task_arithmetic")
    merge.add_argument("--weights", metavar="W1,W2,...",
                       help="one weight per model (default: 1 each; linear normalises them)")
    merge.add_argument("--lambda", dest="lam", type=float, default=1.0, metavar="L",
                       help="merging weight: scale of the merged task vector (linear: moves "
                            "from the base to the average; slerp: t). Default 1")
    merge.add_argument("--density", type=float, default=0.5, metavar="D",
                       help="ties: fraction of each task vector kept; dare: 1 - drop "
                            "probability (default 0.5)")
    merge.add_argument("--seed", type=int, default=0, help="dare's drop masks (default 0)")
    merge.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                       default="auto", help="dtype of the saved weights (auto: the base's)")
    merge.add_argument("--out", "-o", metavar="DIR", type=Path, required=True,
                       help="folder for the merged model")
    merge.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    merge.set_defaults(handler=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from ftguard.merge.inputs import open_inputs
    from ftguard.merge.write import write_merged
    from ftguard.models.resolve import resolve_model
    from ftguard.train.merge import _check_out

    spec = merge_spec(args)
    base = resolve_model(args.base, allow_pickle=False).path
    models = [Path(m).expanduser() for m in args.models]
    for model in models:
        if not model.is_dir():
            raise UsageError(f"{model}: no such folder.",
                             hint="Give fine-tuned model folders or LoRA adapter folders.")
    out = _check_out(args.out.expanduser(), args.overwrite, inputs=(base, *models))
    inputs = open_inputs(base, models)
    try:
        record = write_merged(inputs, spec, out, dtype=args.dtype)
    finally:
        inputs.close()
    print(f"merged {len(models)} model(s) with {spec.describe()} into {out} "
          f"({record['tensors']} tensors, {record['seconds']:.1f} s)", file=sys.stderr)
    return 0


def merge_spec(args: argparse.Namespace) -> Any:
    """The MergeSpec of ``--method``, ``--weights``, ``--lambda``, ``--density``, ``--seed``,
    checked against the number of models."""
    from ftguard.merge.methods import MergeSpec

    n = len(args.models)
    if args.method == "slerp" and n != 2:
        raise UsageError(f"--method slerp interpolates exactly two models; {n} given.",
                         hint="Give two models, or use linear, task_arithmetic, ties or dare.")
    weights = tuple([1.0] * n)
    if args.weights is not None:
        try:
            weights = tuple(float(w) for w in args.weights.split(","))
        except ValueError:
            raise UsageError(f"--weights {args.weights}: give numbers separated by commas "
                             "(e.g. 0.7,0.3).") from None
        if len(weights) != n:
            raise UsageError(f"--weights {args.weights}: {len(weights)} weight(s) for {n} "
                             "model(s).", hint="Give one weight per model, in order.")
    if args.method == "linear" and sum(weights) == 0:
        raise UsageError(f"--weights {args.weights}: linear divides by their sum, which is 0.")
    if not 0 < args.density <= 1:
        raise UsageError(f"--density {args.density}: must be in (0, 1].",
                         hint="ties keeps this fraction of each task vector; dare drops each "
                              "element with probability 1 - density.")
    return MergeSpec(args.method, weights, lam=args.lam, density=args.density, seed=args.seed)
