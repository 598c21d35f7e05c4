"""Every bad input gets exit code 2 and a one-paragraph message naming file:line / key / flag."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SMOKE_SUITE


def _fails(result: tuple[int, str, str], *needles: str) -> str:
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    return err


def test_missing_suite_yaml(run_cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _fails(run_cli("eval", tmp_path / "empty", "--model", "fake"), "empty", "has no suite.yaml")
    _fails(run_cli("suites", "validate", tmp_path / "nowhere"), "nowhere", "does not exist")


def test_yaml_syntax_error_names_the_line(run_cli, make_suite) -> None:
    root = make_suite("name: x\nversion: 1\nrole: general\ntasks:\n  - name: [unclosed\n")
    _fails(run_cli("suites", "validate", root), "suite.yaml:5", "YAML syntax error")


def test_unknown_key_suggests_the_closest(run_cli, make_suite) -> None:
    root = make_suite(SMOKE_SUITE.replace("    choices_field: choices", "    choices_feild: choices"))
    err = _fails(run_cli("suites", "validate", root), "suite.yaml:9", "unknown key 'choices_feild'",
                 "Did you mean 'choices_field'?")
    assert "tasks[0].choices_feild" in err


def test_unknown_top_level_key(run_cli, make_suite) -> None:
    root = make_suite("rol: general\n" + SMOKE_SUITE)
    _fails(run_cli("suites", "validate", root), "suite.yaml:1", "unknown key 'rol'",
           "Did you mean 'role'?")


def test_unknown_metric_lists_valid_ones(run_cli, make_suite) -> None:
    root = make_suite(SMOKE_SUITE.replace("metrics: [exact_match, f1, bleu]",
                                          "metrics: [exact_match, f1_score, bleu]"))
    _fails(run_cli("suites", "validate", root), "suite.yaml:17", "unknown metric 'f1_score'",
           "Did you mean 'f1'?", "Valid metrics: exact_match, exact_match_strict, f1")


def test_unknown_task_kind_lists_valid_ones(run_cli, make_suite) -> None:
    root = make_suite(SMOKE_SUITE.replace("kind: choice", "kind: choise"))
    _fails(run_cli("suites", "validate", root), "suite.yaml:6", "unknown task kind 'choise'",
           "Did you mean 'choice'?", "generate, choice, classify, perplexity")


def test_bad_jsonl_line_names_file_and_line(run_cli, make_suite) -> None:
    rows = "\n".join(json.dumps(r) for r in [{"id": "1", "text": "a"}, {"id": "2", "text": "b"}])
    root = make_suite(files={"data/ppl.jsonl": rows + '\n{"id": "3", "text": oops}\n'})
    _fails(run_cli("eval", root, "--model", "fake"), "data/ppl.jsonl:3", "not valid JSON")


def test_template_missing_field(run_cli, make_suite) -> None:
    root = make_suite(SMOKE_SUITE.replace("Review: {{ text }}", "Review: {{ review }}"))
    err = _fails(run_cli("eval", root, "--model", "fake"), "suite.yaml:21 [tasks[2].prompt]",
                 "'review' is undefined on 3 item(s)", "data/cls.jsonl (line(s) 1, 2, 3",
                 "fields of line 1: id, label, text")
    assert err.count("is undefined") == 1  # once, at the template, not once per item


def test_template_syntax_error(run_cli, make_suite) -> None:
    root = make_suite(SMOKE_SUITE.replace('prompt: "{{ text }}"', 'prompt: "{{ text }"'))
    _fails(run_cli("suites", "validate", root), "suite.yaml:27", "tasks[3].prompt",
           "template syntax error")


def test_empty_data_file(run_cli, make_suite) -> None:
    root = make_suite(files={"data/qa.jsonl": "\n"})
    _fails(run_cli("eval", root, "--model", "fake"), "data/qa.jsonl", "is empty")


def test_duplicate_sample_ids(run_cli, make_suite) -> None:
    rows = [{"id": "x", "text": "a", "label": "positive"}, {"id": "y", "text": "b", "label": "negative"},
            {"id": "x", "text": "c", "label": "positive"}]
    root = make_suite(files={"data/cls.jsonl": rows})
    _fails(run_cli("eval", root, "--model", "fake"), "data/cls.jsonl:1",
           "duplicate sample id 'x' (lines 1, 3)")


def test_target_not_among_labels(run_cli, make_suite) -> None:
    rows = [{"id": "x", "text": "a", "label": "positve"}]
    root = make_suite(files={"data/cls.jsonl": rows})
    _fails(run_cli("suites", "validate", root), "data/cls.jsonl:1", "'positve' matches none")


def test_data_outside_suite_folder_is_refused(run_cli, make_suite) -> None:
    root = make_suite(SMOKE_SUITE.replace("data: data/ppl.jsonl", "data: ../../etc/passwd"))
    _fails(run_cli("suites", "validate", root), "points outside the suite folder")


def test_every_problem_is_reported_at_once(run_cli, make_suite) -> None:
    bad = (SMOKE_SUITE.replace("kind: classify", "kind: clasify")
           .replace("metrics: [exact_match, f1, bleu]", "metrics: [bleuu]")
           .replace("    choices_field: choices", "    choice_field: choices"))
    err = _fails(run_cli("suites", "validate", root := make_suite(bad)), "3 problem(s) found")
    assert str(root) in err and err.count("  - ") == 3


def test_model_path_that_does_not_exist(run_cli, make_suite) -> None:
    _fails(run_cli("eval", make_suite(), "--model", "./no/such/model"), "./no/such/model",
           "no such folder")


def test_hub_id_while_offline(run_cli, make_suite) -> None:
    _fails(run_cli("eval", make_suite(), "--model", "someone/some-model-that-is-not-cached"),
           "someone/some-model-that-is-not-cached", "cannot be reached", "HF_HUB_OFFLINE",
           "pass the local folder")


def test_pickle_weights_refused_without_allow_pickle(run_cli, make_suite, tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04")
    _fails(run_cli("eval", make_suite(), "--model", folder), "pytorch_model.bin", "--allow-pickle")


def test_bad_flags(run_cli, make_suite) -> None:
    root = make_suite()
    _fails(run_cli("eval", root, "--model", "fake", "--batch-size", "0"), "--batch-size 0")
    _fails(run_cli("eval", root, "--model", "fake", "--dtype", "float8"), "--dtype float8")
    code, _, err = run_cli("eval", root, "--limit", "0")
    assert code == 2 and "--limit" in err


def test_adapter_folder_checks(run_cli, make_suite, tmp_path: Path, tiny_model: Path) -> None:
    _fails(run_cli("eval", make_suite(), "--model", tiny_model, "--adapter", tmp_path / "none"),
           "--adapter", "no such folder")
    (tmp_path / "notpeft").mkdir()
    _fails(run_cli("eval", make_suite(), "--model", tiny_model, "--adapter", tmp_path / "notpeft"),
           "no adapter_config.json")


def test_adapter_for_another_base_model(run_cli, make_suite, tmp_path: Path, tiny_model: Path,
                                        tiny_model_other: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(tiny_model_other)
    peft_model = get_peft_model(other, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    err = _fails(run_cli("eval", make_suite(), "--model", tiny_model, "--adapter",
                         tmp_path / "adapter"), "does not match the base model")
    assert str(tiny_model_other) in err  # names the base the adapter was trained on


def test_debug_shows_the_traceback(run_cli, make_suite) -> None:
    code, _, err = run_cli("eval", make_suite(), "--model", "./missing", "--debug")
    assert code == 2 and "Traceback" in err and "no such folder" in err
