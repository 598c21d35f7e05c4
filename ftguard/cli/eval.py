"""The ``ftguard eval`` command: evaluate a model on suites, write a RunRecord."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.cli.options import (
    SUITE_HELP,
    load_options,
    model_options,
    print_table,
    run_options,
    run_settings,
)
from ftguard.errors import EXIT_OK, UsageError
from ftguard.outputs import output_dir, output_file

if TYPE_CHECKING:
    from ftguard.record import RunRecord
    from ftguard.suite import Suite


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``eval`` on the main parser."""
    ev = commands.add_parser("eval", parents=[common], help="evaluate a model on suites",
                             description="Evaluate a model on suites and write a RunRecord.")
    ev.add_argument("suites", nargs="+", metavar="SUITE", help=SUITE_HELP)
    ev.add_argument("--out", "-o", metavar="FILE", help="write the RunRecord JSON here")
    ev.add_argument("--out-dir", metavar="DIR",
                    help="with several --adapter: write one RunRecord per adapter, "
                         "DIR/NAME.json, NAME the adapter's folder name or, for a generic "
                         "one (adapter, model, final, checkpoint-N...), its run folder's: "
                         "runs/a/adapter -> DIR/a.json (base.json with --include-base)")
    ev.add_argument("--include-base", action="store_true",
                    help="with --adapter: also evaluate the base model (adapters disabled) on "
                         "the same loaded weights")
    model_options(ev, several_adapters=True)
    run_options(ev)
    ev.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ftguard.api import evaluate, load_suites
    from ftguard.engine.distributed import is_main
    from ftguard.progress import ProgressBar
    from ftguard.tables import render_results

    adapters = args.adapter if isinstance(args.adapter, list) else [a for a in [args.adapter] if a]
    if len(adapters) > 1 or getattr(args, "out_dir", None) or getattr(args, "include_base", False):
        return _eval_adapters(args, adapters)
    args.adapter = adapters[0] if adapters else None
    suites = load_suites(args.suites)
    check_eval_out(args.out, suites)
    settings = run_settings(args)
    main = is_main()  # with accelerate launch, process 0 alone draws, prints and writes
    with ProgressBar(enabled=not args.no_progress and main) as bar:
        record = evaluate(suites, load=load_options(args), settings=settings,
                          out=args.out if main else None, reporter=bar, cache=args.cache,
                          shard=True)
    if main:
        from ftguard.health import run_warnings

        print_table(render_results(record, args.format))
        for line in [*cached_lines(record), *(f"ftguard: warning: {w}"
                                              for w in run_warnings(record))]:
            print(line, file=sys.stderr)
        if args.out:
            print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _eval_adapters(args: argparse.Namespace, adapters: list[str]) -> int:
    """``eval`` with several ``--adapter`` (or ``--out-dir``/``--include-base``): one loaded
    base, one RunRecord per adapter."""
    from ftguard.api import evaluate_adapters, load_suites, record_names
    from ftguard.progress import ProgressBar
    from ftguard.tables import render_results

    if not adapters:
        flag = "--out-dir" if args.out_dir else "--include-base"
        raise UsageError(f"{flag} goes with --adapter (one or more PEFT adapter folders).",
                         hint="Without adapters, write the one record with --out FILE.")
    if args.out:
        raise UsageError(f"--out writes one RunRecord, but {len(adapters)} --adapter option(s)"
                         f"{' and --include-base' if args.include_base else ''} make one per "
                         "model.", hint="Use --out-dir DIR instead: it writes "
                                        "DIR/NAME.json for each adapter (NAME its run's).")
    output_dir(args.out_dir, "--out-dir")
    names = record_names(adapters, include_base=args.include_base)
    suites = load_suites(args.suites)
    settings = run_settings(args)
    args.adapter = None
    with ProgressBar(enabled=not args.no_progress) as bar:
        records = evaluate_adapters(suites, load=load_options(args), adapters=adapters,
                                    settings=settings, out_dir=args.out_dir, reporter=bar,
                                    cache=args.cache, include_base=args.include_base)
    if args.format == "json":
        import json

        print(json.dumps([json.loads(render_results(r, "json")) for r in records], indent=1))
    elif args.format == "csv":  # one table, a first column naming the record
        from ftguard.csv_table import csv_table
        from ftguard.tables import RESULT_FIELDS, result_rows

        print_table(csv_table(("model", *RESULT_FIELDS), [
            {"model": names[key], **row} for key, record in zip(names, records)
            for row in result_rows(record)]))
    else:
        for key, record in zip(names, records):
            print(f"{'#' if args.format == 'markdown' else '=='} {names[key]}")
            print_table(render_results(record, args.format))
    from ftguard.health import run_warnings

    for key, record in zip(names, records):
        for line in cached_lines(record):
            print(f"{names[key]}: {line}", file=sys.stderr)
        for line in run_warnings(record):
            print(f"ftguard: warning: {names[key]}: {line}", file=sys.stderr)
    if args.out_dir:
        for key in names:
            print(f"wrote {Path(args.out_dir) / (names[key] + '.json')}", file=sys.stderr)
    return EXIT_OK


def cached_lines(record: RunRecord) -> list[str]:
    """``legal: cached, 0 requests`` for each suite the result cache answered (``--cache``)."""
    return [f"{name}: cached, 0 requests" for name in record.config.cached_suites or []]


def check_eval_out(out: str | None, suites: Sequence[Suite]) -> None:
    """Check ``eval --out`` before evaluating (:func:`ftguard.outputs.output_file`), also
    refusing one of the suites' own files (suite.yaml, data)."""
    output_file(out, "--out", inputs={
        f"suite {suite.name}'s file {rel}": suite.root / rel for suite in suites
        for rel in ["suite.yaml", *(r for task in suite.tasks for r in (
            task.spec.data, task.spec.few_shot and task.spec.few_shot.data) if r)]})
