"""``ftguard suites show SUITE[/TASK[@VARIANT]] [--render N]``: a task's settings and, with
``--render``, its first prompts exactly as the model receives them (the runner's own
rendering); ``TASK@VARIANT`` (or ``TASK@*``) shows a variant's."""

from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ftguard.cli.options import model_options, positive_int
from ftguard.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from ftguard.models.base import ChatTemplater
    from ftguard.suite import Suite, Task


def add_parser(suite_commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``show`` on the ``suites`` sub-commands."""
    show = suite_commands.add_parser(
        "show", parents=[common], help="a suite's task settings and rendered prompts",
        description="Show each task's settings and, with --render N, its first N prompts "
                    "exactly as the model receives them: few-shot block, the chat template of "
                    "--model (default: the embedded model; loaded only for chat tasks), "
                    "target and the scored continuations.")
    show.add_argument("suite", metavar="SUITE[/TASK]",
                      help="a suite folder or shipped suite name, optionally /TASK or "
                           "/TASK@VARIANT (a task's variant; TASK@* all of them)")
    show.add_argument("--render", type=positive_int, metavar="N", default=0,
                      help="print the first N items' model input")
    show.add_argument("--format", choices=("text", "json"), default="text")
    model_options(show)
    show.set_defaults(handler=cmd_show, batch_size="auto")


def cmd_show(args: argparse.Namespace) -> int:
    suite, tasks = _pick(args.suite)
    backend, model = None, None
    if args.render and any(t.spec.chat_template for t in tasks):
        from ftguard.cli.options import load_options
        from ftguard.models.load import backend_for

        options = load_options(args)
        # the chat template is all a prompt needs: a tokenizer for in-process models
        backend = backend_for(options).templater(options)
        model = options.model or "the embedded model"
    shown = [_task_view(suite, task, args.render, backend, model) for task in tasks]
    if args.format == "json":
        print(json.dumps({"suite": suite.name, "role": suite.spec.role,
                          "version": suite.spec.version, "path": str(suite.root),
                          "gate": list(suite.spec.gate or []), "tasks": shown}, indent=1,
                         ensure_ascii=False))
        return EXIT_OK
    print(f"{suite.name} v{suite.spec.version} ({suite.spec.role})  {suite.root}")
    if suite.spec.gate:
        print("gate: " + "; ".join(map(str, suite.spec.gate)))
    for view in shown:
        _print_task(view)
    return EXIT_OK


def _pick(text: str) -> tuple[Suite, list[Task]]:
    from pathlib import Path

    from ftguard.api import load_suites

    path, _, task_name = text, "", ""
    if not Path(text).exists() and "/" in text.rstrip("/"):
        path, _, task_name = text.rstrip("/").rpartition("/")
    suites = load_suites([path])
    if len(suites) != 1:
        raise UsageError(f"'{path}' holds {len(suites)} suites "
                         f"({', '.join(s.name for s in suites)}); suites show takes one.",
                         hint="Name one suite folder (or a shipped suite's name).")
    suite = suites[0]
    if not task_name:
        return suite, list(suite.tasks)
    # SUITE/TASK@VARIANT: that variant's prompts (SUITE/TASK@*: all of them)
    tasks = [t for task in suite.tasks for t in (task, *task.variants)
             if t.name == task_name or (task_name.endswith("@*") and t.variant is not None
                                        and t.name.startswith(task_name[:-1]))]
    if not tasks:
        raise UsageError(f"suite {suite.name} has no task '{task_name}' (tasks: "
                         f"{', '.join(t.name for t in suite.tasks)}; a task's variants: "
                         "TASK@VARIANT or TASK@*).",
                         hint=f"Write SUITE/TASK with one of those, e.g. {path}/"
                              f"{suite.tasks[0].name}.")
    return suite, tasks


def _task_view(suite: Suite, task: Task, render: int, backend: ChatTemplater | None,
               model: str | None) -> dict[str, Any]:
    from ftguard.engine.render import continuations, model_inputs

    spec = task.spec
    from ftguard.metrics.consistency import NAMES

    view: dict[str, Any] = {"task": f"{suite.name}/{task.name}", "items": len(task.instances),
                            "metrics": spec.metric_names + (list(NAMES) if task.variants else []),
                            "settings": spec.model_dump(mode="json", exclude_none=True)}
    if spec.slice_field is not None and task.variant is None:  # items per slice
        from ftguard.slices import slice_counts

        view["slices"] = slice_counts([i.slices for i in task.instances])
    if task.variant is not None:  # a variant: what it changes, not its task's settings again
        view["settings"] = {"kind": spec.kind, **task.variant.model_dump(mode="json",
                                                                          exclude_none=True)}
    if not render:
        return view
    if spec.kind == "lm_eval":
        view["rendered"] = None
        view["note"] = ("lm-eval renders this task's prompts itself (from its task YAML, "
                        "num_fewshot and chat_template); see lm-eval's --write_out.")
        return view
    instances = task.instances[:render]
    rendered = []
    for inst, context in zip(instances, model_inputs(instances, backend)):
        item: dict[str, Any] = {"id": inst.id, "line": inst.line, "model_input": context}
        if spec.kind in ("choice", "classify"):
            item["continuations"] = continuations(spec, inst)
            item["gold"] = inst.gold
        elif spec.kind == "generate":
            item["references"] = list(inst.references)
            if inst.instructions:
                item["instructions"] = [{"id": i, "kwargs": dict(k)} for i, k in inst.instructions]
        rendered.append(item)
    view["rendered"] = rendered
    view["model"] = model if spec.chat_template else None
    return view


@lru_cache(maxsize=1)
def _dumper() -> Any:
    """A yaml SafeDumper that writes strings as :func:`_quoted_str` does."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, _quoted_str)
    return Dumper


def _quoted_str(dumper: Any, text: str) -> Any:
    """Strings holding newlines or tabs in one double-quoted line, ``\\n`` as written in
    suite.yaml, instead of YAML's folded lines."""
    style = '"' if any(c in text for c in "\n\t\r") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _print_task(view: dict[str, Any]) -> None:
    import yaml

    print(f"\n== {view['task']}  ({view['settings']['kind']}, {view['items']} items; "
          f"metrics: {', '.join(view['metrics'])}, headline {view['metrics'][0] if view['metrics'] else '-'})")
    if view.get("slices"):
        print("  slices: " + ", ".join(f"{k} ({n})" for k, n in view["slices"].items()))
    settings = {k: v for k, v in view["settings"].items() if k != "name"}
    text = yaml.dump(settings, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=1000)
    sys.stdout.write("  " + text.rstrip("\n").replace("\n", "\n  ") + "\n")
    if view.get("note"):
        print(f"  ({view['note']})")
    for item in view.get("rendered") or []:
        chat = f", chat template of {view['model']}" if view.get("model") else ""
        print(f"\n--- item {item['id']} (line {item['line']}): the model input{chat}, "
              f"{len(item['model_input'])} characters, between the rules ---")
        print("─" * 40)
        print(item["model_input"])
        print("─" * 40)
        for index, text in enumerate(item.get("continuations", [])):
            mark = "target" if index == item["gold"] else ""
            print(f"  choice {index}: {text!r} {mark}".rstrip())
        if item.get("references") or "instructions" not in item:
            print(f"  target: {' | '.join(map(repr, item.get('references', [])))}")
        for rule in item.get("instructions", []):
            print(f"  instruction: {rule['id']} {json.dumps(rule['kwargs'], ensure_ascii=False)}")
