"""Answer extraction (``extract:``): each filter on hand-checked texts, parity with lm-eval's
own filters (its gsm8k strict-match and flexible-extract included), located suite errors,
and eval -> record -> compare -> report on a scripted fake model, the response cache kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_jsonl
from ftguard.engine.extract import apply_filters
from ftguard.errors import SuiteError
from ftguard.models.base import Generation
from ftguard.models.fake import FakeBackend
from ftguard.suite import load_suite
from ftguard.suite.schema import TaskSpec


def _filters(*steps: object) -> list:
    spec = TaskSpec.model_validate({"name": "t", "kind": "generate", "data": "d.jsonl",
                                    "prompt": "x", "target": "y", "extract": list(steps)})
    assert spec.extract is not None
    return spec.extract


# -- the filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
    ("The answer is $1,234.", "1234"),            # currency mark and full stop are not part of it
    ("So she pays $1,234.50 in all.", "1234.5"),  # thousands commas and trailing zeros dropped
    ("The total is 18.00 dollars", "18"),
    ("He is left with 3 - 5 = -2 dollars", "-2"),
    ("The answer is \u22124", "-4"),              # the minus sign U+2212
    ("+3 degrees", "3"),
    ("about -.5 of it", "-0.5"),
    ("They need 007 boxes", "7"),
    ("-0.0", "0"),
    ("From 5-7 people came", "7"),                # the hyphen of a range is not a sign
    ("H2O and x3 hold no number", "[invalid]"),   # digits inside a word are not numbers
    ("1e6", "1"),                                 # exponents are not read
    ("3/4 of them", "4"),
    ("1,2345", "2345"),                           # not a thousands group: two numbers
    ("I do not know.", "[invalid]"),
    ("", "[invalid]"),
])
def test_number_is_the_last_number_in_canonical_form(text: str, expected: str) -> None:
    assert apply_filters(text, _filters("number")) == expected


def test_number_options_first_and_fallback() -> None:
    assert apply_filters("3 apples and 4 pears", _filters({"number": {"match": "first"}})) == "3"
    assert apply_filters("none", _filters({"number": {"fallback": "?"}})) == "?"


@pytest.mark.parametrize(("text", "expected"), [
    ("The answer is (B)", "B"),
    ("Answer: C", "C"),
    ("the correct answer is **D**.", "D"),
    ("answer: (c)", "C"),                         # in brackets either case
    ("The answer is E. Earlier I thought the answer would be (A)", "A"),  # the last statement
    ("B. Because the clause says so", "B"),       # a reply opening with the letter
    ("(B) because (A) fails", "B"),
    ("C", "C"),
    ("A contract is void if ...", "[invalid]"),   # an opening word is not a letter
    ("Option (A) fails, (B) fails, so (C) fits", "C"),  # the last bracketed capital
    ("the answer is b", "[invalid]"),             # a bare lower-case letter is a word
    ("(F) is not an option here", "[invalid]"),
    ("nothing to choose", "[invalid]"),
])
def test_choice_letter_rule(text: str, expected: str) -> None:
    assert apply_filters(text, _filters("choice_letter")) == expected


def test_choice_letter_letters_option() -> None:
    assert apply_filters("The answer is (E)", _filters({"choice_letter": {"letters": "ABCD"}})) \
        == "[invalid]"
    assert apply_filters("The answer is (F)", _filters({"choice_letter": {"letters": "ABCDEF"}})) \
        == "F"


def test_first_line_strip_lowercase_chain_in_order() -> None:
    text = "\n  \n  Paris Is The Capital  \nQuestion: next"
    assert apply_filters(text, _filters("first_line")) == "  Paris Is The Capital  "
    assert apply_filters(text, _filters("first_line", "strip", "lowercase")) \
        == "paris is the capital"
    assert apply_filters(" \n\t", _filters("first_line")) == ""
    # the fallback of one filter is the input of the next
    assert apply_filters("no digits", _filters("number", "lowercase")) == "[invalid]"
    assert apply_filters("no digits", _filters({"regex": {"pattern": "x", "fallback": "NONE"}},
                                                "lowercase")) == "none"


def test_regex_group_by_number_and_name() -> None:
    steps = _filters({"regex": {"pattern": r"(\w+)=(\d+)", "group": 2, "match": "last"}})
    assert apply_filters("a=1, b=22", steps) == "22"
    steps = _filters({"regex": {"pattern": r"(?P<key>\w+)=(?P<value>\d+)?", "group": "value"}})
    assert apply_filters("a=, b=2", steps) == "[invalid]"  # the group took no part
    assert apply_filters("a=7", _filters({"regex": {"pattern": r"\d", "group": 0}})) == "7"


# -- parity with lm-eval's filters ---------------------------------------------------------

GSM8K_STRICT = r"#### (\-?[0-9\.\,]+)"
"""lm-eval's gsm8k ``strict-match``: regex (group_select 0), then take_first."""
GSM8K_FLEXIBLE = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
"""lm-eval's gsm8k ``flexible-extract``: regex with group_select -1, then take_first."""

RESPONSES = [
    ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 "
    "clips altogether in April and May.\n#### 72"),
    ("Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50"
    " = $<<0.2*50=10>>10.\n#### 10"),
    "The answer is 1,250.",
    "So she has $1,234 left. The answer is $1,234.",
    "He loses 3 - 5 = -2 dollars.\n#### -2",
    "The total is 18.00 dollars",
    "Let's think step by step. 5 + 7 = 12. So the answer is 12",
    "#### 1,000,000",
    "I don't know.",
    "",
    "The answer is -3.",
    "Total: 2,400 apples.",
    "The answer: 42\n\nQuestion: Tom has 3 apples",
    "It costs $5.",
    "She ran 3.5 miles... wait",
    "x = 10, y = 20, so x + y = 30.",
    "The answer is 300,000 dollars.\n",
    "From 5-7 people came, so 7",
    "They need 007 boxes",
    "#### 7 and later #### 8",
    "  #### 12.5  \n",
    "The answer is 12 apples (about 60%).",
    "ANSWER IS B, or (c)",
    "just z here",
    "had 9z",
]


def _lmeval(responses: list[str], *filters: object) -> list[str]:
    """``responses`` through lm-eval's own filter pipeline (one response per doc)."""
    from lm_eval.filters.selection import TakeFirstFilter

    resps: object = [[r] for r in responses]
    for f in (*filters, TakeFirstFilter()):
        resps = f.apply(resps, [{}] * len(responses))  # type: ignore[attr-defined]
    return list(resps)  # type: ignore[call-overload]


@pytest.mark.parametrize(("pattern", "group_select", "match"), [
    (GSM8K_STRICT, 0, "first"),
    (GSM8K_FLEXIBLE, -1, "last"),
    (GSM8K_FLEXIBLE, 0, "first"),
    (r"[0-9]+", -1, "last"),                        # no group: the whole match
    (r"(?i)answer is ([A-E])", 0, "first"),         # one group
    (r"(\d+)|\(([a-e])\)", -1, "last"),             # two groups: the first non-empty
    (r"(x)?(\d+)?z", 0, "first"),                   # every group empty: the fallback
])
def test_regex_filter_equals_lmeval_regex_then_take_first(pattern: str, group_select: int,
                                                          match: str) -> None:
    from lm_eval.filters.extraction import RegexFilter

    expected = _lmeval(RESPONSES, RegexFilter(regex_pattern=pattern, group_select=group_select))
    steps = _filters({"regex": {"pattern": pattern, "match": match}})
    assert [apply_filters(r, steps) for r in RESPONSES] == expected
    assert "[invalid]" in expected and len(set(expected)) >= 2  # both a match and none


def test_lowercase_strip_regex_chain_equals_lmeval() -> None:
    from lm_eval.filters.extraction import RegexFilter, WhitespaceFilter
    from lm_eval.filters.transformation import LowercaseFilter

    expected = _lmeval(RESPONSES, WhitespaceFilter(), LowercaseFilter(),
                       RegexFilter(regex_pattern=r"answer is (\S+)", fallback="none"))
    steps = _filters("strip", "lowercase",
                     {"regex": {"pattern": r"answer is (\S+)", "fallback": "none"}})
    assert [apply_filters(r, steps) for r in RESPONSES] == expected
    assert expected.count("none") < len(expected)


def test_number_scores_as_lmeval_gsm8k_flexible_extract_but_for_three_cases() -> None:
    """``number`` + exact_match_strict against lm-eval's flexible-extract scored by its gsm8k
    exact_match (ignore ``,`` ``$`` ``.$``, case): the same on every realistic answer but
    three, where the number is right and lm-eval's text differs."""
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    from ftguard.metrics.qa import exact_match_strict

    targets = ["72", "10", "1250", "1234", "-2", "18", "12", "1000000", "5", "5", "-3", "2400",
               "42", "5", "3.5", "30", "300000", "7", "7", "8", "12.5", "12", "2", "1", "9"]
    flexible = _lmeval(RESPONSES, RegexFilter(regex_pattern=GSM8K_FLEXIBLE, group_select=-1))
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]  # lm-eval's gsm8k.yaml exact_match settings
    theirs = [exact_match_hf_evaluate([f], [t], regexes_to_ignore=ignore,
                                      ignore_case=True)["exact_match"]
              for f, t in zip(flexible, targets)]
    ours = [exact_match_strict(apply_filters(r, _filters("number")), [t])
            for r, t in zip(RESPONSES, targets)]
    differ = {RESPONSES[i]: (flexible[i], theirs[i], ours[i])
              for i in range(len(RESPONSES)) if theirs[i] != ours[i]}
    assert differ == {
        "The total is 18.00 dollars": ("18.00", 0.0, 1.0),     # canonical form
        "She ran 3.5 miles... wait": ("...", 0.0, 1.0),        # a number needs a digit
        "They need 007 boxes": ("007", 0.0, 1.0),              # leading zeros
    }
    assert sum(ours) == 19 and sum(theirs) == 16


# -- suite errors --------------------------------------------------------------------------

ROWS = [{"id": f"g{i}", "question": f"What is {i} plus {i}?", "answer": str(2 * i)}
        for i in range(1, 7)]
GEN_TASK = """\
  - name: NAME
    kind: generate
    data: data/gen.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target_field: answer
    metrics: [exact_match]
"""


def _suite(root: Path, tasks: str) -> Path:
    write_jsonl(root / "data" / "gen.jsonl", ROWS)
    (root / "suite.yaml").write_text(f"name: ex\nversion: 1\nrole: target\ntasks:\n{tasks}",
                                     encoding="utf-8")
    return root


@pytest.mark.parametrize(("extract", "line", "key", "message"), [
    ("[{regex: {pattern: '(unclosed'}}]", 11, "tasks[0].extract[0].regex",
     "pattern '(unclosed' is not a valid regular expression: missing ), unterminated subpattern"),
    ("[nmber]", 11, "tasks[0].extract[0]", ("unknown filter 'nmber'. Did you mean 'number'? "
     "Filters: regex, strip, lowercase, first_line, number, choice_letter")),
    ("[{regex: {pattern: 'a', grop: 1}}]", 11, "tasks[0].extract[0].regex.grop",
     ("unknown key 'grop'. Did you mean 'group'? Valid keys here: fallback, group, match, "
     "pattern")),
    ("[{regex: {pattern: '(a)', group: 2}}]", 11, "tasks[0].extract[0].regex",
     "group 2 does not exist: pattern '(a)' has 1 group(s)"),
    ("[{regex: {pattern: '(a)', group: v}}]", 11, "tasks[0].extract[0].regex",
     "group 'v' is not a named group of '(a)'"),
    ("[{strip: null, lowercase: null}]", 11, "tasks[0].extract[0]",
     "a filter is its name (- strip) or one mapping of its name to its options"),
    ("[{number: {match: middle}}]", 11, "tasks[0].extract[0].number.match", "'first' or 'last'"),
    ("[{choice_letter: {letters: abc}}]", 11, "tasks[0].extract[0].choice_letter.letters",
     "letters 'abc' must be distinct capital letters A-Z"),
    ("[]", 11, "tasks[0].extract", "at least 1 item"),
    ("[{regex: abc}]", 11, "tasks[0].extract[0]",
     "the options of 'regex' are a mapping (- regex: {pattern: '...'}); got 'abc'"),
])
def test_bad_extract_is_a_located_suite_error(tmp_path: Path, extract: str, line: int, key: str,
                                              message: str) -> None:
    root = _suite(tmp_path / "ex", GEN_TASK.replace("NAME", "g") + f"    extract: {extract}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(root)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.key) == (str(root / "suite.yaml"), line, key)
    assert message in problem.message


def test_extract_on_a_choice_task_is_refused(tmp_path: Path, run_cli) -> None:
    write_jsonl(tmp_path / "ex" / "data" / "mc.jsonl",
                [{"id": "q1", "question": "?", "choices": ["a", "b"], "answer": 0}])
    (tmp_path / "ex" / "suite.yaml").write_text(
        "name: ex\nversion: 1\nrole: target\ntasks:\n  - name: mc\n    kind: choice\n"
        "    data: data/mc.jsonl\n    prompt: '{{ question }}'\n    choices_field: choices\n"
        "    target_index: '{{ answer }}'\n    extract: [choice_letter]\n", encoding="utf-8")
    code, _out, err = run_cli("suites", "validate", tmp_path / "ex")
    assert code == 2
    assert "suite.yaml:5 [tasks[0]]: 'extract' is for generate tasks" in err
    assert "Traceback" not in err


def test_suite_hash_changes_with_the_filters_only(tmp_path: Path) -> None:
    plain = load_suite(_suite(tmp_path / "a", GEN_TASK.replace("NAME", "g"))).hash
    again = load_suite(_suite(tmp_path / "b", GEN_TASK.replace("NAME", "g"))).hash
    numbered = load_suite(_suite(tmp_path / "c", GEN_TASK.replace("NAME", "g")
                                 + "    extract: [number]\n")).hash
    mapped = load_suite(_suite(tmp_path / "d", GEN_TASK.replace("NAME", "g")
                               + "    extract:\n      - number: {match: last}\n")).hash
    first = load_suite(_suite(tmp_path / "e", GEN_TASK.replace("NAME", "g")
                              + "    extract: [{number: {match: first}}]\n")).hash
    assert plain == again and numbered == mapped  # the same filters however they are written
    assert len({plain, numbered, first}) == 3


def test_json_schema_accepts_both_written_forms() -> None:
    import jsonschema

    from ftguard.suite.json_schema import suite_schema

    suite = {"name": "ex", "version": "1", "role": "target", "tasks": [{
        "name": "g", "kind": "generate", "data": "d.jsonl", "prompt": "x", "target": "y",
        "extract": ["strip", {"regex": {"pattern": "a", "match": "last"}}, {"number": {}}]}]}
    jsonschema.validate(suite, suite_schema())
    suite["tasks"][0]["extract"] = ["nmber"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(suite, suite_schema())
    suite["tasks"][0]["extract"] = [{"strip": {}, "lowercase": {}}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(suite, suite_schema())


# -- through the engine --------------------------------------------------------------------


class Scripted(FakeBackend):
    """The fake model (its identity and log-likelihoods) with scripted generations: the reply
    to the question each context ends with; it counts the generations it was asked for."""

    def __init__(self, replies: dict[str, str], seed: int = 0) -> None:
        super().__init__(seed)
        self.replies, self.generated = replies, 0

    def generate(self, requests, progress=None):  # type: ignore[no-untyped-def]
        self.generated += len(requests)
        out = [Generation(next(text for q, text in self.replies.items()
                               if r.context.rstrip().endswith(f"{q}\nAnswer:")), truncated=False)
               for r in requests]
        if progress:
            progress(len(requests))
        return out


def _replies(right: set[int], hostile: int | None = None) -> dict[str, str]:
    """A worked answer per item: right (2i) for the items in ``right``, else off by one."""
    replies = {}
    for i in range(1, 7):
        value = 2 * i if i in right else 2 * i + 1
        text = f"{i} + {i} makes {value} in all.\n#### {value:,}"
        if i == hostile:
            text = f"<script>alert('x')</script> {text}"
        replies[f"What is {i} plus {i}?"] = text
    return replies


def test_eval_compare_report_with_and_without_extraction(tmp_path: Path, run_cli) -> None:
    from ftguard.api import evaluate
    from ftguard.compare import compare
    from ftguard.compare_output import render_comparison
    from ftguard.record import read_run, write_run
    from ftguard.report import render_report

    root = _suite(tmp_path / "ex", GEN_TASK.replace("NAME", "plain")
                  + GEN_TASK.replace("NAME", "extracted") + "    extract: [number]\n")
    base = evaluate([root], backend=Scripted(_replies({1, 2, 3, 4}, hostile=2), seed=1))
    tuned = evaluate([root], backend=Scripted(_replies({1, 3, 4, 5, 6}), seed=2))
    plain, extracted = base.suites[0].tasks
    assert plain.metrics["exact_match"].value == 0.0  # the worked answers are never just "2i"
    assert extracted.metrics["exact_match"].value == pytest.approx(4 / 6)
    assert tuned.suites[0].tasks[1].metrics["exact_match"].value == pytest.approx(5 / 6)
    sample = extracted.samples[1]
    assert sample.prediction == "4"
    assert sample.raw_prediction == "<script>alert('x')</script> 2 + 2 makes 4 in all.\n#### 4"
    assert plain.samples[1].raw_prediction is None
    assert plain.samples[1].prediction == sample.raw_prediction
    assert extracted.settings["extract"] == [{"number": {"match": "last", "fallback": "[invalid]"}}]
    assert "extract" not in plain.settings
    assert extracted.health is not None and extracted.health.empty == 0.0

    write_run(base, tmp_path / "base.json")
    write_run(tuned, tmp_path / "tuned.json")
    assert read_run(tmp_path / "base.json") == base  # the record keeps both predictions

    comparison = compare(base, tuned)
    flips = {(f.task, f.id): f for f in comparison.flips}
    assert set(flips) == {("extracted", "g2"), ("extracted", "g5"), ("extracted", "g6")}
    lost = flips[("extracted", "g2")]
    assert (lost.base_prediction, lost.tuned_prediction) == ("4", "5")
    assert lost.base_raw_prediction == sample.raw_prediction
    assert lost.tuned_raw_prediction == "2 + 2 makes 5 in all.\n#### 5"
    text = render_comparison(comparison, "text")
    assert "ex/extracted g2: target '4', base '4' (from \"<script>alert('x')</script> 2 + 2" in text

    page = render_report(comparison)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 2 + 2 makes 4 in all." in page
    assert page.count("extracted from:") >= 6  # three flips, base and tuned (and the JS)
    run_page = render_report(base)
    assert run_page.count('<div class="meta">extracted from:</div>') == 6  # the extracted task
    assert "&lt;script&gt;alert" in run_page and "<script>alert" not in run_page

    code, out, _ = run_cli("compare", tmp_path / "base.json", tmp_path / "tuned.json",
                           "--format", "json")
    assert code in (0, 1)
    assert json.loads(out)["flips"][0]["base_raw_prediction"] == sample.raw_prediction


def test_response_cache_keeps_the_raw_text_and_filters_rescore(tmp_path: Path,
                                                                monkeypatch) -> None:
    from ftguard.api import evaluate
    from ftguard.cache import results
    from ftguard.engine.settings import RunSettings

    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    backend = Scripted(_replies({1, 2, 3}))
    task = GEN_TASK.replace("NAME", "g")
    number = load_suite(_suite(tmp_path / "a", task + "    extract: [number]\n"))
    strict = load_suite(_suite(tmp_path / "b", task + "    extract:\n      - regex: {pattern: '"
                               + GSM8K_STRICT + "'}\n      - number\n"))
    first = load_suite(_suite(tmp_path / "c", task + "    extract: [{number: {match: first}}]\n"))
    run = evaluate([number], backend=backend, cache=True)
    assert backend.generated == 6 and run.suites[0].tasks[0].metrics["exact_match"].value == 0.5
    again = evaluate([strict], backend=backend, cache=True)
    by_first = evaluate([first], backend=backend, cache=True)
    assert backend.generated == 6  # new filters re-score the cached generations
    assert again.suites[0].tasks[0].metrics["exact_match"].value == 0.5
    assert by_first.suites[0].tasks[0].metrics["exact_match"].value == 0.0  # "i" is never 2i
    assert [s.raw_prediction for s in by_first.suites[0].tasks[0].samples] == \
        [s.raw_prediction for s in run.suites[0].tasks[0].samples]
    # the result cache keys the filters: each suite's result is its own
    keys = {results.cache_key("fake-0", s, RunSettings()) for s in (number, strict, first)}
    assert len(keys) == 3


def test_variants_are_extracted_and_consistency_compares_the_answers(tmp_path: Path) -> None:
    from ftguard.api import evaluate

    task = (GEN_TASK.replace("NAME", "g") + "    extract: [number]\n    variants:\n"
            "      - name: polite\n        prompt: \"Please: {{ question }}\\nAnswer:\"\n")
    replies = _replies({1, 2, 3, 4, 5, 6})
    # the variant words every answer differently; item 6 it gets wrong
    polite = {f"Please: {q}": f"Sure! It is {2 * i if i < 6 else 0}." for i, q in
              enumerate(replies, start=1)}
    run = evaluate([_suite(tmp_path / "ex", task)], backend=Scripted({**polite, **replies}))
    own, variant = run.suites[0].tasks
    assert variant.name == "g@polite" and variant.settings["extract"] == own.settings["extract"]
    assert [s.prediction for s in variant.samples] == ["2", "4", "6", "8", "10", "0"]
    assert variant.samples[0].raw_prediction == "Sure! It is 2."
    assert [s.scores["consistency"] for s in own.samples] == [1.0] * 5 + [0.0]
    assert own.metrics["consistency"].value == pytest.approx(5 / 6)


def test_checkpoint_evaluation_extracts_through_the_same_engine(tmp_path: Path,
                                                                tiny_model: Path) -> None:
    """Evaluation during training (a real tiny model through the HF backend): each
    checkpoint's record scores the extracted answers and keeps the raw generations."""
    import torch
    from transformers import AutoModelForCausalLM

    from conftest import checkpoint_evaluator
    from ftguard.record import read_run
    from ftguard.train.checkpoint_eval import eval_path

    task = (GEN_TASK.replace("NAME", "g") + "    generation: {max_new_tokens: 6}\n"
            "    extract: [{regex: {pattern: '\\S+', match: last, fallback: none}}]\n")
    suite = load_suite(_suite(tmp_path / "ex", task))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    evaluator = checkpoint_evaluator([suite], tmp_path / "out", tiny_model)
    evaluator.evaluate(model, 0, checkpoint=None, val_loss=None, base=True)
    with torch.no_grad():
        model.lm_head.weight.mul_(-1.0)  # "training": other answers
    point = evaluator.evaluate(model, 1, checkpoint="checkpoints/checkpoint-1", val_loss=None)
    assert point.gate_passed is not None  # judged against step 0
    steps = suite.tasks[0].spec.extract
    for step in (0, 1):
        (result,) = read_run(tmp_path / "out" / eval_path(step)).suites[0].tasks
        assert result.settings["extract"] == [step_.model_dump() for step_ in steps or []]
        raw = [s.raw_prediction for s in result.samples]
        assert all(r is not None for r in raw)
        assert [s.prediction for s in result.samples] == [apply_filters(str(r), steps)
                                                          for r in raw]
        assert any(s.prediction != s.raw_prediction for s in result.samples)


def test_flips_filter_shows_and_searches_the_raw_text_in_chromium(tmp_path: Path) -> None:
    """The flips table as the page's script redraws it (a search in the URL): the raw text
    is searched, shown under its answer as text (never markup)."""
    from test_report import _browser, _page_problems

    from ftguard.api import evaluate
    from ftguard.compare import compare
    from ftguard.report import write_report

    chromium = __import__("shutil").which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed")
    root = _suite(tmp_path / "ex", GEN_TASK.replace("NAME", "g") + "    extract: [number]\n")
    base = evaluate([root], backend=Scripted(_replies({1, 2, 3, 4}, hostile=2), seed=1))
    tuned = evaluate([root], backend=Scripted(_replies({1, 3, 4, 5, 6}), seed=2))
    report = write_report(compare(base, tuned), tmp_path / "report.html")
    done = _browser(chromium, tmp_path, report.as_uri() + "#q=alert", "--dump-dom")
    dom = done.stdout
    assert not _page_problems(done.stderr)
    assert 'data-flips-ready="3"' in dom and "1 of 3 match" in dom, done.stderr[-2000:]
    rows = dom.split('<tbody id="flip-rows">')[1].split("</tbody>")[0]
    assert rows.count("<tr>") == 1 and rows.count("extracted from:") == 2
    assert "&lt;script&gt;alert('x')&lt;/script&gt; 2 + 2 makes 4 in all." in rows
    assert "<script>" not in rows
