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

from conftest import SMOKE_SUITE, binary_run, write_suite

DEEP_JSON = "[" * 100_000 + "]" * 100_000
"""One JSON value nested deeper than any reader's recursion limit."""
EMPTY_SAFETENSORS = b"\x02\x00\x00\x00\x00\x00\x00\x00{}"
"""A complete safetensors file holding no tensor."""
TRUNCATED_SAFETENSORS = b"\x10\x00\x00\x00\x00\x00\x00\x00{"
"""A safetensors file cut off inside its 16-byte header."""


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
        """A suite folder (:func:`conftest.write_suite`): ``yaml`` as suite.yaml, the smoke
        data, ``files`` on top (rows, text or bytes)."""
        return write_suite(self.tmp / name, yaml, files)

    def adapter(self, weights: bytes, config: str | None = None) -> Path:
        """A LoRA adapter folder for the tiny model: ``weights`` as adapter_model.safetensors,
        ``config`` (default: a valid one) as adapter_config.json."""
        folder = self.dir("adapter")
        (folder / "adapter_config.json").write_text(config or json.dumps({
            "peft_type": "LORA", "base_model_name_or_path": str(self.tiny_model), "r": 4,
            "lora_alpha": 8, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}))
        (folder / "adapter_model.safetensors").write_bytes(weights)
        return folder

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
