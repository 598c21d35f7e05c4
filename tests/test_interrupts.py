"""SIGINT and SIGTERM at many points of `eval`, `compare`, `report`, `train` and `merge`
(the real CLI, in a subprocess, on tiny inputs, over an existing output) leave either the
old output or the complete new one, never a partial file or a stray temporary.

How the points are chosen: each test first runs the command once to the end (that run's
duration T is the clock, and its output the "complete new" reference), then signals fresh
runs at fixed fractions of T, spread from the start-up (imports, model load) to past the end,
alternating SIGINT and SIGTERM, plus one point fired the moment the command's temporary
output appears (found by polling its folder), which lands inside the final write or the
checkpoint save. Points run two at a time. A point may find the command finished (exit 0)
or not yet started (killed by the signal's default action before ``main`` took it over);
both are allowed and must leave the same invariants. Deterministic signals inside each
critical section are in test_atomic.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    MC_ROWS,
    REPO,
    binary_run,
    build_tiny_model,
    flipped_pair,
    suite_yaml,
    write_jsonl,
)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.fixture(autouse=True, scope="module")
def _sigint_not_ignored():
    """A test run started as a background job ignores SIGINT, and so would the commands
    it starts (ftguard keeps an ignored SIGINT ignored): give them the default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@dataclass
class Point:
    """One interrupted run: what was sent when, and how the command ended."""

    folder: Path
    sig: int
    fraction: float | None  # of the command's duration, or None: when the temporary appears
    at: float | None = None  # seconds after the start
    code: int = 0
    stderr: str = ""
    sent: bool = False
    elapsed: float = 0.0


def _run(cmd: Sequence[str], stderr_file: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ftguard", *map(str, cmd)], cwd=REPO,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=stderr_file.open("w"))


def _reference(cmd: Sequence[str], folder: Path) -> float:
    """Run ``cmd`` to the end once; return its duration."""
    started = time.perf_counter()
    proc = _run(cmd, folder / "stderr.txt")
    code = proc.wait(timeout=300)
    assert code in (0, 1), (folder / "stderr.txt").read_text()[-3000:]
    return time.perf_counter() - started


def _appeared(folder: Path, prefix: str) -> bool:
    try:
        return any(e.name.startswith(prefix) and e.name.endswith(".tmp")
                   for e in os.scandir(folder))
    except FileNotFoundError:
        return False


def _interrupt(point: Point, cmd: Sequence[str], watch: Path, prefix: str) -> Point:
    """Run ``cmd``; send the point's signal at its time, or as soon as a temporary
    ``PREFIX*.tmp`` appears in ``watch`` (polled without pause: the final write of a small
    file lasts about a millisecond)."""
    proc = _run(cmd, point.folder / "stderr.txt")
    started = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - started < 300:
        if point.at is None:
            if _appeared(watch, prefix):
                break
            time.sleep(0)
        elif time.perf_counter() - started >= point.at:
            break
        else:
            time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(point.sig)
        point.sent = proc.returncode is None  # send_signal reaps a command that just ended
    point.code = proc.wait(timeout=300)
    point.elapsed = time.perf_counter() - started
    point.stderr = (point.folder / "stderr.txt").read_text()
    return point


def _points(tmp_path: Path, duration: float, fractions: Sequence[float],
            prepare: Callable[[Path], None], first: int = 0) -> list[Point]:
    """Points at ``fractions`` of ``duration`` and one at the temporary, their signals
    alternating from ``SIGNALS[first]``; ``prepare`` puts the old output in each folder."""
    points = []
    for i, fraction in enumerate([*fractions, None]):
        folder = tmp_path / f"point-{i}"
        folder.mkdir()
        prepare(folder)
        points.append(Point(folder, SIGNALS[(i + first) % 2], fraction,
                            None if fraction is None else fraction * duration))
    return points


def _interrupt_all(points: list[Point], cmd_of: Callable[[Path], Sequence[str]],
                   watch_of: Callable[[Path], Path], prefix: str,
                   prepare: Callable[[Path], None]) -> list[Point]:
    """Run every point, two at a time. When the machine got faster than during the
    reference run (other work finished) and timed points found the command finished, those
    run again at their fractions of the duration they just took."""
    def run_all(todo: list[Point]) -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: _interrupt(p, cmd_of(p.folder), watch_of(p.folder),
                                               prefix), todo))

    run_all(points)
    for attempt in range(3):  # timing varies with the machine's load: aim earlier each time
        late = [p for p in points if p.fraction is not None and not p.sent]
        if not late or sum(p.code in (130, 143) for p in points) >= 3:
            break
        duration = min(p.elapsed for p in late) * 0.8 ** attempt
        for point in late:
            shutil.rmtree(point.folder)
            point.folder.mkdir()
            prepare(point.folder)
            point.at = point.fraction * duration
        run_all(late)
    return points


def _check_exit(point: Point) -> None:
    """130 (SIGINT) / 143 (SIGTERM) with a message, 0 (1: gate failed) when it finished
    first, or death by the signal itself when it came before ``main`` took over or after it
    returned (interpreter start-up, where Python prints the KeyboardInterrupt, or shutdown)."""
    allowed = {0, 1, EXIT[point.sig], -point.sig}
    assert point.code in allowed, (point, point.stderr[-3000:])
    if point.code == EXIT[point.sig]:
        assert "interrupted" in point.stderr, point.stderr[-2000:]
    if point.code != -point.sig:
        assert "Traceback" not in point.stderr, point.stderr[-3000:]


def _no_temporaries(folder: Path) -> None:
    stray = [str(p) for p in folder.rglob(".*") if p.name.endswith(".tmp") or ".tmp" in p.name]
    assert not stray, stray


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _interrupted(points: list[Point]) -> None:
    outcomes = [("at the temporary" if p.at is None else round(p.at, 2),
                 signal.Signals(p.sig).name, p.code if p.sent else f"{p.code} (finished first)")
                for p in points]
    print("points (seconds, signal, exit):", outcomes)  # shown with pytest -s / -rA
    assert sum(p.code in (130, 143) for p in points) >= 3, outcomes  # most land in the run


# -- eval --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt-inputs")
    build_tiny_model(root / "tiny")
    build_tiny_model(root / "tiny-a", seed=1)
    build_tiny_model(root / "tiny-b", seed=2)
    (root / "suite").mkdir()
    (root / "suite" / "suite.yaml").write_text(suite_yaml("smoke"))
    write_jsonl(root / "suite" / "data" / "mc.jsonl", MC_ROWS)
    write_jsonl(root / "train.jsonl", [{"instruction": f"Repeat the word {w}.",
                                        "output": f"{w} {w} {w}"}
                                       for w in ("fox", "dog", "sky", "blue", "water", "Paris")])
    from ftguard.record import write_run

    base, tuned = flipped_pair(400)
    write_run(binary_run("base", {("legal", "clauses"): base}), root / "a.json")
    write_run(binary_run("tuned", {("legal", "clauses"): tuned}), root / "b.json")
    return root


OLD = b'{"old": "an earlier output that must survive"}\n'


def _file_points(tmp_path: Path, cmd_of: Callable[[Path], list[str]],
                 fractions: Sequence[float], name: str, first: int) -> tuple[Path, list[Point]]:
    (tmp_path / "ref").mkdir()
    duration = _reference(cmd_of(tmp_path / "ref"), tmp_path / "ref")
    def prepare(folder: Path) -> None:
        (folder / name).write_bytes(OLD)

    points = _points(tmp_path, duration, fractions, prepare, first)
    done = _interrupt_all(points, cmd_of, lambda folder: folder, f".{name}.", prepare)
    return tmp_path / "ref" / name, done


def _check_file(point: Point, name: str, valid: Callable[[Path], None]) -> None:
    _check_exit(point)
    out = point.folder / name
    if point.at is None and point.sent:  # signalled inside the final write: it completes
        assert out.read_bytes() != OLD, point
    if out.read_bytes() != OLD:
        valid(out)  # the complete new output
        assert point.code in (0, 1, EXIT[point.sig], -point.sig), point
    _no_temporaries(point.folder)


def test_eval_interrupted_anywhere(tmp_path: Path, inputs: Path) -> None:
    from ftguard.record import read_run

    def cmd(folder: Path) -> list[str]:
        return ["eval", inputs / "suite", "--model", inputs / "tiny", "--out",
                folder / "run.json", "--no-progress", "--batch-size", "2"]

    ref, points = _file_points(tmp_path, cmd, (0.2, 0.45, 0.65, 0.85, 0.97), "run.json", 0)
    want = read_run(ref)

    def valid(out: Path) -> None:
        got = read_run(out)
        assert got.suites[0].tasks[0].samples == want.suites[0].tasks[0].samples

    for point in points:
        _check_file(point, "run.json", valid)
    _interrupted(points)


def test_compare_interrupted_anywhere(tmp_path: Path, inputs: Path) -> None:
    from ftguard.record import read_comparison

    def cmd(folder: Path) -> list[str]:
        return ["compare", inputs / "a.json", inputs / "b.json", "--out", folder / "cmp.json",
                "--resamples", "20000"]

    ref, points = _file_points(tmp_path, cmd, (0.25, 0.45, 0.65, 0.85, 1.0), "cmp.json", 1)
    want = read_comparison(ref)

    def valid(out: Path) -> None:
        assert read_comparison(out).rows == want.rows

    for point in points:
        _check_file(point, "cmp.json", valid)
    _interrupted(points)


def test_report_interrupted_anywhere(tmp_path: Path, inputs: Path) -> None:
    from ftguard.compare import compare
    from ftguard.record import read_run, write_comparison

    source = tmp_path / "cmp.json"
    write_comparison(compare(read_run(inputs / "a.json"), read_run(inputs / "b.json"),
                             resamples=200), source)

    def cmd(folder: Path) -> list[str]:
        return ["report", source, "--out", folder / "report.html"]

    ref, points = _file_points(tmp_path, cmd, (0.25, 0.45, 0.65, 0.85, 1.0), "report.html",
                               0)
    want = ref.read_text(encoding="utf-8")

    def valid(out: Path) -> None:
        text = out.read_text(encoding="utf-8")
        assert text.rstrip().endswith("</html>") and len(text) == len(want)

    for point in points:
        _check_file(point, "report.html", valid)
    _interrupted(points)


# -- merge -------------------------------------------------------------------------------


def test_merge_interrupted_anywhere(tmp_path: Path, inputs: Path) -> None:
    from safetensors.torch import load_file

    def cmd(folder: Path) -> list[str]:
        return ["merge", "--base", inputs / "tiny", inputs / "tiny-a", inputs / "tiny-b",
                "--method", "ties", "--out", folder / "merged", "--overwrite"]

    (tmp_path / "ref").mkdir()
    duration = _reference(cmd(tmp_path / "ref"), tmp_path / "ref")
    want = load_file(str(tmp_path / "ref" / "merged" / "model.safetensors"))

    def old_merge(folder: Path) -> None:  # an earlier merge (here: the base) at --out
        shutil.copytree(inputs / "tiny", folder / "merged")

    points = _points(tmp_path, duration, (0.25, 0.45, 0.65, 0.85, 1.0), old_merge, 1)
    old = _tree(inputs / "tiny")
    points = _interrupt_all(points, cmd, lambda folder: folder, ".merged.", old_merge)
    for point in points:
        _check_exit(point)
        merged = point.folder / "merged"
        if _tree(merged) != old:
            got = load_file(str(merged / "model.safetensors"))
            assert got.keys() == want.keys() and all((got[k] == want[k]).all() for k in got)
            assert json.loads((merged / "merge.json").read_text())["method"] == "ties"
            assert point.code in (0, EXIT[point.sig], -point.sig), point
        _no_temporaries(point.folder)
    _interrupted(points)


# -- train -------------------------------------------------------------------------------


def _check_train_out(point: Point, old: dict[str, str]) -> str | None:
    """The invariants of an interrupted ``train --overwrite`` over an earlier run; returns
    the new run's status (None: the earlier run untouched, or nothing of the new one)."""
    from safetensors.torch import load_file

    from ftguard.train.record import read_train_record

    out = point.folder / "out"
    _no_temporaries(out)
    if _tree(out) == old:
        return None
    for checkpoint in (out / "checkpoints").glob("checkpoint-*"):  # each one complete
        json.loads((checkpoint / "trainer_state.json").read_text())
        load_file(str(checkpoint / "adapter_model.safetensors"))
        assert (checkpoint / "optimizer.pt").is_file()
    if (out / "adapter").exists():  # only ever a complete export
        load_file(str(out / "adapter" / "adapter_model.safetensors"))
        json.loads((out / "adapter" / "adapter_config.json").read_text())
    if not (out / "train_record.json").exists():
        assert not (out / "adapter").exists() and not any(out.glob("checkpoints/checkpoint-*"))
        return None
    record = read_train_record(out / "train_record.json")
    assert record.status in ("interrupted", "completed"), record.status  # never "running"
    if record.status == "completed":  # only a run that reached its last step
        assert record.steps == record.planned_steps == 24, record.steps
        assert point.code in (0, EXIT[point.sig], -point.sig), point  # signalled after it
        assert (out / "adapter").is_dir()
        assert (out / "report.html").read_text().rstrip().endswith("</html>")
    if "checkpoint saved" in point.stderr:  # the first Ctrl-C: stop at the end of the step
        assert (out / "checkpoints" / f"checkpoint-{record.steps}").is_dir()
        assert not (out / "adapter").exists() and point.code == 130
    return record.status


def test_train_interrupted_anywhere_and_resumed(tmp_path: Path, inputs: Path) -> None:
    from ftguard.train.record import read_train_record

    def cmd(folder: Path) -> list[str]:  # a checkpoint every 4 steps, 3 kept
        return ["train", "--model", inputs / "tiny", "--data", inputs / "train.jsonl",
                "--out", folder / "out", "--max-steps", "24", "--batch-size", "2",
                "--eval-every", "4", "--seed", "3", "--overwrite", "--quiet"]

    (tmp_path / "ref").mkdir()
    duration = _reference(cmd(tmp_path / "ref"), tmp_path / "ref")
    reference = tmp_path / "ref" / "out"
    assert read_train_record(reference / "train_record.json").status == "completed"
    old = _tree(reference)

    def earlier_run(folder: Path) -> None:
        shutil.copytree(reference, folder / "out")

    # the run is mostly start-up (imports, model load): the later fractions hit training,
    # checkpoint saves and the export; the last point fires when a checkpoint is being saved
    points = _points(tmp_path, duration, (0.3, 0.6, 0.75, 0.88, 0.97), earlier_run)
    points = _interrupt_all(points, cmd, lambda folder: folder / "out" / "checkpoints",
                            ".checkpoint-", earlier_run)
    statuses = []
    for point in points:
        _check_exit(point)
        statuses.append(_check_train_out(point, old))
    _interrupted(points)

    resumable = [p for p, s in zip(points, statuses) if s == "interrupted"]
    assert resumable, [(p.at, p.sig, p.code, s) for p, s in zip(points, statuses)]
    point = max(resumable, key=lambda p: len(list((p.folder / "out").glob("checkpoints/*"))))
    out = point.folder / "out"
    resumed = subprocess.run([sys.executable, "-m", "ftguard", "train", out / "config.yaml",
                              "--out", out, "--resume", "--quiet"], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = read_train_record(out / "train_record.json")
    assert record.status == "completed" and record.steps == 24
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    _no_temporaries(out)
