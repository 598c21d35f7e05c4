"""Reading a training config from YAML and command-line overrides, with located errors.

Every problem (unknown key, wrong type, value out of range, missing file) is reported at
once as ``file:line [key]: message``; paths in the file are taken relative to its folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ftguard.errors import Problem, SuiteError, UsageError
from ftguard.suite.yaml_lines import (
    KeyPath,
    LocatedYAMLError,
    format_key,
    line_of,
    load_yaml_with_lines,
)
from ftguard.train.config import TrainConfig


class ConfigError(SuiteError):
    """One or more problems in a training config; all are reported at once."""


def load_train_config(path: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Read ``path`` (may be None: flags only), apply dotted ``overrides``, validate, and
    make relative paths absolute against the config's folder (or the working directory)."""
    data: dict[str, Any] = {}
    lines: dict[KeyPath, int] = {}
    name = str(path) if path else "command line"
    if path is not None:
        if not path.is_file():
            raise UsageError(f"{path}: no such config file.",
                             hint="Give a YAML file, or the settings as flags (--model, --data, ...).")
        try:
            loaded, lines = load_yaml_with_lines(path)
        except LocatedYAMLError as exc:
            raise ConfigError([exc.problem]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([Problem(name, 1, None, "must be a mapping of settings "
                                                       "(model, method, data, optim, eval...).")])
        data = loaded
    for dotted, value in overrides.items():
        if value is None:
            continue
        if dotted in _PATH_KEYS:  # a path given as a flag is relative to where it was typed
            value = _from_cwd(value, only_existing=dotted == "model")
        _set(data, dotted.split("."), value)
        lines.pop(tuple(dotted.split(".")), None)
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(e, lines, name) for e in exc.errors()]) from None
    return _absolute(cfg, (path.parent if path else Path.cwd()).resolve(), lines, name)


_PATH_KEYS = ("model", "out", "data.train", "data.validation", "eval.suites")


def _from_cwd(value: Any, *, only_existing: bool) -> Any:
    """Absolute path of a flag's value; a model SPEC only when it names an existing folder
    (otherwise it is a hub id or the embedded model's name)."""
    if isinstance(value, list):
        return [_from_cwd(v, only_existing=only_existing) for v in value]
    path = Path(str(value)).expanduser()
    if path.is_absolute() or (only_existing and not path.exists()):
        return value
    return str(Path.cwd() / path)


def _set(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def _model_at(loc: KeyPath) -> type[BaseModel]:
    model: type[BaseModel] = TrainConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = _inner_model(field.annotation) if field else None
        if inner is None:
            break
        model = inner
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if (found := _inner_model(arg)) is not None:
            return found
    return None


def _problem(error: Any, lines: dict[KeyPath, int], name: str) -> Problem:
    loc: KeyPath = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    key = format_key(loc) or None
    line = line_of(lines, loc) if lines else None
    if error["type"] == "extra_forbidden":
        valid = sorted(_model_at(loc[:-1]).model_fields)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return Problem(name, line, key, f"unknown key '{loc[-1]}'.{hint} Valid keys here: "
                                        f"{', '.join(valid)}.")
    if error["type"] == "missing":
        return Problem(name, line, key, f"required key '{loc[-1]}' is missing.")
    message = str(error["msg"]).removeprefix("Value error, ")
    if "input" in error and error["type"] not in ("model_type",) and not isinstance(
            error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return Problem(name, line, key, message + ".")


def _absolute(cfg: TrainConfig, base: Path, lines: dict[KeyPath, int], name: str) -> TrainConfig:
    """Resolve file paths against ``base`` and check that they exist."""
    problems: list[Problem] = []

    def fix(value: str | None, loc: KeyPath, must_exist: bool = True) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if must_exist and not path.exists():
            problems.append(Problem(name, line_of(lines, loc), format_key(loc),
                                    f"{value}: no such file or folder (relative paths are read "
                                    f"from {base})."))
        return str(path)

    data = cfg.data.model_copy(update={
        "train": fix(cfg.data.train, ("data", "train")),
        "validation": fix(cfg.data.validation, ("data", "validation")),
        "mix": [s.model_copy(update={"path": fix(s.path, ("data", "mix", i, "path"))})
                for i, s in enumerate(cfg.data.mix)] if cfg.data.mix else None})
    suites = [fix(s, ("eval", "suites", i)) or s for i, s in enumerate(cfg.eval.suites)]
    model = cfg.model
    candidate = base / model
    if not Path(model).is_absolute() and candidate.exists():
        model = str(candidate)
    out = fix(cfg.out, ("out",), must_exist=False)
    if not cfg.data.train and not cfg.data.mix:
        problems.append(Problem(name, None, "data", "no training data: set data.train (or "
                                                    "data.mix), or pass --data FILE."))
    if problems:
        raise ConfigError(problems)
    return cfg.model_copy(update={"data": data, "model": model, "out": out,
                                  "eval": cfg.eval.model_copy(update={"suites": suites})})
