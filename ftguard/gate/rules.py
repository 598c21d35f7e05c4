"""A gate rule: what it selects, its condition as the grammar spells it, and how it judges
one compared row (see :mod:`ftguard.gate` for the language)."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftguard.variant_names import VARIANT_SEP, is_variant_task

if TYPE_CHECKING:
    from ftguard.record import ComparisonRow

CONDITIONS: tuple[str, ...] = ("not-regressed", "improved", "noninferior", "max-drop", ">=",
                               "<=")
"""Rule kinds, by their names in the grammar (``max-drop`` is written ``5%`` or ``0.02``)."""
ROLES = ("target", "general")


@dataclass(frozen=True)
class Rule:
    """One gate rule, and where it came from."""

    kind: str
    """One of :data:`CONDITIONS`."""
    select: str = "*"
    """Rows it applies to: ``*``, a role, a suite name, or ``suite/task`` (globs allowed).
    Variants' tasks (``suite/task@variant``) only when it names them (``legal/*@*``). A
    ``[FIELD=VALUE]`` suffix (globs allowed) selects that slice's rows instead of the tasks'
    own (:mod:`ftguard.slices`)."""
    metric: str = "headline"
    """A metric name, or ``headline`` (each task's first metric)."""
    value: float = 0.0
    """Margin (noninferior, max-drop) or bound (>=, <=)."""
    relative: bool = False
    """Margin as a fraction of the base value (written ``N%``)."""
    origin: str = "default"
    """Where the rule was written: ``--fail-on``, ``gate.yaml:7``, ``suites/legal/suite.yaml:
    30`` or ``default``. Not part of the rule's identity."""

    @property
    def condition(self) -> str:
        """The condition as the grammar spells it."""
        amount = f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"
        return {"not-regressed": "not-regressed", "improved": "improved",
                "noninferior": f"noninferior({amount})", "max-drop": amount,
                ">=": f">={self.value:g}", "<=": f"<={self.value:g}"}[self.kind]

    @property
    def text(self) -> str:
        """The rule as the grammar spells it: its name on every surface."""
        return f"{self.select}:{self.metric}:{self.condition}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def describe(self) -> str:
        where = "every suite" if self.select == "*" else self.select
        amount = f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"
        what = {
            "not-regressed": "must not regress significantly",
            "improved": "must improve significantly",
            "noninferior": f"must be non-inferior within {amount} (95% CI)",
            "max-drop": f"may not worsen by more than {amount}",
            ">=": f"must be at least {self.value:g}",
            "<=": f"must be at most {self.value:g}",
        }[self.kind]
        return f"{where} {self.metric}: {what}"

    # -- selection ---------------------------------------------------------------------

    @property
    def task_select(self) -> str:
        """The selector without its slice part (``*`` when it is only a slice)."""
        return self.select.split("[", 1)[0] or "*"

    @property
    def slice_select(self) -> str | None:
        """The slice part ``FIELD=VALUE`` (globs allowed) of the selector, or None."""
        _, bracket, rest = self.select.partition("[")
        return rest[:-1] if bracket else None

    def selects_slice(self, name: str | None) -> bool:
        """Whether the rule selects rows of the slice ``name`` (None: a task's own rows)."""
        if self.slice_select is None or name is None:
            return self.slice_select is None and name is None
        return fnmatch.fnmatchcase(name, self.slice_select)

    def selects_task(self, suite: str, role: str, task: str) -> bool:
        # a variant's task (TASK@VARIANT) is selected only by a selector that names variants
        # (``legal/clause_type@*``): the default gate checks each task once, by its own prompt
        select = self.task_select
        if is_variant_task(task) and VARIANT_SEP not in select:
            return False
        if select == "*":
            return True
        if "/" in select:
            return fnmatch.fnmatchcase(f"{suite}/{task}", select)
        return select == role or fnmatch.fnmatchcase(suite, select)

    def selects(self, row: ComparisonRow) -> bool:
        if not self.selects_task(row.suite, row.role, row.task) or not self.selects_slice(
                row.slice):
            return False
        return row.headline if self.metric == "headline" else row.metric == self.metric

    # -- judging -----------------------------------------------------------------------

    def margin(self, row: ComparisonRow) -> float:
        """The rule's margin in the row's metric units (0 for rules without one)."""
        if self.kind not in ("noninferior", "max-drop"):
            return 0.0
        return self.value * abs(row.base) if self.relative else self.value

    def check(self, row: ComparisonRow) -> str | None:
        """None when ``row`` passes, else why it fails (one line). The row must have been
        compared item by item (``row.comparable``)."""
        sign = 1.0 if row.higher_is_better else -1.0
        gain = sign * row.delta
        margin = self.margin(row)
        where = row_name(row)
        stats = row_stats(row)
        if self.kind == "not-regressed" and row.verdict == "regressed":
            return f"{where} regressed significantly: {stats}"
        if self.kind == "improved" and row.verdict != "improved":
            return f"{where} did not improve significantly: {stats}"
        if self.kind == "noninferior":
            ends = [sign * v if v is not None else -math.inf for v in (row.ci_low, row.ci_high)]
            if row.ci_low is None or row.ci_high is None:
                ends = [-math.inf]
            worst = min(ends)
            if worst < -margin:
                loss = "any loss" if math.isinf(worst) else f"a loss of {-worst:.4g}"
                return (f"{where} not shown non-inferior within {margin:.4g}: the CI allows "
                        f"{loss}; {stats}")
        if self.kind == "max-drop" and gain < -margin:
            moved = "dropped" if row.higher_is_better else "rose (lower is better)"
            return f"{where} {moved} by {-gain:.4g} (more than {margin:.4g} allowed): {stats}"
        if self.kind == ">=" and row.tuned < self.value:
            return f"{where} is {row.tuned:.4g}, below the floor {self.value:g}: {stats}"
        if self.kind == "<=" and row.tuned > self.value:
            return f"{where} is {row.tuned:.4g}, above the ceiling {self.value:g}: {stats}"
        return None

    def underpowered(self, row: ComparisonRow) -> str | None:
        """None when ``row`` could have detected what this rule asks for, else why not (one
        line, with the items it would need)."""
        where = row_name(row)
        if self.kind in (">=", "<="):
            return None
        needed = f"; it needs at least {row.items_needed} items" if row.items_needed else ""
        if not row.testable:
            return (f"{where}: no outcome on n={row.n} items could be significant at alpha"
                    f"{needed}")
        if self.kind in ("noninferior", "max-drop"):
            margin = self.margin(row)
            if row.mde is None or row.mde > margin:
                mde = "no change" if row.mde is None else f"only changes of {row.mde:.4g}"
                return (f"{where}: on n={row.n} items {mde} can be detected (80% power), more "
                        f"than the margin {margin:.4g}"
                        + (f"; {_items_for(row, margin)}" if _items_for(row, margin) else ""))
        return None


def row_name(row: ComparisonRow) -> str:
    """``suite/task metric``, or ``suite/task[FIELD=VALUE] metric`` for a slice's row."""
    part = f"[{row.slice}]" if row.slice else ""
    return f"{row.suite}/{row.task}{part} {row.metric}"


def row_stats(row: ComparisonRow) -> str:
    """``base -> tuned (delta, 95% CI, p adjusted)`` of a row, for messages."""
    if not row.comparable:
        return f"{row.base:.4g} -> {row.tuned:.4g} (not compared item by item)"
    return (f"{row.base:.4g} -> {row.tuned:.4g} (delta {row.delta:+.4g}, 95% CI "
            f"{format_ci(row.ci_low, row.ci_high)}, p={row.p_adjusted:.3g} adjusted, "
            f"n={row.n})")


def format_ci(low: float | None, high: float | None) -> str:
    """``[-0.12, +0.03]``; an unbounded end (too few items to bound it) is ``-inf``/``+inf``."""
    lo = "-inf" if low is None else f"{low:+.4g}"
    hi = "+inf" if high is None else f"{high:+.4g}"
    return f"[{lo}, {hi}]"


def _items_for(row: ComparisonRow, margin: float) -> str:
    from ftguard.stats import items_needed_for

    if margin <= 0:
        return ""
    needed = items_needed_for(row.method, row.spread, margin)
    return f"it needs about {needed} items to detect {margin:.4g}" if needed else ""
