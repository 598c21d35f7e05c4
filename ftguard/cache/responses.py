"""Model responses remembered per request (``ftguard eval --cache``): one SQLite file.

Where :mod:`ftguard.cache.results` reuses whole suites, this cache reuses single model
answers, so a suite with one changed item costs one item, and an evaluation killed half-way
resumes from what it had finished. A response is reused only when everything that decides it
is the same: the model fingerprint (weights, adapter, tokenizer, dtype, quantisation), the
backend kind and device type, the ftguard version (the code that turns text into tokens), the
exact request and, for generation, the decoding settings (greedy, or every sampling and
beam-search setting, the seed and which of the item's n answers). Never by request alone.

The file is ``$FTGUARD_HOME/responses.sqlite`` in WAL mode: readers never block, one writer
at a time (others wait up to ``busy_timeout``). Rows are committed in batches, so a
``kill -9`` loses at most the last batch. Every row carries a checksum over its key and
value, and values are type-checked on read: a damaged row is a miss, never a wrong answer.
A generation is stored with whether ``max_new_tokens`` cut it (``[text, truncated]``); a row
written by an ftguard that stored the text alone still answers, with that flag unknown.
A file SQLite cannot read is renamed ``responses.sqlite.corrupt-<timestamp>`` with one
warning on stderr and a fresh file takes its place; the cache never stops an evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ftguard.models.base import (
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingRequest,
    RollingResult,
    truncated_flag,
)
from ftguard.record import ModelInfo

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; a file with another version is set aside and rebuilt."""
FILE_NAME = "responses.sqlite"
KINDS = ("loglikelihood", "rolling", "generate", "chat")

Request = LoglikelihoodRequest | RollingRequest | GenerateRequest
Value = LoglikelihoodResult | RollingResult | str

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    checksum TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID
"""
_SQL_CHUNK = 500  # stays below SQLite's host-parameter limit


def default_path() -> Path:
    """``$FTGUARD_HOME/responses.sqlite``."""
    from ftguard.cache.home import ftguard_home

    return ftguard_home() / FILE_NAME


def model_scope(info: ModelInfo) -> dict[str, str]:
    """What, besides the request, decides a model's answer."""
    from ftguard.version import ftguard_version

    return {"fingerprint": info.fingerprint, "backend": info.backend,
            "device": info.device.split(":")[0], "ftguard": ftguard_version()}


def request_kind(request: Request) -> str:
    if isinstance(request, LoglikelihoodRequest):
        return "loglikelihood"
    if isinstance(request, RollingRequest):
        return "rolling"
    if isinstance(request, GenerateRequest):
        return "generate"
    raise TypeError(f"not a backend request: {type(request).__name__}")


def request_key(scope: dict[str, str], request: Request) -> str:
    """sha256 over the model scope, the request's kind and every field of the request."""
    kind = request_kind(request)
    fields: dict[str, Any]
    if isinstance(request, LoglikelihoodRequest):
        fields = {"context": request.context, "continuation": request.continuation}
    elif isinstance(request, RollingRequest):
        fields = {"text": request.text, "max_length": request.max_length}
    else:  # a greedy request keeps the key it had before sampling existed
        decoding: Any = "greedy" if request.decoding is None else {
            **dataclasses.asdict(request.decoding), "sample": request.sample}
        fields = {"context": request.context, "decoding": decoding,
                  "max_new_tokens": request.max_new_tokens, "stop": list(request.stop)}
    return _digest({"scope": scope, "kind": kind, "request": fields})


def chat_key(scope: dict[str, str], messages: Sequence[dict[str, str]]) -> str:
    """Key of a rendered chat prompt (the tokenizer's template is part of the fingerprint)."""
    return _digest({"scope": scope, "kind": "chat",
                    "messages": [dict(sorted(m.items())) for m in messages]})


def _digest(parts: dict[str, Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def encode_value(kind: str, value: Value) -> str:
    if kind == "loglikelihood" and isinstance(value, LoglikelihoodResult):
        return json.dumps([value.logprob, value.is_greedy, value.n_tokens])
    if kind == "rolling" and isinstance(value, RollingResult):
        return json.dumps([value.nll, value.n_tokens])
    if kind == "generate" and isinstance(value, str):
        return json.dumps([str(value), truncated_flag(value)], ensure_ascii=False)
    if kind == "chat" and isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"a {kind} response cannot be {type(value).__name__}")


def decode_value(kind: str, text: str) -> Value | None:
    """The stored value, or None when it is not exactly what ``kind`` needs."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if kind == "loglikelihood" and _shape(data, (float, bool, int)):
        return LoglikelihoodResult(float(data[0]), data[1], data[2])
    if kind == "rolling" and _shape(data, (float, int)):
        return RollingResult(float(data[0]), data[1])
    if kind == "generate" and isinstance(data, str):  # stored before the flag was: unknown
        return Generation(data, truncated=None)
    if (kind == "generate" and isinstance(data, list) and len(data) == 2
            and isinstance(data[0], str) and (data[1] is None or isinstance(data[1], bool))):
        return Generation(data[0], truncated=data[1])
    if kind == "chat" and isinstance(data, str):
        return data
    return None


def _shape(data: Any, types: tuple[type, ...]) -> bool:
    if not isinstance(data, list) or len(data) != len(types):
        return False
    for item, kind in zip(data, types):
        if kind is float:
            if isinstance(item, bool) or not isinstance(item, int | float) or math.isnan(item):
                return False
        elif kind is int:
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                return False
        elif not isinstance(item, kind):
            return False
    return True


def _checksum(key: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{key}\0{kind}\0{value}".encode()).hexdigest()[:16]


class ResponseCache:
    """Model responses by key in one SQLite file; safe for concurrent processes.

    ``get_many`` returns only valid rows; ``put_many`` buffers rows and commits every
    ``commit_rows`` rows or ``commit_seconds`` seconds (``flush`` commits the rest). Any
    ``sqlite3.DatabaseError`` sets the file aside and continues with a fresh one.
    """

    def __init__(self, path: str | Path | None = None, *, commit_rows: int = 64,
                 commit_seconds: float = 2.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.commit_rows = commit_rows
        self.commit_seconds = commit_seconds
        self.set_aside: list[Path] = []
        """Corrupt files renamed during this cache's life (for messages and tests)."""
        self._pending: list[tuple[str, str, str, str, float]] = []
        self._last_commit = time.monotonic()
        self._conn: sqlite3.Connection | None = None
        self._disabled = False
        self._warned_unavailable = False
        self._open()

    # -- public API --------------------------------------------------------------------------

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[str, Value]:
        """Valid stored values of ``(key, kind)`` pairs, by key; absent, damaged or
        differently typed rows are left out (a miss)."""
        wanted = dict(keys)
        found: dict[str, Value] = {}
        for key, value in self._pending_rows(wanted):
            found[key] = value
        missing = [k for k in wanted if k not in found]
        rows = self._guard(lambda: self._select(missing), [])
        for key, kind, text, checksum in rows:
            if wanted.get(key) != kind or checksum != _checksum(key, kind, text):
                continue
            decoded = decode_value(kind, text)
            if decoded is not None:
                found[key] = decoded
        return found

    def put_many(self, items: Iterable[tuple[str, str, Value]]) -> None:
        """Remember ``(key, kind, value)`` items; committed in batches."""
        now = time.time()
        for key, kind, value in items:
            text = encode_value(kind, value)
            self._pending.append((key, kind, text, _checksum(key, kind, text), now))
        if (len(self._pending) >= self.commit_rows
                or time.monotonic() - self._last_commit >= self.commit_seconds):
            self.flush()

    def flush(self) -> None:
        """Commit every buffered row."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        self._last_commit = time.monotonic()
        self._guard(lambda: self._insert(rows), None)

    def count(self) -> int:
        """Number of stored rows (committed ones)."""
        return int(self._guard(lambda: self._connection().execute(
            "SELECT count(*) FROM responses").fetchone()[0], 0))

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    # -- SQLite ------------------------------------------------------------------------------

    def _open(self) -> None:
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            self._recover(exc)
        except (OSError, sqlite3.Error) as exc:
            self._disable(exc)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL survives a killed process
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
            conn.execute(_SCHEMA)
            if version == 0:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.OperationalError("the response cache is not open")
        return self._conn

    def _select(self, keys: list[str]) -> list[tuple[str, str, str, str]]:
        if self._conn is None:
            return []
        rows: list[tuple[str, str, str, str]] = []
        for start in range(0, len(keys), _SQL_CHUNK):
            part = keys[start:start + _SQL_CHUNK]
            marks = ",".join("?" * len(part))
            rows += self._conn.execute(
                f"SELECT key, kind, value, checksum FROM responses WHERE key IN ({marks})",
                part).fetchall()
        return rows

    def _insert(self, rows: list[tuple[str, str, str, str, float]]) -> None:
        if self._conn is None:
            return
        with _transaction(self._conn):
            self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                                   rows)

    def _pending_rows(self, wanted: dict[str, str]) -> Iterable[tuple[str, Value]]:
        for key, kind, text, _, _ in self._pending:
            if wanted.get(key) == kind and (value := decode_value(kind, text)) is not None:
                yield key, value

    def _guard(self, work: Any, fallback: Any) -> Any:
        """Run ``work``; a damaged file is set aside (and ``work`` retried on the fresh one),
        any other SQLite failure (disk full, locked past the timeout) only costs a miss."""
        if self._disabled:
            return fallback
        try:
            return work()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
                if not self._warned_unavailable:
                    self._warned_unavailable = True
                    _warn(f"the response cache {self.path} is unavailable ({exc}); "
                          "answers that cannot be read or written are recomputed.")
                return fallback
            self._recover(exc)
        try:
            return work()
        except sqlite3.Error:
            return fallback

    def _recover(self, exc: BaseException) -> None:
        """Rename the damaged file (and its WAL side files) and start a fresh one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            if self.path.exists():
                self.path.replace(target)
                self.set_aside.append(target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(target.with_name(target.name + suffix))
        except OSError as move_error:
            self._disable(move_error)
            return
        _warn(f"the response cache {self.path} is damaged ({exc}); moved it to {target.name} "
              "and started a fresh one. Cached answers will be recomputed.")
        try:
            self._conn = self._connect()
        except (OSError, sqlite3.Error) as again:
            self._disable(again)

    def _disable(self, exc: BaseException) -> None:
        self._disabled = True
        self._conn = None
        _warn(f"the response cache {self.path} cannot be used ({exc}); evaluating without it.")


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("malformed", "not a database", "corrupt", "disk image"))


def _warn(message: str) -> None:
    print(f"ftguard: warning: {message}", file=sys.stderr)
