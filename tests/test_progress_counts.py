"""The progress a run reports counts items (samples), not model requests: a four-way choice
item is one step of its bar, whatever answers it (the model, the response cache, the memo of
identical requests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MC_ROWS, MC_TASK, suite_yaml, write_suite
from ftguard.api import evaluate
from ftguard.engine.settings import ItemProgress, RunSettings
from ftguard.models.base import Progress
from ftguard.models.load import LoadOptions


class Recorder:
    """A Reporter that keeps every task's total and each advance."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.steps: dict[str, list[int]] = {}

    def start(self, label: str, total: int) -> Progress:
        self.totals[label], self.steps[label] = total, []
        return self.steps[label].append

    def done(self, label: str) -> None:
        pass


ITEMS = {"smoke/mc": 6, "smoke/qa": 2, "smoke/sentiment": 3, "smoke/corpus": 2}
"""Items of conftest's SMOKE_SUITE (mc: 4 choices each, sentiment: 2 labels each)."""


def test_item_progress_turns_requests_into_finished_items() -> None:
    steps: list[int] = []
    progress = ItemProgress(steps.append, [4, 4, 2, 3])  # 13 requests, 4 items
    for n in (1, 2, 1, 3, 2, 1, 1, 2):  # requests as a backend reports them
        progress(n)
    # after 4 requests item 1 is done, after 8 item 2, after 10 item 3, after 13 item 4
    assert steps == [1, 1, 1, 1]
    steps.clear()
    ItemProgress(steps.append, [4, 4, 2, 3])(13)
    assert steps == [4]


def test_bars_count_items_for_every_kind_also_from_the_caches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    suite = write_suite(tmp_path / "smoke")
    for resamples in (100, 200):  # the second run's answers come from the response cache
        seen = Recorder()
        record = evaluate([suite], load=LoadOptions(model="fake:3"), reporter=seen,
                          cache=True, settings=RunSettings(resamples=resamples))
        assert record.config.cached_suites == []  # evaluated (not a whole cached suite)
        assert seen.totals == ITEMS
        assert {k: sum(v) for k, v in seen.steps.items()} == ITEMS
        assert {f"smoke/{t.name}": len(t.samples) for t in record.suites[0].tasks} == ITEMS


def test_a_real_model_advances_per_item(tiny_model: Path, tmp_path: Path) -> None:
    seen = Recorder()
    evaluate([write_suite(tmp_path / "smoke")], reporter=seen,
             load=LoadOptions(model=str(tiny_model), batch_size=4))
    assert seen.totals == ITEMS
    assert {k: sum(v) for k, v in seen.steps.items()} == ITEMS
    # 24 requests of mc in batches of 4: the bar moves several times, never past its items
    assert len(seen.steps["smoke/mc"]) > 1 and all(n >= 1 for n in seen.steps["smoke/mc"])


def test_a_task_answered_by_the_memo_of_identical_requests_counts_its_items(
        tmp_path: Path) -> None:
    twin = suite_yaml("twin", tasks=MC_TASK + MC_TASK.replace("name: mc", "name: mc_again"))
    seen = Recorder()
    evaluate([write_suite(tmp_path / "twin", twin, {"data/mc.jsonl": MC_ROWS})], reporter=seen,
             load=LoadOptions(model="fake:3"))
    assert seen.totals == {"twin/mc": 6, "twin/mc_again": 6}
    assert seen.steps == {"twin/mc": [6], "twin/mc_again": [6]}  # 24 requests each
