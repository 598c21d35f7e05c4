"""The ``ftguard baseline accept|show`` and ``ftguard gate`` commands.

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

from ftguard.errors import UsageError
from ftguard.outputs import output_dir

if TYPE_CHECKING:
    from ftguard.baseline import Baselines

EXIT_OK, EXIT_GATE_FAILED = 0, 1


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``baseline`` (``accept``, ``show``) and ``gate`` on the main parser."""
    from ftguard.baseline import DEFAULT_DIR
    from ftguard.cli import compare_options

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
    acc.add_argument("--if-changed", action="store_true",
                     help="leave the folder untouched when baseline NAME already has the same "
                          "model fingerprint and suite hashes (no churn in CI)")
    acc.set_defaults(handler=cmd_baseline_accept)
    shw = sub.add_parser("show", parents=[common], help="list the accepted baselines")
    shw.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR",
                     help=f"baseline folder (default {DEFAULT_DIR})")
    shw.set_defaults(handler=cmd_baseline_show)

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
    entry = accept(run, root, name=args.name, force=args.force, source=run_path)
    print(f"accepted {entry.name}: {root / entry.file} ({entry.model}, {_suites(entry.suites)}, "
          f"commit {(entry.commit or '-')[:8]})")
    return EXIT_OK


def cmd_baseline_show(args: argparse.Namespace) -> int:
    from ftguard.baseline import show

    print(show(Path(args.dir)))
    return EXIT_OK


def cmd_gate(args: argparse.Namespace) -> int:
    from ftguard.baseline import Baselines
    from ftguard.cli import check_compare_options, run_compare
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
                else f"{s} is {_short(e.suites[s])} there, {_short(h)} in the candidate"
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
        f"({_suites(wanted)}); {detail}.",
        hint="If the suites changed on purpose, evaluate the baseline model on the current "
             f"suites and accept that run (then commit {root}): ftguard eval SUITES --model "
             f"{model} --out runs/base.json && ftguard baseline accept runs/base.json "
             f"--dir {root}" + (f" --name {name}" if name else "") + ".")


def _short(suite_hash: str) -> str:
    return suite_hash.removeprefix("sha256:")[:8]


def _suites(suites: dict[str, str]) -> str:
    return ", ".join(f"{s}@{_short(h)}" for s, h in suites.items())
