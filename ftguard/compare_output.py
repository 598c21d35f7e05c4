"""A Comparison as text (terminal), markdown (PR comments, $GITHUB_STEP_SUMMARY), JSON,
JUnit XML (one testcase per gate rule and row it checks, so any CI shows failures natively)
or CSV (one line per row, every field of :class:`~ftguard.record.ComparisonRow`).

Every surface says the same thing: the verdict line comes from ``Comparison.passed``, each
rule is shown with its outcome (``passed | failed | unchecked | underpowered``) under its
grammar spelling, and significant changes no rule gates are listed as "not gated".
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from ftguard.gate import format_ci, row_name, row_stats
from ftguard.record import AggregateChange, Comparison, ComparisonRow

_HEADERS = ("suite", "task", "metric", "base", "tuned", "delta", "95% CI", "p adj", "n",
            "verdict")
_MARK = {"passed": "pass", "failed": "FAIL", "unchecked": "UNCHECKED",
         "underpowered": "UNDERPOWERED"}


def render_comparison(comparison: Comparison, fmt: str = "text", *, flips: int = 5) -> str:
    if fmt == "json":
        return comparison.model_dump_json(indent=1)
    if fmt == "junit":
        return _junit(comparison)
    if fmt == "csv":
        from ftguard.csv_table import csv_table

        fields = list(ComparisonRow.model_fields)
        return csv_table(fields, (r.model_dump() for r in comparison.rows))
    markdown = fmt == "markdown"
    lines = [_banner(comparison, markdown), ""]
    lines += _rules(comparison, markdown) + [""]
    lines += _table([r for r in comparison.rows if r.slice is None], markdown)
    sliced = [r for r in comparison.rows if r.slice is not None and (
        r.headline or r.gated or r.verdict in ("improved", "regressed"))]
    if sliced:  # every slice row is in the JSON and CSV; here the ones a reader needs
        head = ("Slices (paired on each slice's items, p adjusted within the task's slices; "
                "headline, gated and significant rows):")
        lines += ["", head, *_table(sliced, markdown)]
    lines += ["", *_aggregates(comparison)]
    if comparison.not_gated:
        lines += ["", "Not gated (significant, but no rule checks them):"]
        lines += [f"- {line}" for line in comparison.not_gated]
    if comparison.warnings:
        lines += ["", "Generation warnings:"] + [f"- {w}" for w in comparison.warnings]
    if comparison.flips and flips:
        worst = [f for f in comparison.flips if f.direction == "correct_to_wrong"][:flips]
        if worst:
            total = sum(f.direction == "correct_to_wrong" for f in comparison.flips)
            lines += ["", (f"Items that went correct -> wrong ({total} in all), most decisive "
                           "first:")]
            lines += [f"- {f.suite}/{f.task} {f.id}: target {_short(f.target)}, base "
                      f"{answer(f.base_prediction, f.base_raw_prediction)}, tuned "
                      f"{answer(f.tuned_prediction, f.tuned_raw_prediction)}"
                      for f in worst]
    lines += [f"note: {n}" for n in comparison.notes]
    return "\n".join(lines).rstrip()


def verdict_word(c: Comparison) -> str:
    """``PASS`` or ``FAIL``, plus what was not fully checked."""
    if not c.passed:
        return "FAIL"
    weak = [o for o in c.gate if o.outcome in ("underpowered", "unchecked")]
    return "PASS" if not weak else f"PASS ({len(weak)} rule(s) not fully checked)"


def _banner(c: Comparison, markdown: bool) -> str:
    from ftguard.models.naming import model_label

    text = (f"{verdict_word(c)}: {model_label(c.tuned)} ({c.tuned.fingerprint[:19]}) vs base "
            f"{model_label(c.base)} ({c.base.fingerprint[:19]})")
    return f"## {'✅' if c.passed else '❌'} {text}" if markdown else text


def _rules(c: Comparison, markdown: bool) -> list[str]:
    """Each rule with its outcome and what it found."""
    head = f"Gate rules ({c.policy_source}):" if c.policy_source else "Gate rules:"
    lines = [head]
    for o in c.gate:
        rule = f"`{o.rule}`" if markdown else o.rule
        allowed = " (allowed by --allow-unchecked)" if o.allowed_unchecked and \
            o.outcome == "unchecked" else ""
        lines.append(f"- {_MARK[o.outcome]} {rule} [{o.origin}]: {len(o.rows)} row(s){allowed}")
        details = o.failures + [f"unchecked: {u}" for u in o.unchecked] + [
            f"underpowered: {u}" for u in o.underpowered]
        lines += [f"  - {d}" for d in details[:10]]
        if len(details) > 10:
            lines.append(f"  - ... and {len(details) - 10} more")
    return lines


def _cells(r: ComparisonRow) -> list[str]:
    mark = "*" if r.gated else ""
    task = f"{r.task}[{r.slice}]" if r.slice else r.task
    if not r.comparable:
        return [r.suite, task, f"{r.metric}{mark}", f"{r.base:.4g}", f"{r.tuned:.4g}",
                f"{r.delta:+.4g}", "-", "-", str(r.n), "not compared" + (" FAIL" if r.failed
                                                                          else "")]
    verdict = r.verdict + (" FAIL" if r.failed else "") + (
        " (untestable)" if not r.testable else " (underpowered)" if r.underpowered else "")
    return [r.suite, task, f"{r.metric}{mark}", f"{r.base:.4g}", f"{r.tuned:.4g}",
            f"{r.delta:+.4g}", format_ci(r.ci_low, r.ci_high), f"{r.p_adjusted:.3g}", str(r.n),
            verdict]


def _table(rows: list[ComparisonRow], markdown: bool) -> list[str]:
    cells = [_cells(r) for r in rows]
    if markdown:
        return (["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
                + ["| " + " | ".join(c) + " |" for c in cells] + ["", "`*` gated metric"])
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(_HEADERS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip() for c in cells]
    return out + ["(* = gated metric)"]


def _aggregates(c: Comparison) -> list[str]:
    def fmt(name: str, a: AggregateChange | None) -> str | None:
        if a is None:
            return None
        return (f"{name}: {a.value:+.1%} mean relative change of headline metrics "
                f"(95% CI {a.ci_text()}; {len(a.tasks)} tasks)")

    lines = [fmt("gain (target suites)", c.gain),
             fmt("alignment tax (general suites)", c.alignment_tax)]
    lines += [fmt(f"forgetting on {suite}", a) for suite, a in c.forgetting.items()
              if len(c.forgetting) > 1]
    return [line for line in lines if line]


def answer(prediction: str, raw: str | None) -> str:
    """A flip's answer, and the generated text it was extracted from (``extract:``) when
    that differs: ``'72' (from 'She sold 48 + 24 = 72 clips.')``."""
    shown = _short(prediction)
    return shown if raw is None or raw == prediction else f"{shown} (from {_short(raw)})"


def _short(value: object, width: int = 40) -> str:
    text = value if isinstance(value, str) else " | ".join(map(str, value))  # type: ignore[call-overload]
    text = text.strip().replace("\n", " ")
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def _junit(c: Comparison) -> str:
    """One testcase per (rule, row it checks), named ``suite/task metric[CONDITION]``: failed
    and unchecked rows (unless allowed) are failures, underpowered ones skipped (failures with
    strict power): never a silent pass."""
    from ftguard.gate import row_outcome

    rows = {row_name(r): r for r in c.rows}
    strict = bool(c.settings.get("strict_power", False))
    cases, failed, skipped = [], 0, 0
    for o in c.gate:
        for name in o.rows or [o.rule]:
            r = rows.get(name)
            status, message = row_outcome(o, r, strict_power=strict)
            detail = escape(f"rule {o.rule} ({o.origin}); " + (_row_detail(r) if r else message))
            body = (f"<failure message={quoteattr(message)}>{detail}</failure>"
                    if status == "fail" else f"<skipped message={quoteattr(message)}/>"
                    if status == "skip" else f"<system-out>{detail}</system-out>")
            failed += status == "fail"
            skipped += status == "skip"
            suite, task = (r.suite, r.task) if r else ("gate", "rule")
            title = quoteattr(f"{name}[{o.rule.split(':', 2)[2]}]")
            cases.append(f'  <testcase classname="ftguard.gate.{escape(suite)}.{escape(task)}" '
                         f"name={title}>{body}</testcase>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<testsuite name="ftguard-gate" tests="{len(cases)}" failures="{failed}" '
            f'skipped="{skipped}">\n' + "\n".join(cases) + "\n</testsuite>")


def _row_detail(r: ComparisonRow) -> str:
    return f"{row_stats(r)}, {r.method}"
