"""Output paths that cannot take a result: they are refused before any work is done, and
whatever is there stays as it was."""

from __future__ import annotations

from catalogue import Bad, Ctx, bad

FAKE = ("--model", "fake:0", "--no-progress")


@bad("eval", "--out is a folder")
def _(c: Ctx) -> Bad:
    return Bad(["eval", c.suite(), *FAKE, "--out", c.dir("run.json")], ["--out", "run.json"])


@bad("eval", "--out is an empty string")
def _(c: Ctx) -> Bad:
    return Bad(["eval", c.suite(), *FAKE, "--out", ""], ["--out"])


@bad("eval", "--out is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["eval", c.suite(), *FAKE, "--out", c.fifo("run.json")], ["--out", "run.json"],
               subprocess=True)


@bad("eval", "--out is a socket")
def _(c: Ctx) -> Bad:
    # Not /dev/null: before the fix, root running this replaced the device node with a file.
    return Bad(["eval", c.suite(), *FAKE, "--out", c.socket("run.json")], ["--out", "run.json"])


@bad("eval", "--out inside a file")
def _(c: Ctx) -> Bad:
    c.text("afile", "x")
    return Bad(["eval", c.suite(), *FAKE, "--out", c.path("afile/run.json")],
               ["--out", "afile"])


@bad("eval", "--out is one of the suite's data files")
def _(c: Ctx) -> Bad:
    root = c.suite()
    return Bad(["eval", root, *FAKE, "--out", root / "data" / "mc.jsonl"],
               ["--out", "mc.jsonl"])


@bad("eval", "--out-dir is a file")
def _(c: Ctx) -> Bad:
    return Bad(["eval", c.suite(), *FAKE, "--adapter", c.dir("a1"), "--adapter", c.dir("a2"),
                "--out-dir", c.text("outdir", "x")], ["--out-dir", "outdir"])


@bad("eval", "--out given with several --adapter")
def _(c: Ctx) -> Bad:
    return Bad(["eval", c.suite(), *FAKE, "--adapter", c.dir("a1"), "--adapter", c.dir("a2"),
                "--out", c.path("run.json")], ["--out", "--out-dir"])
