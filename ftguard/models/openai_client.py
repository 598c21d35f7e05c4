"""HTTP to an OpenAI-compatible server: bounded concurrency, retries with backoff, timeouts.

Plain ``urllib`` in a thread pool: ``max_concurrency`` requests are in flight at most. A
request that gets 429 or a 5xx answer, times out, or loses its connection is retried after
an exponential backoff (``Retry-After`` honoured when the server sends one), up to
``retries`` times; then a ModelError names the server, the request and the last failure. A
4xx other than 429 is the request's fault and fails at once with the server's message. The
API key goes into the ``Authorization`` header only: it is never logged or recorded.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

from ftguard.errors import ModelError


class ServerError(ModelError):
    """The server refused a request (an HTTP status that retrying does not fix)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: overload, rate limits, gateway and server hiccups."""


@dataclass
class RequestStats:
    """What the client sent: requests, retries and why."""

    requests: int = 0
    retries: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries,
                "retry_reasons": dict(sorted(self.reasons.items()))}


class ServerClient:
    """JSON requests to ``base_url`` (``http://HOST:PORT/v1``)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 max_concurrency: int = 8, retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 8.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_concurrency = max(1, max_concurrency)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats = RequestStats()
        self._lock = threading.Lock()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def url(self, path: str) -> str:
        """``path`` under the server: ``/v1/...`` paths under base_url, others (vLLM's
        ``/tokenize``) at the server's root."""
        if path.startswith("/v1/"):
            return self.base_url + path.removeprefix("/v1")
        root = self.base_url.removesuffix("/v1")
        return root + path

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        return self._call("POST", path, payload)

    def post_all(self, path: str, payloads: Sequence[dict[str, Any]],
                 done: Callable[[int], None] | None = None) -> list[Any]:
        """Every payload posted, ``max_concurrency`` at a time; answers in order. ``done`` is
        called with each finished request's index."""
        if len(payloads) <= 1 or self.max_concurrency == 1:
            out = []
            for i, p in enumerate(payloads):
                out.append(self.post(path, p))
                if done:
                    done(i)
            return out
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="ftguard-http") as pool:
            futures = [pool.submit(self.post, path, p) for p in payloads]
            results = []
            try:
                for i, future in enumerate(futures):
                    results.append(future.result())
                    if done:
                        done(i)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            return results

    # -- one request, retried -------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        url = self.url(path)
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            with self._lock:
                self.stats.requests += 1
            wait: float | None = None
            try:
                request = urllib.request.Request(url, data=data, method=method,
                                                 headers=self._headers)
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    body = response.read()
                try:
                    return json.loads(body)
                except ValueError:
                    last = f"an answer that is not JSON ({body[:80]!r})"
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRY_STATUS:
                    raise ServerError(f"{method} {url}: the server answered {exc.code}: "
                                      f"{message}", status=exc.code, hint=_hint(exc.code)) from None
                last = f"HTTP {exc.code} ({message})"
                wait = _retry_after(exc)
            except TimeoutError:
                last = f"no answer within {self.timeout:g} s"
            except (urllib.error.URLError, ConnectionError, HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = (f"no answer within {self.timeout:g} s" if isinstance(reason, TimeoutError)
                        else f"connection failed ({reason})")
            if attempt == self.retries:
                break
            self._count_retry(last)
            time.sleep(wait if wait is not None else self._delay(attempt))
        raise ModelError(f"{method} {url}: no usable answer after {self.retries + 1} "
                         f"attempt(s); last: {last}.",
                         hint="Check that the server is running and reachable at --base-url, "
                              "or raise --request-timeout / lower --max-concurrency for a "
                              "slow or overloaded server.")

    def _count_retry(self, why: str) -> None:
        key = why.split(" (")[0]
        with self._lock:
            self.stats.retries += 1
            self.stats.reasons[key] = self.stats.reasons.get(key, 0) + 1

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or ""
    try:
        data = json.loads(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message", error) if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return body[:300]


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


def _hint(code: int) -> str:
    if code in (401, 403):
        return "Set the API key in the environment variable named by --api-key-env."
    if code == 404:
        return "Check --base-url (it ends in /v1) and {--model} (one of the server's /v1/models)."
    return "The request was refused as malformed; run with --debug and report it."
