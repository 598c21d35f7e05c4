"""User metrics: ``@ftguard.metric`` in a real installed package (tests/packages/
ftguard_metric_example, installed by ``make install`` with its ``ftguard.metrics`` entry
points), named by entry point or import path, through eval -> record -> compare -> gate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ftguard
from conftest import write_jsonl
from ftguard.models.base import Generation
from ftguard.models.fake import FakeBackend

pytest.importorskip("ftguard_metric_example", reason="make install installs the example package")

N = 30


def _rows() -> list[dict[str, object]]:
    return [{"id": f"s{i}", "question": f"Which statute covers case {i}?", "answer": f"§ {i}",
             "statutes": [str(i), str(i + 100)]} for i in range(N)]


SUITE = """\
name: cite
version: 1
role: target
tasks:
  - name: cite
    kind: generate
    data: data/items.jsonl
    prompt: "{{ question }}"
    target: "{{ answer }}"
    metrics: [citation_ok, token_f1_corpus, "ftguard_metric_example.scoring:scaled"]
    metric_args:
      "ftguard_metric_example.scoring:scaled": {factor: 0.5}
"""


class Answers(FakeBackend):
    """The fake model, answering each question with a fixed text (a planted regression:
    the tuned answers cite the wrong statute on ``wrong`` items)."""

    def __init__(self, seed: int, wrong: set[int]) -> None:
        super().__init__(seed)
        self.wrong = wrong

    def generate(self, requests, progress=None):
        out = []
        for r in requests:
            i = int(r.context.split("case ")[1].split("?")[0])
            out.append(Generation(f"§ {i + 7} applies" if i in self.wrong else f"§ {i} applies",
                                  truncated=False))
        if progress:
            progress(len(requests))
        return out


def _suite(root: Path, yaml: str = SUITE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(yaml, encoding="utf-8")
    write_jsonl(root / "data" / "items.jsonl", _rows())
    return root


def _token_f1(predictions: list[str], references: list[str]) -> float:
    overlap = sum(sum(min(p.split().count(t), r.split().count(t)) for t in set(p.split()))
                  for p, r in zip(predictions, references))
    precision = overlap / sum(len(p.split()) for p in predictions)
    recall = overlap / sum(len(r.split()) for r in references)
    return 2 * precision * recall / (precision + recall)


def test_entry_point_and_import_path_metrics_end_to_end(tmp_path: Path, run_cli) -> None:
    root = _suite(tmp_path / "cite")
    wrong = set(range(0, N, 3))  # 10 of 30 items regress
    base = ftguard.evaluate([root], backend=Answers(0, set()), out=tmp_path / "base.json")
    tuned = ftguard.evaluate([root], backend=Answers(1, wrong), out=tmp_path / "tuned.json")

    task = tuned.suites[0].tasks[0]
    assert task.metrics["citation_ok"].value == pytest.approx(20 / 30)
    assert task.metrics["citation_ok"].ci_method == "wilson"  # declared binary
    answers = [f"§ {i + 7} applies" if i in wrong else f"§ {i} applies" for i in range(N)]
    f1 = _token_f1(answers, [f"§ {i}" for i in range(N)])  # the corpus form, by hand
    assert task.metrics["token_f1_corpus"].value == pytest.approx(f1)
    assert task.metrics["token_f1_corpus"].aggregation == "corpus"
    assert task.samples[0].stats["token_f1_corpus"] == [1.0, 3.0, 2.0]  # "§" only
    assert task.samples[1].stats["token_f1_corpus"] == [2.0, 3.0, 2.0]
    # metric_args reach the function as keyword arguments: len("§ 0 applies") * 0.5
    assert task.samples[0].scores["ftguard_metric_example.scoring:scaled"] == 5.5
    # the record names each user metric's module and package version
    source = task.metric_sources["citation_ok"]
    assert (source.module, source.package, source.version) == (
        "ftguard_metric_example.scoring", "ftguard-metric-example", "0.3.1")
    assert task.metric_sources["ftguard_metric_example.scoring:scaled"].args == {"factor": 0.5}
    assert base.suites[0].tasks[0].metrics["citation_ok"].value == 1.0

    # compare: the user metrics' rows, paired; the default gate (headline citation_ok) fails
    code, out, _ = run_cli("compare", tmp_path / "base.json", tmp_path / "tuned.json",
                           "--format", "json")
    assert code == 1
    rows = {r["metric"]: r for r in json.loads(out)["rows"]}
    assert rows["citation_ok"]["verdict"] == "regressed" and rows["citation_ok"]["gated"]
    assert rows["citation_ok"]["method"].startswith("mcnemar")
    assert rows["citation_ok"]["p_value"] == pytest.approx(2 * 0.5 ** 10)  # 10 discordant
    base_f1 = _token_f1([f"§ {i} applies" for i in range(N)], [f"§ {i}" for i in range(N)])
    assert rows["token_f1_corpus"]["base"] == pytest.approx(base_f1) == 0.8
    assert rows["token_f1_corpus"]["delta"] == pytest.approx(f1 - base_f1)
    code, out, _ = run_cli("compare", tmp_path / "base.json", tmp_path / "tuned.json",
                           "--fail-on", "cite:token_f1_corpus:not-regressed")
    assert code == 1 and "token_f1_corpus" in out and "- FAIL cite:token_f1_corpus:not-regressed" in out
    # an import-path name holds a ':': the policy file's mapping form gates it
    policy = tmp_path / "policy.yaml"
    policy.write_text('rules:\n  - {select: cite, metric: "ftguard_metric_example.scoring:scaled",'
                      " rule: '>=', min: 6}\n", encoding="utf-8")
    code, out, _ = run_cli("compare", tmp_path / "base.json", tmp_path / "tuned.json",
                           "--policy", policy)
    assert code == 1 and "FAIL cite:ftguard_metric_example.scoring:scaled:>=6" in out


def test_registry_knows_installed_metrics() -> None:
    from ftguard.metrics.registry import expand_metric_names, get_metric, metric_names_for

    assert {"citation_ok", "token_f1_corpus"} <= set(metric_names_for("generate"))
    assert "citation_ok" not in metric_names_for("choice")  # declared for generate only
    assert "not_loadable" not in metric_names_for("generate")
    metric = get_metric("token_f1_corpus")
    assert metric.aggregation == "corpus" and metric.higher_is_better
    summed = np.array([[2.0, 4.0, 2.0], [1.0, 2.0, 4.0]])
    assert metric.corpus_fn(summed).tolist() == pytest.approx([2 / 3, 1 / 3])  # vectorised
    with pytest.raises(ValueError, match="does not apply to choice tasks"):
        expand_metric_names("choice", ["citation_ok"], None)


def _problem(tmp_path: Path, metrics: str, kind_block: str = "") -> str:
    from ftguard.errors import SuiteError
    from ftguard.suite.loader import load_suite

    yaml = SUITE.replace('[citation_ok, token_f1_corpus, "ftguard_metric_example.scoring:scaled"]',
                         metrics)
    root = _suite(tmp_path / "bad", yaml + kind_block)
    with pytest.raises(SuiteError) as err:
        load_suite(root)
    return str(err.value)


@pytest.mark.parametrize(("metrics", "says"), [
    ('["ftguard_metric_example.nope:x"]', ("module 'ftguard_metric_example.nope' cannot be "
                                          "imported: ModuleNotFoundError")),
    ('["scoring/citations.py:citation_ok"]', "never a file path inside the suite"),
    ('["ftguard_metric_example.scoring:not_declared"]', ("decorate the function with "
                                                        "@ftguard.metric")),
    ('["ftguard_metric_example.scoring:absent"]', "has no attribute 'absent'"),
    ('[not_loadable]', ("entry point not_loadable = 'ftguard_metric_example.missing:nothing' "
                       "(group ftguard.metrics) cannot be loaded")),
])
def test_a_metric_that_cannot_be_loaded_is_a_located_suite_error(
        tmp_path: Path, metrics: str, says: str) -> None:
    message = _problem(tmp_path, metrics)
    assert "suite.yaml:10 [tasks[0].metrics[0]]" in message
    assert says in message


def test_an_exception_inside_a_user_metric_is_exit_2_naming_metric_task_and_item(
        tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> None:
    yaml = SUITE.replace('[citation_ok, token_f1_corpus, "ftguard_metric_example.scoring:scaled"]',
                         '["ftguard_metric_example.scoring:fails_on_s3"]')
    root = _suite(tmp_path / "boom", yaml)
    code, _out, err = run_cli("eval", root, "--model", "fake", "--no-progress")
    assert code == 2
    assert "Metric 'ftguard_metric_example.scoring:fails_on_s3' failed on task cite/cite, item " \
           "'s3': ZeroDivisionError: division by zero." in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_binary_metric_returning_another_value_is_named(tmp_path: Path) -> None:
    from ftguard.metrics.base import ScoredItem
    from ftguard.metrics.batch import MetricError, score_batch
    from ftguard.metrics.registry import register_external

    @ftguard.metric(higher_is_better=True, binary=True, name="half")
    def half(prediction: str) -> float:
        return 0.5

    import dataclasses

    from ftguard.metrics.user import definition_of

    register_external(dataclasses.replace(definition_of(half), name="tests:half"))

    class Sample:
        def __init__(self) -> None:
            self.id, self.prediction, self.target = "x1", "a", "a"
            self.scores: dict[str, float] = {}
            self.stats: dict[str, list[float]] = {}

    with pytest.raises(MetricError, match=r"item 'x1': returned 0.5, but the metric is "
                                          r"declared binary"):
        score_batch("s/t", ["tests:half"], [Sample()], [{}], {})
    assert ScoredItem("a", "b", ("c",)).fields == {}


def test_cache_key_and_old_records(tmp_path: Path) -> None:
    from ftguard.cache.results import _metric_identities
    from ftguard.record import read_run
    from ftguard.suite.loader import load_suite

    identities = _metric_identities(load_suite(_suite(tmp_path / "cite")))
    assert identities["cite"]["citation_ok"] == (
        "ftguard_metric_example.scoring ftguard-metric-example 0.3.1")
    old = sorted(Path(__file__).parent.parent.joinpath("baselines").rglob("*.json"))
    records = [p for p in old if p.name != "index.json"]
    assert records, "committed baselines are records written before metric_sources existed"
    task = read_run(records[0]).suites[0].tasks[0]
    assert task.metric_sources is None


def test_a_user_metric_on_a_choice_task(make_suite, tmp_path: Path) -> None:
    from conftest import MC_ROWS, MC_TASK, suite_yaml

    tasks = MC_TASK + '    metrics: [acc, "ftguard_metric_example.scoring:chose_first"]\n'
    root = make_suite(suite_yaml("mcx", tasks=tasks), {"data/mc.jsonl": MC_ROWS})
    run = ftguard.evaluate([root], backend=FakeBackend(2))
    task = run.suites[0].tasks[0]
    name = "ftguard_metric_example.scoring:chose_first"
    first = {r["id"]: r["choices"][0] for r in MC_ROWS}
    assert [s.scores[name] for s in task.samples] == [
        float(s.prediction == first[s.id]) for s in task.samples]
    assert [s.scores["acc"] for s in task.samples] == [
        float(s.prediction == s.target) for s in task.samples]  # acc itself unchanged
    assert task.metrics[name].value == pytest.approx(
        np.mean([s.scores[name] for s in task.samples]))
