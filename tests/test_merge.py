"""ftguard merge: the merge rules against direct numpy references, exact endpoints, LoRA
updates as peft merges them, streaming shards, and refusal of models that do not match."""

from __future__ import annotations

import json
import math
import shutil
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import build_tiny_model
from ftguard.merge.methods import MergeSpec, merge_tensor

Run = Callable[..., tuple[int, str, str]]


# ---- the rules on single tensors, against numpy written from the papers -----------------

def _np_ties(taus: list[np.ndarray], weights: list[float], density: float) -> np.ndarray:
    trimmed = []
    for tau, w in zip(taus, weights):
        flat = np.abs(tau).ravel()
        k = math.ceil(density * flat.size)
        keep = np.zeros(flat.size, dtype=bool)
        keep[np.argsort(-flat, kind="stable")[:k]] = True
        trimmed.append(w * np.where(keep.reshape(tau.shape), tau, 0.0))
    stack = np.stack(trimmed)
    sign = np.sign(stack.sum(axis=0))
    out = np.zeros_like(taus[0])
    for idx in np.ndindex(out.shape):
        agree = [(stack[i][idx], weights[i]) for i in range(len(taus))
                 if stack[i][idx] != 0 and np.sign(stack[i][idx]) == sign[idx]]
        if agree:
            out[idx] = sum(v for v, _ in agree) / sum(w for _, w in agree)
    return out


def _np_dare(tau: np.ndarray, density: float, seed: int, name: str, i: int) -> np.ndarray:
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), i])
    keep = rng.random(tau.shape) < density
    return np.where(keep, tau / density, 0.0)


@pytest.fixture
def tensors() -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    base = torch.randn(6, 7, generator=g)
    return base, [base + torch.randn(6, 7, generator=g) * s for s in (0.5, 1.0, 0.8)]


def test_ties_matches_the_paper(tensors) -> None:
    base, tuned = tensors
    weights = [1.0, 0.5, 2.0]
    for density in (0.2, 0.5, 1.0):
        got = merge_tensor(MergeSpec("ties", tuple(weights), lam=0.7, density=density), "w",
                           base, tuned)
        taus = [(t - base).numpy().astype(np.float64) for t in tuned]
        want = base.numpy() + 0.7 * _np_ties(taus, weights, density)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_dare_matches_the_paper_and_is_seeded(tensors) -> None:
    base, tuned = tensors
    spec = MergeSpec("dare", (1.0, 1.0, 0.5), lam=0.9, density=0.3, seed=11)
    got = merge_tensor(spec, "layer.w", base, tuned)
    taus = [(t - base).numpy().astype(np.float64) for t in tuned]
    want = base.numpy() + 0.9 * sum(w * _np_dare(tau, 0.3, 11, "layer.w", i)
                                    for i, (w, tau) in enumerate(zip(spec.weights, taus)))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert torch.equal(got, merge_tensor(spec, "layer.w", base, tuned))
    other = merge_tensor(MergeSpec("dare", spec.weights, 0.9, 0.3, seed=12), "layer.w", base,
                         tuned)
    assert not torch.equal(got, other)
    # rescaling keeps the expected update: over many seeds the mean is the plain sum
    mean = torch.stack([merge_tensor(MergeSpec("dare", (1.0,), 1.0, 0.5, seed=s), "w", base,
                                     tuned[:1]) for s in range(400)]).mean(0)
    assert torch.allclose(mean, tuned[0], atol=0.15)


def test_slerp_endpoints_and_midpoint(tensors) -> None:
    base, (a, b, _) = tensors
    assert torch.equal(merge_tensor(MergeSpec("slerp", (1, 1), lam=0.0), "w", base, [a, b]), a)
    assert torch.equal(merge_tensor(MergeSpec("slerp", (1, 1), lam=1.0), "w", base, [a, b]), b)
    va, vb = a.numpy().ravel().astype(np.float64), b.numpy().ravel().astype(np.float64)
    omega = np.arccos(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))
    t = 0.3
    want = (np.sin((1 - t) * omega) * va + np.sin(t * omega) * vb) / np.sin(omega)
    got = merge_tensor(MergeSpec("slerp", (1, 1), lam=t), "w", base, [a, b])
    np.testing.assert_allclose(got.numpy().ravel(), want, rtol=1e-5, atol=1e-6)
    # (nearly) parallel tensors interpolate linearly instead of dividing by sin(0)
    par = merge_tensor(MergeSpec("slerp", (1, 1), lam=0.5), "w", base, [a, 2 * a])
    assert torch.allclose(par, 1.5 * a)


def test_linear_and_task_arithmetic(tensors) -> None:
    base, (a, b, _) = tensors
    lin = merge_tensor(MergeSpec("linear", (3.0, 1.0)), "w", base, [a, b])
    assert torch.allclose(lin, 0.75 * a + 0.25 * b)
    half = merge_tensor(MergeSpec("linear", (3.0, 1.0), lam=0.5), "w", base, [a, b])
    assert torch.allclose(half, base + 0.5 * (lin - base), atol=1e-6)
    ta = merge_tensor(MergeSpec("task_arithmetic", (1.0, 0.5), lam=0.8), "w", base, [a, b])
    assert torch.allclose(ta, base + 0.8 * ((a - base) + 0.5 * (b - base)), atol=1e-6)


# ---- whole models through the CLI ---------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge")
    base = build_tiny_model(root / "base")
    found = {"base": base}
    for name, seed in (("a", 1), ("b", 2)):
        found[name] = _perturbed(base, root / name, seed)
    return found


def _perturbed(base: Path, folder: Path, seed: int) -> Path:
    """A 'full fine-tune' of ``base``: every tensor moved a little."""
    shutil.copytree(base, folder)
    weights = load_file(str(base / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    save_file({k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in weights.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_linear_one_zero_is_model_a_and_lambda_zero_is_the_base(models, tmp_path: Path,
                                                                run_cli: Run) -> None:
    code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                           "--method", "linear", "--weights", "1,0", "--out", tmp_path / "lin")
    assert code == 0, err
    merged, a = _weights(tmp_path / "lin"), _weights(models["a"])
    assert merged.keys() == a.keys() and all(torch.equal(merged[k], a[k]) for k in a)
    record = json.loads((tmp_path / "lin" / "merge.json").read_text())
    assert record["method"] == "linear" and record["weights"] == [1.0, 0.0]
    code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                           "--method", "task_arithmetic", "--lambda", "0", "--out",
                           tmp_path / "ta0")
    assert code == 0, err
    merged, base = _weights(tmp_path / "ta0"), _weights(models["base"])
    assert all(torch.equal(merged[k], base[k]) for k in base)
    for method, extra in (("slerp", ()), ("ties", ("--density", "0.3")),
                          ("dare", ("--density", "0.5", "--seed", "3"))):
        code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                               "--method", method, *extra, "--out", tmp_path / method)
        assert code == 0, (method, err)
    # slerp at t = 0 / 1 reproduces the endpoints
    for t, which in (("0", "a"), ("1", "b")):
        out = tmp_path / f"slerp{t}"
        code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                               "--method", "slerp", "--lambda", t, "--out", out)
        assert code == 0, err
        want = _weights(models[which])
        assert all(torch.equal(_weights(out)[k], want[k]) for k in want)


def test_merged_model_loads_and_shards_stream(models, tmp_path: Path, run_cli: Run,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM

    from ftguard.merge import write

    code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                           "--method", "ties", "--out", tmp_path / "one")
    assert code == 0, err
    monkeypatch.setattr(write, "SHARD_BYTES", 20_000)  # force several shards
    code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                           "--method", "ties", "--out", tmp_path / "sharded")
    assert code == 0, err
    shards = sorted((tmp_path / "sharded").glob("model-*-of-*.safetensors"))
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(shards) > 2 and set(index["weight_map"].values()) == {s.name for s in shards}
    one = AutoModelForCausalLM.from_pretrained(tmp_path / "one").state_dict()
    many = AutoModelForCausalLM.from_pretrained(tmp_path / "sharded").state_dict()
    assert all(torch.equal(one[k], many[k]) for k in one)
    for name in ("tokenizer.json", "config.json", "tokenizer_config.json"):
        assert (tmp_path / "sharded" / name).is_file()
    code, _, err = run_cli("merge", "--base", models["base"], models["a"], "--out",
                           tmp_path / "one")
    assert code == 2 and "not empty" in err  # and the merged model is untouched
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "one") is not None


def test_lora_adapters_merge_as_peft_merges_them(models, tmp_path: Path, run_cli: Run) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapters = []
    # the first adapts lm_head too, which peft saves whole beside its update
    for seed, cfg in ((5, {"r": 4, "lora_alpha": 8,
                           "target_modules": ["q_proj", "v_proj", "down_proj", "lm_head"]}),
                      (6, {"r": 2, "lora_alpha": 3, "use_rslora": True,
                           "rank_pattern": {"v_proj": 3},
                           "target_modules": ["q_proj", "v_proj", "down_proj"]})):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(models["base"])
        peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **cfg))
        folder = tmp_path / f"adapter{seed}"
        peft_model.save_pretrained(folder)
        adapters.append((folder, peft_model.merge_and_unload().state_dict()))
    for i, (folder, want) in enumerate(adapters):
        out = tmp_path / f"merged{i}"
        code, _, err = run_cli("merge", "--base", models["base"], folder, "--method",
                               "task_arithmetic", "--out", out)
        assert code == 0, err
        got = _weights(out)
        assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in got)
        assert any(not torch.equal(got[k], _weights(models["base"])[k]) for k in got)
    # two adapters, task arithmetic: base + sum of both updates
    code, _, err = run_cli("merge", "--base", models["base"], adapters[0][0], adapters[1][0],
                           "--out", tmp_path / "both")
    assert code == 0, err
    base, got = _weights(models["base"]), _weights(tmp_path / "both")
    for k in got:
        want = adapters[0][1][k] + adapters[1][1][k] - base[k]
        assert torch.allclose(got[k], want, atol=1e-5), k


def test_frankenstein_merges_are_refused(models, tmp_path: Path, run_cli: Run) -> None:
    bigger = build_tiny_model(tmp_path / "bigger", hidden=64)
    other_tok = shutil.copytree(models["a"], tmp_path / "other-tok")
    data = json.loads((other_tok / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    first, second = list(vocab)[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (other_tok / "tokenizer.json").write_text(json.dumps(data))
    cases = [((bigger,), "hidden_size"), ((other_tok,), "tokenizer differs"),
             ((models["a"], models["b"], models["a"]), "exactly two")]
    for inputs, says in cases:
        method = ("--method", "slerp") if len(inputs) == 3 else ()
        code, _, err = run_cli("merge", "--base", models["base"], *inputs, *method, "--out",
                               tmp_path / "x")
        assert code == 2 and says in err, (says, err)
        assert "Traceback" not in err and not (tmp_path / "x").exists()
    # an adapter of another base: its update does not fit
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(bigger),
                                LoraConfig(r=2, target_modules=["q_proj"]))
    peft_model.save_pretrained(tmp_path / "big-adapter")
    code, _, err = run_cli("merge", "--base", models["base"], tmp_path / "big-adapter",
                           "--out", tmp_path / "x")
    assert code == 2 and "shape" in err and "--base" in err
    for flags, says in ((("--weights", "1"), "1 weight(s) for 2"),
                        (("--weights", "a,b"), "numbers"),
                        (("--density", "0"), "--density"),
                        (("--method", "linear", "--weights", "1,-1"), "sum")):
        code, _, err = run_cli("merge", "--base", models["base"], models["a"], models["b"],
                               *flags, "--out", tmp_path / "x")
        assert code == 2 and says in err, (flags, err)


def test_merge_help_does_not_import_torch() -> None:
    import subprocess

    code = ("import sys; from ftguard.cli.main import main\ntry: main(['merge', '--help'])\n"
            "except SystemExit: pass\nassert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_streaming_safetensors_io_matches_the_library(tmp_path: Path) -> None:
    from ftguard.merge.safetensors_io import StreamingWriter, read_header, read_tensor

    g = torch.Generator().manual_seed(0)
    tensors = {"a.weight": torch.randn(3, 5, generator=g).to(torch.bfloat16),
               "b.bias": torch.randn(7, generator=g, dtype=torch.float64),
               "c.ids": torch.arange(6, dtype=torch.int64).reshape(2, 3),
               "d.mask": torch.tensor([True, False, True]), "e.empty": torch.zeros(0, 4)}
    ours = tmp_path / "ours.safetensors"
    writer = StreamingWriter(ours, [(n, t.dtype, tuple(t.shape)) for n, t in tensors.items()])
    for name, tensor in tensors.items():
        writer.write(name, tensor)
    writer.close()
    loaded = load_file(str(ours))
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[n], t) and loaded[n].dtype == t.dtype
               for n, t in tensors.items())
    theirs = tmp_path / "theirs.safetensors"
    save_file(tensors, str(theirs))
    header, start = read_header(theirs)
    with theirs.open("rb") as handle:
        assert all(torch.equal(read_tensor(handle, header[n], start), t)
                   for n, t in tensors.items())
    writer = StreamingWriter(tmp_path / "bad.safetensors", [("x", torch.float32, (2,))])
    with pytest.raises(ValueError, match="expected x"):
        writer.write("y", torch.zeros(2))
    writer.abort()
