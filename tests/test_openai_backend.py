"""--backend openai against a local fake server that misbehaves on purpose: 429s (with
Retry-After), 500s, answers slower than the timeout and dropped connections. The run must
finish with exactly the answers of a well-behaved server, count its retries in the
RunRecord, never record the API key, and fail with a clear message (exit 2) when the server
never answers."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest

Run = Callable[..., tuple[int, str, str]]
SPECIAL = {"<s>": 1, "</s>": 2}


def _tokens(text: str, special: bool) -> list[int]:
    """The fake model's tokenizer: one token per character, <s>/</s> as one, a BOS added."""
    out, i = [], 0
    while i < len(text):
        name = next((s for s in SPECIAL if text.startswith(s, i)), None)
        out.append(SPECIAL[name] if name else 10 + ord(text[i]))
        i += len(name) if name else 1
    return ([1] if special else []) + out


def _text(ids: list[int]) -> str:
    names = {v: k for k, v in SPECIAL.items()}
    return "".join(names[t] if t in names else chr(t - 10) for t in ids)


def _logprob(prefix: list[int], token: int) -> float:
    digest = hashlib.sha256(json.dumps([prefix[-4:], token]).encode()).digest()
    return -0.05 - 4.0 * int.from_bytes(digest[:4], "big") / 2**32


class FakeServer:
    """A deterministic 'model' behind the vLLM-shaped API; ``faults`` schedules misbehaviour
    by request number: ``429``, ``500``, ``slow``, ``drop`` or ``hang``."""

    def __init__(self, faults: Callable[[int], str | None] = lambda n: None,
                 api_key: str | None = None, missing: tuple[str, ...] = ()) -> None:
        self.faults = faults
        self.missing = missing
        self.model_id = "fake-model"
        self.api_key = api_key
        self.count = 0
        self.injected: list[str] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if server._misbehave(self):
                    return
                self._send(200, {"object": "list", "data": [
                    {"id": server.model_id, "root": "/models/fake", "parent": None,
                     "max_model_len": 512}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server._misbehave(self):
                    return
                if self.path in server.missing:
                    self._send(404, {"detail": "Not Found"})
                    return
                if server.api_key and self.headers.get("Authorization") != \
                        f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "bad key"}})
                    return
                self._send(200, server.answer(self.path, body))

            def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def _misbehave(self, handler: Any) -> bool:
        with self.lock:
            self.count += 1
            fault = self.faults(self.count)
            if fault:
                self.injected.append(fault)
        if fault == "429":
            handler._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        elif fault == "500":
            handler._send(500, {"error": {"message": "engine hiccup"}})
        elif fault in ("slow", "hang"):
            time.sleep(1.0 if fault == "slow" else 30.0)
            return fault == "hang" or self._late(handler)
        elif fault == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
        return fault in ("429", "500", "drop")

    def _late(self, handler: Any) -> bool:
        return False  # a slow answer still arrives (after the client gave up on it)

    def answer(self, path: str, body: dict[str, Any]) -> Any:
        if path == "/tokenize":
            if "messages" in body:
                text = "".join(f"<{m['role']}>{m['content']}\n" for m in body["messages"])
                return {"tokens": _tokens(text + "<assistant>", False)}
            return {"tokens": _tokens(body["prompt"], body.get("add_special_tokens", True))}
        if path == "/detokenize":
            return {"prompt": _text(body["tokens"])}
        if path == "/v1/chat/completions":  # answers the last message's last word
            last = body["messages"][-1]["content"].split()
            return {"choices": [{"message": {"role": "assistant",
                                             "content": f"{last[-1] if last else ''}\nmore"},
                                 "finish_reason": "stop"}]}
        prompt = body["prompt"]
        if isinstance(prompt, str):  # a text prompt (servers without /tokenize)
            prompt = _tokens(prompt, False)
        if body.get("echo"):  # a list of prompts, answered in reverse order (by index)
            prompts = prompt if prompt and isinstance(prompt[0], list) else [prompt]
            return {"choices": [self._echo(i, p) for i, p in enumerate(prompts)][::-1]}
        words = _text(prompt).split()
        full = f" {words[-1] if words else ''}\nmore"
        text = full[: body["max_tokens"] + 1]
        reason = "length" if len(text) < len(full) else "stop"  # as vLLM reports it
        for stop in body.get("stop") or []:
            if stop in text:
                text, reason = text.split(stop)[0], "stop"
        return {"choices": [{"text": text, "finish_reason": reason}]}

    def _echo(self, index: int, prompt: list[int]) -> dict[str, Any]:
        values = [None] + [_logprob(prompt[:i], t) for i, t in enumerate(prompt) if i]
        tops = [None] + [{_text([t]): v, "z": max(v, -1.0)} for t, v in
                         zip(prompt[1:], values[1:])]
        return {"index": index, "text": _text(prompt) + "x", "logprobs": {
            "tokens": [_text([t]) for t in prompt] + ["x"],
            "token_logprobs": values + [-0.1], "top_logprobs": tops + [{"x": -0.1}]}}

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def suite(make_suite: Callable[..., Path], tmp_path: Path) -> Path:
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": {"content": "</s>"}}))
    return make_suite()


def _eval(run_cli: Run, suite: Path, url: str, out: Path, *extra: str) -> tuple[int, str]:
    code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url", url,
                           "--tokenizer", suite.parent / "tok", "--out", out, "--no-progress",
                           "--request-timeout", "0.5", *extra)
    return code, err


def _samples(path: Path) -> list[Any]:
    data = json.loads(path.read_text())
    return [(t["name"], s["id"], s["prediction"], s.get("loglikelihoods"), s["scores"])
            for suite in data["suites"] for t in suite["tasks"] for s in t["samples"]]


@pytest.fixture
def clean(suite: Path, tmp_path: Path, run_cli: Run) -> Iterator[Path]:
    with FakeServer() as server:
        code, err = _eval(run_cli, suite, server.url, tmp_path / "clean.json")
    assert code == 0, err
    yield tmp_path / "clean.json"


def test_faults_are_retried_and_the_answers_are_the_same(suite: Path, tmp_path: Path,
                                                         run_cli: Run, clean: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    schedule = {3: "429", 5: "500", 8: "drop", 12: "slow", 17: "429", 23: "500", 30: "drop"}
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    with FakeServer(schedule.get, api_key="sk-secret-123") as server:
        code, err = _eval(run_cli, suite, server.url, tmp_path / "faulty.json",
                          "--api-key-env", "FAKE_KEY", "--max-concurrency", "4")
    assert code == 0, err
    assert sorted(server.injected) == sorted(schedule.values())
    assert _samples(tmp_path / "faulty.json") == _samples(clean)
    record = json.loads((tmp_path / "faulty.json").read_text())
    stats = record["config"]["server_requests"]
    assert stats["retries"] == len(schedule)
    assert stats["retry_reasons"] == {"HTTP 429": 2, "HTTP 500": 2, "connection failed": 2,
                                      "no answer within 0.5 s": 1}
    assert record["model"]["backend"] == "openai" and record["model"]["spec"] == "fake-model"
    assert "sk-secret-123" not in (tmp_path / "faulty.json").read_text() + err


def test_the_server_must_answer_or_the_run_stops_clearly(suite: Path, tmp_path: Path,
                                                         run_cli: Run) -> None:
    with FakeServer(lambda n: "hang" if n > 2 else None) as server:
        started = time.perf_counter()
        code, err = _eval(run_cli, suite, server.url, tmp_path / "x.json", "--max-retries", "1")
    assert code == 2 and "no usable answer after 2 attempt(s)" in err and "0.5 s" in err
    assert "Traceback" not in err and time.perf_counter() - started < 20
    assert not (tmp_path / "x.json").exists()
    code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url",
                           "http://127.0.0.1:9/v1", "--max-retries", "0", "--no-progress")
    assert code == 2 and "connection failed" in err and "--base-url" in err


def test_server_options_are_checked(suite: Path, run_cli: Run) -> None:
    with FakeServer() as server:
        for extra, needle in [
            ((), "--base-url"),
            (("--base-url", "localhost:8000"), "http(s) URL"),
            (("--base-url", server.url, "--adapter", "x"), "--adapter applies to models"),
            (("--base-url", server.url, "--api-key-env", "NO_SUCH_VAR_FTG"), "is not set"),
            (("--base-url", server.url, "--model", "other"), "not served by"),
        ]:
            code, _, err = run_cli("eval", suite, "--backend", "openai", *extra)
            assert code == 2 and needle in err and "Traceback" not in err, (extra, err)
    with FakeServer(missing=("/tokenize",)) as server:  # e.g. a server of another kind
        code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url", server.url)
    assert code == 2 and "has no /tokenize endpoint, so it can answer generate tasks only" \
        in err and "vLLM or SGLang" in err


GENERATE_ONLY = """\
name: gen
version: 1
role: general
tasks:
  - name: plain
    kind: generate
    data: data/qa.jsonl
    prompt: "Question: {{ question }}\\nAnswer:"
    target_field: answers
    generation: {max_new_tokens: 8, stop: ["\\n"]}
  - name: chat
    kind: generate
    data: data/qa.jsonl
    prompt: "{{ question }}"
    chat_template: true
    target_field: answers
    generation: {max_new_tokens: 8, stop: ["\\n"]}
"""


def test_a_server_without_tokenize_answers_generate_tasks(make_suite: Callable[..., Path],
                                                          tmp_path: Path, run_cli: Run) -> None:
    suite = make_suite(GENERATE_ONLY, name="gen")
    with FakeServer(missing=("/tokenize", "/detokenize")) as server:
        code, _, err = run_cli("eval", suite, "--backend", "openai", "--base-url", server.url,
                               "--out", tmp_path / "gen.json", "--no-progress")
    assert code == 0, err
    record = json.loads((tmp_path / "gen.json").read_text())
    plain, chat = record["suites"][0]["tasks"]
    # the plain prompt went to /v1/completions as text, the chat one to /v1/chat/completions
    assert [s["prediction"] for s in plain["samples"]] == [" Answer:", " Answer:"]
    assert [s["prediction"] for s in chat["samples"]] == ["France?", "sky?"]
    assert record["model"]["dtype"] == "server-text"


def test_served_answers_are_cached_by_the_served_model(suite: Path, tmp_path: Path,
                                                       run_cli: Run, clean: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTGUARD_HOME", str(tmp_path / "home"))
    with FakeServer() as server:
        code, err = _eval(run_cli, suite, server.url, tmp_path / "a.json", "--cache")
        assert code == 0, err
        first = server.count
        code, err = _eval(run_cli, suite, server.url, tmp_path / "b.json", "--cache")
        assert code == 0, err
        assert server.count - first == 1  # /v1/models only: every answer came from the cache
    assert _samples(tmp_path / "b.json") == _samples(clean)
    # the same questions to another served model (another /v1/models entry) are asked again
    with FakeServer() as other:
        other.model_id = "fake-model-v2"
        code, err = _eval(run_cli, suite, other.url, tmp_path / "c.json", "--cache")
        assert code == 0, err
        assert other.count > 20
