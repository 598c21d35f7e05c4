"""Results do not depend on batch size or on the shared-context path (lm-eval #1645, #3357).

A suite of every task kind, with items of very different lengths so that batches mix long and
short rows (left padding, attention masks, position ids), is evaluated end to end with batch
sizes 1, 4 and 16 and with context sharing off: generated text and chosen answers must be
identical, log-likelihoods and perplexity statistics equal within 1e-5.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import MC_TASK, suite_yaml
from ftguard.api import evaluate
from ftguard.models import LoadOptions, load_backend
from ftguard.record import RunRecord

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "water", "boils", "at",
         "one", "hundred", "degrees", "sky", "is", "blue", "grass", "green", "contract", "shall",
         "be", "governed", "by", "laws", "party", "may", "terminate", "notice", "film"]
ITEMS = 20

SUITE = suite_yaml("determinism", tasks=MC_TASK + """\
  - name: qa
    kind: generate
    data: data/qa.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target_field: answers
    generation: {max_new_tokens: 10, stop: ["\\n"]}
    metrics: [exact_match, f1]
  - name: sentiment
    kind: classify
    data: data/cls.jsonl
    prompt: "Review: {{ text }}\\nSentiment:"
    target: "{{ label }}"
    labels: [positive, negative, rather neutral overall]
  - name: corpus
    kind: perplexity
    data: data/ppl.jsonl
    prompt: "{{ text }}"
  - name: corpus_windows
    kind: perplexity
    data: data/ppl.jsonl
    prompt: "{{ text }}"
    max_length: 24
""")


def _phrase(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _rows(seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """ITEMS items per task, 1 to 80 words long, so batches mix very different lengths."""
    rng = random.Random(seed)
    mc = [{"id": f"m{i}", "question": _phrase(rng, 1, 60),
           "choices": [_phrase(rng, 1, 6) for _ in range(4)], "answer": rng.randrange(4)}
          for i in range(ITEMS)]
    qa = [{"id": f"a{i}", "question": _phrase(rng, 1, 60), "answers": [rng.choice(WORDS)]}
          for i in range(ITEMS)]
    labels = ["positive", "negative", "rather neutral overall"]
    cls = [{"id": f"c{i}", "text": _phrase(rng, 1, 60), "label": rng.choice(labels)}
           for i in range(ITEMS)]
    ppl = [{"id": f"p{i}", "text": _phrase(rng, 1, 80).capitalize() + "."} for i in range(ITEMS)]
    return {"data/mc.jsonl": mc, "data/qa.jsonl": qa, "data/cls.jsonl": cls,
            "data/ppl.jsonl": ppl}


def _samples(run: RunRecord) -> dict[tuple[str, str], Any]:
    return {(task.name, sample.id): sample for suite in run.suites for task in suite.tasks
            for sample in task.samples}


def _assert_same(run: RunRecord, reference: RunRecord) -> None:
    got, want = _samples(run), _samples(reference)
    assert got.keys() == want.keys()
    for key, expected in want.items():
        sample = got[key]
        assert sample.prediction == expected.prediction, key
        if expected.loglikelihoods is not None:
            assert sample.loglikelihoods == pytest.approx(expected.loglikelihoods, abs=1e-5), key
        for name, stats in expected.stats.items():
            assert sample.stats[name] == pytest.approx(stats, abs=1e-5), (key, name)
        assert sample.scores == pytest.approx(expected.scores, rel=1e-5, abs=1e-5), key


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import write_jsonl

    root = tmp_path_factory.mktemp("determinism") / "suite"
    root.mkdir()
    (root / "suite.yaml").write_text(SUITE, encoding="utf-8")
    for rel, rows in _rows().items():
        write_jsonl(root / rel, rows)
    return root


@pytest.fixture(scope="module")
def run_with(tiny_model: Path, suite_dir: Path) -> Callable[..., RunRecord]:
    def run(batch_size: int, *, share_contexts: bool = True) -> RunRecord:
        backend = load_backend(LoadOptions(model=str(tiny_model), device="cpu",
                                           batch_size=batch_size))
        backend.share_contexts = share_contexts
        return evaluate([suite_dir], backend=backend)

    return run


@pytest.fixture(scope="module")
def reference(run_with: Callable[..., RunRecord]) -> RunRecord:
    return run_with(1)


def test_suite_mixes_lengths_and_exercises_every_path(reference: RunRecord,
                                                      tiny_model: Path, suite_dir: Path) -> None:
    samples = _samples(reference)
    assert len(samples) == 5 * ITEMS
    backend = load_backend(LoadOptions(model=str(tiny_model), device="cpu", batch_size=4))
    lengths = [len(backend.tokenizer(s.prompt or "")["input_ids"])
               for (task, _), s in samples.items() if task == "mc"]
    assert max(lengths) > 5 * min(lengths)  # padding up to 5x the shortest row
    tokens = [next(iter(s.stats.values()))[1] for (task, _), s in samples.items()
              if task == "corpus"]
    assert min(tokens) < 8 and max(tokens) > 24  # the windowed task really rolls
    generated = [s.prediction for (task, _), s in samples.items() if task == "qa"]
    assert len(set(generated)) > 1


@pytest.mark.parametrize("batch_size", [4, 16])
def test_batch_size_does_not_change_results(run_with: Callable[..., RunRecord],
                                            reference: RunRecord, batch_size: int) -> None:
    _assert_same(run_with(batch_size), reference)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_shared_context_cache_does_not_change_results(run_with: Callable[..., RunRecord],
                                                      reference: RunRecord,
                                                      batch_size: int) -> None:
    _assert_same(run_with(batch_size, share_contexts=False), reference)
