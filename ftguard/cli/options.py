"""The option groups and argparse types shared by the commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ftguard.errors import UsageError
from ftguard.outputs import distinct, output_file

if TYPE_CHECKING:
    from ftguard.engine.settings import RunSettings
    from ftguard.gate import Policy
    from ftguard.record import RunRecord

TABLE_FORMATS = ("text", "json", "markdown", "csv")
"""The ``--format`` choices of every command that prints a table (``compare`` and ``gate``
add ``junit``)."""


def print_table(text: str) -> None:
    """Print a rendered table; CSV text already ends with its line end (CRLF)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def model_options(p: argparse.ArgumentParser, several_adapters: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="SPEC", default=None,
                   help="local HF folder, hub id, smollm2-135m-instruct (default), or "
                        "fake[:SEED], the dry-run model: no weights, deterministic "
                        "pseudo-random answers from SEED (default 0), for checking suites, "
                        "gates and CI wiring in seconds; with --adapter each adapter folder "
                        "(checked as for a real model) gives other answers")
    if several_adapters:
        g.add_argument("--adapter", metavar="DIR", action="append",
                       help="PEFT adapter folder to apply; repeat it to evaluate several "
                            "adapters on one loaded base (with --out-dir)")
    else:
        g.add_argument("--adapter", metavar="DIR", help="PEFT adapter folder to apply")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--dtype", default="auto",
                   help="auto (float32 on CPU, bf16 on CUDA), float32, bfloat16, float16")
    q = g.add_mutually_exclusive_group()
    q.add_argument("--load-in-4bit", action="store_true", help="4-bit nf4 (bitsandbytes)")
    q.add_argument("--load-in-8bit", action="store_true", help="8-bit (bitsandbytes)")
    g.add_argument("--allow-pickle", action="store_true",
                   help="allow pickle (.bin) weights, which can run code when loaded")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="run Python code shipped in the model folder")
    s = p.add_argument_group("server (--backend openai)")
    s.add_argument("--backend", choices=("hf", "openai"), default="hf",
                   help="hf: load the model in this process (default); openai: query an "
                        "OpenAI-compatible server such as vLLM (--model is then its model id)")
    s.add_argument("--base-url", metavar="URL", help="the server's API root, "
                   "e.g. http://127.0.0.1:8000/v1")
    s.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable holding the API key (never recorded)")
    s.add_argument("--max-concurrency", type=positive_int, default=8, metavar="N",
                   help="requests in flight at once (default 8; each scores up to 8 "
                        "prompts, one with --max-concurrency 1)")
    s.add_argument("--request-timeout", type=finite_float, default=120.0, metavar="S",
                   help="seconds to wait for one answer before retrying it (default 120)")
    s.add_argument("--max-retries", type=int, default=5, metavar="N",
                   help="retries of a request after 429/5xx, timeouts and dropped "
                        "connections, with exponential backoff (default 5)")
    s.add_argument("--tokenizer", metavar="DIR",
                   help="folder with the model's tokenizer_config.json, when the server's "
                        "model folder is not readable here (for BOS/EOS)")


def run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--limit", type=positive_int, metavar="N", help="first N items per task")
    g.add_argument("--subset", type=subset_item, action="append", metavar="[TASK=]N|F",
                   help="a fixed seeded sample of each task: N items (a whole number >= 1), "
                        "or a fraction 0<F<=1 of them (1.0 = all); the same items for every model with the same --seed. "
                        "Repeat as TASK=N|F (or SUITE/TASK=N|F) to set one task's sample, "
                        "e.g. --subset 0.3 --subset clause_type=1.0")
    tasks_option(g)
    g.add_argument("--batch-size", default="auto", metavar="N|auto")
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--format", choices=TABLE_FORMATS, default="text",
                   help="results table format on stdout (csv: one row per metric)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.add_argument("--cache", action="store_true",
                   help="reuse suite results of the same model, suite content and settings "
                        "from $FTGUARD_HOME/results, and single model answers from "
                        "$FTGUARD_HOME/responses.sqlite; evaluate only what changed, and "
                        "resume an interrupted run")


def tasks_option(g: argparse._ActionsContainer) -> None:
    """``--tasks`` (``eval``, ``demo``)."""
    g.add_argument("--tasks", action="append", metavar="TASK[,TASK]",
                   help="evaluate only these tasks: TASK (that task in every suite that has "
                        "one), SUITE/TASK, or a glob ('legal/*'); comma-separated or "
                        "repeated. Suites left without a task are not run; the record lists "
                        "the tasks (config.tasks), and compares only with runs of the same "
                        "tasks")


def compare_options(p: argparse.ArgumentParser) -> None:
    """The options of ``compare``, shared with ``gate`` (ftguard/cli/gate.py)."""
    p.add_argument("--policy", metavar="FILE", help="gate policy YAML (its rules replace the "
                   "suites' gate: sections and the default)")
    p.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                   help="gate rule [SELECTOR:]METRIC:CONDITION, e.g. 'acc:5%%', "
                        "'general:headline:noninferior(2%%)'; repeatable; replaces the policy "
                        "file's rules, the suites' gate: sections and the default")
    p.add_argument("--allow-unchecked", action="append", default=[], metavar="RULE",
                   help="this rule may gate rows that cannot be compared item by item (no "
                        "per-item scores) without failing; '*' for every rule")
    p.add_argument("--strict-power", action="store_true",
                   help="fail the gate when a rule's rows could not have detected what it asks "
                        "for (too few items); by default they are listed")
    p.add_argument("--format", choices=(*TABLE_FORMATS, "junit"), default="text",
                   help="verdict and rows on stdout (csv: one row per compared metric)")
    p.add_argument("--out", "-o", metavar="FILE", help="write the Comparison JSON here")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare only the items both runs share")
    p.add_argument("--correction", choices=("holm", "bh"), default=None,
                   help="multiple-comparison adjustment (default holm)")
    p.add_argument("--alpha", type=finite_float, default=None, help="significance level (0.05)")
    p.add_argument("--resamples", type=positive_int, default=10_000)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--html", metavar="FILE", help="also write the self-contained HTML report here")
    p.add_argument("--train", metavar="FILE",
                   help="train_record.json for the HTML report's Training section (default: "
                        "the one beside the tuned model's adapter or model folder)")


def check_compare_options(args: argparse.Namespace, inputs: dict[str, str | None]) -> None:
    """Refuse bad ``compare_options`` values and outputs (``--out``, ``--html``: not a folder
    or device, not one of ``inputs``, not the same file) before any file is read."""
    if args.train and not args.html:
        raise UsageError("--train goes with --html (it adds the Training section to the report).")
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise UsageError(f"--alpha {args.alpha}: must be between 0 and 1.")
    inputs = {**inputs, "--policy file": args.policy, "--train record": args.train}
    distinct({"--out": output_file(args.out, "--out", inputs=inputs),
              "--html": output_file(args.html, "--html", inputs=inputs)})


def policy_factory(args: argparse.Namespace) -> Callable[[RunRecord], Policy]:
    """The gate policy of a candidate's run from ``--fail-on``, ``--policy``, its suites'
    ``gate:`` sections and the default, in that precedence (:func:`ftguard.gate.
    resolve_policy`), with ``--alpha``, ``--correction``, ``--strict-power`` and
    ``--allow-unchecked``. The flags and the policy file are read and checked now."""
    from ftguard.gate import load_policy, parse_rule, resolve_policy, suite_gates_of_run

    file = load_policy(Path(args.policy)) if getattr(args, "policy", None) else None
    fail_on = tuple(parse_rule(e, "--fail-on") for e in getattr(args, "fail_on", []))
    settings = {"alpha": getattr(args, "alpha", None),
                "correction": getattr(args, "correction", None),
                "strict_power": True if getattr(args, "strict_power", False) else None,
                "allow_unchecked": tuple(getattr(args, "allow_unchecked", None) or ())}
    # the flags are checked before any run; --allow-unchecked may name a rule of the suites'
    # gate: sections, known only with the run, unless --fail-on or --policy gives the rules
    early = settings if fail_on or file else {**settings, "allow_unchecked": ()}
    resolve_policy(fail_on=fail_on, policy=file, **early)

    def policy(tuned: RunRecord) -> Policy:
        return resolve_policy(fail_on=fail_on, policy=file,
                              suite_gates=suite_gates_of_run(tuned), **settings)

    return policy


def run_settings(args: argparse.Namespace) -> RunSettings:
    """RunSettings from ``--limit``, ``--subset`` (repeated), ``--tasks`` and ``--seed``."""
    from ftguard.engine.settings import RunSettings
    from ftguard.engine.tasks import parse_tasks

    default: int | float | None = None
    per_task: dict[str, int | float] = {}
    for key, value in args.subset or []:
        if key is None and default is not None:
            raise UsageError(f"--subset {default} and --subset {value}: one sample size "
                             "for every task, please.",
                             hint="Give one bare --subset N|F, and TASK=N|F for single tasks.")
        if key is not None and key in per_task:
            raise UsageError(f"--subset {key}= is given twice.",
                             hint="Give each task's sample size once.")
        if key is None:
            default = value
        else:
            per_task[key] = value
    return RunSettings(limit=args.limit, subset=default, task_subset=per_task, seed=args.seed,
                       tasks=parse_tasks(getattr(args, "tasks", None) or []))


def load_options(args: argparse.Namespace):  # -> LoadOptions (import kept lazy)
    from ftguard.models.load import LoadOptions

    return LoadOptions(model=args.model, adapter=args.adapter, device=args.device,
                       dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                       load_in_8bit=args.load_in_8bit, allow_pickle=args.allow_pickle,
                       trust_remote_code=args.trust_remote_code,
                       batch_size=parse_batch_size(args.batch_size),
                       backend=args.backend, base_url=args.base_url,
                       api_key_env=args.api_key_env, max_concurrency=args.max_concurrency,
                       request_timeout=args.request_timeout, max_retries=args.max_retries,
                       tokenizer=args.tokenizer)


def parse_batch_size(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--batch-size {text}: must be a positive integer or 'auto'.")
    return value


def subset_item(text: str) -> tuple[str | None, int | float]:
    """One ``--subset``: ``N|F`` for every task, or ``TASK=N|F`` / ``SUITE/TASK=N|F``."""
    key, sep, value = text.rpartition("=")
    if sep and not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: name a task before '=' (TASK=N|F)")
    return (key.strip() if sep else None), subset_arg(value if sep else text)


def subset_arg(text: str) -> int | float:
    """``--subset``: a whole number of items (digits only, an optional sign), or a fraction
    0 < F <= 1 (any other number Python's float reads: ``0.5``, ``.5``, ``1e-1``, ``1.0``)."""
    from ftguard.engine.subsets import check_subset

    value: object = text
    try:
        value = int(text) if text.strip().lstrip("+-").isdigit() else float(text)
    except ValueError:
        pass  # check_subset names the text
    try:
        return check_subset(value)
    except ValueError:
        decimal = (f"; it reads as the fraction {value!r}, write {int(value)} for "
                   f"{int(value)} items" if isinstance(value, float) and value > 1
                   and value.is_integer() else "")
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a whole number of items >= 1 (e.g. 40) or a fraction 0 < F <= 1 "
            f"(e.g. 0.25){decimal}") from None


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``nan``, ``inf`` and overflowing values refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def read_train(path_text: str | None, obj: object = None):  # -> TrainRecord | None
    """The ``--train`` record; without one, for a Comparison ``obj``, the one found beside its
    tuned model's adapter or model folder (:func:`ftguard.train.record.discover_train_record`)."""
    from ftguard.record import Comparison
    from ftguard.train.record import discover_train_record, read_train_record

    if path_text:
        return read_train_record(Path(path_text))
    return discover_train_record(obj.tuned) if isinstance(obj, Comparison) else None


SUITE_HELP = ("suite folder(s) or folders above them, or a shipped suite's name (legal, "
              "general, safety, standard); an existing path wins over a name")
"""Help of every positional SUITE argument."""
