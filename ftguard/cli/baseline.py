"""The ``ftguard baseline accept|show`` commands: the accepted baselines CI gates against
(:mod:`ftguard.baseline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftguard.errors import EXIT_OK
from ftguard.outputs import output_dir


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``baseline`` (``accept``, ``show``) on the main parser."""
    from ftguard.baseline import DEFAULT_DIR

    baseline = commands.add_parser(
        "baseline", help="accept and list the baselines CI gates against",
        description=f"Accepted baselines are RunRecords in a folder ({DEFAULT_DIR}/ by default) "
                    "with an index.json recording model, fingerprint, suite hashes and commit.")
    sub = baseline.add_subparsers(title="baseline commands", metavar="COMMAND")
    acc = sub.add_parser(
        "accept", parents=[common], help="store a RunRecord as an accepted baseline",
        description="Copy RUN.json into the baseline folder and index it. Refuses a run whose "
                    "suites differ from the suites on disk (it would be stale) unless --force.")
    acc.add_argument("run", metavar="RUN.json", help="RunRecord from ftguard eval --out")
    acc.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR",
                     help=f"baseline folder (default {DEFAULT_DIR})")
    acc.add_argument("--name", metavar="NAME",
                     help="baseline name (default: the model SPEC's last path part)")
    acc.add_argument("--force", action="store_true",
                     help="accept even when the run's suite hashes differ from the suites on disk")
    acc.add_argument("--allow-partial", action="store_true",
                     help="accept a run made with --limit or --subset (candidates are then "
                          "gated on its items only)")
    acc.add_argument("--if-changed", action="store_true",
                     help="leave the folder untouched when baseline NAME already has the same "
                          "model fingerprint and suite hashes (no churn in CI)")
    acc.set_defaults(handler=cmd_baseline_accept)
    shw = sub.add_parser("show", parents=[common], help="list the accepted baselines")
    shw.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR",
                     help=f"baseline folder (default {DEFAULT_DIR})")
    shw.set_defaults(handler=cmd_baseline_show)


def cmd_baseline_accept(args: argparse.Namespace) -> int:
    from ftguard.baseline import accept, unchanged
    from ftguard.record import read_run

    root, run_path = output_dir(args.dir, "--dir"), Path(args.run)
    assert root is not None
    run = read_run(run_path)
    same = unchanged(run, root, name=args.name) if args.if_changed else None
    if same is not None:
        print(f"baseline {same.name} unchanged (same model fingerprint and suite hashes); "
              f"{root} left as it is")
        return EXIT_OK
    entry = accept(run, root, name=args.name, force=args.force,
                   allow_partial=args.allow_partial, source=run_path)
    if partial := run.config.partial_reason():
        print(f"ftguard: warning: baseline {entry.name} is a partial run ({partial}); "
              "candidates are gated on its items only", file=sys.stderr)
    print(f"accepted {entry.name}: {root / entry.file} ({entry.model}, "
          f"{suites_text(entry.suites)}, commit {(entry.commit or '-')[:8]})")
    return EXIT_OK


def cmd_baseline_show(args: argparse.Namespace) -> int:
    from ftguard.baseline import show

    print(show(Path(args.dir)))
    return EXIT_OK


def short_hash(suite_hash: str) -> str:
    """A suite hash as messages show it: its first 8 hex digits."""
    return suite_hash.removeprefix("sha256:")[:8]


def suites_text(suites: dict[str, str]) -> str:
    """Suites and their hashes as messages show them: ``legal@1a2b3c4d, general@...``."""
    return ", ".join(f"{s}@{short_hash(h)}" for s, h in suites.items())
