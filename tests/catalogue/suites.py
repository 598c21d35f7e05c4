"""Bad suites and data files, met by `suites validate`, `eval`, `power` and `check-leakage`."""

from __future__ import annotations

import json
import os

from catalogue import DEEP_JSON, Bad, Ctx, bad
from conftest import SMOKE_SUITE, suite_yaml

FAKE = ("--model", "fake:0")
BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]) + "\n"
DEEP = DEEP_JSON


@bad("suites validate", "suite.yaml of binary garbage")
def _(c: Ctx) -> Bad:
    root = c.suite()
    (root / "suite.yaml").write_bytes(bytes(range(256)) * 4)
    return Bad(["suites", "validate", root], ["suite.yaml"])


@bad("suites validate", "suite.yaml is empty")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml="")
    return Bad(["suites", "validate", root], ["suite.yaml"])


@bad("suites validate", "suite.yaml is a folder")
def _(c: Ctx) -> Bad:
    root = c.dir("suite")
    (root / "suite.yaml").mkdir()
    return Bad(["suites", "validate", root], ["suite.yaml"])


@bad("suites validate", "suite.yaml is a YAML list")
def _(c: Ctx) -> Bad:
    return Bad(["suites", "validate", c.suite(yaml="- name: x\n- kind: choice\n")], ["suite.yaml"])


@bad("suites validate", "tasks is a string")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml="name: x\nversion: 1\nrole: general\ntasks: mc\n")
    return Bad(["suites", "validate", root], ["suite.yaml:4", "tasks"])


@bad("suites validate", "YAML alias bomb in suite.yaml")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml=BOMB + SMOKE_SUITE)
    return Bad(["suites", "validate", root], ["suite.yaml"])


@bad("suites validate", "a YAML anchor that contains itself")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml="loop: &l [*l]\n" + SMOKE_SUITE)
    return Bad(["suites", "validate", root], ["suite.yaml:1"])


@bad("suites validate", "non-UTF-8 byte in suite.yaml")
def _(c: Ctx) -> Bad:
    root = c.suite()
    (root / "suite.yaml").write_bytes(SMOKE_SUITE.encode().replace(b"smoke", b"sm\xffoke"))
    return Bad(["suites", "validate", root], ["suite.yaml:1"])


@bad("suites validate", "non-UTF-8 byte on line 2 of a data file")
def _(c: Ctx) -> Bad:
    rows = b'{"id": "p1", "text": "fine"}\n{"id": "p2", "text": "caf\xe9"}\n'
    root = c.suite(files={"data/ppl.jsonl": rows})
    return Bad(["suites", "validate", root], ["data/ppl.jsonl:2", "UTF-8"])


@bad("suites validate", "a data line of 100,000 nested brackets")
def _(c: Ctx) -> Bad:
    root = c.suite(files={"data/ppl.jsonl": '{"id": "p1", "text": "a"}\n' + DEEP + "\n"})
    return Bad(["suites", "validate", root], ["data/ppl.jsonl:2"])


@bad("suites validate", "a data line that is a JSON list")
def _(c: Ctx) -> Bad:
    root = c.suite(files={"data/ppl.jsonl": '{"id": "p1", "text": "a"}\n["p2", "b"]\n'})
    return Bad(["suites", "validate", root], ["data/ppl.jsonl:2", "object"])


@bad("suites validate", "data file is empty")
def _(c: Ctx) -> Bad:
    root = c.suite(files={"data/ppl.jsonl": ""})
    return Bad(["suites", "validate", root], ["data/ppl.jsonl", "empty"])


@bad("suites validate", "data file is a folder")
def _(c: Ctx) -> Bad:
    root = c.suite()
    (root / "data" / "ppl.jsonl").unlink()
    (root / "data" / "ppl.jsonl").mkdir()
    return Bad(["suites", "validate", root], ["ppl.jsonl"])


@bad("suites validate", "data: ../ outside the suite folder")
def _(c: Ctx) -> Bad:
    c.text("outside.jsonl", '{"id": "x", "text": "secret"}\n')
    root = c.suite(yaml=SMOKE_SUITE.replace("data/ppl.jsonl", "../outside.jsonl"))
    return Bad(["suites", "validate", root], ["suite.yaml:", "outside.jsonl"])


@bad("suites validate", "data file is a symlink out of the suite folder")
def _(c: Ctx) -> Bad:
    outside = c.text("outside.jsonl", '{"id": "x", "text": "secret"}\n')
    root = c.suite()
    (root / "data" / "ppl.jsonl").unlink()
    os.symlink(outside, root / "data" / "ppl.jsonl")
    return Bad(["suites", "validate", root], ["ppl.jsonl", "outside"])


@bad("suites validate", "few-shot file is a symlink out of the suite folder")
def _(c: Ctx) -> Bad:
    outside = c.text("shots.jsonl", json.dumps({"id": "s", "question": "q", "choices": ["a"],
                                                "answer": 0}) + "\n")
    yaml = SMOKE_SUITE.replace("    choices_field: choices\n",
                               "    choices_field: choices\n    few_shot: {data: data/shots.jsonl, k: 1}\n", 1)
    root = c.suite(yaml=yaml)
    os.symlink(outside, root / "data" / "shots.jsonl")
    return Bad(["suites", "validate", root], ["shots.jsonl", "outside"])


@bad("suites validate", "few_shot.k larger than the pool")
def _(c: Ctx) -> Bad:
    yaml = SMOKE_SUITE.replace("    choices_field: choices\n",
                               "    choices_field: choices\n    few_shot: {data: data/shots.jsonl, k: 8}\n", 1)
    shots = [{"id": f"s{i}", "question": "q", "choices": ["a", "b"], "answer": 0} for i in range(3)]
    root = c.suite(yaml=yaml, files={"data/shots.jsonl": shots})
    return Bad(["suites", "validate", root], ["suite.yaml:", "few_shot", "8", "3"])


@bad("suites validate", "two rows with the same id")
def _(c: Ctx) -> Bad:
    rows = [{"id": "p1", "text": "a"}, {"id": "p1", "text": "b"}]
    return Bad(["suites", "validate", c.suite(files={"data/ppl.jsonl": rows})],
               ["data/ppl.jsonl:1", "p1", "lines 1, 2"])


@bad("eval", "prompt refers to a field most items lack")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml=SMOKE_SUITE.replace('"{{ text }}"', '"{{ txt }}"'))
    return Bad(["eval", root, *FAKE], ["suite.yaml:", "prompt", "txt"])


@bad("eval", "prompt template syntax error")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml=SMOKE_SUITE.replace('"{{ text }}"', '"{{ text }"'))
    return Bad(["eval", root, *FAKE], ["suite.yaml:", "prompt"])


@bad("eval", "two different suites with the same name")
def _(c: Ctx) -> Bad:
    one = c.suite(yaml=suite_yaml("twin"), name="one")
    two = c.suite(yaml=suite_yaml("twin", "target"), name="two")
    return Bad(["eval", one, two, *FAKE, "--out", c.path("run.json")], ["twin", "one", "two"])


@bad("eval", "suite folder does not exist")
def _(c: Ctx) -> Bad:
    return Bad(["eval", c.path("nowhere"), *FAKE], ["nowhere"])


@bad("eval", "a suite with an alias bomb, evaluated")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml=BOMB + SMOKE_SUITE)
    return Bad(["eval", root, *FAKE, "--out", c.path("run.json")], ["suite.yaml"])


@bad("power", "--discordance nan")
def _(c: Ctx) -> Bad:
    return Bad(["power", c.suite(), "--discordance", "nan"], ["--discordance"])


@bad("power", "--baseline that is not a record")
def _(c: Ctx) -> Bad:
    return Bad(["power", c.suite(), "--baseline", c.text("b.json", "[1, 2")], ["b.json"])


@bad("power", "bad suite")
def _(c: Ctx) -> Bad:
    root = c.suite(yaml=SMOKE_SUITE.replace("kind: choice", "kind: choise"))
    return Bad(["power", root], ["suite.yaml:6", "choise"])


@bad("check-leakage", "--train file does not exist")
def _(c: Ctx) -> Bad:
    return Bad(["check-leakage", c.suite(), "--train", c.path("none.jsonl")], ["none.jsonl"])


@bad("check-leakage", "--train file with a non-UTF-8 line")
def _(c: Ctx) -> Bad:
    train = c.bytes("t.jsonl", b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n')
    return Bad(["check-leakage", c.suite(), "--train", train], ["t.jsonl:2"])


@bad("check-leakage", "--train line of nested brackets")
def _(c: Ctx) -> Bad:
    train = c.text("t.jsonl", '{"prompt": "a", "completion": "b"}\n' + DEEP + "\n")
    return Bad(["check-leakage", c.suite(), "--train", train], ["t.jsonl:2"])


@bad("check-leakage", "--train is a folder")
def _(c: Ctx) -> Bad:
    return Bad(["check-leakage", c.suite(), "--train", c.dir("tdir")], ["tdir"])


@bad("check-leakage", "--train is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["check-leakage", c.suite(), "--train", c.fifo("pipe.jsonl")], ["pipe.jsonl"],
               subprocess=True)


@bad("suites validate", "the suite's train split is a symlink out of the suite folder")
def _(c: Ctx) -> Bad:
    outside = c.text("private.jsonl", json.dumps({"instruction": "x", "output": "y"}) + "\n")
    root = c.suite(yaml=SMOKE_SUITE.replace("role: general\n", "role: general\ntrain: train.jsonl\n"))
    os.symlink(outside, root / "train.jsonl")
    return Bad(["suites", "validate", root], ["suite.yaml:4", "train.jsonl", "outside"])
