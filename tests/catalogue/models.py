"""Bad model folders and model flags, met by `eval` (the merge commands meet them in
train_merge.py)."""

from __future__ import annotations

from catalogue import TRUNCATED_SAFETENSORS, Bad, Ctx, bad


def _eval(c: Ctx, model: object, *extra: object) -> list[object]:
    return ["eval", c.suite(), "--model", model, "--out", c.path("run.json"), "--no-progress",
            *extra]


@bad("eval", "model.safetensors cut in half")
def _(c: Ctx) -> Bad:
    model = c.model()
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    return Bad(_eval(c, model), ["model.safetensors"])


@bad("eval", "model.safetensors of random bytes")
def _(c: Ctx) -> Bad:
    model = c.model()
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    return Bad(_eval(c, model), ["model.safetensors"])


@bad("eval", "model.safetensors of zero bytes")
def _(c: Ctx) -> Bad:
    model = c.model()
    (model / "model.safetensors").write_bytes(b"")
    return Bad(_eval(c, model), ["model.safetensors"])


@bad("eval", "model.safetensors whose header claims more data than the file holds")
def _(c: Ctx) -> Bad:
    import json
    import struct

    model = c.model()
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000],
                               "data_offsets": [0, 4_000_000]}}).encode()
    (model / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    return Bad(_eval(c, model), ["model.safetensors"])


@bad("eval", "config.json of garbage")
def _(c: Ctx) -> Bad:
    model = c.model()
    (model / "config.json").write_text("{not json", encoding="utf-8")
    return Bad(_eval(c, model), ["config.json"])


@bad("eval", "model folder without config.json")
def _(c: Ctx) -> Bad:
    model = c.model()
    (model / "config.json").unlink()
    return Bad(_eval(c, model), ["config.json"])


@bad("eval", "model folder without weights")
def _(c: Ctx) -> Bad:
    model = c.model()
    (model / "model.safetensors").unlink()
    return Bad(_eval(c, model), [str(model)])


@bad("eval", "--adapter folder does not exist")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, c.tiny_model, "--adapter", c.path("noadapter")),
               ["--adapter", "noadapter"])


@bad("eval", "--adapter with a truncated adapter_model.safetensors")
def _(c: Ctx) -> Bad:
    adapter = c.adapter(TRUNCATED_SAFETENSORS)
    return Bad(_eval(c, c.tiny_model, "--adapter", adapter), ["adapter_model.safetensors"])


@bad("eval", "--dtype float64")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, c.tiny_model, "--dtype", "float64"), ["--dtype", "float64"])


@bad("eval", "--device quantum")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, c.tiny_model, "--device", "quantum"), ["--device", "quantum"])


@bad("eval", "--batch-size -3")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, "fake:0", "--batch-size", "-3"), ["--batch-size"])


@bad("eval", "--limit 0")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, "fake:0", "--limit", "0"), ["--limit"])


@bad("eval", "--subset 2.5")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, "fake:0", "--subset", "2.5"), ["--subset"])


@bad("eval", "--request-timeout nan")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, "m", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                     "--request-timeout", "nan"), ["--request-timeout"])


@bad("eval", "--backend openai without --base-url")
def _(c: Ctx) -> Bad:
    return Bad(_eval(c, "m", "--backend", "openai"), ["--base-url"])


@bad("eval", "config.json nested 100,000 deep")
def _(c: Ctx) -> Bad:
    from catalogue import DEEP_JSON

    model = c.model()
    (model / "config.json").write_text(DEEP_JSON, encoding="utf-8")
    return Bad(_eval(c, model), ["config.json"])
