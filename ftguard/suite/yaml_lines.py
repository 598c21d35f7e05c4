"""Read YAML while remembering the line of every key, so errors can point at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftguard.errors import Problem

KeyPath = tuple[str | int, ...]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records ``key path -> line`` for every mapping key and list item."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[KeyPath, int] = {}


def _walk(loader: _LineLoader, node: yaml.Node, path: KeyPath) -> None:
    loader.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            loader.lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(loader, value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(loader, item, (*path, i))


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``path``; return (data, line of each key path). Raises a located Problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _problem(path, None, f"is not UTF-8 text ({exc.reason}).") from exc
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _walk(loader, node, ())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        # An unclosed bracket or quote is detected far away (often at the end of the file):
        # point at where the construct began and say where it was detected.
        start = exc.context_mark or exc.problem_mark
        line = start.line + 1 if start else None
        what = exc.problem or str(exc)
        if exc.context and exc.problem_mark and start is not exc.problem_mark:
            what = f"{exc.context}: {what} (detected on line {exc.problem_mark.line + 1})"
        raise _problem(path, line, f"YAML syntax error: {what}. Check indentation and quoting "
                                   "(strings containing ':' or '{{' must be quoted).") from exc
    except yaml.YAMLError as exc:
        raise _problem(path, None, f"YAML error: {exc}") from exc
    finally:
        loader.dispose()
    return data, loader.lines


class LocatedYAMLError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _problem(path: Path, line: int | None, message: str) -> LocatedYAMLError:
    return LocatedYAMLError(Problem(str(path), line, None, message))


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int | None:
    """Line of ``path`` or of its closest located ancestor."""
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
