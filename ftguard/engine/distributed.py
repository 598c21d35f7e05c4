"""Evaluation over several processes: ``accelerate launch --multi_gpu --num_processes N -m
ftguard eval ...`` (also on a machine without GPUs), ``torchrun --nproc_per_node N -m ftguard
eval ...``, or accelerate's MPI-based ``--cpu`` launcher.

Every process runs the same evaluation and loads its own copy of the model (on CPU, or on
GPU ``LOCAL_RANK``). :class:`ShardedBackend` sits in front of each copy: for every batch of
requests the engine asks, process ``r`` of ``n`` answers requests ``r, r+n, r+2n, ...`` and
the answers are gathered (``all_gather_object``) and put back in request order, so every
process holds all answers and computes the same metrics; process 0 alone writes the
RunRecord and prints. The record is the single-process one: the same items, predictions and
scores (log-likelihoods to float precision, as batches are composed differently).

The processes ask for the same batches in the same order because the engine is
deterministic; each process's response cache sees only its own share of the requests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ftguard.models.base import (
    Backend,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Progress,
    RollingRequest,
    RollingResult,
)
from ftguard.models.wrappers import Wrapper

Q = TypeVar("Q")
R = TypeVar("R")


_RANK = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")
_SIZE = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def world() -> tuple[int, int]:
    """(rank, number of processes) from the launcher's environment (torchrun, accelerate's
    multi-GPU launcher, or MPI for accelerate's multi-CPU one); (0, 1) when alone."""
    rank = next((os.environ[k] for k in _RANK if k in os.environ), "0")
    size = next((os.environ[k] for k in _SIZE if k in os.environ), "1")
    try:
        return int(rank), int(size)
    except ValueError:
        return 0, 1


def is_main() -> bool:
    """Whether this process writes records and prints (rank 0, or no launcher)."""
    return world()[0] == 0


def local_device() -> str | None:
    """``cuda:LOCAL_RANK`` for a multi-process run on GPUs; None otherwise."""
    if world()[1] > 1 and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() \
                not in ("1", "true", "yes"):
            return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return None


def _group() -> Any:
    import torch.distributed as dist

    if not dist.is_initialized():
        rank, size = world()
        os.environ.setdefault("RANK", str(rank))  # MPI launchers name them otherwise
        os.environ.setdefault("WORLD_SIZE", str(size))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group("gloo")  # objects travel over gloo on CPU and GPU alike
    return dist


class ShardedBackend(Wrapper):
    """``inner``'s answers to this process's share of every request batch, gathered."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.info = inner.info
        self.rank, self.size = world()
        self.dist = _group()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest],
                      progress: Progress | None = None) -> list[LoglikelihoodResult]:
        return self._shared(requests, self.inner.loglikelihood, progress)

    def loglikelihood_rolling(self, requests: Sequence[RollingRequest],
                              progress: Progress | None = None) -> list[RollingResult]:
        return self._shared(requests, self.inner.loglikelihood_rolling, progress)

    def generate(self, requests: Sequence[GenerateRequest],
                 progress: Progress | None = None) -> list[str]:
        return self._shared(requests, self.inner.generate, progress)

    def apply_chat_template(self, messages: Sequence[dict[str, str]]) -> str:
        return self.inner.apply_chat_template(messages)

    def _shared(self, requests: Sequence[Q], ask: Callable[[list[Q], Progress | None], list[R]],
                progress: Progress | None) -> list[R]:
        mine = list(range(self.rank, len(requests), self.size))
        answers = ask([requests[i] for i in mine], None) if mine else []
        gathered: list[Any] = [None] * self.size
        self.dist.all_gather_object(gathered, (mine, answers))
        out: list[Any] = [None] * len(requests)
        for indices, values in gathered:
            for i, value in zip(indices, values):
                out[i] = value
        if progress:
            progress(len(requests))
        return out
