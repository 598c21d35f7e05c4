"""Ctrl-C and SIGTERM while ``main`` runs: raised where they land, every ``finally`` and
temporary-file cleanup runs, and the exit (130 / 143) names the outputs completed before it."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ftguard.errors import EXIT_SIGINT, EXIT_SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM while ``main`` runs: raised where it lands, like Ctrl-C's KeyboardInterrupt,
    so every ``finally`` and temporary-file cleanup runs before the exit (143)."""


received: list[int] = []
"""The signals ``raise_interrupt`` turned into exceptions during this ``main``."""


def raise_if_interrupted(exc: Exception) -> None:
    """Some libraries wrap whatever a callback raised into an error of their own (pydantic:
    ``SchemaError: ... Terminated``); after a signal such an error is the interruption."""
    import signal

    if received:
        raise (Terminated if received[-1] == signal.SIGTERM else KeyboardInterrupt)() from exc


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGINT and SIGTERM while ``main`` runs: raise KeyboardInterrupt or Terminated where
    they land. Python ignores an exception raised in a ``__del__`` (it prints "Exception
    ignored" and goes on), so a signal landing in one is sent again a moment later."""
    import signal
    import threading
    import types

    while isinstance(frame, types.FrameType):
        if frame.f_code.co_name == "__del__":
            threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
            return
        frame = frame.f_back
    received.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def set_signal_handlers(handlers: object) -> dict[int, object]:
    """Install ``handlers`` for SIGINT and SIGTERM (one function for both, or the dict
    returned by an earlier call); return the ones replaced (none outside the main thread,
    where handlers cannot be set). A signal the caller ignores (``nohup``-style, a
    background job) stays ignored."""
    import signal

    previous: dict[int, object] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = handlers.get(sig, False) if isinstance(handlers, dict) else handlers
        if handler is False or (not isinstance(handlers, dict)
                                and signal.getsignal(sig) == signal.SIG_IGN):
            continue
        try:
            previous[sig] = signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        except ValueError:
            break
    return previous


def interrupted(exc: KeyboardInterrupt, outputs: Sequence[Path]) -> int:
    """Exit 130 (SIGINT) or 143 (SIGTERM), naming the outputs completed before it: every
    writer is atomic, so nothing else was written or replaced."""
    name, code = (("SIGTERM", EXIT_SIGTERM) if isinstance(exc, Terminated)
                  else ("SIGINT", EXIT_SIGINT))
    done = list(dict.fromkeys(str(p) for p in outputs))
    if not done:
        kept = "no output was written or replaced"
    else:
        more = f" and {len(done) - 3} more" if len(done) > 3 else ""
        kept = (f"completed before it: {', '.join(done[:3])}{more}; no other output was "
                "written or replaced")
    print(f"ftguard: interrupted ({name}); {kept}.", file=sys.stderr)
    # CPython flags a KeyboardInterrupt that leaves exec() of a string (dataclasses' and
    # pydantic's generated methods) as unhandled and, at exit, kills the process with SIGINT
    # instead of returning this code; an exec() that completes clears the flag.
    exec("pass")  # noqa: S102
    return code
