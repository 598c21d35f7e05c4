"""Atomic outputs: nothing half-written is ever left where a result is expected.

- :func:`write_text_atomic` writes a file next to its target, fsyncs it and renames it over
  the target; :func:`replace_dir` yields a scratch folder that replaces the target folder
  once complete; :func:`move_dir_into_place` is that final swap on its own.
- :func:`check_output_file` / :func:`check_output_dir` refuse a target that is not what would
  be written there (a folder where a file goes, a device, FIFO or socket, a file where a
  folder goes) with a :class:`~ftguard.errors.RecordError` naming it, before any work; the
  writers call them too, before anything is written.
- :func:`signals_held` defers SIGINT and SIGTERM (main thread) across the short critical
  sections (creating and registering a temporary, the final renames and their cleanup), so a
  signal lands only where cleanup runs: an interrupted write leaves the old output (or none)
  and no temporary, whatever the moment. Blocking the signals with ``pthread_sigmask`` would
  not do: the kernel then hands them to another thread (torch's, tokenizers') and Python
  still runs the handler in the main thread at once. The handlers are swapped for a
  recorder instead, and what it recorded is raised again on the way out.

Temporaries are named ``.NAME.<random>.tmp`` beside NAME (``.NAME.<random>.old.tmp`` for an
old folder during a swap). Only a process killed outright (SIGKILL, power loss) can leave one;
nothing here removes another process's temporaries.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftguard.errors import RecordError

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_depth = 0  # nesting of signals_held() in the main thread
_deferred: list[int] = []
_written: list[Path] = []


def write_text_atomic(text: str, path: Path) -> Path:
    """Write ``text`` to a temporary file next to ``path``, fsync it, and rename it into
    place; an interrupted write leaves the previous file (or none) and no temporary file."""
    path = Path(path)
    check_output_file(path)
    with signals_held():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are meant to be shared
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _cannot_write(path, exc) from None
            raise
        _written.append(path)
    return path


@contextmanager
def replace_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` (an older
    folder there is removed only after the new one is in place), on failure or interruption
    it is removed and ``path`` is left as it was."""
    path = Path(path)
    check_output_dir(path)
    tmp: Path | None = None
    try:
        with signals_held():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp",
                                            dir=path.parent))
            except OSError as exc:
                raise _cannot_write(path, exc) from None
        yield tmp
        with signals_held():
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; outputs are shared
            move_dir_into_place(tmp, path)
            tmp = None
    except BaseException:
        if tmp is not None:
            with signals_held():
                shutil.rmtree(tmp, ignore_errors=True)
        raise


def move_dir_into_place(src: Path, path: Path) -> Path:
    """Rename the complete folder ``src`` to ``path`` (same file system). An existing
    ``path`` is moved aside first and removed once ``src`` is in place; if the second rename
    fails, it is moved back, so ``path`` is always the old folder or the new one."""
    src, path = Path(src), Path(path)
    check_output_dir(path)
    with signals_held():
        if not path.exists():
            os.replace(src, path)
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old.tmp",
                                        dir=path.parent))
            os.rmdir(old)  # a unique name beside path, for the old folder to step aside to
            os.replace(path, old)
            try:
                os.replace(src, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        _written.append(path)
    return path


def remove_tree(path: Path) -> None:
    """Remove a scratch folder (if there), not to be cut short by SIGINT or SIGTERM."""
    with signals_held():
        shutil.rmtree(path, ignore_errors=True)


def check_output_file(path: Path) -> Path:
    """Refuse ``path`` as a file to write when something other than a regular file is
    there (a folder, device, FIFO or socket: ``os.replace`` would swap out a device node), or
    its folder is a file; raise RecordError naming it, before any work is done."""
    path = Path(path)
    kind = _kind(path)
    if kind == "folder":
        raise RecordError(f"{path}: is a folder; a file would be written there.",
                          hint="Give a file path (e.g. inside that folder).")
    if kind not in (None, "file"):
        raise RecordError(f"{path}: is a {kind}, not a regular file; writing would replace "
                          "it.", hint="Give the path of a regular file.")
    _check_parent(path)
    return path


def check_output_dir(path: Path) -> Path:
    """Refuse ``path`` as a folder to write when something other than a folder is there;
    raise RecordError naming it, before any work is done."""
    path = Path(path)
    kind = _kind(path)
    if kind not in (None, "folder"):
        raise RecordError(f"{path}: is a {kind}; a folder would be written there.",
                          hint="Give a folder path, or remove the file.")
    _check_parent(path)
    return path


def written() -> list[Path]:
    """The outputs this process completed so far, in order (files and folders)."""
    return list(_written)


@contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block ends, then deliver them to the handlers that
    were in place (nested blocks deliver at the outermost end). In other threads this does
    nothing: Python runs signal handlers in the main thread only, so they cannot interrupt
    another thread's block."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    if _depth == 0:
        try:
            for sig in HELD_SIGNALS:
                if signal.getsignal(sig) is not None:  # None: set outside Python, keep it
                    previous[sig] = signal.signal(sig, _defer)
        except BaseException:  # a pending signal's handler ran (and raised) on the way in
            _restore(previous)
            _deferred.clear()
            raise
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if previous:
            _restore(previous)
            pending = list(dict.fromkeys(_deferred))
            _deferred.clear()
            for sig in pending:
                signal.raise_signal(sig)  # the restored handler runs (and may raise) here


def _defer(signum: int, frame: Any) -> None:
    _deferred.append(signum)


def _restore(previous: dict[int, Any]) -> None:
    """Put the handlers back; ``signal.signal`` first runs handlers of pending signals, so
    one restored already may raise: finish restoring, then raise that."""
    error: BaseException | None = None
    for sig, handler in previous.items():
        while True:
            try:
                signal.signal(sig, handler)
                break
            except BaseException as exc:  # noqa: BLE001 -- re-raised below
                error = error or exc
    if error is not None:
        _deferred.clear()
        raise error


def _kind(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a parent is a file: _check_parent names it
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _check_parent(path: Path) -> None:
    for parent in path.absolute().parents:
        kind = _kind(parent)
        if kind is None:
            continue
        if kind != "folder":
            raise RecordError(f"{path}: cannot be written, {parent} is a {kind}, not a folder.",
                              hint="Choose another output path.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RecordError(f"{path}: cannot be written, {parent} is not writable.",
                              hint="Choose another output path.")
        return


def _cannot_write(path: Path, exc: OSError) -> RecordError:
    return RecordError(f"{path}: cannot write here ({exc.strerror or exc}).",
                       hint="Choose another output path, or free some disk space.")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask
