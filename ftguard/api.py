"""The library API: the CLI, the pytest plugin and the demo are thin shells over these."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ftguard.engine.runner import Reporter, RunSettings, SilentReporter, run_suite
from ftguard.models.base import Backend
from ftguard.models.load import LoadOptions, load_backend
from ftguard.record import RunRecord, write_run
from ftguard.suite import Suite, find_suites, load_suite
from ftguard.version import ftguard_version, git_revision, package_version

_PACKAGES = ("ftguard", "torch", "transformers", "peft", "bitsandbytes", "accelerate",
             "sacrebleu", "rouge-score", "numpy")


def load_suites(paths: Sequence[str | Path]) -> list[Suite]:
    """Load every suite under ``paths`` (folders, suite.yaml files, or parents of suites)."""
    return [load_suite(root) for root in find_suites([Path(p) for p in paths])]


def evaluate(suites: Sequence[str | Path | Suite], *,
             load: LoadOptions | None = None, backend: Backend | None = None,
             settings: RunSettings | None = None, out: str | Path | None = None,
             reporter: Reporter | None = None) -> RunRecord:
    """Evaluate a model on suites and return (and optionally write) the RunRecord.

    Suites are loaded and validated before the model, so a bad suite fails in milliseconds.
    Pass ``backend`` to reuse a loaded model; otherwise ``load`` says what to load.
    """
    started = time.perf_counter()
    loaded = [s for item in suites
              for s in ([item] if isinstance(item, Suite) else load_suites([item]))]
    settings = settings or RunSettings()
    load = load or LoadOptions()
    timings: dict[str, float] = {}
    if backend is None:
        t0 = time.perf_counter()
        backend = load_backend(load)
        timings["model_load"] = round(time.perf_counter() - t0, 3)
    _seed(settings.seed, backend)
    reporter = reporter or SilentReporter()
    results = [run_suite(s, backend, settings, reporter, timings) for s in loaded]
    timings["total"] = round(time.perf_counter() - started, 3)
    record = RunRecord(
        ftguard_version=ftguard_version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model=backend.info,
        config={"seed": settings.seed, "limit": settings.limit, "subset": settings.subset,
                "batch_size": getattr(backend, "batch_size", None),
                "device": backend.info.device, "dtype": backend.info.dtype,
                "load_in_4bit": load.load_in_4bit, "load_in_8bit": load.load_in_8bit,
                "bootstrap_resamples": settings.resamples},
        environment=environment(backend.info.device),
        suites=results,
        timings=timings,
    )
    if out is not None:
        write_run(record, Path(out))
    return record


def environment(device: str) -> dict[str, object]:
    """Versions and machine facts that explain differences between two runs."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: v for name in _PACKAGES if (v := package_version(name))},
        "device": device,
        "device_name": _device_name(device),
        "git_revision": git_revision(),
    }


def _seed(seed: int, backend: Backend) -> None:
    if backend.info.backend == "hf":
        import torch

        torch.manual_seed(seed)


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    return platform.processor() or platform.machine()
