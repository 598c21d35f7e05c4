"""End to end on the embedded SmolLM2-135M-Instruct (converted once, then reused)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from ftguard.models import LoadOptions, embedded_model_dir, load_backend

    embedded_model_dir()  # converts on first use (about 30 s), reused afterwards
    return load_backend(LoadOptions())


def test_embedded_model_knows_the_capital_of_france(smollm2) -> None:
    from ftguard.models import GenerateRequest

    text = smollm2.generate([GenerateRequest("The capital of France is", 8)])[0]
    assert "Paris" in text
    assert smollm2.info.spec == "smollm2-135m-instruct" and smollm2.info.dtype == "float32"


def test_converted_folder_is_plain_safetensors_and_reused(smollm2) -> None:
    from ftguard.models import embedded_model_dir

    folder = Path(smollm2.info.path)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not list(folder.glob("*.gguf")) and not list(folder.glob("*.bin"))
    start = time.perf_counter()
    assert embedded_model_dir() == folder
    assert time.perf_counter() - start < 1.0  # no second conversion


def test_eval_cli_on_the_embedded_model(run_cli, tmp_path: Path) -> None:
    root = tmp_path / "geo"
    root.mkdir()
    (root / "suite.yaml").write_text(
        "name: geo\nversion: 1\nrole: general\ntasks:\n"
        "  - name: capitals\n    kind: generate\n    data: data.jsonl\n"
        "    prompt: \"The capital of {{ country }} is\"\n    target: \"{{ city }}\"\n"
        "    generation: {max_new_tokens: 6, stop: [\".\", \"\\n\"]}\n"
        "    metrics: [exact_match, f1]\n")
    write_jsonl(root / "data.jsonl", [{"id": "fr", "country": "France", "city": "Paris"},
                                      {"id": "de", "country": "Germany", "city": "Berlin"}])
    code, _, err = run_cli("eval", root, "--out", tmp_path / "run.json", "--no-progress")
    assert code == 0, err
    from ftguard.record import read_run

    samples = read_run(tmp_path / "run.json").suites[0].tasks[0].samples
    assert samples[0].prediction.strip() == "Paris" and samples[0].scores["exact_match"] == 1.0


def test_committed_baseline_has_the_embedded_models_fingerprint() -> None:
    """The shipped baseline was accepted under transformers 5.23; the same weights converted
    by any later version must keep its fingerprint, or every gate against it is refused."""
    import json

    from conftest import REPO
    from ftguard.models import LoadOptions, embedded_model_dir
    from ftguard.models.load import describe_model

    embedded_model_dir()
    fingerprint = describe_model(LoadOptions(device="cpu")).fingerprint
    index = json.loads((REPO / "baselines" / "index.json").read_text())
    entry = next(e for e in index["entries"] if e["model"] == "smollm2-135m-instruct")
    record = json.loads((REPO / "baselines" / entry["file"]).read_text())
    assert entry["fingerprint"] == record["model"]["fingerprint"] == fingerprint



def test_conversion_shows_no_library_progress_bars_and_restores_them(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The conversion's own bars (transformers' and the GGUF reader's plain tqdm) are off
    while it runs, and back as they were after. The loading itself is stubbed here: a real
    conversion takes about 30 s and runs once per $FTGUARD_HOME in the other tests."""
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    from ftguard.models import embedded

    seen: list[bool] = []

    class Saved:
        config = object()
        hf_quantizer = None

        def save_pretrained(self, out: Path, **_: object) -> None:
            for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors"):
                pass
            seen.append(hf_logging.is_progress_bar_enabled())

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Saved())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: Saved())
    hf_logging.enable_progress_bar()  # as in a fresh process
    original = gguf_utils.tqdm
    embedded._convert(tmp_path / "model.gguf", tmp_path / "out")
    assert seen == [False, False]  # model and tokenizer saved with the bars off
    err = capfd.readouterr().err
    assert "GGUF tensors" not in err and "%|" not in err, err
    assert hf_logging.is_progress_bar_enabled() and gguf_utils.tqdm is original
