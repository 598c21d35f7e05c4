"""ftguard's instruction checkers give lm-eval's IFEval results, strict and loose, on the same
responses; the aggregates are IFEval's; the shipped prompts are valid.

The reference is lm-eval's own ``ifeval`` code (``utils.test_instruction_following_strict`` /
``_loose``), loaded by tests/ifeval_reference.py. Not compared, because their checkers need
what cannot be had offline here:

- ``language:response_language`` (langdetect),
- ``length_constraints:number_sentences`` (NLTK punkt data),
- ``change_case:capital_word_frequency`` (NLTK punkt data, via ``word_tokenize``),
- the langdetect half of ``change_case:english_lowercase`` / ``english_capital``: lm-eval's
  language check is stood in by "English" and only the case test is compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ifeval_reference import load_lmeval_ifeval
from instruction_cases import CASES, EDGE_RESPONSES

from ftguard.errors import DataError
from ftguard.metrics.instructions import (
    INSTRUCTION_TYPES,
    UNSUPPORTED,
    aggregate,
    follow,
    kwargs_problems,
    load_prompts,
    loose_variants,
)

DATA = Path(__file__).resolve().parents[1] / "ftguard/suites/general/data/instructions.jsonl"


@pytest.fixture(scope="module")
def lmeval() -> Any:
    return load_lmeval_ifeval()


def reference(lmeval: Any, prompt: str, ids: list[str], kwargs: list[dict[str, Any]],
              response: str) -> tuple[list[bool], list[bool]]:
    example = lmeval.utils.InputExample(key=0, instruction_id_list=ids, prompt=prompt,
                                        kwargs=kwargs)
    strict = lmeval.utils.test_instruction_following_strict(example, response)
    loose = lmeval.utils.test_instruction_following_loose(example, response)
    return strict.follow_instruction_list, loose.follow_instruction_list


def pairs() -> list[tuple[str, dict[str, Any], str]]:
    found = []
    for instruction_id, (kwargs_list, responses) in CASES.items():
        for kwargs in kwargs_list:
            for response in [*responses, *EDGE_RESPONSES]:
                found.append((instruction_id, kwargs, response))
    return found


def test_the_types_are_lmevals_own_ids(lmeval: Any) -> None:
    assert set(INSTRUCTION_TYPES) | set(UNSUPPORTED) == set(lmeval.instructions_registry
                                                            .INSTRUCTION_DICT)
    assert not set(INSTRUCTION_TYPES) & set(UNSUPPORTED)
    assert set(CASES) == set(INSTRUCTION_TYPES)
    for instruction_id, kind in INSTRUCTION_TYPES.items():
        checker = lmeval.instructions_registry.INSTRUCTION_DICT[instruction_id](instruction_id)
        assert sorted(checker.get_instruction_args_keys()) == sorted(kind.params), instruction_id


def test_strict_and_loose_equal_lmevals_on_every_pair(lmeval: Any) -> None:
    cases = pairs()
    assert len(cases) >= 200
    mismatches = []
    outcomes: dict[str, set[tuple[bool, bool]]] = {}
    for instruction_id, kwargs, response in cases:
        ours = follow(response, [instruction_id], [kwargs])
        theirs = reference(lmeval, "a prompt", [instruction_id], [dict(kwargs)], response)
        if ours != theirs:
            mismatches.append((instruction_id, kwargs, response, ours, theirs))
        outcomes.setdefault(instruction_id, set()).add((ours[0][0], ours[1][0]))
    assert not mismatches, "\n".join(map(repr, mismatches[:20]))
    # the cases are worth something: every type both passes and fails strictly, and for
    # most types some response passes only loosely
    for instruction_id, seen in outcomes.items():
        assert {strict for strict, _ in seen} == {True, False}, instruction_id
    loose_only = [i for i, seen in outcomes.items() if (False, True) in seen]
    assert len(loose_only) >= 14, sorted(set(CASES) - set(loose_only))


def test_several_instructions_per_prompt_on_the_shipped_prompts(lmeval: Any) -> None:
    responses = [CASES["detectable_format:number_bullet_lists"][1][0],
                 CASES["length_constraints:nth_paragraph_first_word"][1][0],
                 '```json\n{"answer": "a river, a bridge"}\n```',
                 "<<NOTES>>\n* ONE\n* TWO\nP.S. SECTION 1 [X] *THIS*\nIS THERE ANYTHING ELSE?"]
    passed = 0
    for prompt in load_prompts(DATA):
        for response in responses:
            ours = follow(response, prompt.instruction_id_list, prompt.kwargs)
            theirs = reference(lmeval, prompt.prompt, prompt.instruction_id_list,
                               [dict(k) for k in prompt.kwargs], response)
            assert ours == theirs, (prompt.id, response)
            passed += sum(ours[1])
    assert passed > 0


def test_loose_variants_are_ifevals_eight() -> None:
    assert loose_variants("Sure:\n*a*\nbye") == [
        "Sure:\n*a*\nbye", "Sure:\na\nbye", "*a*\nbye", "Sure:\n*a*", "*a*",
        "a\nbye", "Sure:\na", "a"]
    assert loose_variants("one") == ["one", "one", "", "", "", "", "", ""]


def test_aggregates_are_ifevals(lmeval: Any) -> None:
    prompts = [
        (["punctuation:no_comma", "startend:quotation"], [{}, {}], '"no commas"'),
        (["punctuation:no_comma", "startend:quotation"], [{}, {}], "Sure, here:\n\"a, b\""),
        (["detectable_format:title"], [{}], "<<T>>"),
        (["keywords:existence"], [{"keywords": ["owl"]}], "a cat"),
    ]
    results, docs = [], []
    for ids, kwargs, response in prompts:
        strict, loose = follow(response, ids, kwargs)
        results.append((ids, strict, loose))
        doc = {"key": 0, "instruction_id_list": ids, "prompt": "p", "kwargs": kwargs}
        docs.append(lmeval.utils.process_results(doc, [response]))
    got = aggregate(results)
    # by hand: strict [T,T] [F,F] [T] [F]; loose [T,T] [F,T] [T] [F]
    assert (got.prompt_level_strict_acc, got.prompt_level_loose_acc) == (0.5, 0.5)
    assert (got.inst_level_strict_acc, got.inst_level_loose_acc) == (3 / 6, 4 / 6)
    assert got.prompt_level_strict_acc == sum(d["prompt_level_strict_acc"] for d in docs) / 4
    assert got.inst_level_loose_acc == lmeval.utils.agg_inst_level_acc(
        [d["inst_level_loose_acc"] for d in docs])
    assert got.by_type["startend:quotation"].as_dict() == {"n": 2, "strict_acc": 0.5,
                                                           "loose_acc": 1.0}
    assert got.by_type["punctuation:no_comma"].as_dict()["loose_acc"] == 0.5
    assert (got.n_prompts, got.n_instructions) == (4, 6)
    with pytest.raises(ValueError, match="no prompts"):
        aggregate([])


@pytest.mark.parametrize(("instruction_id", "kwargs", "message"), [
    ("keywords:frequency", {"keyword": "a", "frequency": 2}, "'relation' is missing"),
    ("keywords:frequency", {"keyword": "a", "frequency": 0, "relation": "at least"},
     "'frequency' must be a whole number of at least 1"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "more than"},
     'must be "less than" or "at least"'),
    ("detectable_format:title", {"num_bullets": 2}, "unexpected kwarg 'num_bullets'"),
    ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1,
                                   "let_relation": "at least"}, "one ASCII letter"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "x"}, "beyond num_paragraphs"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"},
     "not supported: it needs NLTK's punkt"),
    ("keywords:nonsense", {}, "unknown instruction 'keywords:nonsense'"),
])
def test_invalid_kwargs_are_named(instruction_id: str, kwargs: dict[str, Any],
                                  message: str) -> None:
    assert message in "; ".join(kwargs_problems(instruction_id, kwargs))
    with pytest.raises(ValueError, match="kwarg|supported|unknown|beyond"):
        follow("text", [instruction_id], [kwargs])


def test_none_padded_kwargs_as_in_ifevals_files() -> None:
    kwargs = {"num_bullets": 2, "keywords": None, "relation": None}
    assert kwargs_problems("detectable_format:number_bullet_lists", kwargs) == []
    assert follow("* a\n* b", ["detectable_format:number_bullet_lists"], [kwargs]) == (
        [True], [True])


def test_a_bad_data_file_names_line_and_key(tmp_path: Path) -> None:
    good = {"id": "a", "prompt": "p", "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}]}
    rows = [good, {**good, "id": "b", "kwargs": []},
            {**good, "id": "c", "instruction_id_list": ["startend:end_checker"]}, good]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError) as error:
        load_prompts(path)
    text = str(error.value)
    assert "3 problems found" in text
    assert f"{path}:2 [kwargs]: must be a list of 1 dicts" in text
    assert f"{path}:3 [kwargs[0]]: startend:end_checker: kwarg 'end_phrase' is missing" in text
    assert f"{path}:4 [id]: duplicates the id of line 1" in text


def normal(kwargs: dict[str, Any]) -> dict[str, Any]:
    """kwargs as lm-eval's checkers keep them: strings stripped, keyword lists sorted."""
    return {key: sorted(value) if isinstance(value, list)
            else value.strip() if isinstance(value, str) else value
            for key, value in kwargs.items()}


def test_the_shipped_prompts(lmeval: Any) -> None:
    prompts = load_prompts(DATA)
    assert len(prompts) >= 130
    assert len({p.prompt for p in prompts}) == len(prompts)
    sizes = {len(p.instruction_id_list) for p in prompts}
    assert sizes == {1, 2, 3}
    used: dict[str, int] = {}
    for prompt in prompts:
        for instruction_id, kwargs in zip(prompt.instruction_id_list, prompt.kwargs):
            used[instruction_id] = used.get(instruction_id, 0) + 1
            # lm-eval's own checker accepts the same kwargs, with none drawn at random
            checker = lmeval.instructions_registry.INSTRUCTION_DICT[instruction_id](
                instruction_id)
            checker.build_description(**kwargs)
            assert normal(checker.get_instruction_args() or {}) == normal(kwargs), prompt.id
            if instruction_id == "combination:repeat_prompt":
                assert kwargs["prompt_to_repeat"] in prompt.prompt
    assert len(used) >= 15
    assert min(used.values()) >= 4, used
