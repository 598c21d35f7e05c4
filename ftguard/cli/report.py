"""The ``ftguard report`` command: a Comparison or RunRecord JSON as one HTML file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ftguard.cli.options import read_train
from ftguard.errors import EXIT_OK
from ftguard.outputs import distinct, output_file


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``report`` on the main parser."""
    rep = commands.add_parser("report", parents=[common],
                              help="render a Comparison or RunRecord JSON as an HTML report",
                              description="Write one self-contained HTML file (no network "
                                          "access) from a Comparison or RunRecord JSON.")
    rep.add_argument("input", metavar="INPUT",
                     help="Comparison JSON, RunRecord JSON, or train_record.json (or its folder)")
    rep.add_argument("--out", "-o", metavar="FILE",
                     help="HTML file to write (default: reports/<input name>.html in the "
                          "current folder)")
    rep.add_argument("--train", metavar="FILE",
                     help="train_record.json for a Comparison's Training section (default: the "
                          "one beside the tuned model's adapter or model folder)")
    rep.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ftguard.record import read_record
    from ftguard.report.render import write_report
    from ftguard.train.record import is_train_record_file, read_train_record

    source = Path(args.input)
    out = args.out if args.out is not None else default_report_path(source)
    distinct({"--out": output_file(out, "--out", inputs={"input": source,
                                                              "--train record": args.train}),
              "--train": Path(args.train) if args.train else None})
    record = read_train_record(source) if is_train_record_file(source) else read_record(source)
    path = write_report(record, Path(out), train=read_train(args.train, record))
    print(f"wrote {path}")
    return EXIT_OK


def default_report_path(source: Path) -> Path:
    """``reports/<name>.html`` in the current folder: ``name`` is the input file's stem, or the
    training folder's name for a train record (``runs/a/train_record.json`` -> ``a``)."""
    from ftguard.train.record import TRAIN_RECORD

    whole = Path(os.path.abspath(source))
    name = whole.name if source.is_dir() else (
        whole.parent.name if whole.name == TRAIN_RECORD else whole.stem)
    return Path("reports") / f"{name or 'report'}.html"
