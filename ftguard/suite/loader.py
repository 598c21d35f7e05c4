"""Loading and validating suites: every problem found is reported at once."""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ftguard.errors import Problem, SuiteError
from ftguard.suite.gate_check import gate_problems
from ftguard.suite.instances import build_instances, item_id
from ftguard.suite.jsonl import Row, read_jsonl
from ftguard.suite.metric_check import check_metrics
from ftguard.suite.model import Suite, Task
from ftguard.suite.schema import SuiteSpec, TaskSpec
from ftguard.suite.shipped import resolve_suite_argument, unknown_suite_problem
from ftguard.suite.spec_problems import problem_from
from ftguard.suite.templates import TemplateError, compile_template
from ftguard.suite.yaml_lines import (
    KeyPath,
    LocatedYAMLError,
    format_key,
    line_of,
    load_yaml_with_lines,
)

SUITE_FILE = "suite.yaml"


def find_suites(paths: list[Path]) -> list[Path]:
    """Suite folders named by ``paths``: a folder with suite.yaml, a suite.yaml itself, any
    folder below which suite.yaml files are found, or the name of a shipped suite (``legal``;
    an existing path wins over a name). Missing paths and unknown names raise SuiteError."""
    found: list[Path] = []
    problems: list[Problem] = []
    for given in paths:
        path = resolve_suite_argument(given)
        if path is None:
            problems.append(unknown_suite_problem(str(given)))
        elif path.is_file() and path.name == SUITE_FILE:
            found.append(path.parent)
        elif (path / SUITE_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            below = sorted(p.parent for p in path.rglob(SUITE_FILE))
            if not below:
                problems.append(Problem(str(path), None, None,
                                        f"has no {SUITE_FILE} (nor any below it); a suite is a "
                                        f"folder with {SUITE_FILE} and its JSONL data files."))
            found += below
        else:
            problems.append(Problem(str(path), None, None,
                                    f"is neither a suite folder nor a {SUITE_FILE} file."))
    if problems:
        raise SuiteError(problems)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def load_suite(path: Path) -> Suite:
    """Load the suite in folder ``path`` (or its suite.yaml); raise SuiteError with all problems."""
    root = path.parent if path.name == SUITE_FILE else path
    yaml_path = root / SUITE_FILE
    if not yaml_path.is_file():
        raise SuiteError([Problem(str(yaml_path), None, None,
                                  f"not found: a suite folder needs a {SUITE_FILE} file.")])
    try:
        data, lines = load_yaml_with_lines(yaml_path)
    except LocatedYAMLError as exc:
        raise SuiteError([exc.problem]) from None
    problems: list[Problem] = []
    # Every stage runs whatever the others found, so one pass reports every problem: a task
    # whose keys are wrong does not keep the other tasks' data, templates or gate unchecked.
    spec, task_specs = _validate_spec(data, lines, yaml_path, problems)
    tasks: list[Task] = []
    # Gate rules do not change what is evaluated: runs made before a gate change still compare;
    # nor does a key added later while unset (suites keep the hash their records carry).
    unset = {i: keys for i, t in enumerate(spec.tasks) if (keys := {
        k: True for k in ("lm_eval_aggregation", "variants", "extract", "metric_args",
                          "slice_field") if getattr(t, k) is None}
        | ({"generation": g} if (g := t.generation.defaulted()) else {}))} \
        if spec is not None else {}
    digest = hashlib.sha256(spec.model_dump_json(exclude={"gate": True, "tasks": unset}).encode()
                            if spec is not None else b"")
    with _without_cycle_collection():
        for index, task_spec in task_specs:
            task = _load_task(root, yaml_path, lines, index, task_spec, problems, digest)
            if task is not None:
                tasks.append(task)
    for key in ("train", "replay"):
        rel = data.get(key) if isinstance(data, dict) else None
        if isinstance(rel, str):
            _resolve_inside(root, rel, yaml_path, lines, (key,), problems, must_exist=True)
    # the gate is checked against every declared task, loaded or not (selectors need names only)
    problems += gate_problems(data, spec, [t for _, t in task_specs], root, yaml_path, lines,
                              loaded=tasks)
    if spec is None:
        raise SuiteError(problems)
    suite = Suite(spec, root, tasks, digest.hexdigest())
    if problems:
        raise SuiteError(problems)
    return suite


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector: reading a million rows makes millions of small
    containers and no cycles, and the collector would walk them all again and again (a third
    of the time it takes to load 10^6 items). Reference counting still frees everything."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate_paths(paths: list[Path]) -> tuple[list[Suite], list[Problem]]:
    """Load every suite under ``paths``; return the good ones and all problems of the rest."""
    suites: list[Suite] = []
    problems: list[Problem] = []
    roots: list[Path] = []
    for path in paths:  # a path that is wrong does not hide the problems of the others
        try:
            roots += [r for r in find_suites([path]) if r not in roots]
        except SuiteError as exc:
            problems += exc.problems
    for root in roots:
        try:
            suites.append(load_suite(root))
        except SuiteError as exc:
            problems += exc.problems
    return suites, problems


def _validate_spec(data: Any, lines: dict[KeyPath, int], yaml_path: Path,
                   problems: list[Problem]) -> tuple[SuiteSpec | None, list[tuple[int, TaskSpec]]]:
    """The suite's spec (None when its keys are wrong) and every task whose own keys are valid
    (by position), so their data is checked even when the suite or another task is not."""
    if not isinstance(data, dict):
        problems.append(Problem(str(yaml_path), 1, None,
                                "must be a mapping with keys name, version, role and tasks."))
        return None, []
    spec: SuiteSpec | None
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(problem_from(error, lines, yaml_path))
        spec = None
    raw_tasks = data.get("tasks")
    task_specs: list[tuple[int, TaskSpec]] = []
    for index, task in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        if not isinstance(task, dict):
            continue
        check_metrics(task, index, lines, yaml_path, problems)
        if spec is not None:
            task_specs.append((index, spec.tasks[index]))
        else:
            try:  # its errors, if any, are already among the suite's
                task_specs.append((index, TaskSpec.model_validate(task)))
            except ValidationError:
                pass
    # a task whose templates do not compile cannot render its items
    task_specs = [(index, task_spec) for index, task_spec in task_specs
                  if _check_templates(task_spec, index, lines, yaml_path, problems)]
    return spec, task_specs


def _check_templates(task: TaskSpec, index: int, lines: dict[KeyPath, int], yaml_path: Path,
                     problems: list[Problem]) -> bool:
    """Whether every template of ``task`` compiles; a located problem for each that does not."""
    before = len(problems)
    sources: list[tuple[KeyPath, str]] = [(("prompt",), task.prompt)] if task.prompt else []
    for key in ("target", "target_index"):
        if getattr(task, key) is not None:
            sources.append(((key,), getattr(task, key)))
    sources += [(("choices", i), c) for i, c in enumerate(task.choices or [])]
    sources += [(("variants", j, "prompt"), v.prompt) for j, v in enumerate(task.variants or [])
                if v.prompt is not None]
    for sub, source in sources:
        try:
            compile_template(source)
        except TemplateError as exc:
            loc: KeyPath = ("tasks", index, *sub)
            problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                                    f"{str(exc).rstrip('.')}. Fields are written "
                                    "{{ field }}."))
    return len(problems) == before


def _resolve_inside(root: Path, rel: str, yaml_path: Path, lines: dict[KeyPath, int],
                    loc: KeyPath, problems: list[Problem], *, must_exist: bool) -> Path | None:
    candidate = (root / rel).resolve()
    if Path(rel).is_absolute() or not candidate.is_relative_to(root.resolve()):
        problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                                f"'{rel}' points outside the suite folder; data files must live "
                                "inside the suite folder (use a path relative to suite.yaml)."))
        return None
    if must_exist and not candidate.is_file():
        problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                                f"file '{rel}' not found in {root}."))
        return None
    return candidate


def _load_task(root: Path, yaml_path: Path, lines: dict[KeyPath, int], index: int,
               spec: TaskSpec, problems: list[Problem], digest: Any) -> Task | None:
    base: KeyPath = ("tasks", index)
    if spec.kind == "lm_eval":
        return _load_lmeval_task(root, yaml_path, lines, base, spec, problems, digest)
    assert spec.data is not None  # the schema requires it for every other kind
    data_path = _resolve_inside(root, spec.data, yaml_path, lines, (*base, "data"), problems,
                                must_exist=True)
    shots_path = None
    if spec.few_shot and spec.few_shot.data:
        shots_path = _resolve_inside(root, spec.few_shot.data, yaml_path, lines,
                                     (*base, "few_shot", "data"), problems, must_exist=True)
        if shots_path is None:
            return None
    if data_path is None:
        return None
    rows = _read(data_path, root, problems, digest)
    shots = _read(shots_path, root, problems, digest) if shots_path else None
    if rows is None or (shots_path and shots is None):
        return None
    fits = _few_shot_fits(spec, len(rows), shots, yaml_path, lines, base, problems)
    if not _unique_ids(rows, spec, data_path, root, problems) or not fits:
        return None
    display = str(data_path.relative_to(root.resolve()))
    data_name = str(root / display)
    shots_name = str(root / spec.few_shot.data) if spec.few_shot and spec.few_shot.data else None
    # the rows are handed over: each is let go once rendered, so a large task never holds
    # its parsed rows and all its rendered items at once (unless its variants render them too)
    keep = bool(spec.variants)
    instances, found = build_instances(
        spec, iter(rows) if keep else _drain(rows),
        None if shots is None else iter(shots) if keep else _drain(shots),
        data_name=data_name, shots_name=shots_name,
        locate=lambda key: (str(yaml_path), line_of(lines, (*base, key)),
                            format_key((*base, key))))
    problems += found
    from ftguard.slices import unused_field

    if not found and (why := unused_field(spec.slice_field, [i.slices for i in instances],
                                          spec.data)):
        found = [Problem(str(yaml_path), line_of(lines, (*base, "slice_field")),
                         format_key((*base, "slice_field")), why)]
        problems += found
    if found:
        return None
    if not keep:
        return Task(spec, instances)
    from ftguard.suite.variants import headline_problem, load_variants

    if (headline := headline_problem(spec, yaml_path, lines, base)) is not None:
        problems.append(headline)
        return None
    variants = load_variants(spec, rows, shots, instances, data_name=data_name,
                             shots_name=shots_name, yaml_path=yaml_path, lines=lines, base=base,
                             problems=problems)
    return Task(spec, instances, variants=variants) if variants else None


def _drain(rows: list[Row]) -> Iterator[Row]:
    """The rows first to last, each removed from ``rows`` as it is handed out."""
    rows.reverse()
    while rows:
        yield rows.pop()


def _few_shot_fits(spec: TaskSpec, n_rows: int, shots: list[Row] | None, yaml_path: Path,
                   lines: dict[KeyPath, int], base: KeyPath, problems: list[Problem]) -> bool:
    """Whether every item can get ``few_shot.k`` different examples; a located problem if not
    (rather than prompts that silently get fewer examples than the suite says)."""
    if spec.few_shot is None:
        return True
    k = spec.few_shot.k
    pool = len(shots) if shots is not None else n_rows - 1
    if k <= pool:
        return True
    if shots is not None:
        where = (f"the pool has {pool} item{'s' if pool != 1 else ''} "
                 f"({spec.few_shot.data}); each prompt needs k different examples.")
        fix = f"Lower k to at most {pool}, or add examples to {spec.few_shot.data}."
    else:
        where = (f"the pool has {pool} item{'s' if pool != 1 else ''}: examples are drawn from "
                 f"the task's own data ({spec.data}, {n_rows} items), never the item being "
                 "asked.")
        fix = (f"Lower k to at most {pool}, or give few_shot.data a file of examples."
               if pool > 0 else "Give few_shot.data a file of examples, or add items.")
    loc: KeyPath = (*base, "few_shot", "k")
    problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                            f"k={k} but {where} {fix}"))
    return False


def _load_lmeval_task(root: Path, yaml_path: Path, lines: dict[KeyPath, int], base: KeyPath,
                      spec: TaskSpec, problems: list[Problem], digest: Any) -> Task | None:
    """An lm_eval task has no items of its own; its include folder is hashed into the suite,
    and its lm-eval task is looked up offline (name, and the metrics its YAML reports)."""
    folder = None
    if spec.lm_eval_include is not None:
        loc: KeyPath = (*base, "lm_eval_include")
        folder = _resolve_inside(root, spec.lm_eval_include, yaml_path, lines, loc, problems,
                                 must_exist=False)
        if folder is None:
            return None
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        if not any(p.suffix in (".yaml", ".yml") for p in files):
            problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc),
                                    f"'{spec.lm_eval_include}' is not a folder of lm-eval task "
                                    f"YAML files in {root}."))
            return None
        for path in files:
            digest.update(path.relative_to(root.resolve()).as_posix().encode())
            _hash_file(digest, path)
    from ftguard.errors import DataError
    from ftguard.lmeval.tasks import lookup_task

    assert spec.lm_eval_task is not None  # the schema requires it
    try:
        task_yaml, metrics = lookup_task(spec.lm_eval_task, folder)
    except DataError as exc:
        loc = (*base, "lm_eval_task")
        problems.append(Problem(str(yaml_path), line_of(lines, loc), format_key(loc), str(exc)))
        return None
    return Task(spec, [], lm_eval_include=folder, lm_eval_yaml=task_yaml,
                lm_eval_metrics=metrics)


def _read(path: Path, root: Path, problems: list[Problem], digest: Any) -> list[Row] | None:
    display = str(root / path.relative_to(root.resolve()))
    rows, found = read_jsonl(path, display)
    problems += found
    digest.update(path.relative_to(root.resolve()).as_posix().encode())
    _hash_file(digest, path)
    return None if found else rows


def _hash_file(digest: Any, path: Path) -> None:
    """Add ``path``'s bytes to ``digest`` a MiB at a time (nothing when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError:
        pass


def _unique_ids(rows: list[Row], spec: TaskSpec, path: Path, root: Path,
                problems: list[Problem]) -> bool:
    ids = {item_id(r, spec.id_field) for r in rows}
    if len(ids) == len(rows):
        return True
    del ids
    counts = Counter(item_id(r, spec.id_field) for r in rows)
    duplicates = [i for i, n in counts.items() if n > 1]
    first = next(r for r in rows if item_id(r, spec.id_field) in duplicates[:1])
    lines = [r.line for r in rows if item_id(r, spec.id_field) == duplicates[0]]
    problems.append(Problem(str(root / path.relative_to(root.resolve())), first.line,
                            f"task {spec.name}",
                            f"duplicate sample id {duplicates[0]!r} (lines "
                            f"{', '.join(map(str, lines))}); {len(duplicates)} id(s) repeat. "
                            f"Every item needs a unique '{spec.id_field}'."))
    return False
