"""Bad training configs and data (`train`), and bad inputs of `merge` and `merge-adapter`."""

from __future__ import annotations

import json

from catalogue import DEEP_JSON, EMPTY_SAFETENSORS, TRUNCATED_SAFETENSORS, Bad, Ctx, bad
from catalogue.suites import BOMB

ROW = {"instruction": "Say hi.", "output": "hi"}


def _train(c: Ctx, *extra: object, data: str | bytes | None = None) -> list[object]:
    rows = data if data is not None else "".join(json.dumps(ROW) + "\n" for _ in range(4))
    path = c.bytes("train.jsonl", rows) if isinstance(rows, bytes) else c.text("train.jsonl", rows)
    return ["train", "--model", c.tiny_model, "--data", path, "--max-steps", "1",
            "--out", c.path("trained"), "--quiet", *extra]


@bad("train", "config of binary bytes")
def _(c: Ctx) -> Bad:
    return Bad(["train", c.bytes("cfg.yaml", bytes(range(256))), "--out", c.path("trained")],
               ["cfg.yaml"])


@bad("train", "config alias bomb")
def _(c: Ctx) -> Bad:
    return Bad(["train", c.text("cfg.yaml", BOMB + "method: lora\n"), "--out",
                c.path("trained")], ["cfg.yaml"])


@bad("train", "config is a YAML list")
def _(c: Ctx) -> Bad:
    return Bad(["train", c.text("cfg.yaml", "- method: lora\n"), "--out", c.path("trained")],
               ["cfg.yaml"])


@bad("train", "config naming a data file that does not exist")
def _(c: Ctx) -> Bad:
    cfg = c.text("cfg.yaml", f"model: {c.tiny_model}\ndata:\n  train: missing.jsonl\n")
    return Bad(["train", cfg, "--out", c.path("trained"), "--quiet"],
               ["cfg.yaml:3", "missing.jsonl"])


@bad("train", "a row without 'output' (the message says 'input' is optional)")
def _(c: Ctx) -> Bad:
    rows = json.dumps(ROW) + "\n" + json.dumps({"instruction": "x", "input": "y"}) + "\n"
    return Bad(_train(c, data=rows), ["train.jsonl:2", "output", "optional"])


@bad("train", "a non-UTF-8 row")
def _(c: Ctx) -> Bad:
    rows = (json.dumps(ROW) + "\n").encode() + b'{"instruction": "\xff", "output": "x"}\n'
    return Bad(_train(c, data=rows), ["train.jsonl:2"])


@bad("train", "a row of nested brackets")
def _(c: Ctx) -> Bad:
    return Bad(_train(c, data=json.dumps(ROW) + "\n" + DEEP_JSON + "\n"), ["train.jsonl:2"])


@bad("train", "empty data file")
def _(c: Ctx) -> Bad:
    return Bad(_train(c, data=""), ["train.jsonl", "empty"])


@bad("train", "--lr nan")
def _(c: Ctx) -> Bad:
    return Bad(_train(c, "--lr", "nan"), ["lr"])


@bad("train", "--out is a file")
def _(c: Ctx) -> Bad:
    args = _train(c)
    out = c.text("trained", "x")
    return Bad(args, ["--out", str(out)])


@bad("train", "--max-steps -1")
def _(c: Ctx) -> Bad:
    return Bad(_train(c, "--max-steps", "-1"), ["max_steps"])


def _merge(c: Ctx, *extra: object) -> list[object]:
    tuned = c.model("tuned")
    return ["merge", tuned, "--base", c.tiny_model, "--out", c.path("merged"), *extra]


@bad("merge", "--lambda nan")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--lambda", "nan"), ["--lambda"])


@bad("merge", "--lambda inf")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--lambda", "inf"), ["--lambda"])


@bad("merge", "--weights nan")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--weights", "nan"), ["--weights"])


@bad("merge", "--weights 1e309 (overflows to inf)")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--weights", "1e309"), ["--weights"])


@bad("merge", "--density 1.5")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--method", "ties", "--density", "1.5"), ["--density"])


@bad("merge", "--base ./missing")
def _(c: Ctx) -> Bad:
    return Bad(["merge", c.model("tuned"), "--base", c.path("missing"), "--out",
                c.path("merged")], ["--base", "missing"])


@bad("merge", "a model whose safetensors is cut in half")
def _(c: Ctx) -> Bad:
    tuned = c.model("tuned")
    weights = tuned / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    return Bad(["merge", tuned, "--base", c.tiny_model, "--out", c.path("merged")],
               ["model.safetensors"])


@bad("merge", "a base whose safetensors is random bytes")
def _(c: Ctx) -> Bad:
    base = c.model("base")
    (base / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    return Bad(["merge", c.model("tuned"), "--base", base, "--out", c.path("merged")],
               ["model.safetensors"])


@bad("merge", "--out is the tuned model")
def _(c: Ctx) -> Bad:
    tuned = c.model("tuned")
    return Bad(["merge", tuned, "--base", c.tiny_model, "--out", tuned, "--overwrite"],
               ["--out"])


@bad("merge", "--out is a FIFO")
def _(c: Ctx) -> Bad:
    return Bad(["merge", c.model("tuned"), "--base", c.tiny_model, "--out", c.fifo("merged")],
               ["--out", "merged"], subprocess=True)


@bad("merge", "--sweep without --suites")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--sweep", "lambda=0.2:1:0.2"), ["--sweep", "--suites"])


@bad("merge", "--sweep lambda=nan")
def _(c: Ctx) -> Bad:
    return Bad(_merge(c, "--suites", c.suite(), "--sweep", "lambda=nan,1"), ["--sweep"])


@bad("merge-adapter", "adapter folder without adapter_config.json")
def _(c: Ctx) -> Bad:
    adapter = c.dir("adapter")
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return Bad(["merge-adapter", adapter, "--out", c.path("merged")], ["adapter_config.json"])


@bad("merge-adapter", "adapter_config.json of garbage")
def _(c: Ctx) -> Bad:
    adapter = c.adapter(EMPTY_SAFETENSORS, config="{oops")
    return Bad(["merge-adapter", adapter, "--out", c.path("merged")], ["adapter_config.json"])


@bad("merge-adapter", "truncated adapter_model.safetensors")
def _(c: Ctx) -> Bad:
    adapter = c.adapter(TRUNCATED_SAFETENSORS)
    return Bad(["merge-adapter", adapter, "--out", c.path("merged")],
               ["adapter_model.safetensors"])


@bad("merge-adapter", "--out is a file")
def _(c: Ctx) -> Bad:
    adapter = c.adapter(EMPTY_SAFETENSORS)
    return Bad(["merge-adapter", adapter, "--out", c.text("merged", "x")], ["--out", "merged"])


@bad("merge", "the base's config.json nested 100,000 deep")
def _(c: Ctx) -> Bad:
    base = c.model("base")
    (base / "config.json").write_text(DEEP_JSON, encoding="utf-8")
    return Bad(["merge", c.model("tuned"), "--base", base, "--out", c.path("merged")],
               ["--base", "config.json"])
