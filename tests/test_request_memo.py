"""Identical requests of different tasks and suites reach the model once per evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from conftest import MC_ROWS, MC_TASK, suite_yaml, write_jsonl
from ftguard import evaluate
from ftguard.cache.memo import RequestMemo
from ftguard.models.base import GenerateRequest, LoglikelihoodRequest, Progress
from ftguard.models.fake import FakeBackend


class CountingBackend(FakeBackend):
    """FakeBackend that counts every request it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: Counter[object] = Counter()

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None):
        self.asked.update(requests)
        return super().loglikelihood(requests, progress)

    def generate(self, requests: Sequence[GenerateRequest], progress: Progress | None = None):
        self.asked.update(requests)
        return super().generate(requests, progress)


ACC_NORM_TASK = MC_TASK.replace("name: mc", "name: mc_norm") + "    metrics: [acc_norm]\n"
QA_TASK = """\
  - name: qa
    kind: generate
    data: data/mc.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target: "{{ choices[answer] }}"
    generation: {max_new_tokens: 4}
"""


def _suite(root: Path, name: str, tasks: str) -> Path:
    (root / name).mkdir(parents=True)
    (root / name / "suite.yaml").write_text(suite_yaml(name, tasks=tasks), encoding="utf-8")
    write_jsonl(root / name / "data" / "mc.jsonl", MC_ROWS)
    return root / name


def test_tasks_and_suites_sharing_requests_ask_the_model_once(tmp_path: Path) -> None:
    one = _suite(tmp_path, "one", MC_TASK + ACC_NORM_TASK + QA_TASK)
    two = _suite(tmp_path, "two", MC_TASK + QA_TASK)
    backend = CountingBackend()
    record = evaluate([one, two], backend=backend)
    assert set(backend.asked.values()) == {1}  # every distinct request asked exactly once
    choices = sum(len(r["choices"]) for r in MC_ROWS)
    assert len(backend.asked) == choices + len(MC_ROWS)
    # and the answers are those each task gets on its own
    alone = evaluate([_suite(tmp_path / "alone", "one", MC_TASK + ACC_NORM_TASK + QA_TASK)],
                     backend=CountingBackend())
    for a, b in zip(record.suites[0].tasks, alone.suites[0].tasks):
        assert [s.scores for s in a.samples] == [s.scores for s in b.samples]
    assert record.suites[1].tasks[0].metrics["acc"].value == \
        record.suites[0].tasks[0].metrics["acc"].value


def test_progress_counts_every_request_once() -> None:
    memo = RequestMemo(CountingBackend())
    requests = [LoglikelihoodRequest("a", " b"), LoglikelihoodRequest("a", " b"),
                LoglikelihoodRequest("a", " c")]
    seen: list[int] = []
    memo.loglikelihood(requests, seen.append)
    assert sum(seen) == 3
    seen.clear()
    again = memo.loglikelihood(requests + [LoglikelihoodRequest("x", " y")], seen.append)
    assert sum(seen) == 4 and memo.reused == 3
    assert again[:3] == memo.loglikelihood(requests)
