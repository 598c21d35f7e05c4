"""Running a task's instances through a backend and scoring every sample."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ftguard.engine.answers import answer_requests, answers_per_item, plain_metrics, score_answers
from ftguard.engine.extract import apply_filters
from ftguard.engine.render import continuations, model_inputs
from ftguard.engine.settings import ItemProgress, Reporter, RunSettings
from ftguard.engine.slices import with_slices
from ftguard.engine.subsets import subset_for, subset_size
from ftguard.engine.variants import run_with_variants
from ftguard.errors import TaskSkipped
from ftguard.health import generation_health
from ftguard.metrics import aggregate, get_metric
from ftguard.metrics.batch import identities, score_batch, sources
from ftguard.metrics.instruction_following import followed
from ftguard.metrics.recompute import recomputed_value
from ftguard.metrics.refusal_margin import OPENERS, margin_scores, opener_pairs
from ftguard.metrics.registry import expand_metric_names
from ftguard.metrics.score import score_choice, score_classify, score_generate, score_perplexity
from ftguard.models.base import (
    Backend,
    LoglikelihoodRequest,
    Progress,
    RollingRequest,
    truncated_flag,
)
from ftguard.record import MetricResult, SampleResult, SkippedTask, SuiteResult, TaskResult
from ftguard.record.instructions import by_type, instruction_results
from ftguard.suite import Instance, Suite, Task


def run_suite(suite: Suite, backend: Backend, settings: RunSettings, reporter: Reporter,
              timings: dict[str, float]) -> SuiteResult:
    tasks, skipped = [], []
    for task in suite.tasks:
        label = f"{suite.name}/{task.name}"
        start = time.perf_counter()
        own = subset_for(settings.subset, settings.task_subset, suite.name, task.spec.name)
        try:
            results = run_with_variants(
                task, replace(settings, subset=own, task_subset={}), label,
                lambda t, s, name: run_task(t, backend, s, reporter, name), _aggregate)
            tasks += [with_slices(r, task, settings, _aggregate) for r in results]  # slices
        except TaskSkipped as why:  # cannot run on this machine: recorded, never a pass
            skipped.append(SkippedTask(name=task.name, kind=task.spec.kind, reason=why.reason,
                                       metrics=list(why.metrics or task.lm_eval_metrics)))
        timings[label] = round(time.perf_counter() - start, 3)
    return SuiteResult(name=suite.name, version=suite.spec.version, hash=suite.hash,
                       role=suite.spec.role, path=display_path(suite.root),
                       gate=list(suite.spec.gate or []), tasks=tasks, skipped=skipped)


def display_path(path: Path) -> str:
    """The suite folder relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def run_task(task: Task, backend: Backend, settings: RunSettings, reporter: Reporter,
             label: str) -> TaskResult:
    spec = task.spec
    if spec.kind == "lm_eval":  # lm-eval runs it on this backend's model
        from ftguard.lmeval.bridge import run_lmeval_task

        return run_lmeval_task(task, backend, settings, reporter, label)
    instances = _select(task, settings)
    contexts = model_inputs(instances, backend)
    runner = {"choice": _run_choice, "classify": _run_choice, "generate": _run_generate,
              "perplexity": _run_perplexity}[spec.kind]
    samples = runner(task, instances, contexts, backend, reporter, label)
    names = expand_metric_names(spec.kind, spec.metric_names, spec.labels)
    # metrics scored over the whole task: user metrics, evaluate modules, BERTScore
    score_batch(label, names, samples, [i.fields or {} for i in instances],
                spec.metric_args or {})
    metrics = {name: _aggregate(name, samples, settings) for name in names}
    health = (generation_health(samples, spec.generation.max_new_tokens)
              if spec.kind == "generate" else None)
    return TaskResult(name=spec.name, kind=spec.kind, metrics=metrics, samples=samples,
                      settings=_task_settings(task), health=health,
                      signatures={**_signatures(names, samples),
                                  **identities(names, spec.metric_args or {})},
                      metric_sources=sources(names, spec.metric_args or {}),
                      instruction_types=by_type(s.instructions for s in samples))


def _select(task: Task, settings: RunSettings) -> Sequence[Instance]:
    instances = task.instances[:settings.limit] if settings.limit else task.instances
    size = subset_size(settings.subset, len(instances))
    if size >= len(instances):
        return instances
    import zlib

    # the first items of one seeded order: a smaller subset lies inside a larger one, so
    # answers cached for the larger serve the smaller
    rng = np.random.default_rng([settings.seed, zlib.crc32(task.spec.name.encode())])
    keep = np.sort(rng.permutation(len(instances))[:size])
    return [instances[int(i)] for i in keep]


def _run_choice(task: Task, instances: Sequence[Instance], contexts: list[str],
                backend: Backend, reporter: Reporter, label: str) -> list[SampleResult]:
    spec = task.spec
    requests = [LoglikelihoodRequest(ctx, continuation)
                for ctx, inst in zip(contexts, instances)
                for continuation in continuations(spec, inst)]
    results = _with_progress(reporter, label, [len(i.choices) for i in instances],
                             lambda p: backend.loglikelihood(requests, p))
    samples = []
    offset = 0
    for inst, ctx in zip(instances, contexts):
        lls = [r.logprob for r in results[offset:offset + len(inst.choices)]]
        offset += len(inst.choices)
        assert inst.gold is not None
        scorer = score_choice if spec.kind == "choice" else score_classify
        scores, stats = scorer(lls, list(inst.choices), inst.gold, spec.metric_names)
        samples.append(SampleResult(id=inst.id, prompt_hash=inst.prompt_hash,
                                    prediction=inst.choices[int(np.argmax(lls))],
                                    target=inst.choices[inst.gold], scores=scores, stats=stats,
                                    loglikelihoods=lls, gold=inst.gold, prompt=inst.prompt,
                                    context=ctx))
    return samples


def _run_generate(task: Task, instances: Sequence[Instance], contexts: list[str],
                  backend: Backend, reporter: Reporter, label: str) -> list[SampleResult]:
    gen, names = task.spec.generation, task.spec.metric_names
    requests = answer_requests(contexts, gen)  # n per item when sampling (engine/answers.py)
    n = answers_per_item(gen)
    answers = _with_progress(reporter, label, [n] * len(contexts),
                             lambda p: backend.generate(requests, p))
    margins = _opener_margins(task, contexts, backend, reporter, label)
    samples = []
    for i, (inst, ctx, margin) in enumerate(zip(instances, contexts, margins)):
        refs, text = list(inst.references), answers[i * n]
        # what is scored (``extract:``): each answer's extracted text, the first one's raw kept
        mine = [apply_filters(str(a), task.spec.extract) for a in answers[i * n:(i + 1) * n]]
        answer = mine[0]
        done = followed(answer, inst.instructions) if inst.instructions else None
        scores, stats = score_generate(answer, refs, plain_metrics(names), done)
        scores.update(margin)
        scores.update(score_answers(names, mine, refs, inst.instructions))
        samples.append(SampleResult(id=inst.id, prompt_hash=inst.prompt_hash,
                                    prediction=answer, truncated=truncated_flag(text),
                                    raw_prediction=None if task.spec.extract is None
                                    else str(text),
                                    target=refs[0] if len(refs) == 1 else refs, scores=scores,
                                    stats=stats, prompt=inst.prompt, context=ctx,
                                    instructions=instruction_results(done),
                                    predictions=mine if n > 1 else None))
    return samples


def _opener_margins(task: Task, contexts: list[str], backend: Backend, reporter: Reporter,
                    label: str) -> list[dict[str, float]]:
    """Per-item ``refusal_margin`` / ``compliance_margin`` when the task asks for them: the
    openers scored after each generate context, in one loglikelihood call."""
    pairs = opener_pairs(contexts, task.spec.metric_names)
    if pairs:
        asks = [LoglikelihoodRequest(ctx, opener) for ctx, opener in pairs]
        results = _with_progress(reporter, f"{label} (openers)", [len(OPENERS)] * len(contexts),
                                 lambda p: backend.loglikelihood(asks, p))
        logprobs = [r.logprob for r in results]
    else:
        logprobs = []
    return margin_scores(logprobs, len(contexts), task.spec.metric_names)


def _run_perplexity(task: Task, instances: Sequence[Instance], contexts: list[str],
                    backend: Backend, reporter: Reporter, label: str) -> list[SampleResult]:
    requests = [RollingRequest(ctx, task.spec.max_length) for ctx in contexts]
    results = _with_progress(reporter, label, [1] * len(requests),
                             lambda p: backend.loglikelihood_rolling(requests, p))
    samples = []
    for inst, ctx, result in zip(instances, contexts, results):
        scores, stats = score_perplexity(result.nll, result.n_tokens, ctx, task.spec.metric_names)
        samples.append(SampleResult(id=inst.id, prompt_hash=inst.prompt_hash, prediction="",
                                    target="", scores=scores, stats=stats))
    return samples


def _with_progress(reporter: Reporter, label: str, per_item: list[int],
                   work: Callable[[Progress], list]):
    """``work`` with a Progress in requests, shown as items (``per_item``: requests of each
    item, :class:`~ftguard.engine.settings.ItemProgress`)."""
    progress = reporter.start(label, len(per_item))
    try:
        return work(ItemProgress(progress, per_item))
    finally:
        reporter.done(label)


def _aggregate(name: str, samples: list[SampleResult], settings: RunSettings) -> MetricResult:
    metric = get_metric(name)
    if metric.aggregation == "mean":
        value = aggregate(name, [s.scores[name] for s in samples], None, seed=settings.seed)
    elif metric.recompute is not None:  # an evaluate module's corpus value
        value = recomputed_value(metric, samples, seed=settings.seed,
                                 resamples=settings.resamples)
    else:
        stats = np.array([s.stats[name] for s in samples], dtype=np.float64)
        value = aggregate(name, None, stats, seed=settings.seed, resamples=settings.resamples)
    return MetricResult(value=value.value, ci_low=value.ci_low, ci_high=value.ci_high, n=value.n,
                        higher_is_better=value.higher_is_better, stderr=value.stderr,
                        aggregation=metric.aggregation, ci_method=value.method)


def _task_settings(task: Task) -> dict[str, object]:
    spec = task.spec
    settings: dict[str, object] = {"target_delimiter": spec.target_delimiter,
                                   "chat_template": spec.chat_template}
    if spec.few_shot:
        settings["few_shot"] = spec.few_shot.model_dump()
    if spec.kind == "generate":
        settings["generation"] = spec.generation.recorded()  # greedy: as before sampling
    if spec.extract is not None:
        settings["extract"] = [step.model_dump() for step in spec.extract]
    if spec.kind == "perplexity":
        settings["max_length"] = spec.max_length
    return settings


def _signatures(names: list[str], samples: list[SampleResult]) -> dict[str, str]:
    from ftguard.metrics.bleu_chrf import bleu_signature, chrf_signature

    counts = {len(s.target) if isinstance(s.target, list) else 1 for s in samples}
    refs = counts.pop() if len(counts) == 1 else -1  # sacrebleu writes a varying count "var"
    out = {}
    if "bleu" in names:
        out["bleu"] = bleu_signature(refs)
    if "chrf" in names:
        out["chrf"] = chrf_signature(refs)
    return out
