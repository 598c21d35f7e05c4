"""The ``ftguard power`` command: each task's minimum detectable change (no model needed)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ftguard.cli.options import SUITE_HELP, finite_float
from ftguard.errors import EXIT_OK, UsageError


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``power`` on the main parser."""
    power = commands.add_parser("power", parents=[common],
                                help="minimum detectable change of each task (no model needed)")
    power.add_argument("suites", nargs="+", metavar="SUITE", help=SUITE_HELP)
    power.add_argument("--discordance", type=finite_float, default=0.20,
                       help="assumed share of items whose correctness changes (default 0.20)")
    power.add_argument("--alpha", type=finite_float, default=0.05, help="two-sided level (0.05)")
    power.add_argument("--power", type=finite_float, default=0.80, help="power (0.80)")
    power.add_argument("--baseline", metavar="RUN.json",
                       help="a RunRecord of the suites, for continuous metrics' spread")
    power.set_defaults(handler=cmd_power)


def cmd_power(args: argparse.Namespace) -> int:
    from ftguard.api import load_suites
    from ftguard.power import power_table, render_power
    from ftguard.record import read_run

    for flag, value in (("--discordance", args.discordance), ("--alpha", args.alpha),
                        ("--power", args.power)):
        if not 0 < value < 1:
            raise UsageError(f"{flag} {value}: must be between 0 and 1 (exclusive).")
    baseline = read_run(Path(args.baseline)) if args.baseline else None
    rows = power_table(load_suites(args.suites), discordance=args.discordance, alpha=args.alpha,
                       power=args.power, baseline=baseline)
    print(render_power(rows, discordance=args.discordance, alpha=args.alpha, power=args.power))
    return EXIT_OK
