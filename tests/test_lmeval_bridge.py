"""The lm-eval bridge: ``kind: lm_eval`` suite tasks and ``ftguard import-lmeval``.

The same three local lm-eval tasks (multiple choice, greedy generation, rolling
log-likelihood) over JSONL data run on the tiny Llama of ``conftest.py`` three ways:

(a) as ``kind: lm_eval`` tasks of an ftguard suite (``ftguard.evaluate``: lm-eval on the model
    ftguard loaded);
(b) by ``lm_eval.simple_evaluate`` directly, saved with lm-eval's own EvaluationTracker exactly
    as ``lm_eval --output_path OUT --log_samples`` saves it, then ``ftguard import-lmeval``.

Every per-sample score, prediction, target and prompt hash, and every metric value, must be
the same through both paths and equal to what lm-eval itself reported. lm-eval runs once per
path (module-scoped fixtures). Suite validation and corrupt-file tests need no lm-eval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import write_jsonl

slow = pytest.mark.slow
BATCH_SIZE = 4
TASKS = ("tmc", "tgen", "tppl")

MC_ROWS = [
    {"id": "q1", "question": "What is the capital of France?",
     "choices": ["Paris", "Berlin", "Madrid", "Rome"], "answer": 0},
    {"id": "q2", "question": "How many legs does a dog have?",
     "choices": ["two", "three", "four", "five"], "answer": 2},
    {"id": "q3", "question": "Finish the sentence: The quick brown fox",
     "choices": ["a", "jumps over the lazy dog.", "x"], "answer": 1},
    # Digit choices: lm-eval's samples file stores the gold index as the string "1", which is
    # also a choice text; the record must still name the gold choice "2".
    {"id": "q4", "question": "Which number is two?", "choices": ["3", "2", "1", "0"], "answer": 1},
    {"id": "q5", "question": "Pick a number.", "choices": ["1", "10", "100", "1000"], "answer": 3},
    {"id": "q6", "question": "Which one is a colour?", "choices": ["blue", "dog", "four", "yes"],
     "answer": 0},
]
GEN_ROWS = [
    {"question": "What is the capital of France?", "answer": "Paris"},
    {"question": "What colour is the sky?", "answer": "blue"},
    {"question": "Review: I loved this film.", "answer": "positive"},
]
PPL_ROWS = [
    {"text": "The quick brown fox jumps over the lazy dog."},
    {"text": "Either party may terminate this Agreement upon thirty days written notice."},
]

TASK_YAMLS = {
    "tmc": """\
task: tmc
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{ question }}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
""",
    "tgen": """\
task: tgen
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{ question }}}}\\nAnswer:"
doc_to_target: answer
generation_kwargs: {{until: ["\\n"], max_gen_toks: 6, do_sample: false}}
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
""",
    "tppl": """\
task: tppl
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: bits_per_byte
""",
}

SUITE_YAML = """\
name: lmx
version: 1
role: general
tasks:
""" + "".join(f"""\
  - name: {name}
    kind: lm_eval
    lm_eval_task: {name}
    lm_eval_include: lmeval_tasks
""" for name in TASKS)


def _write_suite(root: Path) -> Path:
    """A suite whose lm-eval task YAMLs and data live in its lmeval_tasks/ folder."""
    tasks = root / "lmeval_tasks"
    rows = {"tmc": MC_ROWS, "tgen": GEN_ROWS, "tppl": PPL_ROWS}
    for name, yaml in TASK_YAMLS.items():
        data = write_jsonl(tasks / f"{name}.jsonl", rows[name])
        (tasks / f"{name}.yaml").write_text(yaml.format(data=json.dumps(str(data))),
                                            encoding="utf-8")
    (root / "suite.yaml").write_text(SUITE_YAML, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_suite(tmp_path_factory.mktemp("lmx") / "suite")


@pytest.fixture(scope="module")
def bridged(suite: Path, tiny_model: Path) -> Any:
    """Path (a): the suite's lm_eval tasks through ftguard.evaluate."""
    pytest.importorskip("lm_eval")
    import ftguard

    return ftguard.evaluate([suite], load=ftguard.LoadOptions(
        model=str(tiny_model), device="cpu", dtype="float32", batch_size=BATCH_SIZE))


@pytest.fixture(scope="module")
def direct(suite: Path, tiny_model: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Path (b): lm-eval alone, saved as ``lm_eval --output_path OUT --log_samples`` does."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    out = tmp_path_factory.mktemp("lmeval_out")
    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_model},dtype=float32", tasks=list(TASKS),
        task_manager=TaskManager(include_path=str(suite / "lmeval_tasks"),
                                 include_defaults=False),
        device="cpu", batch_size=BATCH_SIZE, log_samples=True, bootstrap_iters=1000,
        evaluation_tracker=tracker)
    assert results is not None
    # What lm-eval's CLI does after simple_evaluate (lm_eval/_cli/run.py).
    samples = results.pop("samples")
    expected = {t: {str(s["doc_id"]): {k: s[k] for k in s["metrics"]} for s in samples[t]}
                for t in TASKS}  # before the tracker stringifies the logs
    tracker.save_results_aggregated(results=results, samples=samples)
    for name in results["configs"]:
        tracker.save_results_samples(task_name=name, samples=samples[name])
    return {"out": out, "results": results["results"], "samples": expected}


@pytest.fixture(scope="module")
def imported(direct: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``ftguard import-lmeval OUT --out run.json`` of path (b)'s output folder."""
    from ftguard import read_run
    from ftguard.cli.main import main

    run = tmp_path_factory.mktemp("imported") / "run.json"
    assert main(["import-lmeval", str(direct["out"]), "--out", str(run)]) == 0
    return read_run(run)


def _tasks(record: Any) -> dict[str, Any]:
    (suite,) = record.suites
    return {t.name: t for t in suite.tasks}


@slow
def test_bridge_matches_lmeval(bridged, direct) -> None:
    tasks = _tasks(bridged)
    assert bridged.model.backend == "hf"
    for name in TASKS:
        task, theirs = tasks[name], direct["samples"][name]
        assert task.kind == "lm_eval" and task.settings["lm_eval_task"] == name
        assert [s.id for s in task.samples] == list(theirs)
        for sample in task.samples:
            expected = {k: float(v) for k, v in theirs[sample.id].items()
                        if isinstance(v, (int, float))}
            assert sample.scores == expected, (name, sample.id)
        for metric, result in task.metrics.items():
            assert result.value == direct["results"][name][f"{metric},none"], (name, metric)
    assert set(tasks["tmc"].metrics) == {"acc", "acc_norm"}
    assert set(tasks["tgen"].metrics) == {"exact_match"}
    assert set(tasks["tppl"].metrics) == {"word_perplexity", "bits_per_byte"}


@slow
def test_mapping_of_each_output_type(bridged) -> None:
    tasks = _tasks(bridged)
    mc = {s.id: s for s in tasks["tmc"].samples}
    assert [mc[str(i)].target for i in range(6)] == [r["choices"][r["answer"]] for r in MC_ROWS]
    for sample, row in zip(tasks["tmc"].samples, MC_ROWS):
        lls = sample.loglikelihoods
        assert lls is not None and len(lls) == len(row["choices"])
        assert sample.prediction == row["choices"][lls.index(max(lls))]
        assert sample.scores["acc"] == float(sample.prediction == sample.target)
    acc = tasks["tmc"].metrics["acc"]
    assert acc.aggregation == "mean" and acc.ci_method == "wilson" and acc.n == len(MC_ROWS)
    assert acc.ci_low <= acc.value <= acc.ci_high
    gen = tasks["tgen"]
    assert [s.target for s in gen.samples] == [r["answer"] for r in GEN_ROWS]
    assert all(isinstance(s.prediction, str) and "\n" not in s.prediction for s in gen.samples)
    ppl = tasks["tppl"].metrics["word_perplexity"]  # corpus-style: value only
    assert ppl.aggregation == "corpus" and ppl.ci_method == "none"
    assert ppl.ci_low == ppl.value == ppl.ci_high and not ppl.higher_is_better
    assert all(s.scores == {} for s in tasks["tppl"].samples)
    # the context lm-eval sent is the recorded model input (none for a rolling document)
    assert [s.context for s in tasks["tmc"].samples] == \
        [f"Question: {r['question']}\nAnswer:" for r in MC_ROWS]
    assert [s.context for s in gen.samples] == [f"Question: {r['question']}\nAnswer:"
                                                for r in GEN_ROWS]
    assert all(s.context is None for s in tasks["tppl"].samples)


@slow
def test_import_matches_bridge(bridged, imported, direct) -> None:
    ours, theirs = _tasks(bridged), _tasks(imported)
    assert imported.model.backend == "lm-eval"
    assert imported.model.fingerprint.startswith("lmeval:")
    assert imported.suites[0].name == "lm-eval" and imported.suites[0].role == "general"
    for name in TASKS:
        a, b = ours[name], theirs[name]
        assert [s.id for s in a.samples] == [s.id for s in b.samples]
        for x, y in zip(a.samples, b.samples):
            assert (x.scores, x.prediction, x.target, x.prompt_hash, x.context) == \
                   (y.scores, y.prediction, y.target, y.prompt_hash, y.context), (name, x.id)
            if x.loglikelihoods is not None:
                assert y.loglikelihoods == pytest.approx(x.loglikelihoods, abs=1e-5)
        assert a.metrics.keys() == b.metrics.keys()
        for metric in a.metrics:
            ma, mb = a.metrics[metric], b.metrics[metric]
            assert mb.value == pytest.approx(ma.value, rel=1e-9), (name, metric)
            if ma.aggregation == "mean":  # the same scores give the same interval
                assert (mb.ci_low, mb.ci_high) == (ma.ci_low, ma.ci_high)
        # The same data, prompts and targets: lm-eval's own task hash agrees.
        assert a.settings["task_hash"] == b.settings["task_hash"]


@slow
def test_import_with_explicit_files_and_options(direct, run_cli, tmp_path: Path) -> None:
    (results,) = direct["out"].rglob("results_*.json")
    (samples,) = results.parent.glob("samples_tmc_*.jsonl")
    out = tmp_path / "run.json"
    code, stdout, _ = run_cli("import-lmeval", results, samples, "--out", out, "--role", "target",
                              "--suite-name", "harness", "--format", "json")
    assert code == 0 and json.loads(stdout)["results"]
    from ftguard import read_run

    record = read_run(out)
    assert (record.suites[0].name, record.suites[0].role) == ("harness", "target")
    assert {t.name for t in record.suites[0].tasks} == set(TASKS)


@slow
def test_unknown_lmeval_task_is_exit_2(tmp_path: Path, tiny_model: Path, run_cli) -> None:
    pytest.importorskip("lm_eval")
    root = _write_suite(tmp_path / "suite")
    (root / "suite.yaml").write_text(SUITE_YAML.replace("lm_eval_task: tmc", "lm_eval_task: tmcc"))
    code, _, err = run_cli("eval", root, "--model", tiny_model, "--no-progress")
    assert code == 2 and "no task 'tmcc'" in err and "'tmc'" in err and "Traceback" not in err


# -- fast: validation and bad input, no lm-eval run ---------------------------------------------

def test_include_outside_suite_is_exit_2(tmp_path: Path, run_cli) -> None:
    root = _write_suite(tmp_path / "suite")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "t.yaml").write_text("task: t\n")
    (root / "suite.yaml").write_text(SUITE_YAML.replace("lm_eval_include: lmeval_tasks",
                                                        "lm_eval_include: ../elsewhere"))
    for args in (("suites", "validate", root), ("eval", root, "--model", "fake")):
        code, _, err = run_cli(*args)
        assert code == 2, args
        assert "suite.yaml:8" in err and "lm_eval_include" in err and "outside the suite" in err


@pytest.mark.parametrize(("task", "message"), [
    ("  - {name: t, kind: lm_eval}", "needs 'lm_eval_task'"),
    ("  - {name: t, kind: lm_eval, lm_eval_task: tmc, data: x.jsonl, prompt: '{{ q }}'}",
     "'data', 'prompt' do not apply to lm_eval tasks"),
    ("  - {name: t, kind: lm_eval, lm_eval_task: tmc, lm_eval_include: nothing}",
     "not a folder of lm-eval task YAML files"),
    (("  - {name: t, kind: choice, lm_eval_task: tmc, data: x.jsonl, prompt: 'q',"
      " choices: [a, b], target_index: '0'}"), "'lm_eval_task' is for lm_eval tasks"),
    ("  - {name: t, kind: choice, prompt: 'q', choices: [a, b], target_index: '0'}",
     "required key 'data' is missing"),
])
def test_lmeval_keys_are_validated(tmp_path: Path, run_cli, task: str, message: str) -> None:
    (tmp_path / "suite.yaml").write_text(f"name: s\nversion: 1\nrole: general\ntasks:\n{task}\n")
    code, _, err = run_cli("suites", "validate", tmp_path)
    assert code == 2 and message in err, err


def test_lmeval_task_needs_hf_backend(tmp_path: Path, run_cli) -> None:
    root = _write_suite(tmp_path / "suite")
    code, _, err = run_cli("eval", root, "--model", "fake", "--no-progress")
    assert code == 2 and "needs the hf backend" in err and "lmx/tmc" in err


def test_import_needs_no_lmeval() -> None:
    import subprocess
    import sys

    code = ("import sys, ftguard, ftguard.lmeval.importer, ftguard.lmeval.bridge; "
            "sys.exit('lm_eval' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _results_file(folder: Path, date: str = "2026-01-01T00-00-00.000000") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"results": {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.5}},
            "configs": {"t": {"task": "t", "output_type": "multiple_choice",
                              "target_delimiter": " "}},
            "higher_is_better": {"t": {"acc": True}}, "n-shot": {"t": 0},
            "config": {"model": "hf", "model_args": "pretrained=m,dtype=float32"}}
    path = folder / f"results_{date}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _sample_log(doc_id: int, acc: float) -> dict[str, Any]:
    return {"doc_id": doc_id, "target": "0", "filter": "none", "metrics": ["acc"], "acc": acc,
            "arguments": {"gen_args_0": {"arg_0": "Q:", "arg_1": " a"},
                          "gen_args_1": {"arg_0": "Q:", "arg_1": " b"}},
            "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]]}


def test_import_minimal_files(tmp_path: Path, run_cli) -> None:
    results = _results_file(tmp_path / "out")
    write_jsonl(tmp_path / "out" / "samples_t_2026-01-01T00-00-00.000000.jsonl",
                [_sample_log(0, 1.0), _sample_log(1, 0.0)])
    code, _, err = run_cli("import-lmeval", tmp_path / "out", "--out", tmp_path / "run.json")
    assert code == 0, err
    from ftguard import read_run

    (task,) = read_run(tmp_path / "run.json").suites[0].tasks
    assert [(s.id, s.prediction, s.target, s.scores) for s in task.samples] == [
        ("0", "a", "a", {"acc": 1.0}), ("1", "a", "a", {"acc": 0.0})]
    assert task.metrics["acc"].value == 0.5 and task.metrics["acc"].ci_method == "wilson"
    assert read_run(tmp_path / "run.json").model.spec == "m"
    assert str(results.parent) == read_run(tmp_path / "run.json").suites[0].path


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", ":1: not valid JSON"),
    ('{"config": {}}', "not an lm-eval results file (no 'results' mapping)"),
    ('{"results": {"t": {}}}', "without task 'configs'"),
])
def test_corrupt_results_file_is_exit_2(tmp_path: Path, run_cli, content: str,
                                        message: str) -> None:
    bad = tmp_path / "results_x.json"
    bad.write_text(content, encoding="utf-8")
    code, _, err = run_cli("import-lmeval", bad, "--out", tmp_path / "run.json")
    assert code == 2 and str(bad) in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run.json").exists()


def test_bad_samples_line_is_exit_2(tmp_path: Path, run_cli) -> None:
    _results_file(tmp_path)
    samples = tmp_path / "samples_t_2026-01-01T00-00-00.000000.jsonl"
    samples.write_text(json.dumps(_sample_log(0, 1.0)) + "\n{oops\n", encoding="utf-8")
    code, _, err = run_cli("import-lmeval", tmp_path, "--out", tmp_path / "run.json")
    assert code == 2 and f"{samples}:2: is not valid JSON" in err


def test_missing_samples_is_exit_2(tmp_path: Path, run_cli) -> None:
    _results_file(tmp_path)
    code, _, err = run_cli("import-lmeval", tmp_path, "--out", tmp_path / "run.json")
    assert code == 2 and "no samples for task 't'" in err and "--log_samples" in err
    code, _, err = run_cli("import-lmeval", tmp_path / "nowhere", "--out", tmp_path / "run.json")
    assert code == 2 and "no such file or folder" in err


def test_filters_and_corpus_metrics_mapping() -> None:
    """Several filters name metrics ``metric,filter``; non-mean metrics keep the value only."""
    from ftguard.lmeval.bridge import task_result

    results = {"results": {"g": {"exact_match,strict": 0.5, "exact_match,flex": 1.0,
                                 "bleu,strict": 12.5, "exact_match_stderr,strict": 0.5}},
               "configs": {"g": {"output_type": "generate_until"}},
               "higher_is_better": {"g": {"exact_match": True, "bleu": True}}}
    logs = []
    for flt, preds in (("strict", ["4", "x"]), ("flex", ["4", "5"])):
        for doc_id, (pred, gold) in enumerate(zip(preds, ["4", "5"])):
            logs.append({"doc_id": doc_id, "target": gold, "filter": flt,
                         "arguments": [["2+2=", {"until": ["\n"]}]],
                         "filtered_resps": [pred], "metrics": ["exact_match", "bleu"],
                         "exact_match": float(pred == gold), "bleu": [gold, pred]})
    task = task_result("g", "g", logs, results, source="test")
    assert set(task.metrics) == {"exact_match,strict", "exact_match,flex", "bleu,strict"}
    assert [s.scores for s in task.samples] == [
        {"exact_match,strict": 1.0, "exact_match,flex": 1.0},
        {"exact_match,strict": 0.0, "exact_match,flex": 1.0}]
    assert [s.prediction for s in task.samples] == ["4", "x"]  # the first filter's output
    bleu = task.metrics["bleu,strict"]
    assert (bleu.value, bleu.ci_low, bleu.ci_high, bleu.aggregation) == (12.5, 12.5, 12.5,
                                                                         "corpus")
    flex = task.metrics["exact_match,flex"]
    assert flex.value == 1.0 and flex.ci_method == "wilson" and flex.ci_high == 1.0


def test_compare_accepts_lmeval_output_folders(direct, imported, run_cli, tmp_path: Path) -> None:
    from ftguard.record import write_run

    # lm-eval's rolling perplexities are corpus-only in its sample logs: that headline cannot
    # be compared item by item, so the default rule is unchecked (a failure unless allowed)
    code, out, err = run_cli("compare", direct["out"], direct["out"], "--format", "json")
    assert code == 1, err
    outcomes = {o["rule"]: o for o in json.loads(out)["gate"]}
    assert outcomes["*:headline:not-regressed"]["outcome"] == "unchecked"
    assert outcomes["*:headline:not-regressed"]["unchecked"] == [
        ("lm-eval/tppl word_perplexity: no per-item scores in the records; not compared item "
         "by item")]
    code, out, err = run_cli("compare", direct["out"], direct["out"], "--format", "json",
                             "--allow-unchecked", "*:headline:not-regressed")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert rows and {r["method"] for r in rows} >= {"mcnemar-exact"}
    assert all(r["delta"] == 0 and r["verdict"] == ("unchanged" if r["comparable"] else
                                                    "not-compared") for r in rows)
    write_run(imported, tmp_path / "imported.json")
    code, _, err = run_cli("compare", tmp_path / "imported.json", direct["out"],
                           "--allow-unchecked", "*")
    assert code == 0, err
