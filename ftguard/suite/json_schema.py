"""The JSON Schema of suite.yaml, generated from the pydantic models in :mod:`ftguard.suite.schema`.

Editors with the YAML language server (VS Code's YAML extension, Neovim, JetBrains) complete
and check suite.yaml files that start with ``# yaml-language-server: $schema=<path or URL>``.
The schema ships as ``suite.schema.json`` beside the shipped suites, so the shipped suite.yaml
files point to ``../suite.schema.json``; a test keeps that file equal to :func:`suite_schema`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_FILENAME = "suite.schema.json"


def suite_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of suite.yaml, field docstrings as descriptions."""
    from ftguard.suite.schema import SuiteSpec

    schema = SuiteSpec.model_json_schema()
    # ``version: 1`` is accepted (read as "1"), so the editor must not flag it
    schema["properties"]["version"] = {**schema["properties"]["version"],
                                       "type": ["string", "number"]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "ftguard suite.yaml", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """:func:`suite_schema` as the text of suite.schema.json."""
    return json.dumps(suite_schema(), indent=2) + "\n"


def schema_comment(target: str) -> str:
    """The first line of a suite.yaml that points editors to the schema at ``target``."""
    return f"# yaml-language-server: $schema={target}\n"


def installed_schema() -> Path:
    """The shipped suite.schema.json (beside the shipped suites)."""
    from ftguard.suite.shipped import shipped_root

    return shipped_root() / SCHEMA_FILENAME
