"""The ``ftguard gate`` command.

``gate`` is the CI step: it finds the accepted baseline (:mod:`ftguard.baseline`) that covers
the candidate's suites, then does exactly what ``ftguard compare BASELINE CANDIDATE`` does
(same options, same output, exit 1 when the gate fails), and appends the markdown summary
to ``$GITHUB_STEP_SUMMARY`` when that is set.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.cli.baseline import short_hash, suites_text
from ftguard.cli.compare import run_compare
from ftguard.cli.options import check_compare_options, compare_options
from ftguard.errors import EXIT_GATE_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from ftguard.baseline import Baselines


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``gate`` on the main parser."""
    from ftguard.baseline import DEFAULT_DIR

    gate = commands.add_parser(
        "gate", parents=[common],
        help="CI step: compare a candidate run with its accepted baseline (exit 1 on failure)",
        description="Find the accepted baseline covering the candidate's suites (names and "
                    "content hashes) and compare as `ftguard compare BASELINE CANDIDATE` does. "
                    "With $GITHUB_STEP_SUMMARY set, the markdown summary is appended to it.")
    gate.add_argument("--candidate", required=True, metavar="RUN.json",
                      help="RunRecord of the candidate (ftguard eval --out)")
    gate.add_argument("--baseline", default=DEFAULT_DIR, metavar="DIR|RUN.json",
                      help=f"baseline folder or a RunRecord file (default {DEFAULT_DIR})")
    gate.add_argument("--name", metavar="NAME", help="use only the baseline of this name")
    compare_options(gate)
    gate.set_defaults(handler=cmd_gate)


def cmd_gate(args: argparse.Namespace) -> int:
    from ftguard.baseline import Baselines
    from ftguard.compare_output import render_comparison
    from ftguard.record import read_run

    check_compare_options(args, {"--candidate record": args.candidate,
                                 "--baseline record": args.baseline})
    candidate = read_run(Path(args.candidate))
    root = Path(args.baseline)
    if not root.exists():
        raise UsageError(f"--baseline {root}: no such folder or file.",
                         hint="Accept a baseline first: ftguard eval SUITES --model BASE "
                              f"--out runs/base.json && ftguard baseline accept runs/base.json "
                              f"--dir {root}")
    if args.name and root.is_file():
        raise UsageError(f"--name {args.name}: it picks an entry of a baseline folder, but "
                         f"--baseline {root} is a RunRecord file; drop one of them.")
    wanted = {s.name: s.hash for s in candidate.suites}
    baselines = Baselines(root)
    found = baselines.find(wanted, name=args.name)
    if found is None:
        raise _no_baseline(baselines, wanted, args.name)
    base, entry = found
    # A baseline may cover more suites than this candidate was evaluated on: gate those only.
    base = base.model_copy(update={"suites": [s for s in base.suites if s.name in wanted]})
    where = f"{root}" if root.is_file() else f"{root / entry.file}"
    print(f"baseline: {entry.name} ({entry.model}, commit {(entry.commit or '-')[:8]}, "
          f"accepted {entry.accepted or '-'}) from {where}", file=sys.stderr)
    comparison = run_compare(args, base, candidate)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        note = (f"Baseline `{entry.name}` ({entry.model}, commit `{(entry.commit or '-')[:8]}`, "
                f"accepted {entry.accepted or '-'}) from `{where}`.")
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(f"{render_comparison(comparison, 'markdown')}\n\n{note}\n\n")
        except OSError as exc:  # the verdict matters more than the summary: warn, go on
            print(f"ftguard: warning: could not append to $GITHUB_STEP_SUMMARY ({exc}).",
                  file=sys.stderr)
    return EXIT_OK if comparison.passed else EXIT_GATE_FAILED


def _no_baseline(baselines: Baselines, wanted: dict[str, str], name: str | None) -> UsageError:
    """Say which suites or hashes no accepted baseline has, and how to accept one."""
    root = baselines.root
    entries = [e for e in baselines.entries if name is None or e.name == name]
    lines = []
    for e in entries:
        gaps = [f"{s} missing" if s not in e.suites
                else f"{s} is {short_hash(e.suites[s])} there, {short_hash(h)} in the candidate"
                for s, h in wanted.items() if e.suites.get(s) != h]
        lines.append(f"'{e.name}' ({e.model}): {', '.join(gaps)}")
    if not entries:
        have = "no baseline named " + repr(name) if name else "no accepted baselines"
        detail = f"{root} has {have}"
    else:
        detail = "what the accepted baselines lack: " + "; ".join(lines)
    model = entries[0].model if len(entries) == 1 else "BASE_MODEL"
    return UsageError(
        f"--baseline {root}: no accepted baseline covers the candidate's suites "
        f"({suites_text(wanted)}); {detail}.",
        hint="If the suites changed on purpose, evaluate the baseline model on the current "
             f"suites and accept that run (then commit {root}): ftguard eval SUITES --model "
             f"{model} --out runs/base.json && ftguard baseline accept runs/base.json "
             f"--dir {root}" + (f" --name {name}" if name else "") + ".")
