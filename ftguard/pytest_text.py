"""The words of ``pytest --ftguard``: failure messages, the summary table, baselines named.

Paths are shown as :func:`ftguard.engine.runner.display_path` shows them (relative to the
working directory when below it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ftguard.record import ComparisonRow, RunRecord

if TYPE_CHECKING:
    from ftguard.baseline import BaselineEntry
    from ftguard.pytest_nodes import Check
    from ftguard.pytest_session import Outcome

NO_BASELINE_HINT = "run with --ftguard-update-baseline to create it"


def describe(root: Path, entry: BaselineEntry) -> str:
    """A baseline in words: name, model, fingerprint and the file it is read from."""
    from ftguard.engine.runner import display_path

    where = display_path(root) if root.is_file() else display_path(root / entry.file)
    return f"{entry.name} = {entry.model} ({entry.fingerprint[:19]}) from {where}"


def accepted(run: RunRecord, root: Path, entry: BaselineEntry | None) -> str:
    """The note that ``run`` became the baseline at ``root`` (``entry`` of a folder, or None
    for a RunRecord file): :func:`ftguard.baseline.update`'s outcome in words."""
    from ftguard.engine.runner import display_path

    if entry is None:
        return f"accepted {run.model.spec} as the baseline {display_path(root)}"
    return (f"accepted {run.model.spec} as baseline {entry.name} in {display_path(root)} "
            f"({entry.file}, suites {', '.join(entry.suites)})")


def plugin_flag(option: str) -> str:
    """How the plugin spells an option: ``model`` -> ``--ftguard-model``."""
    return f"--ftguard-{option}"


def failure_message(check: Check, row: ComparisonRow, reason: str, outcome: Outcome,
                    flips: int = 5) -> str:
    """The gate rule, the numbers (delta, CI, p) and the items that flipped."""
    from ftguard.compare_output import _short, answer

    assert outcome.comparison is not None
    lines = [reason, f"gate rule: {check.rule.text} ({check.rule.describe()}) [{check.rule.origin}]",
             f"baseline: {outcome.baseline}",
             (f"current:  {outcome.comparison.tuned.spec} "
              f"({outcome.comparison.tuned.fingerprint[:19]})")]
    task_flips = [f for f in outcome.comparison.flips
                  if (f.suite, f.task) == (check.suite, check.task)]
    lost = [f for f in task_flips if f.direction == "correct_to_wrong"]
    if task_flips:
        lines.append(f"{len(lost)} item(s) went correct -> wrong and "
                     f"{len(task_flips) - len(lost)} wrong -> correct on {task_flips[0].metric}"
                     + (", most decisive first:" if lost else "."))
        lines += [f"  - {f.id}: target {_short(f.target)}, baseline "
                  f"{answer(f.base_prediction, f.base_raw_prediction)}, current "
                  f"{answer(f.tuned_prediction, f.tuned_raw_prediction)}"
                  for f in lost[:flips]]
    return "\n".join(lines)


_HEADERS = ("task", "metric", "baseline", "current", "delta", "95% CI", "p adj", "verdict")


def summary_table(rows: list[ComparisonRow]) -> list[str]:
    """pytest-benchmark-style table of every compared row; ``*`` marks gated metrics."""
    from ftguard.gate import format_ci

    cells = [[f"{r.suite}/{r.task}" + (f"[{r.slice}]" if r.slice else ""), r.metric + ("*" if r.gated else ""), f"{r.base:.4g}",
              f"{r.tuned:.4g}", f"{r.delta:+.4g}", format_ci(r.ci_low, r.ci_high)
              if r.comparable else "-", "-" if r.p_adjusted is None else f"{r.p_adjusted:.3g}",
              r.verdict + (" FAIL" if r.failed else "")
              + (" (untestable)" if r.comparable and not r.testable else "")] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() for c in cells]
    return lines + ["(* = gated metric; p adjusted across gated rows)"]


__all__ = ["NO_BASELINE_HINT", "accepted", "describe", "failure_message", "plugin_flag", "summary_table"]
