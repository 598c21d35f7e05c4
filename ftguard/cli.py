"""The ``ftguard`` command. One short function per command: parse, call the API, render.

Exit codes: 0 pass, 1 gate failed, 2 usage / input / environment error (one paragraph, no
traceback; ``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from ftguard.errors import FtguardError, UsageError

EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return int(args.handler(args))
    except FtguardError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"ftguard: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ftguard: interrupted; no record was written.", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 -- a bug, not bad input: short message, --debug for more
        if args.debug:
            traceback.print_exc()
        print(f"ftguard: error: unexpected {type(exc).__name__}: {exc} (run with --debug for "
              "the traceback and report it).", file=sys.stderr)
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftguard", description="Gate a fine-tuned language model against its base.")
    parser.add_argument("--version", action="version", version=f"ftguard {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    ev = commands.add_parser("eval", parents=[common], help="evaluate a model on suites",
                             description="Evaluate a model on suites and write a RunRecord.")
    ev.add_argument("suites", nargs="+", metavar="SUITE", help="suite folder(s) or parents")
    ev.add_argument("--out", "-o", metavar="FILE", help="write the RunRecord JSON here")
    _model_options(ev)
    _run_options(ev)
    ev.set_defaults(handler=cmd_eval)

    suites = commands.add_parser("suites", help="work with suites")
    suite_commands = suites.add_subparsers(title="suite commands", metavar="COMMAND")
    validate = suite_commands.add_parser("validate", parents=[common],
                                         help="check suites and report every problem")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(handler=cmd_validate)

    demo = commands.add_parser("demo", parents=[common],
                               help="evaluate the embedded model on the shipped suites")
    demo.add_argument("--out", "-o", metavar="FILE", default="runs/demo/base.json")
    demo.add_argument("--suites", nargs="+", metavar="SUITE", default=None,
                      help="suites to run (default: the shipped suites/)")
    _model_options(demo)
    _run_options(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="SPEC", default=None,
                   help="local HF folder, hub id, or smollm2-135m-instruct (default)")
    g.add_argument("--adapter", metavar="DIR", help="PEFT adapter folder to apply")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--dtype", default="auto",
                   help="auto (float32 on CPU, bf16 on CUDA), float32, bfloat16, float16")
    q = g.add_mutually_exclusive_group()
    q.add_argument("--load-in-4bit", action="store_true", help="4-bit nf4 (bitsandbytes)")
    q.add_argument("--load-in-8bit", action="store_true", help="8-bit (bitsandbytes)")
    g.add_argument("--allow-pickle", action="store_true",
                   help="allow pickle (.bin) weights, which can run code when loaded")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="run Python code shipped in the model folder")


def _run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--limit", type=_positive_int, metavar="N", help="first N items per task")
    g.add_argument("--batch-size", default="auto", metavar="N|auto")
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                   help="results table format on stdout")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def cmd_eval(args: argparse.Namespace) -> int:
    from ftguard.api import evaluate, load_suites
    from ftguard.engine.runner import RunSettings
    from ftguard.progress import ProgressBar
    from ftguard.tables import render_results

    suites = load_suites(args.suites)
    settings = RunSettings(limit=args.limit, seed=args.seed)
    with ProgressBar(enabled=not args.no_progress) as bar:
        record = evaluate(suites, load=_load_options(args), settings=settings, out=args.out,
                          reporter=bar)
    print(render_results(record, args.format))
    if args.out:
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from ftguard.suite import validate_paths

    suites, problems = validate_paths([Path(p) for p in args.paths])
    for suite in suites:
        items = sum(len(t.instances) for t in suite.tasks)
        print(f"ok  {suite.root}  {suite.name} v{suite.spec.version} ({suite.spec.role}): "
              f"{len(suite.tasks)} tasks, {items} items")
    if problems:
        print(f"ftguard: error: {len(problems)} problem(s) found:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    if args.suites is None:
        args.suites = [str(shipped_suites())]
    return cmd_eval(args)


def shipped_suites() -> Path:
    """The repository's suites/ folder: ./suites if present, else next to the package."""
    here = Path.cwd() / "suites"
    if here.is_dir():
        return here
    beside = Path(__file__).resolve().parent.parent / "suites"
    if beside.is_dir():
        return beside
    raise UsageError("no suites/ folder found here or next to the ftguard package.",
                     hint="Run from the ftguard checkout or pass --suites PATH.")


def _load_options(args: argparse.Namespace):  # -> LoadOptions (import kept lazy)
    from ftguard.models.load import LoadOptions

    return LoadOptions(model=args.model, adapter=args.adapter, device=args.device,
                       dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                       load_in_8bit=args.load_in_8bit, allow_pickle=args.allow_pickle,
                       trust_remote_code=args.trust_remote_code,
                       batch_size=_batch_size(args.batch_size))


def _batch_size(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--batch-size {text}: must be a positive integer or 'auto'.")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ftguard")
    except metadata.PackageNotFoundError:
        return "0+unknown"


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
