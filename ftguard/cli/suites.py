"""The ``ftguard suites validate`` command: check suites and report every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftguard.cli.options import SUITE_HELP
from ftguard.errors import EXIT_ERROR, EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``suites`` (``validate``) on the main parser."""
    suites = commands.add_parser("suites", help="work with suites")
    suite_commands = suites.add_subparsers(title="suite commands", metavar="COMMAND")
    validate = suite_commands.add_parser("validate", parents=[common],
                                         help="check suites and report every problem")
    validate.add_argument("paths", nargs="+", metavar="SUITE", help=SUITE_HELP)
    validate.set_defaults(handler=cmd_validate)


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
