"""Importing ``lm_eval --output_path OUT --log_samples`` results as a RunRecord.

lm-eval writes ``results_<date>.json`` and one ``samples_<task>_<date>.jsonl`` per task into
``OUT/<model>/``. :func:`import_lmeval` reads them and maps every task's samples exactly as
a ``kind: lm_eval`` suite task does (:func:`ftguard.lmeval.bridge.task_result`), so records
from either path compare with ``ftguard compare``. Group aggregates are not imported: only
the tasks that have samples. lm-eval itself is not imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftguard.errors import DataError, RecordError, UsageError
from ftguard.json_file import read_json
from ftguard.lmeval.bridge import config_hash, samples_hash, task_result
from ftguard.record import ModelInfo, RunRecord, SuiteResult
from ftguard.suite.jsonl import lines, parse_line
from ftguard.version import ftguard_version

_MODEL_KEYS = ("model", "model_args", "model_num_parameters", "model_dtype", "model_revision",
               "model_sha")
"""Keys of the results' ``config`` that identify the model (hashed into the fingerprint)."""


def import_lmeval(results: str | Path, samples: Sequence[str | Path] = (), *,
                  suite_name: str = "lm-eval", role: str = "general") -> RunRecord:
    """A RunRecord of one lm-eval run: ``results`` is its ``results_*.json`` or the folder
    holding it; ``samples`` the ``samples_<task>_*.jsonl`` files (default: found beside it)."""
    if role not in ("target", "general"):
        raise UsageError(f"--role {role}: must be 'target' or 'general'.")
    results_path = find_results(Path(results))
    data = read_results(results_path)
    configs = data.get("configs")
    if not isinstance(configs, dict) or not configs:
        raise RecordError(f"{results_path}: an lm-eval results file without task 'configs'; "
                          "ftguard needs a file written by lm_eval --output_path ... "
                          "--log_samples (lm-eval 0.4 or later).")
    files = samples_files(results_path, list(configs), [Path(s) for s in samples])
    tasks = []
    for name in configs:
        logged = read_samples(files[name])
        _check_samples(files[name], name, logged, data)
        tasks.append(task_result(name, name, logged, data, source=str(files[name])))
    suite = SuiteResult(name=suite_name, version=f"lm-eval-{data.get('lm_eval_version', '?')}",
                        hash=_suite_hash(data, list(configs)), role=role,
                        path=str(results_path.parent), tasks=tasks)
    return RunRecord(ftguard_version=ftguard_version(), created=_created(data), model=_model(data),
                     config=_run_config(data), environment=_environment(data, results_path),
                     suites=[suite], timings=_timings(data))


def find_results(path: Path) -> Path:
    """``path`` itself, or the newest ``results_*.json`` in the folder ``path``."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise RecordError(f"{path}: no such file or folder.",
                          hint="Give the results_*.json written by lm_eval --output_path, "
                               "or its folder.")
    found = sorted(path.rglob("results_*.json"))
    if not found:
        raise RecordError(f"{path}: no results_*.json below this folder.",
                          hint="Run lm_eval with --output_path FOLDER --log_samples.")
    folders = sorted({p.parent for p in found})
    if len(folders) > 1:
        raise RecordError(f"{path}: holds lm-eval results of several models "
                          f"({', '.join(str(f) for f in folders)}); import one at a time.",
                          hint="Give one of these folders or a results_*.json file.")
    return found[-1]  # names end in an ISO date: the last one is the newest


def read_results(path: Path) -> dict[str, Any]:
    """The parsed results file; RecordError naming the file when it is not one."""
    hint = "Give the results_*.json written by lm_eval --output_path."
    data = read_json(path, RecordError, what="lm-eval results file", hint=hint)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise RecordError(f"{path}: not an lm-eval results file (no 'results' mapping).",
                          hint=hint)
    return data


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The sample logs of one ``samples_*.jsonl``; DataError naming the file and line."""
    hint = "Give the samples_<task>_*.jsonl files written by lm_eval --log_samples."
    if not path.is_file():
        raise DataError(f"{path}: {'no such file' if not path.exists() else 'not a regular file'}"
                        "; give an lm-eval samples file.", hint=hint)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}).") from None
    logs = []
    with handle:
        for number, raw in lines(handle):
            log = parse_line(raw, number == 1)
            if log is None:
                continue
            if isinstance(log, str):
                raise DataError(f"{path}:{number}: {log}", hint=hint)
            if "doc_id" not in log or not isinstance(log.get("metrics"), list):
                raise DataError(f"{path}:{number}: not an lm-eval sample log (needs 'doc_id' "
                                "and 'metrics').", hint=hint)
            logs.append(log)
    if not logs:
        raise DataError(f"{path}: holds no samples.")
    return logs


def samples_files(results_path: Path, tasks: list[str], explicit: list[Path]) -> dict[str, Path]:
    """The samples file of every task: given explicitly, or ``samples_<task>_<date>.jsonl``
    beside the results file (same date as ``results_<date>.json``)."""
    found: dict[str, Path] = {}
    for path in explicit:
        if not path.is_file():
            raise RecordError(f"{path}: no such samples file.")
        task = _task_of(path.name, tasks)
        if task is None:
            raise RecordError(f"{path}: cannot tell which task this samples file belongs to; "
                              f"expected samples_<task>_<date>.jsonl for one of: "
                              f"{', '.join(tasks)}.")
        found[task] = path
    date = results_path.stem[results_path.stem.rfind("_") + 1:]
    for task in tasks:
        if task in found:
            continue
        beside = results_path.parent / f"samples_{task}_{date}.jsonl"
        if not beside.is_file():
            raise RecordError(f"{results_path}: no samples for task {task!r} (looked for "
                              f"{beside}); ftguard needs per-sample results.",
                              hint="Run lm_eval with --log_samples, or pass the samples "
                                   "file after the results file.")
        found[task] = beside
    return found


def _task_of(filename: str, tasks: list[str]) -> str | None:
    if not (filename.startswith("samples_") and filename.endswith(".jsonl")):
        return None
    middle = filename[len("samples_"):filename.rfind("_")]  # lm-eval's get_file_task_name
    return middle if middle in tasks else None


def _check_samples(path: Path, task: str, logged: list[dict[str, Any]],
                   data: dict[str, Any]) -> None:
    """Refuse samples of another run: lm-eval's task hash covers every logged sample."""
    expected = (data.get("task_hashes") or {}).get(task)
    actual = samples_hash(logged)
    if expected and actual and expected != actual:
        raise DataError(f"{path}: these samples do not belong to the results file (lm-eval's "
                        f"task hash of {task!r} differs); were they written by another run?",
                        hint="Pass the samples file with the same date as results_<date>.json.")
    effective = ((data.get("n-samples") or {}).get(task) or {}).get("effective")
    docs = len({str(s["doc_id"]) for s in logged})
    if isinstance(effective, int) and effective != docs:
        raise DataError(f"{path}: {docs} documents, but the results file reports {effective} "
                        f"for task {task!r}; were they written by another run?")


def _model_args(config: dict[str, Any]) -> dict[str, Any]:
    args = config.get("model_args")
    if isinstance(args, dict):
        return args
    if isinstance(args, str):  # "pretrained=path,dtype=float32"
        pairs = (part.split("=", 1) for part in args.split(",") if "=" in part)
        return {k.strip(): v.strip() for k, v in pairs}
    return {}


def _model(data: dict[str, Any]) -> ModelInfo:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    args = _model_args(config)
    spec = (data.get("model_name") or args.get("pretrained") or args.get("model")
            or config.get("model") or "unknown")
    identity = {k: config.get(k) for k in _MODEL_KEYS}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    dtype = str(args.get("dtype") or config.get("model_dtype") or "unknown")
    return ModelInfo(spec=str(spec), fingerprint=f"lmeval:{digest}",
                     dtype=dtype.removeprefix("torch."), backend="lm-eval",
                     adapter=str(args["peft"]) if args.get("peft") else None,
                     device=str(config.get("device") or "unknown"))


def _suite_hash(data: dict[str, Any], tasks: list[str]) -> str:
    payload = {t: {"config": config_hash(data["configs"][t]),
                   "version": (data.get("versions") or {}).get(t),
                   "n-shot": (data.get("n-shot") or {}).get(t)} for t in tasks}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _run_config(data: dict[str, Any]) -> dict[str, Any]:
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    keys = ("batch_size", "device", "limit", "gen_kwargs", "random_seed", "numpy_seed",
            "torch_seed", "fewshot_seed", "bootstrap_iters")
    out: dict[str, Any] = {k: config.get(k) for k in keys if k in config}
    out["seed"] = config.get("numpy_seed")
    out["dtype"] = _model(data).dtype
    out["chat_template"] = data.get("chat_template_sha")
    out["system_instruction"] = data.get("system_instruction_sha")
    out["fewshot_as_multiturn"] = data.get("fewshot_as_multiturn")
    return out


def _environment(data: dict[str, Any], path: Path) -> dict[str, Any]:
    return {"source": "lm-eval", "imported_from": str(path),
            "lm_eval_version": data.get("lm_eval_version"),
            "transformers_version": data.get("transformers_version"),
            "git_revision": data.get("git_hash"), "device": (data.get("config") or {}).get("device")}


def _timings(data: dict[str, Any]) -> dict[str, float]:
    try:
        return {"total": round(float(data["total_evaluation_time_seconds"]), 3)}
    except (KeyError, TypeError, ValueError):
        return {}


def _created(data: dict[str, Any]) -> str:
    date = data.get("date")
    if isinstance(date, (int, float)):
        return datetime.fromtimestamp(date, timezone.utc).isoformat(timespec="seconds")
    return ""
