"""ftguard eval --cache, per request: a repeated evaluation only reads the cache, a changed
item costs that item, a killed run resumes, a corrupt file is rebuilt, and answers are never
shared between models or generation settings."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conftest import MC_ROWS, MC_TASK, REPO, SMOKE_SUITE, suite_yaml, write_jsonl
from ftguard.models.base import GenerateRequest, LoglikelihoodRequest, RollingRequest
from ftguard.models.fake import FakeBackend

# the smoke suite with its generate task rendered through the chat template
CHAT_SUITE = SMOKE_SUITE.replace("    metrics: [exact_match, f1, bleu]\n",
                                 "    metrics: [exact_match, f1, bleu]\n    chat_template: true\n")


class CountingBackend(FakeBackend):
    """The fake model, counting every request that reaches it."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.requests = 0

    def loglikelihood(self, requests: Sequence, progress=None):  # type: ignore[no-untyped-def]
        self.requests += len(requests)
        return super().loglikelihood(requests, progress)

    def loglikelihood_rolling(self, requests: Sequence, progress=None):  # type: ignore[no-untyped-def]
        self.requests += len(requests)
        return super().loglikelihood_rolling(requests, progress)

    def generate(self, requests: Sequence, progress=None):  # type: ignore[no-untyped-def]
        self.requests += len(requests)
        return super().generate(requests, progress)

    def apply_chat_template(self, messages):  # type: ignore[no-untyped-def]
        self.requests += 1
        return super().apply_chat_template(messages)


def _evaluate(suite: Path, backend: FakeBackend, home: Path, *, cache: bool = True):  # type: ignore[no-untyped-def]
    from ftguard import api

    shutil.rmtree(home / "results", ignore_errors=True)  # bypass the suite-level cache
    return api.evaluate([suite], backend=backend, cache=cache)


def _suites(record) -> list[dict]:  # type: ignore[no-untyped-def]
    return [s.model_dump(mode="json") for s in record.suites]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("FTGUARD_HOME", str(path))
    return path


def test_second_run_reads_only_the_cache(make_suite: Callable[..., Path], home: Path) -> None:
    suite = make_suite(CHAT_SUITE)
    plain = _evaluate(suite, FakeBackend(1), home, cache=False)
    first_model = CountingBackend(1)
    first = _evaluate(suite, first_model, home)
    # 6 items x 4 choices + 2 chat prompts + 2 generations + 3 x 2 labels + 2 texts
    assert first_model.requests == 24 + 2 + 2 + 6 + 2
    second_model = CountingBackend(1)
    second = _evaluate(suite, second_model, home)
    assert second_model.requests == 0
    assert _suites(second) == _suites(first) == _suites(plain)
    assert (home / "responses.sqlite").is_file()


def test_one_changed_item_asks_the_model_for_that_item_only(make_suite: Callable[..., Path],
                                                           home: Path) -> None:
    suite = make_suite()
    _evaluate(suite, CountingBackend(2), home)
    rows = [dict(r) for r in MC_ROWS]
    rows[2]["question"] = "How many legs does a cat have?"
    write_jsonl(suite / "data" / "mc.jsonl", rows)
    model = CountingBackend(2)
    changed = _evaluate(suite, model, home)
    assert model.requests == 4  # the changed item's four choices
    assert _suites(changed) == _suites(_evaluate(suite, FakeBackend(2), home, cache=False))


def test_answers_are_keyed_by_model_and_generation_settings(make_suite: Callable[..., Path],
                                                            home: Path) -> None:
    from ftguard.cache.responses import ResponseCache, model_scope, request_key

    one, two = model_scope(FakeBackend(1).info), model_scope(FakeBackend(2).info)
    ll = LoglikelihoodRequest("Question: 2+2?\nAnswer:", " 4")
    assert request_key(one, ll) != request_key(two, ll)
    gen = GenerateRequest("Say hi:", 8, ("\n",))
    keys = {request_key(one, gen), request_key(one, GenerateRequest("Say hi:", 16, ("\n",))),
            request_key(one, GenerateRequest("Say hi:", 8, ())), request_key(two, gen)}
    assert len(keys) == 4
    assert request_key(one, RollingRequest("abc", None)) != request_key(one, RollingRequest("abc", 64))
    # a wrongly typed row for a key is a miss, never an answer
    cache = ResponseCache(home / "responses.sqlite")
    cache.put_many([(request_key(one, gen), "generate", "hello")])
    cache.flush()
    assert cache.get_many([(request_key(one, gen), "loglikelihood")]) == {}
    assert cache.get_many([(request_key(one, gen), "generate")]) == {request_key(one, gen): "hello"}
    cache.close()
    # end to end: fake:1's answers are never given to fake:2
    suite = make_suite()
    _evaluate(suite, CountingBackend(1), home)
    other = CountingBackend(2)
    _evaluate(suite, other, home)
    assert other.requests == 24 + 2 + 6 + 2


def test_corrupt_cache_is_set_aside_and_rebuilt(make_suite: Callable[..., Path], home: Path,
                                               run_cli: Callable[..., tuple[int, str, str]],
                                               tmp_path: Path) -> None:
    suite = make_suite(CHAT_SUITE)
    home.mkdir(parents=True)
    (home / "responses.sqlite").write_bytes(b"definitely not SQLite " * 200)
    out = tmp_path / "run.json"
    code, _, err = run_cli("eval", suite, "--model", "fake:5", "--cache", "--out", out,
                           "--no-progress")
    assert code == 0, err
    assert "response cache" in err and "damaged" in err
    assert len(list(home.glob("responses.sqlite.corrupt-*"))) == 1
    reference = _evaluate(suite, FakeBackend(5), home, cache=False)
    assert json.loads(out.read_text())["suites"] == _suites(reference)
    # the rebuilt file serves the next run; a row damaged in place is a miss, not an answer
    db = sqlite3.connect(home / "responses.sqlite")
    db.execute("UPDATE responses SET value = '[-0.001, true, 1]' WHERE kind = 'loglikelihood'")
    db.commit()
    db.close()
    model = CountingBackend(5)
    again = _evaluate(suite, model, home)
    assert model.requests == 24 + 6  # every loglikelihood answer recomputed, nothing else
    assert _suites(again) == _suites(reference)


RESUME_SUITE = suite_yaml("resume", tasks=MC_TASK + """\
  - name: qa
    kind: generate
    data: data/qa.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target_field: answers
    generation: {max_new_tokens: 12, stop: ["\\n"]}
    metrics: [exact_match]
""")


N_MC, N_QA = 80, 16


def _resume_suite(make_suite: Callable[..., Path]) -> Path:
    words = ["quick", "brown", "fox", "lazy", "dog", "contract", "party", "notice", "water", "sky", "grass", "film"]
    mc = [{"id": f"m{i}", "question": f"Item {i}: which word follows {words[i % 12]} "
                                      f"{words[(i * 5) % 12]}?",
           "choices": [words[(i + k) % 12] for k in range(4)], "answer": i % 4}
          for i in range(N_MC)]
    qa = [{"id": f"g{i}", "question": f"Repeat {words[i % 12]} {words[(i * 7) % 12]} {i}",
           "answers": [words[i % 12]]} for i in range(N_QA)]
    return make_suite(RESUME_SUITE, files={"data/mc.jsonl": mc, "data/qa.jsonl": qa},
                      name="resume")


def _eval_command(suite: Path, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ftguard", "eval", str(suite), "--model", str(model),
            "--cache", "--batch-size", "4", "--device", "cpu", "--no-progress", "--out", str(out)]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "FTGUARD_HOME": str(home), "PYTHONPATH": str(REPO)}


def _rows(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM responses").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _samples(run: dict) -> list[dict]:
    return [s for suite in run["suites"] for t in suite["tasks"] for s in t["samples"]]


def test_killed_run_resumes_with_identical_results(make_suite: Callable[..., Path],
                                                   tiny_model: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ftguard import api
    from ftguard.models.load import LoadOptions

    suite = _resume_suite(make_suite)
    total = N_MC * 4 + N_QA
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home-a"))
    reference = api.evaluate([suite], load=LoadOptions(model=str(tiny_model), device="cpu",
                                                       batch_size=4)).model_dump(mode="json")
    home = tmp_path / "home-b"
    db = home / "responses.sqlite"
    killed_out = tmp_path / "killed.json"
    proc = subprocess.Popen(_eval_command(suite, tiny_model, killed_out), env=_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _rows(db) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not killed_out.exists()
    kept = _rows(db)
    assert 0 < kept < total
    resumed_out = tmp_path / "resumed.json"
    again = subprocess.run(_eval_command(suite, tiny_model, resumed_out), env=_env(home), check=False,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _rows(db) == total  # the rerun asked the model only for the other requests
    resumed = json.loads(resumed_out.read_text())
    assert len(_samples(resumed)) == N_MC + N_QA
    for want, got in zip(_samples(reference), _samples(resumed), strict=True):
        assert (got["id"], got["prediction"], got["scores"]) == (want["id"], want["prediction"],
                                                                 want["scores"])
        if want.get("loglikelihoods") is not None:  # fp32 sums: batch padding moves the last bit
            assert got["loglikelihoods"] == pytest.approx(want["loglikelihoods"], rel=1e-6,
                                                          abs=1e-6)


def test_a_run_answered_from_the_responses_alone_loads_no_model(
        make_suite: Callable[..., Path], home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftguard import api
    from ftguard.cache.backend import CachedBackend
    from ftguard.cache.memo import RequestMemo
    from ftguard.cache.responses import ResponseCache
    from ftguard.models.load import LoadOptions
    from ftguard.models.wrappers import unwrap

    suite, load = make_suite(), LoadOptions(model="fake:3")
    first = api.evaluate([suite], load=load, cache=True)
    assert "model_load" in first.timings

    def refuse(options: LoadOptions) -> None:
        raise AssertionError("the model was loaded although every answer was cached")

    monkeypatch.setattr(api, "load_backend", refuse)
    shutil.rmtree(home / "results")
    second = api.evaluate([suite], load=load, cache=True)
    assert "model_load" not in second.timings and "server_requests" not in second.config
    assert _suites(second) == _suites(first)
    # unwrap stops at a lazy wrapper that never loaded; with load=True it loads it
    real = FakeBackend(3)
    lazy = CachedBackend(lambda: real, ResponseCache(home / "r.sqlite"), real.info)
    memo = RequestMemo(lazy)
    assert unwrap(memo) is lazy and not lazy.loaded
    assert unwrap(memo, load=True) is real and unwrap(memo) is real
    lazy.close()
