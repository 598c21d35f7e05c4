"""Bad RunRecords, policies, rules and baseline folders: `compare`, `gate`, `report`,
`baseline` and `import-lmeval`."""

from __future__ import annotations

import json
import os
from typing import Any

from catalogue import DEEP_JSON, Bad, Ctx, bad, sample


def _nan_score(data: dict[str, Any]) -> None:
    sample(data, 0, 0, 3)["scores"]["acc"] = float("nan")


@bad("compare", "NaN in an item's score")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json", edit=_nan_score)],
               ["tuned.json", "legal/clauses", "clauses-3"])


@bad("compare", "Infinity as a metric's value")
def _(c: Ctx) -> Bad:
    def edit(data: dict[str, Any]) -> None:
        data["suites"][1]["tasks"][0]["metrics"]["acc"]["value"] = float("inf")
    return Bad(["compare", c.run(), c.run("tuned.json", edit=edit)], ["tuned.json", "general"])


@bad("compare", "record cut off in the middle")
def _(c: Ctx) -> Bad:
    base = c.run()
    cut = base.read_text(encoding="utf-8")
    return Bad(["compare", base, c.run("tuned.json", raw=cut[: len(cut) // 2])], ["tuned.json:"])


@bad("compare", "record of 100,000 nested brackets")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.text("tuned.json", DEEP_JSON)], ["tuned.json"])


@bad("compare", "record with a non-UTF-8 byte")
def _(c: Ctx) -> Bad:
    base = c.run()
    tuned = c.bytes("tuned.json", base.read_bytes().replace(b"model-base", b"model-\xff", 1))
    return Bad(["compare", base, tuned], ["tuned.json"])


@bad("compare", "record that is a JSON list")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.text("tuned.json", "[1, 2, 3]\n")], ["tuned.json"])


@bad("compare", "record without per-item scores")
def _(c: Ctx) -> Bad:
    def edit(data: dict[str, Any]) -> None:
        del sample(data, 0, 0, 0)["scores"]
    return Bad(["compare", c.run(), c.run("tuned.json", edit=edit)], ["tuned.json", "clauses-0"])


@bad("compare", "an item id twice in the tuned record")
def _(c: Ctx) -> Bad:
    def edit(data: dict[str, Any]) -> None:
        sample(data, 0, 0, 1)["id"] = sample(data, 0, 0, 0)["id"]
    return Bad(["compare", c.run(), c.run("tuned.json", edit=edit)],
               ["tuned.json", "clauses-0", "twice"])


@bad("compare", "record is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.fifo("tuned.json")], ["tuned.json"], subprocess=True)


@bad("compare", "--policy of binary bytes")
def _(c: Ctx) -> Bad:
    policy = c.bytes("gate.yaml", bytes(range(256)))
    return Bad(["compare", c.run(), c.run("tuned.json"), "--policy", policy],
               ["--policy", "gate.yaml"])


@bad("compare", "--policy is a folder")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--policy", c.dir("gate.yaml")],
               ["--policy", "gate.yaml"])


@bad("compare", "--policy with a bad rule on line 3")
def _(c: Ctx) -> Bad:
    policy = c.text("gate.yaml", "rules:\n  - general:headline:not-regressed\n  - acc:bogus%\n")
    return Bad(["compare", c.run(), c.run("tuned.json"), "--policy", policy], ["gate.yaml:3"])


@bad("compare", "--policy YAML alias bomb")
def _(c: Ctx) -> Bad:
    from catalogue.suites import BOMB
    policy = c.text("gate.yaml", BOMB + "rules: [general:headline:not-regressed]\n")
    return Bad(["compare", c.run(), c.run("tuned.json"), "--policy", policy], ["gate.yaml"])


@bad("compare", "--policy rule selecting no task")
def _(c: Ctx) -> Bad:
    policy = c.text("gate.yaml", "rules:\n  - legl:acc:not-regressed\n")
    return Bad(["compare", c.run(), c.run("tuned.json"), "--policy", policy],
               ["gate.yaml:2", "legl", "legal"])


@bad("compare", "--fail-on of garbage")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--fail-on", "::::"], ["--fail-on"])


@bad("compare", "--fail-on metric no task has")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--fail-on", "rouge1:5%"],
               ["--fail-on", "rouge1"])


@bad("compare", "--alpha nan")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--alpha", "nan"], ["--alpha"])


@bad("compare", "--resamples 0")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--resamples", "0"], ["--resamples"])


@bad("compare", "--out is a folder")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--out", c.dir("cmp.json")],
               ["--out", "cmp.json"])


@bad("compare", "--out is the BASE record")
def _(c: Ctx) -> Bad:
    base = c.run()
    return Bad(["compare", base, c.run("tuned.json"), "--out", base], ["--out", "base.json"])


@bad("compare", "--html is the TUNED record")
def _(c: Ctx) -> Bad:
    tuned = c.run("tuned.json")
    return Bad(["compare", c.run(), tuned, "--html", tuned], ["--html", "tuned.json"])


@bad("compare", "--out and --html the same file")
def _(c: Ctx) -> Bad:
    out = c.path("same.out")
    return Bad(["compare", c.run(), c.run("tuned.json"), "--out", out, "--html", out],
               ["--out", "--html"])


@bad("compare", "--out is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--out", c.fifo("cmp.json")],
               ["--out", "cmp.json"], subprocess=True)


@bad("compare", "--out in a folder that is a file")
def _(c: Ctx) -> Bad:
    c.text("notdir", "x")
    return Bad(["compare", c.run(), c.run("tuned.json"), "--out", c.path("notdir/cmp.json")],
               ["--out", "notdir"])


@bad("compare", "--out is an empty string")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json"), "--out", ""], ["--out"])


@bad("compare", "a real regression fails the gate (exit 1, not 2)")
def _(c: Ctx) -> Bad:
    return Bad(["compare", c.run(), c.run("tuned.json", flips=24)], ["regressed"], code=1)


@bad("report", "--out is the input")
def _(c: Ctx) -> Bad:
    base = c.run()
    return Bad(["report", base, "--out", base], ["--out", "base.json"])


@bad("report", "--out is a folder")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.run(), "--out", c.dir("r.html")], ["--out", "r.html"])


@bad("report", "--out is an empty string")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.run(), "--out", ""], ["--out"])


@bad("report", "--out is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.run(), "--out", c.fifo("r.html")], ["--out", "r.html"],
               subprocess=True)


@bad("report", "input of binary bytes")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.bytes("in.json", bytes(range(256))), "--out", c.path("r.html")],
               ["in.json"])


@bad("report", "input with NaN scores")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.run(edit=_nan_score), "--out", c.path("r.html")],
               ["base.json", "clauses-3"])


@bad("report", "--train of garbage")
def _(c: Ctx) -> Bad:
    cmp_path = c.path("cmp.json")
    from ftguard.cli.main import main
    main(["compare", str(c.run()), str(c.run("tuned.json")), "--out", str(cmp_path),
          "--format", "json"])
    return Bad(["report", cmp_path, "--out", c.path("r.html"), "--train",
                c.text("train_record.json", "{oops")], ["train_record.json"])


def _baseline(c: Ctx, file: str) -> Any:
    root = c.dir("baselines")
    c.run("cand.json")
    index = {"entries": [{"name": "m", "file": file, "model": "m", "fingerprint": "f",
                          "suites": {"legal": "legal-hash", "general": "general-hash"},
                          "accepted": "2026-01-01T00:00:00Z"}]}
    (root / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return root


@bad("gate", "baseline index entry ../outside.json")
def _(c: Ctx) -> Bad:
    c.run("outside.json")
    root = _baseline(c, "../outside.json")
    return Bad(["gate", "--candidate", c.path("cand.json"), "--baseline", root],
               ["index.json", "../outside.json"])


@bad("gate", "baseline index entry ../../../etc/passwd")
def _(c: Ctx) -> Bad:
    root = _baseline(c, "../../../../../../../../etc/passwd")
    return Bad(["gate", "--candidate", c.path("cand.json"), "--baseline", root],
               ["index.json", "etc/passwd"])


@bad("gate", "baseline entry that is a symlink out of the folder")
def _(c: Ctx) -> Bad:
    outside = c.run("outside.json")
    root = _baseline(c, "m.json")
    os.symlink(outside, root / "m.json")
    return Bad(["gate", "--candidate", c.path("cand.json"), "--baseline", root],
               ["m.json", "outside"])


@bad("gate", "baseline index.json of garbage")
def _(c: Ctx) -> Bad:
    root = c.dir("baselines")
    (root / "index.json").write_text("{\"entries\": [", encoding="utf-8")
    return Bad(["gate", "--candidate", c.run("cand.json"), "--baseline", root], ["index.json"])


@bad("gate", "baseline index entry missing its file")
def _(c: Ctx) -> Bad:
    root = _baseline(c, "gone.json")
    return Bad(["gate", "--candidate", c.path("cand.json"), "--baseline", root],
               ["gone.json"])


@bad("gate", "candidate record with NaN")
def _(c: Ctx) -> Bad:
    return Bad(["gate", "--candidate", c.run("cand.json", edit=_nan_score), "--baseline",
                c.run()], ["cand.json", "clauses-3"])


@bad("baseline accept", "--dir is a file")
def _(c: Ctx) -> Bad:
    return Bad(["baseline", "accept", c.run(), "--dir", c.text("baselines", "x"), "--force"],
               ["baselines"])


@bad("baseline accept", "--name that climbs out of the folder")
def _(c: Ctx) -> Bad:
    return Bad(["baseline", "accept", c.run(), "--dir", c.path("baselines"), "--force",
                "--name", "../evil"], ["--name"])


@bad("baseline show", "index.json is a folder")
def _(c: Ctx) -> Bad:
    root = c.dir("baselines")
    (root / "index.json").mkdir()
    return Bad(["baseline", "show", "--dir", root], ["index.json"])


@bad("import-lmeval", "results file of garbage")
def _(c: Ctx) -> Bad:
    return Bad(["import-lmeval", c.text("results_x.json", "{nope"), "--out",
                c.path("run.json")], ["results_x.json"])


@bad("import-lmeval", "results file with nested brackets")
def _(c: Ctx) -> Bad:
    return Bad(["import-lmeval", c.text("results_x.json", DEEP_JSON), "--out",
                c.path("run.json")], ["results_x.json"])


@bad("import-lmeval", "--out is a folder")
def _(c: Ctx) -> Bad:
    return Bad(["import-lmeval", c.text("results_x.json", "{}"), "--out", c.dir("run.json")],
               ["--out", "run.json"])


@bad("import-lmeval", "samples file with a non-UTF-8 line")
def _(c: Ctx) -> Bad:
    results = {"results": {"t": {"acc,none": 0.5}}, "configs": {"t": {}},
               "n-samples": {"t": {"effective": 1}}, "config": {"model": "hf"}}
    res = c.text("lm/results_x.json", json.dumps(results))
    samples = c.bytes("lm/samples_t_x.jsonl", b'{"doc_id": 0}\n{"doc_id": "\xff"}\n')
    return Bad(["import-lmeval", res, samples, "--out", c.path("run.json")],
               ["samples_t_x.jsonl"])


@bad("report", "input is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.fifo("in.json"), "--out", c.path("r.html")], ["in.json"],
               subprocess=True)


@bad("report", "--train nested 100,000 deep")
def _(c: Ctx) -> Bad:
    return Bad(["report", c.run(), "--out", c.path("r.html"), "--train",
                c.text("train_record.json", DEEP_JSON)], ["train_record.json"])
