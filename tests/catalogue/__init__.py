"""The catalogue of bad inputs: every way a user (or a broken file) can feed ftguard garbage.

Each case is a small function registered with :func:`bad`. It builds its inputs under
``Ctx.tmp`` and returns a :class:`Bad`: the command line, the exit code it must end with (2,
or 1 only for a failed gate) and the words the message must contain (the file, line, key or
flag at fault). ``tests/test_error_catalogue.py`` runs every case and also checks that
nothing under ``Ctx.tmp`` was written, replaced or left behind and that no traceback or
"unexpected" error reached the user. Modules of this package group the cases by what is bad.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import MC_ROWS, SMOKE_SUITE, binary_run, write_jsonl

DEEP_JSON = "[" * 100_000 + "]" * 100_000
"""One JSON value nested deeper than any reader's recursion limit."""


@dataclass
class Bad:
    """What a case runs and what must come of it."""

    args: Sequence[Any]
    """The ``ftguard`` command line (paths may be Path objects)."""
    names: Sequence[Any] = ()
    """Text the error message must contain: the file, line, key or flag at fault."""
    code: int = 2
    """Expected exit code: 2 for bad input, 1 only for a failed gate."""
    subprocess: bool = False
    """Run ``python -m ftguard`` in a child with a timeout (inputs that could hang)."""


@dataclass(frozen=True)
class Case:
    command: str
    title: str
    build: Callable[[Ctx], Bad]

    @property
    def id(self) -> str:
        return f"{self.command}: {self.title}"


CASES: list[Case] = []


def bad(command: str, title: str) -> Callable[[Callable[[Ctx], Bad]], Callable[[Ctx], Bad]]:
    """Register a case of ``command`` (the catalogue is grouped and counted by it)."""

    def register(build: Callable[[Ctx], Bad]) -> Callable[[Ctx], Bad]:
        CASES.append(Case(command, title, build))
        return build

    return register


@dataclass
class Ctx:
    """Builders for a case's inputs, all under ``tmp``."""

    tmp: Path
    tiny_model: Path
    _n: list[int] = field(default_factory=lambda: [0])

    def path(self, name: str) -> Path:
        return self.tmp / name

    def text(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def bytes(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def dir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fifo(self, name: str) -> Path:
        path = self.tmp / name
        os.mkfifo(path)
        return path

    def socket(self, name: str) -> Path:
        """A Unix socket file (a non-regular file anyone may create)."""
        import socket

        path = self.tmp / name
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
        return path

    def suite(self, yaml: str = SMOKE_SUITE, files: dict[str, Any] | None = None,
              name: str = "suite") -> Path:
        """A suite folder: ``yaml`` as suite.yaml, the smoke data, ``files`` on top (rows,
        text or bytes)."""
        root = self.dir(name)
        (root / "suite.yaml").write_text(yaml, encoding="utf-8")
        default: dict[str, Any] = {
            "data/mc.jsonl": MC_ROWS,
            "data/qa.jsonl": [{"id": "a1", "question": "What is the capital of France?",
                               "answers": ["Paris"]},
                              {"id": "a2", "question": "What colour is the sky?",
                               "answers": ["blue"]}],
            "data/cls.jsonl": [{"id": "c1", "text": "I loved it.", "label": "positive"},
                               {"id": "c2", "text": "Dull.", "label": "negative"}],
            "data/ppl.jsonl": [{"id": "p1", "text": "The quick brown fox."},
                               {"id": "p2", "text": "Either party may terminate."}],
        }
        for rel, content in {**default, **(files or {})}.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                write_jsonl(target, content)
        return root

    def run(self, name: str = "base.json", *, flips: int = 0,
            edit: Callable[[dict[str, Any]], Any] | None = None, raw: str | None = None) -> Path:
        """A RunRecord file of suites ``legal`` (target) and ``general`` (40 items each);
        ``flips`` items turn wrong; ``edit`` changes the JSON before it is written."""
        from ftguard.record import write_run

        correct = [i % 4 != 0 for i in range(40)]
        tuned = [c and i >= flips for i, c in enumerate(correct)]
        record = binary_run(f"model-{name}", {("legal", "clauses"): tuned,
                                              ("general", "mc"): tuned})
        path = write_run(record, self.tmp / name)
        if edit is not None:
            data = json.loads(path.read_text(encoding="utf-8"))
            edit(data)
            path.write_text(json.dumps(data), encoding="utf-8")
        if raw is not None:
            path.write_text(raw, encoding="utf-8")
        return path

    def model(self, name: str = "model") -> Path:
        """A copy of the tiny random Llama (safetensors) that a case may damage."""
        target = self.tmp / name
        shutil.copytree(self.tiny_model, target)
        return target


def sample(data: dict[str, Any], suite: int = 0, task: int = 0, item: int = 0) -> dict[str, Any]:
    """One sample of a RunRecord's JSON, to edit."""
    return data["suites"][suite]["tasks"][task]["samples"][item]


def load_all() -> list[Case]:
    """Import every module of the catalogue (each registers its cases) and return them."""
    from catalogue import models, outputs, records, suites, train_merge  # noqa: F401

    return CASES
