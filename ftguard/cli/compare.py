"""The ``ftguard compare`` command, and :func:`run_compare`, its body shared with ``gate``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ftguard.cli.options import (
    check_compare_options,
    compare_options,
    policy_factory,
    print_table,
    read_train,
)
from ftguard.errors import EXIT_GATE_FAILED, EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``compare`` on the main parser."""
    cmp = commands.add_parser("compare", parents=[common],
                              help="compare two runs item by item and gate (exit 1 on failure)",
                              description="Paired comparison of a tuned run against its base.")
    cmp.add_argument("base", metavar="BASE", help="RunRecord JSON (or lm-eval output folder)")
    cmp.add_argument("tuned", metavar="TUNED", help="RunRecord JSON (or lm-eval output folder)")
    compare_options(cmp)
    cmp.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    check_compare_options(args, {"BASE record": args.base, "TUNED record": args.tuned})
    comparison = run_compare(args, _read_side(args.base), _read_side(args.tuned))
    return EXIT_OK if comparison.passed else EXIT_GATE_FAILED


def run_compare(args: argparse.Namespace, base, tuned):  # -> Comparison (imports kept lazy)
    """Compare ``tuned`` with ``base`` under ``compare_options``, write ``--out`` and
    ``--html``, print ``--format``; the body of both ``compare`` and ``gate``."""
    from ftguard.compare import compare
    from ftguard.compare_output import render_comparison
    from ftguard.record import write_comparison

    policy = policy_factory(args)(tuned)
    comparison = compare(base, tuned, policy,
                         allow_mismatch=args.allow_mismatch, resamples=args.resamples,
                         seed=args.seed)
    if args.out:
        write_comparison(comparison, Path(args.out))
    if args.html:
        from ftguard.report import write_report

        write_report(comparison, Path(args.html), train=read_train(args.train, comparison))
    print_table(render_comparison(comparison, args.format))
    return comparison


def _read_side(path_text: str):  # -> RunRecord
    """A RunRecord, or an lm-eval output (folder or results file) converted on the fly."""
    from ftguard.record import read_run

    path = Path(path_text)
    if path.is_dir() or (path.is_file() and path.name.startswith("results")):
        from ftguard.lmeval.importer import import_lmeval

        return import_lmeval(path)
    return read_run(path)
