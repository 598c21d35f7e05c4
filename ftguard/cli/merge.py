"""The ``ftguard merge`` command: combine fine-tunes of one base model."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.cli.options import (
    finite_float,
    parse_batch_size,
    policy_factory,
    run_settings,
    subset_item,
)
from ftguard.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError
from ftguard.outputs import output_dir, output_file

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ftguard.engine.settings import RunSettings
    from ftguard.gate import Policy
    from ftguard.merge.inputs import Inputs
    from ftguard.merge.methods import MergeSpec
    from ftguard.merge.sweep_record import SweepRecord
    from ftguard.models.load import LoadOptions
    from ftguard.record import RunRecord
    from ftguard.suite import Suite


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
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
    merge.add_argument("--lambda", dest="lam", type=finite_float, default=1.0, metavar="L",
                       help="merging weight: scale of the merged task vector (linear: moves "
                            "from the base to the average; slerp: t). Default 1")
    merge.add_argument("--density", type=finite_float, default=0.5, metavar="D",
                       help="ties: fraction of each task vector kept; dare: 1 - drop "
                            "probability (default 0.5)")
    merge.add_argument("--seed", type=int, default=0, help="dare's drop masks (default 0)")
    merge.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                       default="auto", help="dtype of the saved weights (auto: the base's)")
    merge.add_argument("--out", "-o", metavar="DIR", type=Path, required=True,
                       help="folder for the merged model")
    merge.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    _sweep_options(merge)
    merge.set_defaults(handler=cmd_merge)


def _sweep_options(merge: argparse.ArgumentParser) -> None:
    g = merge.add_argument_group(
        "choosing the merge under the gate",
        "With --suites, each merge is evaluated against the base (on a sample of every task, "
        "then on the whole suites for the best) and --out receives the one with the best "
        "target gain among those whose general-capability gate passes; exit 1 when none does.")
    g.add_argument("--suites", nargs="+", metavar="SUITE",
                   help="suites to evaluate the merges on: target suites (the gain) and "
                        "general suites (the gate)")
    g.add_argument("--sweep", metavar="lambda=START:STOP:STEP",
                   help="merging weights to try, e.g. lambda=0.2:1.0:0.2 or lambda=0.3,0.6,1 "
                        "(default: --lambda alone)")
    g.add_argument("--subset", type=subset_item, action="append", metavar="[TASK=]N|F",
                   help=f"the sample every merging weight is evaluated on (default "
                        f"{SWEEP_SUBSET:g} of each task; TASK=N|F for one task); the chosen "
                        "one is then evaluated in full")
    g.add_argument("--policy", metavar="FILE", help="gate policy YAML (as for compare)")
    g.add_argument("--fail-on", action="append", default=[], metavar="EXPR",
                   help="gate rule (as for compare), e.g. 'general:headline:noninferior(2%%)'")
    g.add_argument("--records", metavar="DIR", type=Path, default=Path("runs/merge"),
                   help="folder for the RunRecords, comparison.json and sweep.json "
                        "(default runs/merge)")
    g.add_argument("--report", metavar="FILE", type=Path, default=Path("reports/merge.html"),
                   help="HTML report with the sweep (default reports/merge.html)")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--batch-size", default="auto", metavar="N|auto")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


SWEEP_SUBSET = 0.25
"""Default sample of each task evaluated at every merging weight."""


def cmd_merge(args: argparse.Namespace) -> int:
    from ftguard.merge.inputs import open_inputs
    from ftguard.merge.write import write_merged
    from ftguard.models.resolve import resolve_model
    from ftguard.train.merge import _check_out

    if args.sweep and not args.suites:
        raise UsageError("--sweep needs --suites: the merging weights are chosen by "
                         "evaluating them.",
                         hint="Add --suites suites/legal suites/general (target and general).")
    spec = merge_spec(args)
    sweep = _sweep_setup(args) if args.suites else None  # checked before any file is read
    output_dir(args.out, "--out")
    if sweep is not None:
        output_dir(args.records, "--records")
        output_file(args.report, "--report")
    base = resolve_model(args.base, allow_pickle=False, option="base").path
    models = _model_folders(args.models)
    out = _check_out(args.out.expanduser(), args.overwrite, inputs=(base, *models))
    inputs = open_inputs(base, models)
    try:
        if sweep is not None:
            return _sweep_and_write(args, spec, *sweep, inputs, out)
        record = write_merged(inputs, spec, out, dtype=args.dtype)
    finally:
        inputs.close()
    print(f"merged {len(models)} model(s) with {spec.describe()} into {out} "
          f"({record['tensors']} tensors, {record['seconds']:.1f} s)", file=sys.stderr)
    return EXIT_OK


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
            if not all(math.isfinite(w) for w in weights):
                raise ValueError
        except ValueError:
            raise UsageError(f"--weights {args.weights}: give finite numbers separated by "
                             "commas (e.g. 0.7,0.3).") from None
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


def _sweep_setup(args: argparse.Namespace) -> tuple[
        Sequence[float], Sequence[Suite], tuple[RunSettings, RunSettings],
        Callable[[RunRecord], Policy], LoadOptions]:
    """What ``--sweep``/``--suites`` ask for, every option checked: the merging weights, the
    suites, the sample's and the full run's settings, the gate policy, the base to load."""
    from ftguard.api import check_task_subset, load_suites
    from ftguard.merge.sweep_record import parse_sweep
    from ftguard.models.load import LoadOptions

    lambdas = parse_sweep(args.sweep) if args.sweep else (args.lam,)
    suites = load_suites(args.suites)
    if not any(s.spec.role == "target" for s in suites):
        raise UsageError(f"--suites {' '.join(args.suites)}: no suite has role 'target', so "
                         "there is no gain to choose a merge by.",
                         hint="Add the target-task suite (role: target in its suite.yaml).")
    subset, full = _sweep_settings(args)
    check_task_subset(subset.task_subset, suites)
    load = LoadOptions(model=args.base, device=args.device,
                       batch_size=parse_batch_size(args.batch_size))
    return lambdas, suites, (subset, full), policy_factory(args), load


def _sweep_and_write(args: argparse.Namespace, spec: MergeSpec, lambdas: Sequence[float],
                     suites: Sequence[Suite], settings: tuple[RunSettings, RunSettings],
                     policy: Callable[[RunRecord], Policy], load: LoadOptions, inputs: Inputs,
                     out: Path) -> int:
    from dataclasses import replace

    import torch

    from ftguard.merge.live import LiveMerge
    from ftguard.merge.sweep import SweepPlan, run_sweep
    from ftguard.merge.sweep_record import write_sweep
    from ftguard.merge.write import write_merged
    from ftguard.models.load import load_backend
    from ftguard.progress import ProgressBar
    from ftguard.report import write_report
    from ftguard.train.record import discover_train_record

    def say(line: str) -> None:
        print(f"[merge] {line}", file=sys.stderr, flush=True)

    say(f"loading the base model {args.base}")
    backend = load_backend(load)
    live = LiveMerge(backend, inputs,
                     save_dtype=None if args.dtype == "auto" else getattr(torch, args.dtype))
    plan = SweepPlan(spec, lambdas, suites, settings[0], settings[1], policy, args.records)
    with ProgressBar(enabled=not args.no_progress) as bar:
        result = run_sweep(live, plan, [str(m) for m in args.models], reporter=bar, say=say)
    record = result.record
    if record.chosen is not None:
        say(f"writing the merge at lambda {record.chosen:g} to {out}")
        write_merged(inputs, replace(spec, lam=record.chosen), out, dtype=args.dtype)
        record.out = str(out)
        write_sweep(record, args.records / "sweep.json")
    if result.comparison is not None:
        write_report(result.comparison, args.report, sweep=record,
                     train=discover_train_record(result.comparison.tuned))
    print(render_sweep(record))
    say(f"wrote {args.records}/sweep.json, {args.records}/comparison.json and {args.report}")
    return EXIT_OK if record.chosen is not None else EXIT_GATE_FAILED


def render_sweep(record: SweepRecord) -> str:
    """The sweep as a text table, then the choice."""
    from ftguard.judge import signed_percent as pct

    lines = [f"{'lambda':>8}  {'stage':<6}  {'target gain':>11}  {'alignment tax':>13}  gate",
             *(f"{p.lam:>8g}  {p.stage:<6}  {pct(p.gain):>11}  {pct(p.alignment_tax):>13}  "
               f"{'pass' if p.gate_passed else 'FAIL'}" for p in [*record.points, *record.full])]
    verdict = (f"chosen: lambda {record.chosen:g} — {record.reason}" if record.chosen is not None
               else f"no merge chosen: {record.reason}")
    return "\n".join([*lines, verdict])


def _sweep_settings(args: argparse.Namespace) -> tuple[RunSettings, RunSettings]:
    """The sample every merging weight is evaluated on (``--subset``, by default
    SWEEP_SUBSET of each task) and the full evaluation's settings."""
    from dataclasses import replace

    from ftguard.engine.settings import RunSettings

    sample = run_settings(argparse.Namespace(subset=args.subset, limit=None, seed=1234))
    if sample.subset is None:
        sample = replace(sample, subset=SWEEP_SUBSET)
    return sample, RunSettings(seed=sample.seed)


def _model_folders(names: list[str]) -> list[Path]:
    models = [Path(m).expanduser() for m in names]
    for model in models:
        if not model.is_dir():
            raise UsageError(f"{model}: no such folder.",
                             hint="Give fine-tuned model folders or LoRA adapter folders.")
    return models
