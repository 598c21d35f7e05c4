"""Read YAML while remembering the line of every key, so errors can point at it.

Every file it reads (suite.yaml, ``--policy`` files, train configs) is small, plain data, and
may be hostile; what it returns is safe for later code to walk, validate, hash and dump:

- at most :data:`MAX_BYTES`, UTF-8 (the line of the first bad byte is named);
- nested at most :data:`MAX_DEPTH` levels, also through aliases (deeper data would exhaust
  Python's recursion limit in the composer, in validation or in ``json.dumps``);
- aliases expanding to at most :data:`MAX_EXPANDED` values (a "billion laughs" file is a few
  hundred bytes that expand to 10**9 values), and no anchor used inside itself;
- only JSON-like values: strings, numbers, booleans, null, lists and mappings (timestamps stay
  the text as written; ``!!binary`` and ``!!set`` are refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftguard.errors import Problem

KeyPath = tuple[str | int, ...]

MAX_BYTES = 10 * 2**20
"""Largest YAML file read (suite.yaml, policies and configs are a few KB; data is JSONL)."""
MAX_DEPTH = 100
"""Deepest nesting of lists and mappings, counted through aliases."""
MAX_EXPANDED = 100_000
"""Most values a document may hold once its aliases are expanded."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records ``key path -> line`` for every mapping key and list item, bounds
    nesting and remembers where aliases were used."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[KeyPath, int] = {}
        self.alias_lines: dict[tuple[int, int], int] = {}
        """``(id(sequence node), index) -> line`` of list items written as an alias."""
        self.depth = 0
        self.aliased = False

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:  # the composer recurses once per level
                raise _Refused(self.peek_event().start_mark.line + 1, _too_deep())
            if self.check_event(yaml.AliasEvent):
                self.aliased = True
                if isinstance(index, int) and parent is not None:
                    line = self.peek_event().start_mark.line + 1
                    self.alias_lines[(id(parent), index)] = line
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            # e.g. `!!int abc`, `!!bool maybe`, an integer of 5,000 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.tag.rsplit(':', 1)[-1]} value "
                f"{_short(node.value)} ({type(exc).__name__}: {_short(str(exc))})",
                node.start_mark) from exc


def _as_written(loader: _LineLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _unsupported(loader: _LineLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"the YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not "
        "supported here; write plain strings, numbers, lists and mappings", node.start_mark)


_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_written)
_LineLoader.add_constructor("tag:yaml.org,2002:binary", _unsupported)
_LineLoader.add_constructor("tag:yaml.org,2002:set", _unsupported)


class _Refused(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _too_deep() -> str:
    return (f"values are nested more than {MAX_DEPTH} levels deep (counting aliases); "
            "flatten the structure.")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse an anchor used inside itself, and aliases that expand the document past
    :data:`MAX_EXPANDED` values or :data:`MAX_DEPTH` levels. Each node is visited once
    (aliases share node objects), without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()  # the nodes on the path from the root to the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        kids = _children(node)
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(k)] for k in kids)
            depth[id(node)] = 1 + max((depth[id(k)] for k in kids), default=0)
            line = node.start_mark.line + 1
            if size[id(node)] > MAX_EXPANDED:
                raise _Refused(line, f"aliases expand this value to {size[id(node)]:,} values, "
                                     f"more than ftguard reads ({MAX_EXPANDED:,}); write the "
                                     "values out or use fewer aliases.")
            if depth[id(node)] > MAX_DEPTH:
                raise _Refused(line, _too_deep())
            continue
        if id(node) in size:
            continue
        open_.add(id(node))
        stack.append((node, True))
        for kid in reversed(kids):
            if id(kid) in open_:
                raise _Refused(kid.start_mark.line + 1,
                               "an anchor (&name) is used inside its own value (*name), which "
                               "would make it infinite; write the values out instead.")
            if id(kid) not in size:
                stack.append((kid, False))


def _walk(loader: _LineLoader, node: yaml.Node, path: KeyPath, seen: set[int]) -> None:
    """Record the lines below ``node``; a node reached again through an alias is not walked
    again (its keys keep the lines of its first occurrence)."""
    loader.lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            loader.lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(loader, value_node, (*path, key), seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            if (id(node), i) in loader.alias_lines:
                loader.lines[(*path, i)] = loader.alias_lines[(id(node), i)]
            _walk(loader, item, (*path, i), seen)


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``path``; return (data, line of each key path). Raises a located Problem."""
    text = _read_text(path)
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text)  # checks for characters YAML does not allow
        node = loader.get_single_node()
        if node is None:
            return None, {}
        if loader.aliased:
            _check_expansion(node)
        _walk(loader, node, (), set())
        data = loader.construct_document(node)
    except _Refused as exc:
        raise _problem(path, exc.line, exc.message) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise _problem(path, line, f"holds the character U+{exc.character:04X}, which YAML does "
                                   "not allow (is it a text file?).") from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _problem(path, mark.line + 1 if mark else None,
                       f"YAML error: {exc.problem or exc.context}.") from None
    except yaml.MarkedYAMLError as exc:
        # An unclosed bracket or quote is detected far away (often at the end of the file):
        # point at where the construct began and say where it was detected.
        start = exc.context_mark or exc.problem_mark
        line = start.line + 1 if start else None
        what = exc.problem or str(exc)
        if exc.context and exc.problem_mark and start is not exc.problem_mark:
            what = f"{exc.context}: {what} (detected on line {exc.problem_mark.line + 1})"
        raise _problem(path, line, f"YAML syntax error: {what}. Check indentation and quoting "
                                   "(strings containing ':' or '{{' must be quoted).") from None
    except yaml.YAMLError as exc:
        raise _problem(path, None, f"YAML error: {_short(str(exc), 300)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, loader.lines


def _read_text(path: Path) -> str:
    """The file's text; a located Problem when it is not a readable, small, UTF-8 file."""
    try:
        if not path.is_file():
            raise _problem(path, None, "is not a regular file." if path.exists() else
                           "does not exist.")
        if (size := path.stat().st_size) > MAX_BYTES:
            raise _problem(path, None, f"is {size / 2**20:.0f} MiB; a YAML file ftguard reads "
                                       f"may hold at most {MAX_BYTES // 2**20} MiB (data "
                                       "belongs in JSONL files).")
        raw = path.read_bytes()
    except OSError as exc:
        raise _problem(path, None, f"cannot be read ({exc.strerror or exc}).") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _problem(path, line, f"is not UTF-8 text ({exc.reason}: byte "
                                   f"{raw[exc.start]:#04x}); save it as UTF-8.") from None


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
