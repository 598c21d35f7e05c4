"""The ``ftguard import-lmeval`` command: lm-eval ``--log_samples`` output to a RunRecord."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftguard.cli.options import TABLE_FORMATS, print_table
from ftguard.errors import EXIT_OK
from ftguard.outputs import output_file


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``import-lmeval`` on the main parser."""
    imp = commands.add_parser(
        "import-lmeval", parents=[common], help="convert lm-eval --log_samples output to a RunRecord",
        description="Convert the output of `lm_eval --output_path DIR --log_samples` (a "
                    "results_*.json and its samples_<task>_*.jsonl files) into a RunRecord.")
    imp.add_argument("results", metavar="RESULTS", help="results_*.json, or the folder holding it")
    imp.add_argument("samples", nargs="*", metavar="SAMPLES",
                     help="samples_<task>_*.jsonl files (default: those beside RESULTS)")
    imp.add_argument("--out", "-o", metavar="FILE", required=True, help="RunRecord JSON to write")
    imp.add_argument("--role", choices=("target", "general"), default="general",
                     help="role of the imported suite (default: general)")
    imp.add_argument("--suite-name", default="lm-eval", metavar="NAME",
                     help="name of the imported suite (default: lm-eval)")
    imp.add_argument("--format", choices=TABLE_FORMATS, default="text",
                     help="results table format on stdout")
    imp.set_defaults(handler=cmd_import_lmeval)


def cmd_import_lmeval(args: argparse.Namespace) -> int:
    from ftguard.lmeval.importer import import_lmeval
    from ftguard.record import write_run
    from ftguard.tables import render_results

    output_file(args.out, "--out", inputs={"results file": args.results,
                                           **{f"samples file {s}": s for s in args.samples}})
    record = import_lmeval(args.results, args.samples, suite_name=args.suite_name, role=args.role)
    write_run(record, Path(args.out))
    print_table(render_results(record, args.format))
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK
