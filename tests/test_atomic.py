"""ftguard.atomic: targets that are not what would be written are refused before any work,
SIGINT/SIGTERM landing inside a critical section are delivered after it (also with other
threads running, where blocking them in the main thread would not help), and a failed folder
swap puts the old folder back. The end-to-end signal tests are in test_interrupts.py."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from ftguard import atomic
from ftguard.atomic import (
    check_output_file,
    move_dir_into_place,
    replace_dir,
    signals_held,
    write_text_atomic,
)
from ftguard.errors import RecordError


@pytest.fixture
def busy_thread():
    """Another thread alive, as torch and tokenizers keep them: the kernel may hand it the
    signal, so only a Python-level deferral keeps the main thread's section whole."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_targets_that_are_not_what_is_written_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(RecordError, match="dir.json: is a folder"):
        write_text_atomic("{}", folder)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(RecordError, match="pipe.json: is a FIFO"):
        write_text_atomic("{}", fifo)
    assert fifo.is_fifo()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.html"))
        with pytest.raises(RecordError, match="s.html: is a socket"):
            write_text_atomic("x", tmp_path / "s.html")
    # a device node: only checked, never written (as root os.replace would swap it out)
    with pytest.raises(RecordError, match="/dev/zero: is a device"):
        check_output_file(Path("/dev/zero"))
    file = tmp_path / "model"
    file.write_text("not a folder")
    with pytest.raises(RecordError, match="model: is a file"), replace_dir(file):
        pytest.fail("the body must not run")
    with pytest.raises(RecordError, match="is a file, not a folder"):
        write_text_atomic("{}", file / "r.json")
    assert file.read_text() == "not a folder"
    assert _leftovers(tmp_path) == []


def test_signal_inside_the_write_is_delivered_after_it(tmp_path: Path, busy_thread,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    real_fsync = os.fsync

    def fsync_and_signal(fd: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # lands between the temp file and the rename
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_signal)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic("new", out)
    assert out.read_text() == "new" and _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signal_while_the_temp_file_is_created_leaves_none(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    real = atomic.tempfile.mkstemp

    def mkstemp_then_term(**kwargs):
        made = real(**kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return made

    seen: list[int] = []

    def on_term(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.tempfile, "mkstemp", mkstemp_then_term)
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with pytest.raises(KeyboardInterrupt):
            write_text_atomic("new", out)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]  # once, by the handler that was in place, after the write
    assert out.read_text() == "new" and _leftovers(tmp_path) == []


def test_interrupted_folder_body_keeps_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "w.bin").write_text("old")
    with pytest.raises(KeyboardInterrupt), replace_dir(out) as scratch:
        (scratch / "w.bin").write_text("half")
        raise KeyboardInterrupt
    assert (out / "w.bin").read_text() == "old" and _leftovers(tmp_path) == []


def test_signal_during_the_swap_is_delivered_after_it(tmp_path: Path, busy_thread,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "w.bin").write_text("old")
    real = os.replace
    calls: list[str] = []

    def replace_and_signal(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 1:  # the old folder steps aside: the worst moment to stop
            os.kill(os.getpid(), signal.SIGINT)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace_and_signal)
    with pytest.raises(KeyboardInterrupt), replace_dir(out) as scratch:
        (scratch / "w.bin").write_text("new")
    assert len(calls) == 2 and (out / "w.bin").read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_failed_swap_puts_the_old_folder_back(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "w.bin").write_text("old")
    new = tmp_path / ".model.x.tmp"
    new.mkdir()
    (new / "w.bin").write_text("new")
    real = os.replace
    calls: list[int] = []

    def second_rename_fails(src, dst):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(OSError):
        move_dir_into_place(new, out)
    assert (out / "w.bin").read_text() == "old"
    assert _leftovers(tmp_path) == [".model.x.tmp"]  # the caller's scratch, not an old copy


def test_signals_held_nests_and_restores_handlers() -> None:
    got: list[int] = []

    def handler(signum: int, frame: object) -> None:
        got.append(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with signals_held():
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
            assert got == []  # the inner end does not deliver
            os.kill(os.getpid(), signal.SIGTERM)
        assert got == [signal.SIGTERM]  # recorded twice, delivered once
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)

    def in_thread() -> None:
        with signals_held():  # no handlers can be set here: a no-op
            got.append(0)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert got[-1] == 0


def test_sigterm_in_a_command_exits_143_and_keeps_the_output(tmp_path: Path, run_cli,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import binary_run, flipped_pair
    from ftguard.record import write_run

    base, tuned = flipped_pair(200)
    write_run(binary_run("base", {("legal", "t"): base}), tmp_path / "a.json")
    write_run(binary_run("tuned", {("legal", "t"): tuned}), tmp_path / "b.json")
    out = tmp_path / "c.json"
    out.write_text("old comparison")

    import ftguard.compare

    real = ftguard.compare.compare

    def compare_then_term(*args, **kwargs):
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(ftguard.compare, "compare", compare_then_term)
    previous = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--out", out,
                           "--resamples", "200")
    assert code == 143, err
    assert "interrupted (SIGTERM); no output was written or replaced" in err
    assert out.read_text() == "old comparison"
    assert signal.getsignal(signal.SIGTERM) is previous  # main() put the handler back
    monkeypatch.setattr(ftguard.compare, "compare", real)
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json", "--out",
                           tmp_path, "--resamples", "200")
    assert code == 2 and f"{tmp_path}: is a folder" in err


def test_an_interrupt_a_library_wrapped_is_still_an_interrupt(tmp_path: Path, run_cli,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-core turns an exception raised while it builds a schema into SchemaError;
    main() still exits 130 when a signal came before such an error."""
    from conftest import binary_run, flipped_pair
    from ftguard.record import write_run

    base, tuned = flipped_pair(100)
    write_run(binary_run("base", {("legal", "t"): base}), tmp_path / "a.json")
    write_run(binary_run("tuned", {("legal", "t"): tuned}), tmp_path / "b.json")
    import ftguard.compare

    def wrapping_library(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs (and raises) here
        except BaseException as exc:  # noqa: BLE001 -- what the library does
            raise RuntimeError(f"Error building schema: {type(exc).__name__}") from None

    monkeypatch.setattr(ftguard.compare, "compare", wrapping_library)
    code, _, err = run_cli("compare", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 130 and "interrupted (SIGINT)" in err and "unexpected" not in err
