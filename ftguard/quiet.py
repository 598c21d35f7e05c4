"""Library chatter an ftguard user cannot act on, silenced while ftguard runs; ``-v`` shows it.

transformers' deprecation notices about its own internals (``past_key_values``,
``is_gradient_checkpointing``), bitsandbytes' notices about CPU kernels it could not fetch,
and the ``kernels`` package's "Skipping publisher trust check" (offline, bitsandbytes asks it
for a kernel from the hub) are silenced: the warnings filters, the libraries' log levels and
transformers' verbosity are set inside :func:`quiet` and put back on leaving it, so a
library user's own settings outside an ftguard call are untouched. ``ftguard -v`` /
``--verbose`` (:func:`verbosity`) or ``FTGUARD_VERBOSE=1`` lets them through. ftguard's own
warnings (``ftguard: warning: ...``) are never silenced.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

LIBRARIES = ("transformers", "torch", "peft", "accelerate", "bitsandbytes", "kernels",
             "huggingface_hub", "trl", "datasets", "lm_eval")
"""Packages whose warnings and log messages below ERROR are silenced."""

_MODULES = rf"({'|'.join(LIBRARIES)})(\.|$)"
_TRANSFORMERS_VERBOSITY = "TRANSFORMERS_VERBOSITY"

_verbose: ContextVar[bool] = ContextVar("ftguard_verbose", default=False)


def is_verbose() -> bool:
    """Whether library chatter is shown: ``-v`` on the command line or ``FTGUARD_VERBOSE``."""
    return _verbose.get() or os.environ.get("FTGUARD_VERBOSE", "") not in ("", "0")


@contextmanager
def verbosity(verbose: bool) -> Iterator[None]:
    """The command line's ``-v``: within, :func:`quiet` silences nothing when ``verbose``,
    and everything it names otherwise."""
    token = _verbose.set(verbose)
    try:
        with quiet():
            yield
    finally:
        _verbose.reset(token)


@contextmanager
def quiet(*, progress_bars: bool = True) -> Iterator[None]:
    """Silence :data:`LIBRARIES`' warnings and log messages below ERROR, unless
    :func:`is_verbose`; the previous filters and levels are restored on leaving. Without
    ``progress_bars``, transformers' own bars (weight loading, file writes) are hidden too."""
    if is_verbose():
        yield
        return
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    levels = [logger.level for logger in loggers]
    env = os.environ.get(_TRANSFORMERS_VERBOSITY)
    # transformers sets its logger's level from this variable when it is first imported
    os.environ[_TRANSFORMERS_VERBOSITY] = "error"
    bars = None if progress_bars else _set_progress_bars(False)
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=_MODULES)
        # warnings raised for a library's caller (stacklevel) are attributed to that caller:
        # transformers' model forward runs inside torch.nn.Module.__call__
        warnings.filterwarnings("ignore", message=r"(?i).*deprecat", category=FutureWarning)
        # peft looks the base model up by name on save (to see whether the vocabulary
        # changed); ftguard names the base by its spec and works offline
        warnings.filterwarnings("ignore", message=r".*(Unable to fetch remote file|Could not "
                                r"find a config file)", module="peft")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
            if env is None:
                os.environ.pop(_TRANSFORMERS_VERBOSITY, None)
            else:
                os.environ[_TRANSFORMERS_VERBOSITY] = env
            if bars:
                _set_progress_bars(True)


def _set_progress_bars(enabled: bool) -> bool:
    """Turn transformers' progress bars on or off; whether they were on before."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    return before
