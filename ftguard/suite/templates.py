"""Prompt templates: jinja2 in a sandbox, where a missing field is an error, not ''."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment


class TemplateError(Exception):
    """A template failed to compile or render; ``str()`` explains why."""


@lru_cache(maxsize=1)
def _environment() -> SandboxedEnvironment:
    # Prompts are plain text, not HTML: no autoescape; keep whitespace exactly as written.
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                keep_trailing_newline=True)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    """Compile ``source``; raise TemplateError naming the line within the template."""
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error on its line {exc.lineno}: {exc.message}") from exc


def render(template: jinja2.Template, fields: dict[str, Any]) -> str:
    """Render with an item's fields; raise TemplateError naming a missing field."""
    try:
        return template.render(**fields)
    except jinja2.UndefinedError as exc:
        available = ", ".join(sorted(fields)) or "none"
        raise TemplateError(f"{exc.message} (fields of this item: {available})") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"template does something the sandbox forbids: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, jinja2.TemplateError) as exc:
        raise TemplateError(f"template failed: {exc}") from exc
