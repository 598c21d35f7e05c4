"""The ``ftguard check-leakage`` command: training examples that overlap eval items."""

from __future__ import annotations

import argparse
from typing import Any

from ftguard.cli.options import SUITE_HELP, positive_int
from ftguard.errors import EXIT_GATE_FAILED, EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``check-leakage`` on the main parser."""
    leak = commands.add_parser(
        "check-leakage", parents=[common], help="find training examples that overlap eval items",
        description="Report evaluation items that overlap training data (exact copies and "
                    "shared 13-grams); exit 1 when any is found.")
    leak.add_argument("suites", nargs="+", metavar="SUITE", help=SUITE_HELP)
    leak.add_argument("--train", action="append", required=True, metavar="FILE",
                      help="training JSONL (instruction/input/output, prompt/completion or "
                           "messages); repeat for several files")
    leak.add_argument("--format", choices=("text", "json"), default="text")
    leak.add_argument("--show", type=positive_int, default=10, metavar="N",
                      help="list at most N overlapping items per task (text format)")
    leak.set_defaults(handler=cmd_check_leakage)


def cmd_check_leakage(args: argparse.Namespace) -> int:
    from ftguard.leakage import check_leakage, render_leakage

    report = check_leakage(args.train, args.suites)
    print(render_leakage(report, args.format, show=args.show))
    return EXIT_OK if report.clean else EXIT_GATE_FAILED
