"""``ftguard demo``: the whole story on the embedded model, end to end, in minutes on a CPU.

1. resolve the embedded SmolLM2-135M-Instruct (converted once, then reused);
2. evaluate the base model on the shipped ``legal`` (target) and ``general`` suites;
3. fine-tune it on ``suites/legal/train.jsonl`` (optionally mixed with the general replay
   set), evaluating a smaller sample of both suites at checkpoints;
4. evaluate the chosen checkpoint on both suites;
5. compare base and tuned item by item under the gate, write ``OUT/comparison.json`` and
   the HTML report;
6. tell the story (:mod:`ftguard.demo_story`).

Evaluations use the response and result caches, so a second run re-evaluates nothing; a
finished fine-tune with the same settings is reused, an interrupted one resumes. Every file
is written atomically, so Ctrl-C at any stage leaves the previous state intact. The shipped
suites are package data (ftguard/suites), so the demo runs from any working directory; relative
output paths are relative to the working directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftguard.errors import UsageError

if TYPE_CHECKING:
    from ftguard.record import Comparison, RunRecord
    from ftguard.suite import Suite
    from ftguard.train.config import TrainConfig
    from ftguard.train.record import TrainRecord


@dataclass(frozen=True)
class DemoPlan:
    """How much of everything the demo does (chosen to fit its time budget)."""

    subset: float
    """Fraction of the generation and perplexity tasks evaluated on the base and on the
    tuned model."""
    checkpoint_subset: float | None
    """Fraction evaluated at checkpoints during training (inside ``subset``, so the base's
    answers come from the cache); None: no evaluation during training."""
    max_steps: int
    eval_every: int | None
    lr: float
    batch_size: int = 4
    max_length: int = 384
    lora_r: int = 16
    full_kinds: tuple[str, ...] = ("choice", "classify")
    """Task kinds evaluated in full on the base and the tuned model: they cost one forward
    pass per item (clause_type's 200 items take 30 s on 2 cores, plain_language's 80 take 70
    s), and a paired test needs the items to see a fine-tune's real gain."""
    task_items: tuple[tuple[str, int], ...] = ()
    """``(suite/task, N)``: tasks evaluated on N items instead of in full or ``subset`` (when
    the task is evaluated at all): those whose variants multiply their cost by four
    (doctrine_mc, world_knowledge), and the behaviour tasks whose answers are long or many
    (instruction following writes up to 192 tokens; each safety item also scores ten
    openers)."""
    checkpoint_items: tuple[tuple[str, int], ...] = ()
    """``(suite/task, N)`` overriding ``checkpoint_subset`` at checkpoints."""
    skip_tasks: tuple[str, ...] = ()
    """``suite/task`` not evaluated at all (instruction following's 192-token answers cost
    the quick demo 20 s per evaluation even on one item)."""


FULL = DemoPlan(subset=0.12, checkpoint_subset=0.03, max_steps=16, eval_every=16, lr=1.5e-3,
                max_length=256, full_kinds=("classify",),
                task_items=(("legal/doctrine_mc", 40), ("general/world_knowledge", 60),
                            ("general/commonsense", 110), ("general/instructions", 8),
                            ("safety/harmful", 20), ("safety/benign", 20)),
                checkpoint_items=(("general/instructions", 2),))
"""About 10-13 minutes on a 2-core CPU the first time (measured 10.1 with the model already
converted: base eval 3.3, fine-tune with its checkpoint evaluation 2.9, tuned eval 3.8; 12.6
from an empty ``$FTGUARD_HOME``)."""
QUICK = DemoPlan(subset=0.06, checkpoint_subset=None, max_steps=8, eval_every=None, lr=2e-3,
                 batch_size=2, max_length=256, full_kinds=(),
                 task_items=(("safety/harmful", 6), ("safety/benign", 6)),
                 skip_tasks=("general/instructions",))
"""A smoke run of every stage, under 4 minutes on a 2-core CPU (measured 3.5 from an empty
``$FTGUARD_HOME``, the model's conversion included: base eval 1.2, fine-tune 0.6, tuned eval
1.2)."""

FINISHED = ("completed", "stopped_early")
"""Training statuses whose exported checkpoint the demo uses."""

REPLAY_RATIO = 0.5
"""Share of general replay examples in the training mix with ``--replay``."""


@dataclass
class DemoOptions:
    quick: bool = False
    method: str = "lora"
    replay: bool = False
    out: Path = Path("runs/demo")
    report: Path = Path("reports/demo.html")
    batch_size: int | None = None
    """Evaluation batch size (None = automatic)."""
    suites: Path | None = None
    """Folder holding ``legal/`` and ``general/`` (default: the shipped suites)."""
    model: str | None = None
    """Base model (default: the embedded SmolLM2; tests use a tiny one)."""
    tasks: tuple[str, ...] = ()
    """Evaluate only these tasks of legal and general (``--tasks``; checkpoint evaluations
    during the fine-tune still sample every task)."""
    custom_plan: DemoPlan | None = None
    """Overrides FULL / QUICK (tests)."""

    @property
    def plan(self) -> DemoPlan:
        return self.custom_plan or (QUICK if self.quick else FULL)


@dataclass
class DemoResult:
    base: RunRecord
    tuned: RunRecord
    comparison: Comparison
    train: TrainRecord
    paths: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)


Say = Callable[[str], None]


def run_demo(options: DemoOptions, *, say: Say = print,
             reporter: Callable[[], Any] | None = None) -> DemoResult:
    """Run every stage; ``reporter()`` gives a context manager yielding an engine Reporter
    (a progress bar) for each evaluation."""
    from ftguard.models.embedded import EMBEDDED_NAME, embedded_model_dir

    plan = options.plan
    suites = _suites(options.suites)
    out = options.out
    seconds: dict[str, float] = {}
    stages = 5
    started = time.perf_counter()

    from ftguard.api import load_suites
    from ftguard.engine.tasks import narrowed, select_tasks

    loaded = select_tasks(load_suites(list(suites.values())),  # once for base and tuned
                          options.tasks)  # checked before the model is fetched
    where = ", ".join(narrowed(loaded) or [s.name for s in loaded])
    skipped = [f"{s.name}/{t.name}" for s in loaded for t in s.tasks
               if f"{s.name}/{t.name}" in plan.skip_tasks]
    if skipped:  # the plan leaves them out: the remaining tasks are the selection
        options = replace(options, tasks=tuple(
            f"{s.name}/{t.name}" for s in loaded for t in s.tasks
            if f"{s.name}/{t.name}" not in skipped))
        loaded = select_tasks(loaded, options.tasks)
        where += f" (without {', '.join(skipped)})"
    if options.model is None:
        say(f"[1/{stages}] model: {EMBEDDED_NAME} (embedded, float32 on CPU)")
        embedded_model_dir(notify=say)
    else:
        say(f"[1/{stages}] model: {options.model}")
    seconds["model"] = time.perf_counter() - started

    samples = _task_subset(loaded, plan)
    sample = _sample_words(samples, plan)
    say(f"[2/{stages}] evaluating the base model on {where} ({sample}; cached after the "
        "first run)")
    t = time.perf_counter()
    base = _evaluate(loaded, None, out / "base.json", options, samples, reporter)
    seconds["base_eval"] = time.perf_counter() - t

    what = f"{options.method} on suites/legal/train.jsonl" + (
        f" mixed {1 - REPLAY_RATIO:.0%}/{REPLAY_RATIO:.0%} with suites/general/replay.jsonl"
        if options.replay else "")
    say(f"[3/{stages}] fine-tuning: {what}, {plan.max_steps} steps"
        + (f", {plan.checkpoint_subset:.0%} of both suites evaluated every "
           f"{plan.eval_every} steps" if plan.checkpoint_subset else ""))
    t = time.perf_counter()
    train, tuned_dir = _train(_train_config(options, suites), say)
    seconds["train"] = time.perf_counter() - t

    step = train.best.step if train.best else train.steps
    say(f"[4/{stages}] evaluating the fine-tuned model (step {step}, {tuned_dir}) on {where}")
    t = time.perf_counter()
    tuned = _evaluate(loaded, tuned_dir, out / "tuned.json", options, samples, reporter)
    seconds["tuned_eval"] = time.perf_counter() - t

    say(f"[5/{stages}] comparing base and tuned item by item")
    t = time.perf_counter()
    comparison = _compare(base, tuned)
    paths = _write(comparison, train, out, options.report)
    seconds["compare"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started
    return DemoResult(base, tuned, comparison, train, paths, seconds)


def shipped_suites() -> Path:
    """The folder of the suites shipped inside the package (:mod:`ftguard.suite.shipped`)."""
    from ftguard.suite.shipped import shipped_root
    from ftguard.suite.shipped import shipped_suites as by_name

    root, found = shipped_root(), by_name()
    if "legal" in found and "general" in found:
        return root
    raise UsageError(f"the shipped suites are not at {root} (legal/ and general/).",
                     hint="Reinstall ftguard (its suites ship inside the package), or pass "
                          "--suites DIR with legal/ and general/ in it.")


def _suites(folder: Path | None) -> dict[str, Path]:
    root = folder if folder is not None else shipped_suites()
    found = {name: root / name for name in ("legal", "general")}
    for name, path in found.items():
        if not (path / "suite.yaml").is_file():
            raise UsageError(f"--suites {root}: no {name}/suite.yaml in it.",
                             hint="Point --suites at a folder holding legal/ and general/.")
    if (root / "safety" / "suite.yaml").is_file():  # behaviour: evaluated, not trained on
        found["safety"] = root / "safety"
    return found


def _sample_words(samples: dict[str, float], plan: DemoPlan) -> str:
    """What the evaluations sample: ``scoring tasks in full, N items of ..., 25% of the
    others``."""
    parts = ["scoring tasks in full"] if 1.0 in samples.values() else []
    parts += [f"{int(n)} items of {name}" for name, n in samples.items() if n != 1.0]
    rest = f"{plan.subset:.0%} of " + ("the others" if parts else "every task")
    return ", ".join([*parts, rest])


def _task_subset(suites: list[Suite], plan: DemoPlan) -> dict[str, float]:
    """``suite/task: 1.0`` for the tasks of ``plan.full_kinds``, ``suite/task: N`` for those of
    ``plan.task_items`` (the rest use plan.subset), of the tasks in ``suites``."""
    items = dict(plan.task_items)
    found = {}
    for suite in suites:
        for task in suite.tasks:
            name = f"{suite.name}/{task.spec.name}"
            if name in items:
                found[name] = items[name]
            elif task.spec.kind in plan.full_kinds:
                found[name] = 1.0
    return found


def _evaluate(suites: list[Suite], tuned_dir: Path | None, path: Path,
              options: DemoOptions, samples: dict[str, float],
              reporter: Callable[[], Any] | None) -> RunRecord:
    """The base (``tuned_dir`` None) or the fine-tune exported to ``tuned_dir``."""
    import contextlib

    from ftguard.api import evaluate
    from ftguard.engine.settings import RunSettings
    from ftguard.models.load import LoadOptions

    method = options.method if tuned_dir is not None else None
    load = LoadOptions(model=str(tuned_dir) if method == "full" else options.model,
                       adapter=str(tuned_dir) if method in ("lora", "qlora") else None,
                       # a qlora adapter is evaluated on the 4-bit base it was trained on
                       load_in_4bit=method == "qlora", device="cpu", dtype="float32",
                       batch_size=options.batch_size)
    context = reporter() if reporter else contextlib.nullcontext(None)
    with context as bar:
        return evaluate(suites, load=load, out=path, cache=True, reporter=bar,
                        settings=RunSettings(subset=options.plan.subset, task_subset=samples,
                                             tasks=options.tasks))


def _train_config(options: DemoOptions, suites: dict[str, Path]) -> TrainConfig:
    from ftguard.train.config import TrainConfig

    plan = options.plan
    legal = str(suites["legal"] / "train.jsonl")
    if options.replay:
        data: dict[str, Any] = {"mix": [
            {"path": legal, "ratio": 1 - REPLAY_RATIO, "name": "legal"},
            {"path": str(suites["general"] / "replay.jsonl"), "ratio": REPLAY_RATIO,
             "name": "replay"}]}
    else:
        data = {"train": legal}
    data.update(max_length=plan.max_length, packing=True)
    evals: dict[str, Any] = {"suites": [], "base": False}
    if plan.checkpoint_subset:
        evals = {"suites": [str(suites["legal"]), str(suites["general"])],
                 "every_steps": plan.eval_every, "subset": plan.checkpoint_subset,
                 "task_subset": dict(plan.checkpoint_items),
                 "cache_base": True, "best": "target_passing_gate"}
    return TrainConfig.model_validate({
        **({"model": options.model} if options.model else {}),
        "method": options.method, "out": str(options.out / "train"), "data": data,
        "lora": {"r": plan.lora_r, "alpha": 2 * plan.lora_r},
        "optim": {"lr": plan.lr, "batch_size": plan.batch_size, "max_steps": plan.max_steps,
                  "warmup_ratio": 0.1},
        "eval": evals, "logging_steps": 4})


def _train(cfg: TrainConfig, say: Say) -> tuple[TrainRecord, Path]:
    """Train, or reuse a finished run with the same config, or resume an interrupted one."""
    from ftguard.train.record import TRAIN_RECORD
    from ftguard.train.run import run_training

    out = Path(cfg.out or "")
    previous = _previous_run(out, cfg)
    if previous is not None and previous.status in FINISHED:
        say(f"      reusing the finished fine-tune in {out} (delete it to train again)")
        record = previous
    else:
        resume = previous is not None and previous.status == "interrupted"
        if resume:
            say(f"      resuming the interrupted fine-tune in {out}")
        record = run_training(cfg, resume=resume, overwrite=not resume)
    if record.status not in FINISHED or record.output is None:
        raise UsageError(f"the fine-tune in {out} ended with status '{record.status}'.",
                         hint=f"See {out / TRAIN_RECORD}; run the demo again to resume it.")
    return record, out / record.output


def _previous_run(out: Path, cfg: TrainConfig) -> TrainRecord | None:
    """The run saved in ``out`` when it was made with the same config, else None."""
    from ftguard.errors import FtguardError
    from ftguard.train.record import TRAIN_RECORD, read_train_record

    if not (out / TRAIN_RECORD).is_file():
        return None
    try:
        record = read_train_record(out / TRAIN_RECORD)
    except FtguardError:
        return None
    return record if record.config == cfg.model_dump(mode="json") else None


def _compare(base: RunRecord, tuned: RunRecord) -> Comparison:
    """The fine-tune judged as checkpoints and merging weights are (:func:`ftguard.judge.
    judge`), under the resolved policy: the suites' gate: sections, else the default."""
    from ftguard.judge import judge

    return judge(base, tuned, resamples=10_000, seed=1234).comparison


def _write(comparison: Comparison, train: TrainRecord, out: Path,
           report: Path) -> dict[str, Path]:
    from ftguard.record import write_comparison
    from ftguard.report import write_report

    path = out / "comparison.json"
    write_comparison(comparison, path)
    write_report(comparison, report, train=train)
    return {"comparison": path, "report": report, "base": out / "base.json",
            "tuned": out / "tuned.json", "train": out / "train"}
