"""The metric registry: names, kinds, parametrised names, cheap import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ftguard.metrics import METRICS, expand_metric_names, get_metric, metric_names_for


def test_names_per_kind() -> None:
    generate = metric_names_for("generate")
    assert [n for n in generate if n in METRICS] == [
        "exact_match", "exact_match_strict", "f1", "rouge1", "rouge2", "rougeL", "rougeLsum",
        "json_valid", "json_field_match", "prompt_level_strict_acc", "prompt_level_loose_acc",
        "inst_level_strict_acc", "inst_level_loose_acc", "bleu", "chrf", "bertscore_precision",
        "bertscore_recall", "bertscore_f1", "refusal_rate", "over_refusal_rate",
        "refusal_margin", "compliance_margin"]
    # then the installed ftguard.metrics entry points that load (tests/packages)
    installed = [n for n in generate if n not in METRICS]
    assert generate[len(generate) - len(installed):] == installed
    assert set(installed) <= {"citation_ok", "token_f1_corpus"}
    assert metric_names_for("choice") == ["acc", "acc_norm", "brier", "ece"]
    assert metric_names_for("classify") == ["accuracy", "macro_f1", "precision", "recall",
                                            "brier", "ece"]
    assert metric_names_for("perplexity") == ["perplexity", "word_perplexity", "bits_per_byte"]
    with pytest.raises(KeyError):
        metric_names_for("regression")


def test_definitions_are_consistent() -> None:
    binary = {n for n, m in METRICS.items() if m.binary}
    assert binary == {"exact_match", "exact_match_strict", "json_valid", "acc", "acc_norm",
                      "accuracy", "prompt_level_strict_acc", "prompt_level_loose_acc",
                      "consistency", "refusal_rate", "over_refusal_rate"}
    lower = {n for n, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"perplexity", "word_perplexity", "bits_per_byte", "brier", "ece", "spread",
                     "over_refusal_rate"}
    for metric in METRICS.values():
        assert (metric.aggregation == "corpus") == (metric.corpus_fn is not None)
        assert (metric.aggregation == "set") == (metric.set_fn is not None)
        assert metric.description


def test_default_metrics_of_the_suite_schema_resolve() -> None:
    from ftguard.suite.schema import DEFAULT_METRICS

    for kind, names in DEFAULT_METRICS.items():
        assert expand_metric_names(kind, names, ["a", "b"]) == names


def test_parametrised_names() -> None:
    m = get_metric("precision[termination]")
    assert m.name == "precision[termination]"
    assert m.corpus_fn is METRICS["precision"].corpus_fn
    assert get_metric("recall[a]b]").name == "recall[a]b]"
    corpus_fn = get_metric("precision[x]").corpus_fn
    assert corpus_fn is not None
    assert float(corpus_fn(np.array([0.0, 0.0, 3.0]))) == 0.0   # never predicted: 0, not NaN
    for bad in ("bleu4", "f1[x]", "precision[]", "Precision[x]", ""):
        with pytest.raises(KeyError, match="unknown metric"):
            get_metric(bad)


def test_expand_metric_names() -> None:
    labels = ["pos", "neg"]
    assert expand_metric_names("classify", ["accuracy", "precision", "recall[neg]"], labels) == [
        "accuracy", "precision[pos]", "precision[neg]", "recall[neg]"]
    assert expand_metric_names("generate", ["f1", "f1", "bleu"], None) == ["f1", "bleu"]
    with pytest.raises(ValueError, match="does not apply to choice"):
        expand_metric_names("choice", ["accuracy"], None)
    with pytest.raises(ValueError, match="needs the task's labels"):
        expand_metric_names("classify", ["precision"], None)
    with pytest.raises(KeyError):
        expand_metric_names("generate", ["bleurt"], None)


def test_import_is_light() -> None:
    code = ("import sys, ftguard.metrics; "
            "print(sorted(m for m in ('sacrebleu', 'rouge_score', 'nltk', 'torch', 'sklearn', "
            "'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
