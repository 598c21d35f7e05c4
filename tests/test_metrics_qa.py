"""SQuAD EM/F1 against the official v1.1 script, ROUGE against rouge-score directly."""

from __future__ import annotations

import re
import string
from collections import Counter

import pytest
from rouge_score import rouge_scorer

from ftguard.metrics import score_generate
from ftguard.metrics.qa import normalize_answer as our_normalize


# --- Official SQuAD v1.1 evaluation script (evaluate-v1.1.py), verbatim ---------------------
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)
# ---------------------------------------------------------------------------------------------

# (prediction, references, expected EM, expected F1): expectations written by hand, and
# also checked against the official functions above.
CASES: list[tuple[str, list[str], float, float]] = [
    ("The Eiffel Tower", ["eiffel tower"], 1.0, 1.0),
    ("  Paris,  France! ", ["Paris France"], 1.0, 1.0),
    ("an apple a day", ["apple day"], 1.0, 1.0),
    ("theater", ["the ater"], 0.0, 0.0),                 # "the" inside a word stays
    ("1,000", ["1000"], 1.0, 1.0),                       # ASCII punctuation goes
    ("«quoted»", ["quoted"], 0.0, 0.0),                  # non-ASCII punctuation stays
    ("Café", ["cafe"], 0.0, 0.0),                        # accents are not folded
    ("ÉCOLE normale", ["école Normale."], 1.0, 1.0),     # unicode lower-casing
    ("İstanbul", ["istanbul"], 0.0, 0.0),                # 'İ'.lower() keeps a combining dot
    ("東京", ["東京"], 1.0, 1.0),
    ("東京タワー", ["東京 タワー"], 0.0, 0.0),            # CJK is one token without spaces
    ("", ["something"], 0.0, 0.0),
    ("something", [""], 0.0, 0.0),
    ("", [""], 1.0, 0.0),                                # v1.1: F1 is 0 on empty vs empty
    ("A", ["an"], 1.0, 0.0),                             # both normalise to ""
    ("blue red", ["red blue"], 0.0, 1.0),
    ("the the cat cat", ["cat"], 0.0, 2 / 3),            # multisets: 1 of 2 pred tokens
    ("Barack Obama", ["Obama", "President Barack Obama", "B. Obama"], 0.0, 0.8),
    ("B Obama", ["Obama", "President Barack Obama", "B. Obama"], 1.0, 1.0),
    ("tab\tseparated\nnew line", ["tab separated new  line"], 1.0, 1.0),
    ("New York City", ["new york", "NYC"], 0.0, 0.8),
]


@pytest.mark.parametrize(("prediction", "references", "em", "f1"), CASES)
def test_squad_em_f1_match_official_script(prediction: str, references: list[str],
                                           em: float, f1: float) -> None:
    scores, stats = score_generate(prediction, references, ["exact_match", "f1"])
    official_em = float(metric_max_over_ground_truths(exact_match_score, prediction, references))
    official_f1 = float(metric_max_over_ground_truths(f1_score, prediction, references))
    assert scores["exact_match"] == official_em == em
    assert scores["f1"] == pytest.approx(official_f1, abs=1e-15)
    assert scores["f1"] == pytest.approx(f1, abs=1e-12)
    assert stats == {}


def test_normalize_answer_matches_official() -> None:
    for prediction, references, _, _ in CASES:
        for text in [prediction, *references]:
            assert our_normalize(text) == normalize_answer(text)


@pytest.mark.parametrize(("prediction", "references", "expected"), [
    ("  Paris\n", ["Paris"], 1.0),
    ("paris", ["Paris"], 0.0),
    ("Paris.", ["Paris"], 0.0),
    ("Rome", ["Paris", " Rome "], 1.0),
    ("", [""], 1.0),
    ("", ["x"], 0.0),
])
def test_exact_match_strict(prediction: str, references: list[str], expected: float) -> None:
    scores, _ = score_generate(prediction, references, ["exact_match_strict"])
    assert scores == {"exact_match_strict": expected}


ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
ROUGE_CASES: list[tuple[str, list[str]]] = [
    ("The cats were running quickly.", ["A cat runs quickly"]),
    ("police killed the gunman", ["the gunman was shot dead by police", "police shot him"]),
    ("first sentence here.\nsecond one follows", ["second one here\nfirst sentence follows"]),
    ("", ["something"]),
    ("something", [""]),
    ("東京 タワー", ["東京 タワー"]),                      # no ASCII tokens: all zero
    ("café crème", ["cafe creme"]),
    ("a b c d", ["x y", "a b c", "b c d e", ""]),
]


@pytest.mark.parametrize(("prediction", "references"), ROUGE_CASES)
def test_rouge_matches_rouge_score(prediction: str, references: list[str]) -> None:
    scorer = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)
    expected = (scorer.score(references[0], prediction) if len(references) == 1
                else scorer.score_multi(references, prediction))
    scores, _ = score_generate(prediction, references, ROUGE_TYPES)
    assert scores == {t: expected[t].fmeasure for t in ROUGE_TYPES}


def test_rouge_known_values() -> None:
    scores, _ = score_generate("The cats were running quickly.", ["A cat runs quickly"],
                               ["rouge1", "rouge2"])
    # stemmed: [the cat were run quick] vs [a cat run quick]: 3 common unigrams, 1 bigram
    assert scores["rouge1"] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert scores["rouge2"] == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))


def test_rougelsum_splits_on_newlines() -> None:
    prediction, reference = "b a\nd c", "a b\nc d"
    scores, _ = score_generate(prediction, [reference], ["rougeL", "rougeLsum"])
    assert scores["rougeL"] == pytest.approx(0.5)     # LCS over the whole text: "a c" or similar
    assert scores["rougeLsum"] == pytest.approx(0.5)
    scores, _ = score_generate("a b\nc d", ["c d\na b"], ["rougeL", "rougeLsum"])
    assert scores["rougeL"] == pytest.approx(0.5)
    assert scores["rougeLsum"] == pytest.approx(1.0)  # sentence order does not matter


def test_generate_needs_a_reference() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        score_generate("x", [], ["exact_match"])
