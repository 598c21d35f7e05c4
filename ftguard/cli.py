"""The ``ftguard`` command. One short function per command: parse, call the API, render.

Exit codes: 0 pass, 1 gate failed, 2 usage / input / environment error (one paragraph, no
traceback; ``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ftguard.errors import FtguardError, UsageError
from ftguard.outputs import distinct, output_dir, output_file
from ftguard.version import ftguard_version

if TYPE_CHECKING:
    from ftguard.engine.settings import RunSettings
    from ftguard.gate import Policy
    from ftguard.record import RunRecord
    from ftguard.suite import Suite

EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    from ftguard.atomic import written

    outputs_before = len(written())
    _received.clear()
    previous = _set_signal_handlers(_raise_interrupt)  # SIGTERM unwinds like Ctrl-C
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "handler", None):
            parser.print_help()
            return EXIT_ERROR
        try:
            return int(args.handler(args))
        except FtguardError as exc:
            _raise_if_interrupted(exc)
            if args.debug:
                traceback.print_exc()
            print(f"ftguard: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except Exception as exc:  # noqa: BLE001 -- a bug, not bad input: short message
            _raise_if_interrupted(exc)
            if args.debug:
                traceback.print_exc()
            print(f"ftguard: error: unexpected {type(exc).__name__}: {exc} (run with --debug "
                  "for the traceback and report it).", file=sys.stderr)
            return EXIT_ERROR
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM raised as Terminated
        return _interrupted(exc, written()[outputs_before:])
    finally:
        _set_signal_handlers(previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM while ``main`` runs: raised where it lands, like Ctrl-C's KeyboardInterrupt,
    so every ``finally`` and temporary-file cleanup runs before the exit (143)."""


_received: list[int] = []
"""The signals ``_raise_interrupt`` turned into exceptions during this ``main``."""


def _raise_if_interrupted(exc: Exception) -> None:
    """Some libraries wrap whatever a callback raised into an error of their own (pydantic:
    ``SchemaError: ... Terminated``); after a signal such an error is the interruption."""
    import signal

    if _received:
        raise (Terminated if _received[-1] == signal.SIGTERM else KeyboardInterrupt)() from exc


def _raise_interrupt(signum: int, frame: object) -> None:
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
    _received.append(signum)
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _set_signal_handlers(handlers: object) -> dict[int, object]:
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


def _interrupted(exc: KeyboardInterrupt, outputs: Sequence[Path]) -> int:
    """Exit 130 (SIGINT) or 143 (SIGTERM), naming the outputs completed before it: every
    writer is atomic, so nothing else was written or replaced."""
    name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("SIGINT", 130)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftguard", description="Gate a fine-tuned language model against its base.")
    parser.add_argument("--version", action="version", version=f"ftguard {ftguard_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.set_defaults(debug=False)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    ev = commands.add_parser("eval", parents=[common], help="evaluate a model on suites",
                             description="Evaluate a model on suites and write a RunRecord.")
    ev.add_argument("suites", nargs="+", metavar="SUITE", help="suite folder(s) or parents")
    ev.add_argument("--out", "-o", metavar="FILE", help="write the RunRecord JSON here")
    ev.add_argument("--out-dir", metavar="DIR",
                    help="with several --adapter: write one RunRecord per adapter, "
                         "DIR/<adapter folder name>.json (base.json with --include-base)")
    ev.add_argument("--include-base", action="store_true",
                    help="with --adapter: also evaluate the base model (adapters disabled) on "
                         "the same loaded weights")
    _model_options(ev, several_adapters=True)
    _run_options(ev)
    ev.set_defaults(handler=cmd_eval)

    suites = commands.add_parser("suites", help="work with suites")
    suite_commands = suites.add_subparsers(title="suite commands", metavar="COMMAND")
    validate = suite_commands.add_parser("validate", parents=[common],
                                         help="check suites and report every problem")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(handler=cmd_validate)

    imp = commands.add_parser(
        "import-lmeval", parents=[common], help="convert lm-eval --log_samples output to a RunRecord",
        description="Convert the output of `lm_eval --output_path DIR --log_samples` (a "
                    "results_*.json and its samples_<task>_*.jsonl files) into a RunRecord.")
    imp.add_argument("results", metavar="RESULTS", help="results_*.json, or the folder holding it")
    imp.add_argument("samples", nargs="*", metavar="SAMPLES",
                     help="samples_<task>_*.jsonl files (default: those beside RESULTS)")
    imp.add_argument("--out", "-o", metavar="FILE", required=True, help="RunRecord JSON to write")
    imp.add_argument("--role", choices=("target", "general"), default="general",
                     help="role of the imported suite (default: general)")
    imp.add_argument("--suite-name", default="lm-eval", metavar="NAME",
                     help="name of the imported suite (default: lm-eval)")
    imp.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                     help="results table format on stdout")
    imp.set_defaults(handler=cmd_import_lmeval)

    cmp = commands.add_parser("compare", parents=[common],
                              help="compare two runs item by item and gate (exit 1 on failure)",
                              description="Paired comparison of a tuned run against its base.")
    cmp.add_argument("base", metavar="BASE", help="RunRecord JSON (or lm-eval output folder)")
    cmp.add_argument("tuned", metavar="TUNED", help="RunRecord JSON (or lm-eval output folder)")
    compare_options(cmp)
    cmp.set_defaults(handler=cmd_compare)

    rep = commands.add_parser("report", parents=[common],
                              help="render a Comparison or RunRecord JSON as an HTML report",
                              description="Write one self-contained HTML file (no network "
                                          "access) from a Comparison or RunRecord JSON.")
    rep.add_argument("input", metavar="INPUT",
                     help="Comparison JSON, RunRecord JSON, or train_record.json (or its folder)")
    rep.add_argument("--out", "-o", metavar="FILE", required=True, help="HTML file to write")
    rep.add_argument("--train", metavar="FILE",
                     help="train_record.json for a Comparison's Training section (default: the "
                          "one beside the tuned model's adapter or model folder)")
    rep.set_defaults(handler=cmd_report)

    power = commands.add_parser("power", parents=[common],
                                help="minimum detectable change of each task (no model needed)")
    power.add_argument("suites", nargs="+", metavar="SUITE")
    power.add_argument("--discordance", type=finite_float, default=0.20,
                       help="assumed share of items whose correctness changes (default 0.20)")
    power.add_argument("--alpha", type=finite_float, default=0.05, help="two-sided level (0.05)")
    power.add_argument("--power", type=finite_float, default=0.80, help="power (0.80)")
    power.add_argument("--baseline", metavar="RUN.json",
                       help="a RunRecord of the suites, for continuous metrics' spread")
    power.set_defaults(handler=cmd_power)

    leak = commands.add_parser(
        "check-leakage", parents=[common], help="find training examples that overlap eval items",
        description="Report evaluation items that overlap training data (exact copies and "
                    "shared 13-grams); exit 1 when any is found.")
    leak.add_argument("suites", nargs="+", metavar="SUITE", help="suite folder(s) or parents")
    leak.add_argument("--train", action="append", required=True, metavar="FILE",
                      help="training JSONL (instruction/input/output, prompt/completion or "
                           "messages); repeat for several files")
    leak.add_argument("--format", choices=("text", "json"), default="text")
    leak.add_argument("--show", type=_positive_int, default=10, metavar="N",
                      help="list at most N overlapping items per task (text format)")
    leak.set_defaults(handler=cmd_check_leakage)
    from ftguard.cli_train import add_commands

    add_commands(commands, common)
    from ftguard.cli_baseline import add_commands as add_baseline_commands
    add_baseline_commands(commands, common)
    from ftguard.cli_demo import add_commands as add_demo_commands
    add_demo_commands(commands, common)
    from ftguard.cli_merge import add_commands as add_merge_commands
    add_merge_commands(commands, common)
    return parser


def _model_options(p: argparse.ArgumentParser, several_adapters: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="SPEC", default=None,
                   help="local HF folder, hub id, or smollm2-135m-instruct (default)")
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
    s.add_argument("--max-concurrency", type=_positive_int, default=8, metavar="N",
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


def _run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--limit", type=_positive_int, metavar="N", help="first N items per task")
    g.add_argument("--subset", type=subset_item, action="append", metavar="[TASK=]N|F",
                   help="a fixed seeded sample of each task: N items, or a fraction 0<F<1 of "
                        "them; the same items for every model with the same --seed. "
                        "Repeat as TASK=N|F (or SUITE/TASK=N|F) to set one task's sample, "
                        "e.g. --subset 0.3 --subset clause_type=1.0")
    g.add_argument("--batch-size", default="auto", metavar="N|auto")
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                   help="results table format on stdout")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.add_argument("--cache", action="store_true",
                   help="reuse suite results of the same model, suite content and settings "
                        "from $FTGUARD_HOME/results, and single model answers from "
                        "$FTGUARD_HOME/responses.sqlite; evaluate only what changed, and "
                        "resume an interrupted run")


def cmd_eval(args: argparse.Namespace) -> int:
    from ftguard.api import evaluate, load_suites
    from ftguard.engine.distributed import is_main
    from ftguard.progress import ProgressBar
    from ftguard.tables import render_results

    adapters = args.adapter if isinstance(args.adapter, list) else [a for a in [args.adapter] if a]
    if len(adapters) > 1 or getattr(args, "out_dir", None) or getattr(args, "include_base", False):
        return _eval_adapters(args, adapters)
    args.adapter = adapters[0] if adapters else None
    suites = load_suites(args.suites)
    check_eval_out(args.out, suites)
    settings = run_settings(args)
    main = is_main()  # with accelerate launch, process 0 alone draws, prints and writes
    with ProgressBar(enabled=not args.no_progress and main) as bar:
        record = evaluate(suites, load=_load_options(args), settings=settings,
                          out=args.out if main else None, reporter=bar, cache=args.cache,
                          shard=True)
    if main:
        from ftguard.health import run_warnings

        print(render_results(record, args.format))
        for line in run_warnings(record):
            print(f"ftguard: warning: {line}", file=sys.stderr)
        if args.out:
            print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _eval_adapters(args: argparse.Namespace, adapters: list[str]) -> int:
    """``eval`` with several ``--adapter`` (or ``--out-dir``/``--include-base``): one loaded
    base, one RunRecord per adapter."""
    from ftguard.api import evaluate_adapters, load_suites, record_names
    from ftguard.progress import ProgressBar
    from ftguard.tables import render_results

    if not adapters:
        flag = "--out-dir" if args.out_dir else "--include-base"
        raise UsageError(f"{flag} goes with --adapter (one or more PEFT adapter folders).",
                         hint="Without adapters, write the one record with --out FILE.")
    if args.out:
        raise UsageError(f"--out writes one RunRecord, but {len(adapters)} --adapter option(s)"
                         f"{' and --include-base' if args.include_base else ''} make one per "
                         "model.", hint="Use --out-dir DIR instead: it writes "
                                        "DIR/<adapter folder name>.json for each adapter.")
    output_dir(args.out_dir, "--out-dir")
    names = record_names(adapters, include_base=args.include_base)
    suites = load_suites(args.suites)
    settings = run_settings(args)
    args.adapter = None
    with ProgressBar(enabled=not args.no_progress) as bar:
        records = evaluate_adapters(suites, load=_load_options(args), adapters=adapters,
                                    settings=settings, out_dir=args.out_dir, reporter=bar,
                                    cache=args.cache, include_base=args.include_base)
    if args.format == "json":
        import json

        print(json.dumps([json.loads(render_results(r, "json")) for r in records], indent=1))
    else:
        for key, record in zip(names, records):
            print(f"{'#' if args.format == 'markdown' else '=='} {names[key]}")
            print(render_results(record, args.format))
    from ftguard.health import run_warnings

    for key, record in zip(names, records):
        for line in run_warnings(record):
            print(f"ftguard: warning: {names[key]}: {line}", file=sys.stderr)
    if args.out_dir:
        for key in names:
            print(f"wrote {Path(args.out_dir) / (names[key] + '.json')}", file=sys.stderr)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from ftguard.suite import validate_paths

    suites, problems = validate_paths([Path(p) for p in args.paths])
    for suite in suites:
        items = sum(len(t.instances) for t in suite.tasks)
        print(f"ok  {suite.root}  {suite.name} v{suite.spec.version} ({suite.spec.role}): "
              f"{len(suite.tasks)} tasks, {items} items")
    if problems:
        print(f"ftguard: error: {len(problems)} problem(s) found:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_check_leakage(args: argparse.Namespace) -> int:
    from ftguard.leakage import check_leakage, render_leakage

    report = check_leakage(args.train, args.suites)
    print(render_leakage(report, args.format, show=args.show))
    return EXIT_OK if report.clean else EXIT_GATE_FAILED


def cmd_import_lmeval(args: argparse.Namespace) -> int:
    from ftguard.lmeval.importer import import_lmeval
    from ftguard.record import write_run
    from ftguard.tables import render_results

    output_file(args.out, "--out", inputs={"results file": args.results,
                                           **{f"samples file {s}": s for s in args.samples}})
    record = import_lmeval(args.results, args.samples, suite_name=args.suite_name, role=args.role)
    write_run(record, Path(args.out))
    print(render_results(record, args.format))
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def compare_options(p: argparse.ArgumentParser) -> None:
    """The options of ``compare``, shared with ``gate`` (ftguard/cli_baseline.py)."""
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
    p.add_argument("--format", choices=("text", "json", "markdown", "junit"), default="text")
    p.add_argument("--out", "-o", metavar="FILE", help="write the Comparison JSON here")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare only the items both runs share")
    p.add_argument("--correction", choices=("holm", "bh"), default=None,
                   help="multiple-comparison adjustment (default holm)")
    p.add_argument("--alpha", type=finite_float, default=None, help="significance level (0.05)")
    p.add_argument("--resamples", type=_positive_int, default=10_000)
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


def cmd_compare(args: argparse.Namespace) -> int:
    check_compare_options(args, {"BASE record": args.base, "TUNED record": args.tuned})
    comparison = run_compare(args, _read_side(args.base), _read_side(args.tuned))
    return EXIT_OK if comparison.passed else EXIT_GATE_FAILED


def run_compare(args: argparse.Namespace, base, tuned):  # -> Comparison (imports kept lazy)
    """Compare ``tuned`` with ``base`` under ``compare_options``, write ``--out`` and
    ``--html``, print ``--format``; the body of both ``compare`` and ``gate``."""
    from ftguard.compare import compare
    from ftguard.compare_output import render_comparison
    from ftguard.record import write_comparison

    policy = policy_factory(args)(tuned)
    comparison = compare(base, tuned, policy,
                         allow_mismatch=args.allow_mismatch, resamples=args.resamples,
                         seed=args.seed)
    if args.out:
        write_comparison(comparison, Path(args.out))
    if args.html:
        from ftguard.report import write_report

        write_report(comparison, Path(args.html), train=_read_train(args.train, comparison))
    print(render_comparison(comparison, args.format))
    return comparison


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
    resolve_policy(fail_on=fail_on, policy=file, **settings)  # flags checked before any run

    def policy(tuned: RunRecord) -> Policy:
        return resolve_policy(fail_on=fail_on, policy=file,
                              suite_gates=suite_gates_of_run(tuned), **settings)

    return policy


def cmd_report(args: argparse.Namespace) -> int:
    from ftguard.record import read_record
    from ftguard.report.render import write_report
    from ftguard.train.record import is_train_record_file, read_train_record

    source = Path(args.input)
    distinct({"--out": output_file(args.out, "--out", inputs={"input": source,
                                                              "--train record": args.train}),
              "--train": Path(args.train) if args.train else None})
    record = read_train_record(source) if is_train_record_file(source) else read_record(source)
    path = write_report(record, Path(args.out), train=_read_train(args.train, record))
    print(f"wrote {path}")
    return EXIT_OK


def check_eval_out(out: str | None, suites: Sequence[Suite]) -> None:
    """Check ``eval --out`` before evaluating (:func:`ftguard.outputs.output_file`), also
    refusing one of the suites' own files (suite.yaml, data)."""
    output_file(out, "--out", inputs={
        f"suite {suite.name}'s file {rel}": suite.root / rel for suite in suites
        for rel in ["suite.yaml", *(r for task in suite.tasks for r in (
            task.spec.data, task.spec.few_shot and task.spec.few_shot.data) if r)]})


def _read_train(path_text: str | None, obj: object = None):  # -> TrainRecord | None
    """The ``--train`` record; without one, for a Comparison ``obj``, the one found beside its
    tuned model's adapter or model folder (:func:`ftguard.train.record.discover_train_record`)."""
    from ftguard.record import Comparison
    from ftguard.train.record import discover_train_record, read_train_record

    if path_text:
        return read_train_record(Path(path_text))
    return discover_train_record(obj.tuned) if isinstance(obj, Comparison) else None


def _read_side(path_text: str):  # -> RunRecord
    """A RunRecord, or an lm-eval output (folder or results file) converted on the fly."""
    from ftguard.record import read_run

    path = Path(path_text)
    if path.is_dir() or (path.is_file() and path.name.startswith("results")):
        from ftguard.lmeval.importer import import_lmeval

        return import_lmeval(path)
    return read_run(path)


def cmd_power(args: argparse.Namespace) -> int:
    from ftguard.api import load_suites
    from ftguard.power import power_table, render_power
    from ftguard.record import read_run

    for flag, value in (("--discordance", args.discordance), ("--alpha", args.alpha),
                        ("--power", args.power)):
        if not 0 < value < 1:
            raise UsageError(f"{flag} {value}: must be between 0 and 1 (exclusive).")
    baseline = read_run(Path(args.baseline)) if args.baseline else None
    rows = power_table(load_suites(args.suites), discordance=args.discordance, alpha=args.alpha,
                       power=args.power, baseline=baseline)
    print(render_power(rows, discordance=args.discordance, alpha=args.alpha, power=args.power))
    return EXIT_OK


def _load_options(args: argparse.Namespace):  # -> LoadOptions (import kept lazy)
    from ftguard.models.load import LoadOptions

    return LoadOptions(model=args.model, adapter=args.adapter, device=args.device,
                       dtype=args.dtype, load_in_4bit=args.load_in_4bit,
                       load_in_8bit=args.load_in_8bit, allow_pickle=args.allow_pickle,
                       trust_remote_code=args.trust_remote_code,
                       batch_size=_batch_size(args.batch_size),
                       backend=args.backend, base_url=args.base_url,
                       api_key_env=args.api_key_env, max_concurrency=args.max_concurrency,
                       request_timeout=args.request_timeout, max_retries=args.max_retries,
                       tokenizer=args.tokenizer)


def _batch_size(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--batch-size {text}: must be a positive integer or 'auto'.")
    return value


def run_settings(args: argparse.Namespace) -> RunSettings:
    """RunSettings from ``--limit``, ``--subset`` (repeated) and ``--seed``."""
    from ftguard.engine.settings import RunSettings

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
    return RunSettings(limit=args.limit, subset=default, task_subset=per_task, seed=args.seed)


def subset_item(text: str) -> tuple[str | None, int | float]:
    """One ``--subset``: ``N|F`` for every task, or ``TASK=N|F`` / ``SUITE/TASK=N|F``."""
    key, sep, value = text.rpartition("=")
    if sep and not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: name a task before '=' (TASK=N|F)")
    return (key.strip() if sep else None), subset_arg(value if sep else text)


def subset_arg(text: str) -> int | float:
    """``--subset``: a whole number of items, or a fraction 0 < F <= 1 (see check_subset)."""
    from ftguard.engine.subsets import check_subset

    value: object = text
    try:
        value = int(text) if text.strip().lstrip("+-").isdigit() else float(text)
    except ValueError:
        pass  # check_subset names the text
    try:
        return check_subset(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``nan``, ``inf`` and overflowing values refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
