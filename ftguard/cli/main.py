"""The ``ftguard`` command. One short function per command: parse, call the API, render.

Exit codes: 0 pass, 1 gate failed, 2 usage / input / environment error (one paragraph, no
traceback; ``--debug`` shows it).

This module is the wiring only: :func:`main` (errors, exit codes, signals) and
:func:`build_parser`, which registers each command module's ``add_parser``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from ftguard.cli import (
    baseline,
    compare,
    demo,
    gate,
    import_lmeval,
    init,
    leakage,
    merge,
    merge_adapter,
    power,
    report,
    suites,
    train,
)
from ftguard.cli import (
    eval as eval_command,
)
from ftguard.cli.interrupts import (
    interrupted,
    raise_if_interrupted,
    raise_interrupt,
    received,
    set_signal_handlers,
)
from ftguard.errors import EXIT_ERROR, FtguardError
from ftguard.quiet import verbosity
from ftguard.version import ftguard_version

COMMANDS = (eval_command, suites, init, import_lmeval, compare, report, power, leakage, train,
            merge_adapter, baseline, gate, demo, merge)
"""The command modules, in the order ``ftguard --help`` lists them."""


def main(argv: Sequence[str] | None = None) -> int:
    from ftguard.atomic import written

    outputs_before = len(written())
    received.clear()
    previous = set_signal_handlers(raise_interrupt)  # SIGTERM unwinds like Ctrl-C
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_ERROR
        try:
            with verbosity(args.verbose):
                return int(args.handler(args))
        except FtguardError as exc:
            raise_if_interrupted(exc)
            if args.debug:
                traceback.print_exc()
            print(f"ftguard: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except Exception as exc:  # noqa: BLE001 -- a bug, not bad input: short message
            raise_if_interrupted(exc)
            if args.debug:
                traceback.print_exc()
            print(f"ftguard: error: unexpected {type(exc).__name__}: {exc} (run with --debug "
                  "for the traceback and report it).", file=sys.stderr)
            return EXIT_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM raised as Terminated
        return interrupted(exc, written()[outputs_before:])
    finally:
        set_signal_handlers(previous)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftguard", description="Gate a fine-tuned language model against its base.")
    parser.add_argument("--version", action="version", version=f"ftguard {ftguard_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    common.add_argument("--verbose", "-v", action="store_true",
                        help="show the libraries' own warnings and notices (transformers "
                             "deprecations, bitsandbytes kernels...), hidden by default")
    parser.set_defaults(debug=False, verbose=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    for command in COMMANDS:
        command.add_parser(commands, common)
    return parser


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
