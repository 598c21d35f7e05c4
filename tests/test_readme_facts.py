"""README facts checked against the code, so the README cannot drift: its gate policies and
rules load with the gate's own parser, and its pytest option table lists every option the
plugin registers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO
from ftguard.gate import load_policy, parse_rule
from ftguard.gate.grammar import parse_condition, rule_from, rule_from_mapping
from ftguard.pytest_options import _FILE_KEYS

README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def _yaml_blocks() -> list[dict]:
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)]
    return [b for b in blocks if isinstance(b, dict)]


def test_readme_policy_files_load_with_the_gate_loader(tmp_path: Path) -> None:
    policies = [b for b in _yaml_blocks() if "rules" in b]
    assert policies, "README shows no policy file"
    for i, block in enumerate(policies):
        path = tmp_path / f"policy{i}.yaml"
        path.write_text(yaml.safe_dump(block), encoding="utf-8")
        loaded = load_policy(path)
        assert len(loaded.rules) == len(block["rules"])
    texts = [r.text for r in load_policy(tmp_path / "policy0.yaml").rules]
    assert texts == ["general:headline:noninferior(2%)", "legal:headline:improved",
                     "legal/clause_type:accuracy:>=0.7"]


def test_readme_suite_gate_sections_parse() -> None:
    for block in _yaml_blocks():
        for i, item in enumerate(block.get("gate") or []):
            rule_from(item, f"README gate: item {i}")


def test_readme_rule_table_mappings_mean_their_conditions() -> None:
    rows = re.findall(r"^\| ((?:`[^`|]+`(?:, )?)+) \| `(\{[^`]+\})` \|", _section("Compare a "
                      "fine-tune with its base"), re.MULTILINE)
    assert len(rows) == 6, rows  # not-regressed, improved, noninferior, max-drop, >=, <=
    kinds = set()
    for conditions, mapping in rows:
        rule = rule_from_mapping(yaml.safe_load(mapping), "README")
        written = re.findall(r"`([^`]+)`", conditions)
        assert parse_condition(written[0]) == (rule.kind, rule.value, rule.relative), mapping
        assert all(parse_condition(c)[0] == rule.kind for c in written)
        kinds.add(rule.kind)
    from ftguard.gate.rules import CONDITIONS

    assert kinds == set(CONDITIONS)


def test_readme_inline_rule_mappings_and_fail_on_rules_parse() -> None:
    mappings = re.findall(r"`(\{[^`]*\brule: [^`]*\})`", README)
    assert len(mappings) >= 7
    for mapping in mappings:
        rule_from_mapping(yaml.safe_load(mapping), "README")
    rules = re.findall(r"--(?:fail-on|ftguard-allow-unchecked) '([^']+)'", README)
    assert len(rules) >= 2
    for rule in rules:
        parse_rule(rule)


def _table_rows(section: str) -> list[tuple[str, str]]:
    return re.findall(r"^\| `(--ftguard-[a-z-]+)[^|]*(?:\\\|[^|]*)*\| (?:`([a-z_]+)`)? ?\|",
                      section, re.MULTILINE)


def test_readme_pytest_table_lists_every_plugin_option(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "ftguard.pytest_plugin",
                           "--help"], capture_output=True, text=True, timeout=120,
                          check=False, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    registered = set(re.findall(r"^\s+(--ftguard-[a-z-]+)", done.stdout, re.MULTILINE))
    assert "--ftguard-backend" in registered and "--ftguard-model" in registered
    rows = _table_rows(_section("pytest plugin"))
    flags = {flag for flag, _ in rows}
    assert len(flags) == len(rows), "an option has two rows"
    assert registered - flags == set(), "README's pytest table misses these options"
    assert flags - registered == set(), "README's pytest table lists options that do not exist"
    keys = {key for _, key in rows if key}
    assert keys == set(_FILE_KEYS)  # the [tool.ftguard] keys the plugin reads
