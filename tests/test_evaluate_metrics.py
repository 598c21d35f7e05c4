"""Hugging Face ``evaluate`` modules as metrics: a local module written for the test
(tests/evaluate_modules/token_overlap), loaded offline from a path relative to the suite
folder; ftguard's values equal the module's own ``compute()`` on the same inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import ftguard
from conftest import write_jsonl
from ftguard.models.base import Generation
from ftguard.models.fake import FakeBackend

pytest.importorskip("evaluate")

MODULE = Path(__file__).parent / "evaluate_modules" / "token_overlap"
N = 24
SUITE = """\
name: ev
version: 1
role: target
tasks:
  - name: qa
    kind: generate
    data: data/items.jsonl
    prompt: "Name item {{ n }}:"
    target: "{{ answer }}"
    metrics: ["evaluate:metrics/token_overlap", "evaluate:./metrics/token_overlap"]
    metric_args:
      "evaluate:metrics/token_overlap": {key: token_f1, corpus: true}
      "evaluate:./metrics/token_overlap": {key: exact, binary: true}
"""


class Answers(FakeBackend):
    """Answers item i with its reference, or (the items in ``wrong``) a wrong word."""

    def __init__(self, seed: int, wrong: set[int]) -> None:
        super().__init__(seed)
        self.wrong = wrong

    def generate(self, requests, progress=None):
        out = []
        for r in requests:
            i = int(r.context.split("item ")[1].rstrip(":"))
            out.append(Generation(_answer(i, i in self.wrong), truncated=False))
        if progress:
            progress(len(requests))
        return out


def _answer(i: int, wrong: bool) -> str:
    if wrong:
        return f"the wrong {i}"
    return f"the answer {i}" if i % 4 else f"answer {i} is the answer we gave"


def _suite(root: Path, yaml: str = SUITE) -> Path:
    root.mkdir(parents=True)
    (root / "suite.yaml").write_text(yaml, encoding="utf-8")
    shutil.copytree(MODULE, root / "metrics" / "token_overlap")
    write_jsonl(root / "data" / "items.jsonl",
                [{"id": f"q{i}", "n": i, "answer": f"the answer {i}"} for i in range(N)])
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("evaluate")
    root = _suite(tmp / "ev")
    ftguard.evaluate([root], backend=Answers(0, set()), out=tmp / "base.json")
    ftguard.evaluate([root], backend=Answers(1, set(range(1, N, 2))), out=tmp / "tuned.json")
    return root, tmp / "base.json", tmp / "tuned.json"


def test_values_equal_the_modules_own_compute(runs: tuple[Path, Path, Path]) -> None:
    import evaluate

    root, _, tuned_path = runs
    module = evaluate.load(str(MODULE))
    task = ftguard.read_run(tuned_path).suites[0].tasks[0]
    predictions = [s.prediction for s in task.samples]
    references = [s.target for s in task.samples]
    assert predictions[1] == "the wrong 1" and references[1] == "the answer 1"
    # declared corpus: the module's compute() on all items, not a mean over items
    whole = module.compute(predictions=predictions, references=references)["token_f1"]
    assert task.metrics["evaluate:metrics/token_overlap"].value == pytest.approx(whole, abs=1e-12)
    per_item = [module.compute(predictions=[p], references=[r])["token_f1"]
                for p, r in zip(predictions, references)]
    assert abs(np.mean(per_item) - whole) > 0.01  # the declaration matters here
    # default (a mean over items): the mean of compute() on each item alone
    exact = [module.compute(predictions=[p], references=[r])["exact"]
             for p, r in zip(predictions, references)]
    row = task.metrics["evaluate:./metrics/token_overlap"]
    assert row.value == pytest.approx(np.mean(exact)) and row.ci_method == "wilson"
    assert [s.scores["evaluate:./metrics/token_overlap"] for s in task.samples] == exact
    # the record names the module: its resolved path (relative to the suite folder) and hash
    source = task.metric_sources["evaluate:metrics/token_overlap"]
    assert source.module == str((root / "metrics" / "token_overlap").resolve())
    assert source.package is None and len(source.version) == 16
    assert source.args == {"key": "token_f1", "corpus": True}


def test_compare_recomputes_the_corpus_value_and_gates(runs: tuple[Path, Path, Path],
                                                       run_cli, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluate

    from ftguard.metrics.recompute import _Table

    _, base_path, tuned_path = runs
    monkeypatch.chdir(tmp_path)  # compare reads records only: no suite folder at hand
    code, out, _ = run_cli("compare", base_path, tuned_path, "--format", "json")
    assert code == 1  # the headline (the corpus F1) regressed: the default gate fails
    row = next(r for r in json.loads(out)["rows"]
               if r["metric"] == "evaluate:metrics/token_overlap")
    assert row["verdict"] == "regressed" and row["gated"]
    module = evaluate.load(str(MODULE))
    base, tuned = (ftguard.read_run(p).suites[0].tasks[0].samples for p in runs[1:])
    values = [module.compute(predictions=[s.prediction for s in run],
                             references=[s.target for s in run])["token_f1"]
              for run in (base, tuned)]
    assert (row["base"], row["tuned"]) == pytest.approx(values)
    assert row["p_value"] < 0.01 and row["ci_high"] < 0
    # resamples and swaps recompute the module on the answers the rows name: a bootstrap
    # draw mixing both runs' answers gives what compute() gives on those answers
    table = _Table()
    rows = np.concatenate([table.rows(base), table.rows(tuned)])
    answers = [(s.prediction, s.target) for s in (*base, *tuned)]
    draw = np.random.default_rng(0).integers(0, len(rows), size=(3, N))
    recomputed = table.set_fn(lambda p, r: module._compute(predictions=p,
                                                           references=[x[0] for x in r])[
        "token_f1"])(rows[draw])
    assert recomputed.tolist() == pytest.approx([module.compute(
        predictions=[answers[k][0] for k in picks],
        references=[answers[k][1] for k in picks])["token_f1"] for picks in draw])


def test_a_missing_module_is_a_located_suite_error(tmp_path: Path) -> None:
    from ftguard.errors import SuiteError
    from ftguard.suite.loader import load_suite

    root = _suite(tmp_path / "ev", SUITE.replace('"evaluate:./metrics/token_overlap"]',
                                                 '"evaluate:metrics/absent"]'))
    with pytest.raises(SuiteError) as err:
        load_suite(root)
    message = str(err.value)
    assert "suite.yaml:10 [tasks[0].metrics[1]]" in message
    assert "no evaluate module at 'metrics/absent' (relative to the suite folder" in message
    root = _suite(tmp_path / "ev2", SUITE.replace("{key: exact, binary: true}",
                                                  "{key: exact, binray: true}"))
    with pytest.raises(SuiteError, match=r"metric_args.*binray.*Extra inputs"):
        load_suite(root)
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # all of it offline
