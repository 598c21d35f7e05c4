"""Decoding beyond greedy: pass@k / majority@n / mean@n against reference computations,
the decoding settings' validation, seeded samples on the fake backend, the response cache
keying every setting, and eval -> compare with paired pass@k rows."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from ftguard.metrics.sampling import majority_index, pass_at_k, sampled_scores
from ftguard.models.base import Decoding, GenerateRequest
from ftguard.models.fake import FakeBackend

Run = Callable[..., tuple[int, str, str]]


# -- the estimators -------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "c", "k"), [(10, 0, 1), (10, 3, 1), (10, 3, 5), (10, 7, 4),
                                          (10, 10, 10), (20, 1, 19), (200, 37, 10), (5, 2, 4)])
def test_pass_at_k_is_the_closed_form(n: int, c: int, k: int) -> None:
    expected = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_equals_brute_force_over_all_k_subsets() -> None:
    for n in range(1, 8):
        for c in range(n + 1):
            correct = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                hit = sum(any(correct[i] for i in s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(hit, abs=1e-12), (n, c, k)


def test_pass_at_1_is_the_share_correct_and_large_n_is_stable() -> None:
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)
    # C(1000, 500) overflows a float; the product form does not
    assert pass_at_k(1000, 1, 500) == pytest.approx(0.5)
    assert pass_at_k(1000, 0, 500) == 0.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


def test_majority_ties_go_to_the_answer_seen_first_as_lm_eval_counts() -> None:
    from collections import Counter

    answers = ["Paris.", "london", "the London", "paris", "Rome"]
    # SQuAD normalisation: Paris. == paris, london == the London; a 2-2 tie: Paris came first
    assert majority_index(answers, "exact_match") == 0
    assert majority_index(["b", "a", "a", "b", "c"], "exact_match_strict") == 0
    assert majority_index(["b", " a", "a", "c"], "exact_match_strict") == 1
    votes = ["7", "3", "3", "7", "5"]  # lm-eval's majority_vote filter takes most_common(1)
    assert votes[majority_index(votes, "exact_match_strict")] == Counter(votes).most_common(1)[0][0]


def test_sampled_scores_on_fixed_answers() -> None:
    answers = ["Paris", "Lyon", "paris.", "Nice", "Lyon"]
    em = [{"exact_match": float(a.lower().strip(".") == "paris"), "f1": f} for a, f in
          zip(answers, [1.0, 0.0, 1.0, 0.25, 0.0])]
    scores = sampled_scores(["pass@1", "pass@2", "pass@5", "majority@n", "mean@n",
                             "mean@n[f1]", "majority@n[f1]", "exact_match"], answers, em)
    assert scores == pytest.approx({
        "pass@1": 2 / 5, "pass@2": 1 - math.comb(3, 2) / math.comb(5, 2), "pass@5": 1.0,
        "majority@n": 1.0,  # "Paris" and "paris." are one answer (2 votes), "Lyon" has 2: tie
        "mean@n": 2 / 5, "mean@n[f1]": 2.25 / 5, "majority@n[f1]": 1.0})


# -- the settings ---------------------------------------------------------------------------

SAMPLED = """\
name: samp
version: 1
role: target
tasks:
  - name: qa
    kind: generate
    data: data/qa.jsonl
    prompt: "{{ words }}"
    target: "{{ answer }}"
    generation: GENERATION
    metrics: METRICS
"""


def _rows(n: int = 24) -> list[dict[str, str]]:
    words = ["red", "blue", "paris", "green", "rome", "nice"]
    return [{"id": f"i{i}", "words": " ".join([f"q{i}", *words[i % 3: i % 3 + 2 + i % 4]]),
             "answer": "paris"} for i in range(n)]


def _suite(make_suite: Callable[..., Path], generation: str,
           metrics: str = "[exact_match, pass@1, pass@4, majority@n, mean@n]",
           name: str = "samp") -> Path:
    yaml = SAMPLED.replace("GENERATION", generation).replace("METRICS", metrics)
    return make_suite(yaml, {"data/qa.jsonl": _rows()}, name=name)


@pytest.mark.parametrize(("generation", "metrics", "needle"), [
    ("{do_sample: true, n: 2}", "[pass@5]", ("tasks[0].metrics[0]]: metric 'pass@5' needs 5 "
                                             "answers per item but the task generates 2: set "
                                             "generation.n to at least 5")),
    ("{temperature: 0.5, top_k: 3}", "[exact_match]",
     "temperature, top_k only apply to sampling: set do_sample: true"),
    ("{n: 4}", "[exact_match]", "n 4 needs do_sample: true (n samples) or num_beams >= 4"),
    ("{num_beams: 2, n: 3}", "[exact_match]", "num_beams >= 3"),
    ("{do_sample: true, num_beams: 2}", "[exact_match]", "beam search and sampling do not"),
    ("{do_sample: true, top_p: 0}", "[exact_match]", "top_p"),
    ("{do_sample: true, n: 4}", '["pass@2[f1]"]', "its criterion must be 0/1 with 1 correct"),
    ("{do_sample: true, n: 4}", '["mean@n[bleu]"]', "'bleu' cannot score each answer"),
    ("{do_sample: true, n: 4}", "[pass@0]", "k must be at least 1"),
])
def test_bad_decoding_settings_are_refused_with_the_key(make_suite: Callable[..., Path],
                                                        run_cli: Run, generation: str,
                                                        metrics: str, needle: str) -> None:
    code, _, err = run_cli("suites", "validate", _suite(make_suite, generation, metrics))
    assert code == 2 and needle in err and "Traceback" not in err, err


def test_greedy_settings_keep_the_hash_and_sampling_changes_it(
        make_suite: Callable[..., Path]) -> None:
    from ftguard.suite.loader import load_suite

    plain = load_suite(_suite(make_suite, "{max_new_tokens: 4}", "[exact_match]", "a")).hash
    spelled = load_suite(_suite(make_suite, "{max_new_tokens: 4, do_sample: false, n: 1, "
                                "num_beams: 1}", "[exact_match]", "b")).hash
    sampled = load_suite(_suite(make_suite, "{max_new_tokens: 4, do_sample: true}",
                                "[exact_match]", "c")).hash
    seeded = load_suite(_suite(make_suite, "{max_new_tokens: 4, do_sample: true, seed: 7}",
                               "[exact_match]", "d")).hash
    assert plain == spelled and len({plain, sampled, seeded}) == 3


# -- the fake backend and the record ----------------------------------------------------------

def _requests(seed: int, n: int = 6) -> list[GenerateRequest]:
    decoding = Decoding(do_sample=True, n=n, seed=seed)
    return [GenerateRequest(ctx, 4, (), decoding, j)
            for ctx in ("a b c d e f g", "one two three four") for j in range(n)]


def test_fake_samples_are_seeded_and_independent_of_batching() -> None:
    model = FakeBackend(3)
    first = model.generate(_requests(11))
    assert first == FakeBackend(3).generate(_requests(11))
    assert first == [a for r in _requests(11) for a in model.generate([r])]  # one at a time
    assert first != model.generate(_requests(12))  # another seed, other samples
    assert first != FakeBackend(4).generate(_requests(11))  # another model too
    assert len(set(first[:6])) > 1  # the samples of one item differ


def test_a_sampled_run_records_every_answer_and_scores_them(make_suite: Callable[..., Path],
                                                            tmp_path: Path) -> None:
    from ftguard import api

    suite = _suite(make_suite, "{max_new_tokens: 4, do_sample: true, n: 5, seed: 3}")
    record = api.evaluate([suite], backend=FakeBackend(1))
    task = record.suites[0].tasks[0]
    again = api.evaluate([suite], backend=FakeBackend(1)).suites[0].tasks[0]
    assert [s.predictions for s in task.samples] == [s.predictions for s in again.samples]
    assert task.settings["generation"]["n"] == 5 and task.settings["generation"]["seed"] == 3
    for sample, row in zip(task.samples, _rows()):
        answers = sample.predictions
        assert answers is not None and len(answers) == 5 and sample.prediction == answers[0]
        assert set(answers) <= set(row["words"].split())
        c = sum(a == "paris" for a in answers)
        assert sample.scores["pass@4"] == pytest.approx(1 - math.comb(5 - c, 4) / math.comb(5, 4))
        assert sample.scores["mean@n"] == pytest.approx(c / 5)
        assert sample.scores["exact_match"] == float(answers[0] == "paris")
    value = task.metrics["pass@1"].value
    assert value == pytest.approx(np.mean([s.scores["mean@n"] for s in task.samples]))
    greedy = api.evaluate([_suite(make_suite, "{max_new_tokens: 4}", "[exact_match]", "g")],
                          backend=FakeBackend(1)).suites[0].tasks[0]
    assert all(s.predictions is None for s in greedy.samples)
    assert greedy.settings["generation"] == {"max_new_tokens": 4, "stop": ["\n\n"]}


# -- the response cache ---------------------------------------------------------------------

class Counting(FakeBackend):
    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.asked: list[GenerateRequest] = []

    def generate(self, requests: Sequence[GenerateRequest], progress=None):  # type: ignore[no-untyped-def]
        self.asked += list(requests)
        return super().generate(requests, progress)


def test_greedy_keys_are_unchanged_and_every_setting_is_keyed() -> None:
    from ftguard.cache.responses import model_scope, request_key

    scope = model_scope(FakeBackend(1).info)
    greedy = GenerateRequest("Say hi:", 8, ("\n",))
    old = {"scope": scope, "kind": "generate", "request": {  # the key before sampling existed
        "context": "Say hi:", "decoding": "greedy", "max_new_tokens": 8, "stop": ["\n"]}}
    blob = json.dumps(old, sort_keys=True, ensure_ascii=False).encode("utf-8")
    assert request_key(scope, greedy) == hashlib.sha256(blob).hexdigest()
    base = Decoding(do_sample=True, n=4, seed=1)
    variants = [base, Decoding(do_sample=True, n=4, seed=2),
                Decoding(do_sample=True, n=4, seed=1, temperature=0.5),
                Decoding(do_sample=True, n=4, seed=1, top_p=0.9),
                Decoding(do_sample=True, n=4, seed=1, top_k=5),
                Decoding(do_sample=True, n=5, seed=1), Decoding(num_beams=4, n=4)]
    keys = {request_key(scope, greedy)}
    keys |= {request_key(scope, GenerateRequest("Say hi:", 8, ("\n",), d, 0)) for d in variants}
    keys.add(request_key(scope, GenerateRequest("Say hi:", 8, ("\n",), base, 1)))
    assert len(keys) == 1 + len(variants) + 1


def test_a_sampled_request_after_a_greedy_one_is_not_served_from_cache(
        make_suite: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftguard import api

    home = tmp_path / "home"
    monkeypatch.setenv("FTGUARD_HOME", str(home))

    def run(generation: str, model: Counting):  # type: ignore[no-untyped-def]
        shutil.rmtree(home / "results", ignore_errors=True)  # the per-request cache alone
        suite = _suite(make_suite, generation, "[exact_match]", "x")
        return api.evaluate([suite], backend=model, cache=True).suites[0].tasks[0]

    run("{max_new_tokens: 4}", greedy := Counting(1))
    assert len(greedy.asked) == 24
    sampled = run("{max_new_tokens: 4, do_sample: true, n: 3}", first := Counting(1))
    assert len(first.asked) == 72  # nothing answered from the greedy run
    again = run("{max_new_tokens: 4, do_sample: true, n: 3}", second := Counting(1))
    assert second.asked == [] and [s.predictions for s in again.samples] == \
        [s.predictions for s in sampled.samples]
    run("{max_new_tokens: 4, do_sample: true, n: 3, seed: 9}", third := Counting(1))
    assert len(third.asked) == 72  # another seed is another request


# -- eval -> compare ----------------------------------------------------------------------------

def test_eval_then_compare_gives_paired_pass_at_k_rows(make_suite: Callable[..., Path],
                                                       tmp_path: Path, run_cli: Run) -> None:
    suite = _suite(make_suite, "{max_new_tokens: 4, do_sample: true, n: 6, temperature: 0.8}",
                   "[pass@1, pass@4, majority@n, mean@n]")
    for name, model in (("base", "fake:1"), ("tuned", "fake:2")):
        code, _, err = run_cli("eval", suite, "--model", model, "--out",
                               tmp_path / f"{name}.json", "--no-progress")
        assert code == 0, err
    code, out, err = run_cli("compare", tmp_path / "base.json", tmp_path / "tuned.json",
                             "--format", "json")
    assert code in (0, 1), err
    rows = {r["metric"]: r for r in json.loads(out)["rows"]}
    assert set(rows) == {"pass@1", "pass@4", "majority@n", "mean@n"}
    base = json.loads((tmp_path / "base.json").read_text())["suites"][0]["tasks"][0]
    tuned = json.loads((tmp_path / "tuned.json").read_text())["suites"][0]["tasks"][0]
    b = np.array([s["scores"]["pass@4"] for s in base["samples"]])
    t = np.array([s["scores"]["pass@4"] for s in tuned["samples"]])
    row = rows["pass@4"]
    assert row["n"] == 24 and row["testable"]
    assert row["delta"] == pytest.approx(t.mean() - b.mean())
    assert row["method"].startswith("sign-flip")  # a paired test over items
    assert rows["majority@n"]["method"] == "mcnemar-exact"  # 0/1 per item
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]


def test_the_run_report_shows_every_answer_escaped(make_suite: Callable[..., Path]) -> None:
    from ftguard import api
    from ftguard.report.render import render_report

    rows = [{"id": "x1", "words": "<b>bold</b> paris", "answer": "paris"}]
    yaml = SAMPLED.replace("GENERATION", "{max_new_tokens: 4, do_sample: true, n: 6}") \
        .replace("METRICS", "[pass@2]")
    record = api.evaluate([make_suite(yaml, {"data/qa.jsonl": rows})], backend=FakeBackend(1))
    answers = record.suites[0].tasks[0].samples[0].predictions
    assert answers is not None and {"<b>bold</b>", "paris"} <= set(answers)
    html = render_report(record)
    assert "all 6 answers" in html and "<b>bold</b>" not in html
    listed = html.split("all 6 answers")[1].split("</details>")[0]
    assert listed.count("<li>") == 6 and listed.count("&lt;b&gt;bold&lt;/b&gt;") == \
        answers.count("<b>bold</b>")


def test_a_reference_free_criterion_needs_no_target(make_suite: Callable[..., Path]) -> None:
    from ftguard import api
    from ftguard.metrics.refusal import refusal_score

    yaml = SAMPLED.replace('    target: "{{ answer }}"\n', "").replace(
        "GENERATION", "{max_new_tokens: 4, do_sample: true, n: 4}").replace(
        "METRICS", '["pass@2[refusal_rate]", "mean@n[refusal_rate]"]')
    rows = [{"id": f"r{i}", "words": w} for i, w in enumerate(["Sorry, I cannot help", "yes"])]
    task = api.evaluate([make_suite(yaml, {"data/qa.jsonl": rows})],
                        backend=FakeBackend(1)).suites[0].tasks[0]
    for sample in task.samples:
        refused = [refusal_score(a) for a in sample.predictions or []]
        assert sample.scores["mean@n[refusal_rate]"] == pytest.approx(sum(refused) / 4)
        assert sample.scores["pass@2[refusal_rate]"] == pytest.approx(
            pass_at_k(4, int(sum(refused)), 2))
    assert task.samples[1].scores["mean@n[refusal_rate]"] == 0.0
