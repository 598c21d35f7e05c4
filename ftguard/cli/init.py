"""The ``ftguard init`` command: write a new suite folder that validates and runs as written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftguard.errors import EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``init`` on the main parser."""
    from ftguard.suite.scaffold import KINDS

    init = commands.add_parser(
        "init", parents=[common], help="write a new suite folder to start from",
        description="Write a new suite folder NAME: suite.yaml with one example task per "
                    "kind, a few JSONL items each, a gate section, and a README explaining "
                    "every key. It validates and runs with --model fake as written.")
    init.add_argument("name", metavar="NAME", help="the new folder (its name is the suite's)")
    init.add_argument("--kind", action="append", metavar="KIND",
                      help=f"task kinds to include: {', '.join(KINDS)} (repeat or "
                           "comma-separate; default: all four)")
    init.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from ftguard.suite.scaffold import parse_kinds, write_suite

    kinds = parse_kinds(args.kind)
    folder = Path(args.name)
    files = write_suite(folder, kinds)
    for path in files:
        print(f"wrote {path}", file=sys.stderr)
    print(f"next: ftguard suites validate {folder} && ftguard eval {folder} --model fake",
          file=sys.stderr)
    return EXIT_OK
