"""``suites show --render`` prints exactly what the model receives, and the record keeps it."""

from __future__ import annotations

import json

import pytest

from conftest import REPO

LEGAL = REPO / "suites" / "legal"


def _eval(run_cli, tmp_path, task: str, model: str = "fake:3") -> dict:
    """The result of ``task`` (TASK@VARIANT: evaluated with its task, which brings it)."""
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", LEGAL, "--tasks", task.split("@")[0], "--model", model, "--limit", "3",
                           "--no-progress", "--out", out)
    assert code == 0, err
    (suite,) = json.loads(out.read_text())["suites"]
    (result,) = [t for t in suite["tasks"] if t["name"] == task]
    return result


@pytest.mark.parametrize("task", ["legal_qa", "doctrine_mc", "plain_language",
                                  "doctrine_mc@reversed"])
def test_show_render_is_what_the_record_says_the_model_received(run_cli, tmp_path, task):
    samples = _eval(run_cli, tmp_path, task)["samples"]
    code, out, err = run_cli("suites", "show", f"{LEGAL}/{task}", "--render", "3",
                             "--model", "fake:3", "--format", "json")
    assert code == 0, err
    (view,) = json.loads(out)["tasks"]
    rendered = view["rendered"]
    assert [r["id"] for r in rendered] == [s["id"] for s in samples]
    for item, sample in zip(rendered, samples):
        assert item["model_input"] == sample["context"]
        assert sample["prompt"] in sample["context"]
    if task == "legal_qa":  # three few-shot examples, each with its answer, before the question
        context = samples[0]["context"]
        assert context.count("Question:") == 4 and context.endswith(samples[0]["prompt"])
        assert context != samples[0]["prompt"]
    else:  # chat tasks: the fake model's template wraps the turns
        assert samples[0]["context"].startswith("<user>")
        assert samples[0]["context"].endswith("<assistant>")
    if task.startswith("doctrine_mc"):
        from ftguard.suite import load_suite

        (spec,) = [v for t in load_suite(LEGAL).tasks for v in (t, *t.variants)
                   if v.name == task]
        first = spec.instances[0]
        assert rendered[0]["continuations"] == [spec.spec.target_delimiter + c
                                                for c in first.choices]
        assert rendered[0]["continuations"][rendered[0]["gold"]] == samples[0]["target"]


def test_show_text_settings_and_errors(run_cli) -> None:
    code, out, _ = run_cli("suites", "show", LEGAL)
    assert code == 0
    assert out.count("\n== legal/") == 5 and 'prompt: "Question: {{ question }}\\nAnswer:"' in out
    assert "few_shot:" in out and "k: 3" in out
    code, _, err = run_cli("suites", "show", f"{LEGAL}/nope")
    assert code == 2 and "has no task 'nope'" in err and "clause_type" in err
    code, _, err = run_cli("suites", "show", LEGAL.parent)
    assert code == 2 and "suites show takes one" in err


@pytest.mark.slow
def test_show_renders_the_embedded_models_chat_template(run_cli) -> None:
    code, out, err = run_cli("suites", "show", f"{LEGAL}/doctrine_mc", "--render", "1")
    assert code == 0, err
    assert "<|im_start|>user\n" in out and out.count("<|im_start|>assistant\n") == 1


@pytest.mark.slow
def test_show_loads_the_tokenizer_alone(run_cli, monkeypatch) -> None:
    from ftguard.models import hf_load

    def no_weights(*args: object, **kwargs: object) -> None:
        raise AssertionError("suites show loaded the model's weights")

    monkeypatch.setattr(hf_load, "load_model", no_weights)
    code, out, err = run_cli("suites", "show", f"{LEGAL}/doctrine_mc", "--render", "1",
                             "--format", "json")
    assert code == 0, err
    (task,) = json.loads(out)["tasks"]
    assert task["model"] == "the embedded model"
    assert task["rendered"][0]["model_input"].startswith("<|im_start|>")
