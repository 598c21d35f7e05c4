"""Sampling through an OpenAI-compatible server (the fake vLLM-shaped server of
test_openai_backend): an item's n answers are one request carrying n, temperature, top_p,
top_k and the item's seed, its choices answer samples 0..n-1 by index; beam search is refused
with exit 2 before any request."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_openai_backend import FakeServer, _text, _tokens

Run = Callable[..., tuple[int, str, str]]

SUITE = """\
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
    metrics: [exact_match, pass@1, pass@3]
"""
ROWS = [{"id": f"i{i}", "words": f"q{i} red paris blue", "answer": "paris"} for i in range(6)]


class SamplingServer(FakeServer):
    """Answers ``n`` choices, choice ``j`` a word of the prompt drawn from (seed, j), listed
    in reverse index order; remembers every completion body."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict[str, Any]] = []

    def answer(self, path: str, body: dict[str, Any]) -> Any:
        if path != "/v1/completions" or body.get("echo"):
            return super().answer(path, body)
        self.bodies.append(body)
        prompt = body["prompt"]
        words = _text(prompt if isinstance(prompt, list) else _tokens(prompt, False)).split()
        choices = []
        for j in range(body["n"]):
            digest = hashlib.sha256(f"{body.get('seed')}|{j}".encode()).digest()
            word = words[digest[0] % len(words)] if body["temperature"] > 0 else words[-1]
            choices.append({"index": j, "text": f" {word}", "finish_reason": "stop"})
        return {"choices": choices[::-1]}


def _eval(run_cli: Run, suite: Path, server: SamplingServer, out: Path) -> tuple[int, str]:
    (suite.parent / "tok").mkdir(exist_ok=True)
    (suite.parent / "tok" / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url", server.url,
                           "--tokenizer", suite.parent / "tok", "--out", out, "--no-progress")
    return code, err


def test_an_items_answers_are_one_request_with_every_setting(make_suite: Callable[..., Path],
                                                             tmp_path: Path,
                                                             run_cli: Run) -> None:
    generation = "{max_new_tokens: 4, do_sample: true, n: 3, temperature: 0.7, top_p: 0.9, " \
                 "top_k: 20, seed: 5}"
    suite = make_suite(SUITE.replace("GENERATION", generation), {"data/qa.jsonl": ROWS})
    with SamplingServer() as server:
        code, err = _eval(run_cli, suite, server, tmp_path / "a.json")
        assert code == 0, err
        first = [dict(b) for b in server.bodies]
        server.bodies.clear()
        code, err = _eval(run_cli, suite, server, tmp_path / "b.json")
        assert code == 0, err
    assert len(first) == len(ROWS)  # one request per item, not per answer
    for body in first:
        assert {k: body[k] for k in ("n", "temperature", "top_p", "top_k", "max_tokens")} == {
            "n": 3, "temperature": 0.7, "top_p": 0.9, "top_k": 20, "max_tokens": 4}
        assert isinstance(body["seed"], int) and 0 <= body["seed"] < 2**31
    assert len({b["seed"] for b in first}) == len(ROWS)  # each item its own seed
    assert sorted(b["seed"] for b in server.bodies) == sorted(b["seed"] for b in first)
    task = json.loads((tmp_path / "a.json").read_text())["suites"][0]["tasks"][0]
    by_item = {_text(b["prompt"]).split()[0].removeprefix("<s>"): b for b in first}
    for sample in task["samples"]:
        body = by_item[f"q{sample['id'][1:]}"]
        words, seed = _text(body["prompt"]).split(), body["seed"]
        expected = [" " + words[hashlib.sha256(f"{seed}|{j}".encode()).digest()[0] % 4]
                    for j in range(3)]
        assert sample["predictions"] == expected  # choice j by its index, not its position
        correct = sum(p.strip() == "paris" for p in expected)
        assert sample["scores"]["pass@1"] == pytest.approx(correct / 3)
    assert json.loads((tmp_path / "b.json").read_text())["suites"][0]["tasks"][0]["samples"] \
        == task["samples"]


def test_greedy_requests_are_sent_as_before(make_suite: Callable[..., Path], tmp_path: Path,
                                            run_cli: Run) -> None:
    suite = make_suite(SUITE.replace("GENERATION", "{max_new_tokens: 4}")
                       .replace("[exact_match, pass@1, pass@3]", "[exact_match]"),
                       {"data/qa.jsonl": ROWS})
    with SamplingServer() as server:
        code, err = _eval(run_cli, suite, server, tmp_path / "g.json")
    assert code == 0, err
    assert all(set(b) == {"model", "prompt", "temperature", "max_tokens", "n", "stop"}
               and b["temperature"] == 0.0 and b["n"] == 1 for b in server.bodies)


def test_beam_search_is_refused_before_any_request(make_suite: Callable[..., Path],
                                                   tmp_path: Path, run_cli: Run) -> None:
    suite = make_suite(SUITE.replace("GENERATION", "{max_new_tokens: 4, num_beams: 4, n: 3}"),
                       {"data/qa.jsonl": ROWS})
    with SamplingServer() as server:
        code, err = _eval(run_cli, suite, server, tmp_path / "x.json")
        assert server.count == 0
    assert code == 2 and "Traceback" not in err
    assert "task qa: generation.num_beams 4 cannot be honoured by --backend openai" in err
    assert "no beam search" in err and "--backend hf" in err
    assert not (tmp_path / "x.json").exists()
