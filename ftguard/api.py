"""The library API: the CLI, the pytest plugin and the demo are thin shells over these."""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ftguard.cache.memo import RequestMemo
from ftguard.engine.answers import check_backend
from ftguard.engine.distributed import world
from ftguard.engine.runner import display_path, run_suite
from ftguard.engine.settings import Reporter, RunSettings, SilentReporter
from ftguard.engine.tasks import narrowed, select_tasks
from ftguard.errors import UsageError
from ftguard.models.base import Backend
from ftguard.models.load import LoadOptions, describe_model, load_backend
from ftguard.models.registry import backend_for
from ftguard.models.wrappers import unwrap
from ftguard.quiet import quiet
from ftguard.record import ModelInfo, RunRecord, SuiteResult, write_run
from ftguard.suite import Suite, find_suites, load_suite
from ftguard.version import ftguard_version, git_revision, package_version

if TYPE_CHECKING:
    from ftguard.cache.backend import CachedBackend

_PACKAGES = ("ftguard", "torch", "transformers", "peft", "bitsandbytes", "accelerate",
             "sacrebleu", "rouge-score", "numpy")


def load_suites(paths: Sequence[str | Path]) -> list[Suite]:
    """Load every suite under ``paths`` (folders, suite.yaml files, or parents of suites);
    two different suites of one name are refused (their results could not be told apart)."""
    roots: dict[Path, Path] = {}
    for root in find_suites([Path(p) for p in paths]):
        roots.setdefault(root.resolve(), root)
    suites = [load_suite(root) for root in roots.values()]
    seen: dict[str, Suite] = {}
    for suite in suites:
        other = seen.setdefault(suite.name, suite)
        if other is not suite:
            raise UsageError(f"two suites are named '{suite.name}': {other.root} and "
                             f"{suite.root}; a run record keeps one result per suite name.",
                             hint="Rename one of them (name: in its suite.yaml), or evaluate "
                                  "them in separate runs.")
    return suites


def check_task_subset(task_subset: Mapping[str, float], suites: Sequence[Suite]) -> None:
    """UsageError naming a per-task subset key that matches no task of ``suites``."""
    from ftguard.engine.subsets import unknown_tasks

    unknown = unknown_tasks(task_subset, [(s.name, t.spec.name) for s in suites
                                          for t in s.tasks])
    if unknown:
        known = ", ".join(f"{s.name}/{t.spec.name}" for s in suites for t in s.tasks)
        raise UsageError(f"per-task subset '{unknown[0]}' names no task of the suites being "
                         f"evaluated (tasks: {known}).",
                         hint="Write TASK=N|F or SUITE/TASK=N|F with one of those names "
                              "(--subset clause_type=1.0, or eval.task_subset in a training "
                              "config).")


def _selected_suites(suites: Sequence[str | Path | Suite], settings: RunSettings) -> list[Suite]:
    """The suites (loaded when given as paths) with the tasks ``settings.tasks`` selects,
    per-task subset keys checked against all their tasks first."""
    loaded = [s for item in suites
              for s in ([item] if isinstance(item, Suite) else load_suites([item]))]
    check_task_subset(settings.task_subset, loaded)
    return select_tasks(loaded, settings.tasks)


@quiet()
def evaluate(suites: Sequence[str | Path | Suite], *,
             load: LoadOptions | None = None, backend: Backend | None = None,
             settings: RunSettings | None = None, out: str | Path | None = None,
             reporter: Reporter | None = None, cache: bool = False,
             shard: bool = False) -> RunRecord:
    """Evaluate a model on suites and return (and optionally write) the RunRecord.

    With ``shard``, when several processes run this same call (``accelerate launch``,
    ``torchrun``), each answers its share of the requests and all get every answer
    (:mod:`ftguard.engine.distributed`); without it (the default, e.g. checkpoint evaluation
    inside one training process) the call is this process's alone.

    Suites are loaded and validated before the model, so a bad suite fails in milliseconds.
    Pass ``backend`` to reuse a loaded model; otherwise ``load`` says what to load. With
    ``cache`` a suite already evaluated with the same model fingerprint, suite content and
    settings is reused (:mod:`ftguard.cache.results`); when every suite is, no model is loaded.
    The other suites' model answers go through the response cache
    (:mod:`ftguard.cache.responses`): only requests never answered by this model reach it, the
    model is loaded on the first such request, and an interrupted run resumes from there.
    The libraries' own warnings are silenced meanwhile (:func:`ftguard.quiet.quiet`).
    """
    return _evaluate(suites, load=load, backend=backend, settings=settings, out=out,
                     reporter=reporter, cache=cache, shard=shard)


def _evaluate(suites: Sequence[str | Path | Suite], *, load: LoadOptions | None,
              backend: Backend | None, settings: RunSettings | None, out: str | Path | None,
              reporter: Reporter | None, cache: bool, shard: bool = False,
              info: ModelInfo | None = None) -> RunRecord:
    """:func:`evaluate`; ``info`` is what ``load`` describes when the caller described it
    already (it is not described again)."""
    started = time.perf_counter()
    settings = settings or RunSettings()
    loaded = _selected_suites(suites, settings)
    load = load or LoadOptions()
    check_backend(loaded, backend.info.backend if backend is not None else backend_for(load).name)
    timings: dict[str, float] = {}
    if backend is not None:
        info = backend.info
    elif cache:
        info = info or describe_model(load)
    else:
        info = None
    cached = _cached(info, loaded, settings) if cache and info is not None else {}
    if backend is not None:
        _seed(settings.seed, backend)
    responses = None
    if cache and info is not None and len(cached) < len(loaded):
        backend = responses = _response_cached(backend, load, info, settings.seed, timings)
    elif backend is None and len(cached) < len(loaded):
        t0 = time.perf_counter()
        backend = load_backend(load)
        timings["model_load"] = round(time.perf_counter() - t0, 3)
        _seed(settings.seed, backend)
    processes = world()[1] if shard else 1
    if backend is not None:
        info = backend.info
        backend = RequestMemo(backend)  # identical requests of different tasks asked once
        if processes > 1:  # accelerate launch / torchrun: this process answers its share
            from ftguard.engine.distributed import ShardedBackend

            backend = ShardedBackend(backend)
    reporter = reporter or SilentReporter()
    results = []
    try:
        for suite in loaded:
            if suite.name in cached:
                results.append(cached[suite.name])
                continue
            assert backend is not None
            results.append(run_suite(suite, _for_suite(backend, suite), settings, reporter,
                                     timings))
            if cache and not results[-1].skipped:  # a skipped task may run next time
                from ftguard.cache import results as result_cache

                result_cache.put(backend.info.fingerprint, suite, settings, results[-1])
    finally:
        if responses is not None:
            responses.close()  # commits the last answers, also when the run fails half-way
    timings["total"] = round(time.perf_counter() - started, 3)
    record = RunRecord(
        ftguard_version=ftguard_version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model=info,
        config={"seed": settings.seed, "limit": settings.limit, "subset": settings.subset,
                **({"task_subset": dict(settings.task_subset)} if settings.task_subset else {}),
                **({"tasks": tasks} if (tasks := narrowed(loaded)) else {}),
                "batch_size": getattr(backend, "batch_size", None),
                "device": info.device, "dtype": info.dtype,
                "load_in_4bit": load.load_in_4bit, "load_in_8bit": load.load_in_8bit,
                "bootstrap_resamples": settings.resamples,
                "cached_suites": sorted(cached),
                **({"server_requests": stats} if (stats := _server_stats(backend)) else {}),
                **({"processes": processes} if processes > 1 else {})},
        environment=environment(info.device),
        suites=results,
        timings=timings,
    )
    if out is not None:
        write_run(record, Path(out))
    return record


@quiet()
def evaluate_adapters(suites: Sequence[str | Path | Suite], *, load: LoadOptions,
                      adapters: Sequence[str], settings: RunSettings | None = None,
                      out_dir: str | Path | None = None, reporter: Reporter | None = None,
                      cache: bool = False, include_base: bool = False) -> list[RunRecord]:
    """Evaluate several PEFT adapters of one base model, loading the base only once.

    Returns one RunRecord per adapter, in order, preceded by the base's (adapters disabled)
    with ``include_base``. Each record is what ``evaluate`` with ``LoadOptions(adapter=X)``
    records, fingerprint included, so any two can be compared. Suites and every adapter folder
    are checked before the model is loaded, and every adapter is attached before the first
    evaluation, so a bad adapter fails before any work. With ``out_dir`` each record is
    written to ``out_dir/NAME.json``, NAME from :func:`record_names` (``runs/a/adapter`` ->
    ``a``; ``base.json`` for the base). With
    ``cache``, runs whose suites are all cached need no model; the model is loaded once for
    the others.
    """
    from ftguard.models.load import describe_adapters, load_adapters

    if not adapters:
        raise UsageError("evaluate_adapters needs at least one adapter ({--adapter} DIR).",
                         option="adapter")
    if load.adapter is not None:
        raise UsageError("evaluate_adapters: pass the adapters in `adapters`, not in "
                         "LoadOptions.adapter.")
    settings = settings or RunSettings()
    loaded = _selected_suites(suites, settings)
    stems = record_names(adapters, include_base=include_base)
    infos = describe_adapters(load, adapters)
    base_info = describe_model(load) if include_base else None
    todo = [a for a in adapters if not (cache and _all_cached(infos[a], loaded, settings))]
    base_todo = include_base and not (cache and base_info is not None
                                      and _all_cached(base_info, loaded, settings))
    shared = load_adapters(load, todo) if todo or base_todo else None

    def run(backend: Backend | None, adapter: str | None) -> RunRecord:
        options = replace(load, adapter=adapter)
        record = _evaluate(loaded, load=options, backend=backend, settings=settings, out=None,
                           reporter=reporter, cache=cache,
                           info=infos[adapter] if adapter is not None else base_info)
        if out_dir is not None:
            write_run(record, Path(out_dir) / f"{stems[adapter]}.json")
        return record

    records = []
    if include_base:
        if base_todo:
            assert shared is not None
            with shared.base() as backend:
                records.append(run(backend, None))
        else:
            records.append(run(None, None))  # every suite cached: loads nothing
    for adapter in adapters:
        records.append(run(shared.backend(adapter) if adapter in todo and shared else None,
                           adapter))
    return records


def record_names(adapters: Sequence[str], *, include_base: bool = False) -> dict[str | None, str]:
    """File stems of :func:`evaluate_adapters`' records: each adapter's
    :func:`~ftguard.models.naming.folder_name` (``runs/a/adapter`` -> ``a``), names that
    collide made distinct by their parent folders; ``base`` for the base model (key None)."""
    from ftguard.models.naming import distinct_names

    names: dict[str | None, str] = {None: "base"} if include_base else {}
    names.update(distinct_names(adapters, reserved=("base",) if include_base else ()))
    return names


def _all_cached(info: ModelInfo, suites: list[Suite], settings: RunSettings) -> bool:
    return len(_cached(info, suites, settings)) == len(suites)


def _response_cached(backend: Backend | None, load: LoadOptions, info: ModelInfo, seed: int,
                     timings: dict[str, float]) -> CachedBackend:
    """``backend`` (or the model ``load`` describes, loaded on the first cache miss) behind
    the response cache (:mod:`ftguard.cache.responses`)."""
    from ftguard.cache.backend import CachedBackend
    from ftguard.cache.responses import ResponseCache

    def load_on_first_miss() -> Backend:
        t0 = time.perf_counter()
        loaded = load_backend(load)
        timings["model_load"] = round(time.perf_counter() - t0, 3)
        _seed(seed, loaded)
        return loaded

    return CachedBackend(backend if backend is not None else load_on_first_miss,
                         ResponseCache(), info)


def _for_suite(backend: Backend, suite: Suite) -> Backend:
    """lm_eval tasks drive the Hugging Face model themselves: they get the real backend, not
    the wrappers (lm-eval runs whole in every process); the bridge loads it if the response
    cache had not needed it yet, once its lm-eval task is built (a skipped task loads none)."""
    if not any(t.spec.kind == "lm_eval" for t in suite.tasks):
        return backend
    return unwrap(backend)


def _cached(info: ModelInfo, suites: list[Suite], settings: RunSettings) -> dict[str, SuiteResult]:
    from ftguard.cache import results as result_cache

    found = {}
    for suite in suites:
        hit = result_cache.get(info.fingerprint, suite, settings)
        if hit is not None:
            found[suite.name] = hit.model_copy(update={"path": display_path(suite.root)})
    return found


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


def _server_stats(backend: Backend | None) -> dict[str, object] | None:
    """Requests and retries of a server backend (``--backend openai``) under the wrappers;
    None when the response cache answered everything (the backend was never loaded, and
    :func:`unwrap` does not load it just to read its counts)."""
    client = getattr(unwrap(backend), "client", None) if backend is not None else None
    if client is not None and hasattr(client, "stats"):
        return dict(client.stats.as_dict())
    return None


def _seed(seed: int, backend: Backend) -> None:
    if backend.info.backend == "hf":
        import torch

        torch.manual_seed(seed)


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    return platform.processor() or platform.machine()
