"""The ``ftguard suites`` commands: ``validate`` (every problem), ``list``, ``schema`` and
``show`` (:mod:`ftguard.cli.suites_show`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ftguard.cli import suites_show
from ftguard.cli.options import SUITE_HELP, TABLE_FORMATS, print_table
from ftguard.errors import EXIT_ERROR, EXIT_OK

_LIST_FIELDS = ("suite", "role", "version", "tasks", "kinds", "items", "headline", "shipped",
                "path", "problems")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``suites`` (``validate``, ``list``, ``schema``) on the main parser."""
    suites = commands.add_parser("suites", help="work with suites")
    suite_commands = suites.add_subparsers(title="suite commands", metavar="COMMAND")
    validate = suite_commands.add_parser("validate", parents=[common],
                                         help="check suites and report every problem")
    validate.add_argument("paths", nargs="+", metavar="SUITE", help=SUITE_HELP)
    validate.set_defaults(handler=cmd_validate)
    listing = suite_commands.add_parser(
        "list", parents=[common], help="the shipped suites and those under PATH...",
        description="List suites: the shipped ones and every suite under the given paths, "
                    "with role, version, tasks, kinds, items and headline metrics.")
    listing.add_argument("paths", nargs="*", metavar="PATH")
    listing.add_argument("--no-shipped", action="store_true",
                         help="list only the suites under PATH...")
    listing.add_argument("--format", choices=TABLE_FORMATS, default="text")
    listing.set_defaults(handler=cmd_list)
    schema = suite_commands.add_parser(
        "schema", parents=[common], help="print the JSON Schema of suite.yaml",
        description="Print (or write) the JSON Schema of suite.yaml, for editor completion: "
                    "start a suite.yaml with '# yaml-language-server: $schema=PATH'.")
    schema.add_argument("--out", "-o", metavar="FILE", help="write the schema here")
    schema.set_defaults(handler=cmd_schema)
    suites_show.add_parser(suite_commands, common)


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


def cmd_list(args: argparse.Namespace) -> int:
    from ftguard.suite.catalogue import catalogue

    entries = catalogue([Path(p) for p in args.paths], shipped=not args.no_shipped)
    rows = [e.row() for e in entries]
    if args.format == "csv":
        from ftguard.csv_table import csv_table

        print_table(csv_table(_LIST_FIELDS, rows))
    elif args.format == "json":
        import json

        print(json.dumps(rows, indent=1))
    else:
        print(_list_table(rows, markdown=args.format == "markdown"))
    broken = [e for e in entries if e.problems]
    for entry in broken:
        print(f"ftguard: error: {entry.path} does not load ({len(entry.problems)} problem(s); "
              f"first: {entry.problems[0]}). Run 'ftguard suites validate {entry.path}' for "
              "all of them.", file=sys.stderr)
    return EXIT_ERROR if broken else EXIT_OK


def _list_table(rows: list[dict[str, object]], *, markdown: bool) -> str:
    headers = ("suite", "role", "version", "tasks", "kinds", "items", "headline metrics", "path")

    def cells(row: dict[str, object]) -> list[str]:
        if row["problems"]:
            return [str(row["suite"]), "", "", "", "", "", "does not load", str(row["path"])]
        return [str(row["suite"]), str(row["role"]), str(row["version"]), str(row["tasks"]),
                ", ".join(row["kinds"]), str(row["items"]),  # type: ignore[arg-type]
                ", ".join(row["headline"]),  # type: ignore[arg-type]
                "(shipped)" if row["shipped"] else str(row["path"])]

    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        return "\n".join(lines + ["| " + " | ".join(cells(r)) + " |" for r in rows])
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="suites", title_justify="left")
    for header in headers:
        table.add_column(header, justify="right" if header in ("tasks", "items") else "left",
                         overflow="fold")
    for row in rows:
        table.add_row(*(Text(c) for c in cells(row)))
    buffer = io.StringIO()
    Console(file=buffer, width=160, no_color=True).print(table)
    return buffer.getvalue().rstrip("\n")


def cmd_schema(args: argparse.Namespace) -> int:
    from ftguard.suite.json_schema import schema_text

    text = schema_text()
    if args.out:
        from ftguard.atomic import write_text_atomic
        from ftguard.outputs import output_file

        output_file(args.out, "--out")
        write_text_atomic(text, Path(args.out))
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
