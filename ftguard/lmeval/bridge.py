"""lm-evaluation-harness tasks inside ftguard: run them on the loaded model, map their logs.

A suite task with ``kind: lm_eval`` is run by lm-eval itself (``simple_evaluate`` on an
``HFLM`` wrapping the model ftguard already loaded), and lm-eval's per-sample logs become
ftguard samples, so paired comparisons work on them as on ftguard's own tasks.
:mod:`ftguard.lmeval.importer` maps the files of ``lm_eval --log_samples`` the same way.

The mapping (:func:`task_result`):

- one sample per lm-eval document: ``id`` is lm-eval's ``doc_id``; ``prompt_hash`` hashes the
  request arguments, ``context`` is the context lm-eval sent (few-shot block and chat
  template included; none for rolling perplexity); multiple choice records the chosen and the
  gold choice's text and the per-choice log-likelihoods, generation the filtered output and
  the target.
- metrics carry lm-eval's reported value, named ``metric`` (``metric,filter`` for filters
  other than ``none``). When that value is the mean of numeric per-sample values (acc,
  acc_norm, exact_match...), those values become the samples' ``scores`` and the interval is
  ftguard's: Wilson when they are all 0/1, Student-t otherwise. Other metrics (corpus-style
  BLEU, perplexity, F1 over pairs...) keep the value only: ``ci_low == ci_high == value``,
  ``aggregation="corpus"``, ``ci_method="none"`` and no per-sample scores.

lm-eval is imported only when a task runs: ``import ftguard`` stays light.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ftguard.errors import DataError, UsageError, first_line
from ftguard.lmeval.tasks import metric_name, quiet_lmeval
from ftguard.metrics.aggregate import mean_interval
from ftguard.record import MetricResult, SampleResult, TaskResult

if TYPE_CHECKING:
    from ftguard.engine.settings import Reporter, RunSettings
    from ftguard.models.base import Backend
    from ftguard.suite import Task

# -- running a suite task -----------------------------------------------------------------------

def run_lmeval_task(task: Task, backend: Backend, settings: RunSettings, reporter: Reporter,
                    label: str) -> TaskResult:
    """Run ``task`` (kind ``lm_eval``) through lm-eval on ``backend``'s model. The lm-eval task
    is built (its dataset loaded) before the model is: one that cannot be built here raises
    :class:`~ftguard.errors.TaskSkipped` without loading the model."""
    spec = task.spec
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise UsageError(f"task {label} is an lm_eval task, but lm-eval is not installed.",
                         hint="pip install lm-eval") from None
    from ftguard.lmeval.tasks import build_task, find_task
    from ftguard.models.wrappers import unwrap

    assert spec.lm_eval_task is not None  # the schema requires it
    try:
        yaml_path = task.lm_eval_yaml or find_task(spec.lm_eval_task, task.lm_eval_include)
        lm_task, manager = build_task(spec.lm_eval_task, yaml_path,
                                      mean=spec.lm_eval_aggregation == "mean")
    except DataError as exc:
        raise DataError(f"task {label}: {exc.message}", hint=exc.hint) from exc
    except (OSError, ValueError, KeyError) as exc:  # local data missing, bad task YAML, ...
        raise DataError(f"task {label}: lm-eval could not build task {spec.lm_eval_task!r} "
                        f"({type(exc).__name__}: {first_line(exc)}).",
                        hint="Local tasks need their data files; run with --debug for "
                             "lm-eval's traceback.") from exc
    model, tokenizer, batch_size = _hf_parts(unwrap(backend, load=True), label)
    with quiet_lmeval():
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        reporter.start(label, 1)  # lm-eval draws its own bars; this one completes at the end
        try:
            out = lm_eval.simple_evaluate(
                model=lm, tasks=[lm_task], task_manager=manager,
                num_fewshot=spec.num_fewshot, limit=settings.limit, log_samples=True,
                apply_chat_template=spec.chat_template, bootstrap_iters=0,
                random_seed=0, numpy_random_seed=settings.seed, torch_random_seed=settings.seed,
                fewshot_random_seed=settings.seed)
        except (OSError, ValueError) as exc:  # bad task YAML, ...
            raise DataError(f"task {label}: lm-eval could not run task {spec.lm_eval_task!r} "
                            f"({type(exc).__name__}: {first_line(exc)}).",
                            hint="Run with --debug for lm-eval's traceback.") from exc
        finally:
            reporter.done(label)
    assert out is not None  # single process: rank 0 always gets results
    samples = out.get("samples") or {}
    if spec.lm_eval_task not in samples:
        raise DataError(f"task {label}: lm-eval returned no samples for {spec.lm_eval_task!r} "
                        f"(got {', '.join(samples) or 'none'}).")
    logged = [_plain(s) for s in samples[spec.lm_eval_task]]
    result = task_result(spec.name, spec.lm_eval_task, logged, out, source=label)
    result.settings.update({"seed": settings.seed, "limit": settings.limit,
                            "chat_template": spec.chat_template,
                            **({"aggregation": "mean"} if spec.lm_eval_aggregation else {})})
    return result


def _hf_parts(backend: Backend, label: str) -> tuple[Any, Any, int]:
    from ftguard.models.hf import HFBackend

    if not isinstance(backend, HFBackend):
        raise UsageError(f"task {label} is an lm_eval task: it runs lm-eval on the loaded "
                         f"Hugging Face model and needs the hf backend, not "
                         f"'{backend.info.backend}'.",
                         hint="Evaluate it with {--model} set to a Hugging Face folder or hub id.",
                         option="model")
    model = backend.model
    # A PEFT model's base model carries the injected adapter layers; HFLM wants that one.
    model = getattr(model, "get_base_model", lambda: model)()
    return model, backend.tokenizer, int(backend.batch_size)


def _plain(sample: dict[str, Any]) -> dict[str, Any]:
    """An in-memory sample log as JSON types (tuples become lists, numpy numbers Python ones),
    as lm-eval writes it to ``samples_*.jsonl`` apart from its stringified fields."""
    keep = {k: v for k, v in sample.items() if k != "doc"}
    return json.loads(json.dumps(keep, default=_jsonable, ensure_ascii=False))


def _jsonable(value: Any) -> Any:
    """lm-eval's ``handle_non_serializable``."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, set):
        return list(value)
    return str(value)


# -- mapping lm-eval's results and sample logs (shared with ftguard.lmeval.importer) -------------

def task_result(name: str, lm_task: str, samples: list[dict[str, Any]], results: dict[str, Any],
                *, source: str) -> TaskResult:
    """Map lm-eval's sample logs of ``lm_task`` (in memory or read from ``samples_*.jsonl``)
    and its ``results`` dict to a TaskResult called ``name``; ``source`` names where they came
    from in error messages."""
    if not samples:
        raise DataError(f"{source}: lm-eval logged no samples for task {lm_task!r}.")
    config = (results.get("configs") or {}).get(lm_task) or {}
    output_type = str(config.get("output_type") or "")
    reported = _reported(results, lm_task, source)
    documents = _documents(samples)
    out_samples = [_sample(doc_id, logs, config, output_type)
                   for doc_id, logs in documents.items()]
    directions = (results.get("higher_is_better") or {}).get(lm_task) or {}
    metrics: dict[str, MetricResult] = {}
    for (metric, flt), value in reported.items():
        key = metric_name(metric, flt)
        per_sample = [logs.get(flt, {}).get(metric) for logs in documents.values()]
        higher = _higher_is_better(metric, directions)
        scores = _mean_scores(per_sample, value)
        if scores is None:
            metrics[key] = MetricResult(value=value, ci_low=value, ci_high=value,
                                        n=len(documents), higher_is_better=higher,
                                        aggregation="corpus", ci_method="none")
            continue
        for sample, score in zip(out_samples, scores):
            sample.scores[key] = score
        metrics[key] = _mean_result(metric, value, scores, higher)
    settings = {"lm_eval_task": lm_task, "output_type": output_type,
                "num_fewshot": (results.get("n-shot") or {}).get(lm_task),
                "version": (results.get("versions") or {}).get(lm_task),
                "filters": sorted({flt for _, flt in reported}),
                "config_hash": config_hash(config),
                "task_hash": samples_hash(samples),
                "lm_eval_version": results.get("lm_eval_version")}
    return TaskResult(name=name, kind="lm_eval", metrics=metrics, samples=out_samples,
                      settings={k: v for k, v in settings.items() if v is not None})


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of an lm-eval task config without its ``metadata`` (which carries the model's
    arguments, so base and tuned runs of the same task would differ)."""
    payload = {k: v for k, v in config.items() if k != "metadata"}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def samples_hash(samples: list[dict[str, Any]]) -> str | None:
    """lm-eval's ``task_hashes`` entry: sha256 over each logged sample's doc, prompt and target
    hashes, in log order (None when the logs lack them)."""
    try:
        joined = "".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in samples)
    except (KeyError, TypeError):
        return None
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def _reported(results: dict[str, Any], lm_task: str, source: str) -> dict[tuple[str, str], float]:
    entry = (results.get("results") or {}).get(lm_task)
    if not isinstance(entry, dict):
        raise DataError(f"{source}: lm-eval's results have no entry for task {lm_task!r}.")
    out: dict[tuple[str, str], float] = {}
    for key, value in entry.items():
        if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # alias, name, sample_len, "N/A" stderrs
        metric, flt = key.split(",", 1)
        if not metric.endswith("_stderr") and math.isfinite(value):
            out[(metric, flt)] = float(value)
    return out


def _documents(samples: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Sample logs grouped by document, then by filter (lm-eval logs one per doc and filter)."""
    documents: dict[str, dict[str, dict[str, Any]]] = {}
    for log in samples:
        documents.setdefault(str(log["doc_id"]), {})[str(log.get("filter", "none"))] = log
    return documents


def _sample(doc_id: str, logs: dict[str, dict[str, Any]], config: dict[str, Any],
            output_type: str) -> SampleResult:
    log = logs.get("none") or next(iter(logs.values()))
    arguments = _arguments(log.get("arguments"))
    prompt_hash = hashlib.sha256(json.dumps(arguments, sort_keys=True, ensure_ascii=False,
                                            default=str).encode("utf-8")).hexdigest()[:16]
    target: Any = _literal(log.get("target"))
    prediction = ""
    lls = _loglikelihoods(log.get("filtered_resps"))
    if output_type == "multiple_choice":
        choices = _choices(arguments, str(config.get("target_delimiter", " ")), log)
        chosen = int(np.argmax(lls)) if lls and len(lls) == len(choices) else None
        prediction = choices[chosen] if chosen is not None else ""
        target = _gold(target, choices, chosen, log.get("acc"))
    elif output_type == "generate_until":
        resps = log.get("filtered_resps") or [""]
        prediction = resps[0] if isinstance(resps[0], str) else json.dumps(resps[0])
    elif output_type == "loglikelihood_rolling":
        target = ""  # the scored document itself; not repeated in the record
    if not isinstance(target, (str, list)):
        target = "" if target is None else str(target)
    if isinstance(target, list):
        target = [str(t) for t in target]
    sent = arguments[0][0] if arguments and arguments[0] else None
    return SampleResult(id=doc_id, prompt_hash=prompt_hash, prediction=prediction, target=target,
                        loglikelihoods=lls if output_type != "generate_until" else None,
                        context=str(sent) if sent is not None
                        and output_type != "loglikelihood_rolling" else None)


def _arguments(raw: Any) -> list[list[Any]]:
    """Request arguments as a list of lists: ``[(ctx, cont), ...]`` in memory and
    ``{"gen_args_0": {"arg_0": ctx, "arg_1": cont}}`` in ``samples_*.jsonl`` agree."""
    if isinstance(raw, dict):  # insertion order is lm-eval's request order
        return [list(a.values()) if isinstance(a, dict) else [a] for a in raw.values()]
    if isinstance(raw, list):
        return [list(a) if isinstance(a, (list, tuple)) else [a] for a in raw]
    return []


def _loglikelihoods(filtered: Any) -> list[float] | None:
    """Per-request log-likelihoods from ``filtered_resps`` (``[ll, is_greedy]`` pairs, or bare
    numbers for rolling log-likelihoods; numbers are strings in ``samples_*.jsonl``)."""
    if not isinstance(filtered, list) or not filtered:
        return None
    out = []
    for resp in filtered:
        value = resp[0] if isinstance(resp, list) and resp else resp
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            return None
    return out


def _choices(arguments: list[list[Any]], delimiter: str, log: dict[str, Any]) -> list[str]:
    conts = [str(a[1]) if len(a) > 1 else "" for a in arguments]
    if "acc_mutual_info" in (log.get("metrics") or []):
        conts = conts[:len(conts) // 2]  # the second half are unconditional requests
    return [c[len(delimiter):] if delimiter and c.startswith(delimiter) else c for c in conts]


def _literal(value: Any) -> Any:
    """``samples_*.jsonl`` stores ``str(target)``: turn a stringified list back into one."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return parsed if isinstance(parsed, list) else value
    return value


def _gold(target: Any, choices: list[str], chosen: int | None, acc: Any) -> Any:
    """The gold choice text(s). lm-eval's target is an index or a choice text; written to
    ``samples_*.jsonl`` an index becomes a digit string, which ``acc`` disambiguates."""
    if isinstance(target, list):
        return [_gold(t, choices, chosen, None) for t in target]
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        return target
    if isinstance(target, int):
        return choices[target] if 0 <= target < len(choices) else str(target)
    index = int(target) if target.strip().isdigit() else None
    by_index = choices[index] if index is not None and index < len(choices) else None
    if by_index is None or target not in choices:
        return by_index if by_index is not None else target
    if chosen is not None and isinstance(acc, (int, float)):  # both readings possible
        hit = bool(acc)
        if (choices[chosen] == by_index) != hit and (choices[chosen] == target) == hit:
            return target
    return by_index


def _higher_is_better(metric: str, directions: dict[str, Any]) -> bool:
    if isinstance(directions.get(metric), bool):
        return bool(directions[metric])
    from ftguard.metrics.registry import METRICS

    return METRICS[metric].higher_is_better if metric in METRICS else True


def _mean_scores(values: list[Any], reported: float) -> list[float] | None:
    """Per-sample values when ``reported`` is their mean, else None (a corpus-style metric)."""
    scores = []
    for value in values:
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        scores.append(float(value))
    if not scores:
        return None
    mean = math.fsum(scores) / len(scores)
    return scores if math.isclose(mean, reported, rel_tol=1e-9, abs_tol=1e-12) else None


def _mean_result(metric: str, value: float, scores: list[float], higher: bool) -> MetricResult:
    from ftguard.metrics.registry import METRICS

    x = np.asarray(scores, dtype=np.float64)
    bounds = METRICS[metric].bounds if metric in METRICS else None
    if bounds is not None and not (bounds[0] <= x.min() and x.max() <= bounds[1]):
        bounds = None  # lm-eval's metric of that name is not on ftguard's scale
    low, high, stderr, method = mean_interval(x, binary=True, bounds=bounds)
    return MetricResult(value=value, ci_low=low, ci_high=high, n=int(x.size),
                        higher_is_better=higher, stderr=stderr, aggregation="mean",
                        ci_method=method)

