"""A Comparison as text (terminal), markdown (PR comments, $GITHUB_STEP_SUMMARY), JSON or
JUnit XML (one testcase per gated row, so any CI shows failures natively)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from ftguard.record import AggregateChange, Comparison, ComparisonRow

_HEADERS = ("suite", "task", "metric", "base", "tuned", "delta", "95% CI", "p adj", "verdict")


def render_comparison(comparison: Comparison, fmt: str = "text", *, flips: int = 5) -> str:
    if fmt == "json":
        return comparison.model_dump_json(indent=1)
    if fmt == "junit":
        return _junit(comparison)
    markdown = fmt == "markdown"
    lines = [_banner(comparison, markdown), ""]
    lines += [f"- {f}" for f in comparison.failures] + ([""] if comparison.failures else [])
    lines += _table(comparison.rows, markdown)
    lines += ["", *_aggregates(comparison)]
    if comparison.flips and flips:
        worst = [f for f in comparison.flips if f.direction == "correct_to_wrong"][:flips]
        if worst:
            lines += ["", f"Items that went correct -> wrong ({sum(f.direction == 'correct_to_wrong' for f in comparison.flips)} in all), most decisive first:"]
            lines += [f"- {f.suite}/{f.task} {f.id}: target {_short(f.target)}, base "
                      f"{_short(f.base_prediction)}, tuned {_short(f.tuned_prediction)}"
                      for f in worst]
    lines += [f"note: {n}" for n in comparison.notes]
    return "\n".join(lines).rstrip()


def _banner(c: Comparison, markdown: bool) -> str:
    verdict = "PASS" if c.passed else "FAIL"
    text = (f"{verdict}: {c.tuned.spec} ({c.tuned.fingerprint[:19]}"
            + (f", adapter {c.tuned.adapter}" if c.tuned.adapter else "")
            + f") vs base {c.base.spec} ({c.base.fingerprint[:19]})")
    return f"## {'✅' if c.passed else '❌'} {text}" if markdown else text


def _cells(r: ComparisonRow) -> list[str]:
    mark = "*" if r.gated else ""
    return [r.suite, r.task, f"{r.metric}{mark}", f"{r.base:.4g}", f"{r.tuned:.4g}",
            f"{r.delta:+.4g}", f"[{r.ci_low:+.4g}, {r.ci_high:+.4g}]", f"{r.p_adjusted:.3g}",
            r.verdict + (" FAIL" if r.reason else "")]


def _table(rows: list[ComparisonRow], markdown: bool) -> list[str]:
    cells = [_cells(r) for r in rows]
    if markdown:
        return (["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
                + ["| " + " | ".join(c) + " |" for c in cells] + ["", "`*` gated metric"])
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(_HEADERS)]
    out = ["  ".join(h.ljust(w) for h, w in zip(_HEADERS, widths))]
    out += ["  ".join(v.ljust(w) for v, w in zip(c, widths)) for c in cells]
    return out + ["(* = gated metric)"]


def _aggregates(c: Comparison) -> list[str]:
    def fmt(name: str, a: AggregateChange | None) -> str | None:
        if a is None:
            return None
        return (f"{name}: {a.value:+.1%} mean relative change of headline metrics "
                f"(95% CI {a.ci_low:+.1%} to {a.ci_high:+.1%}; {len(a.tasks)} tasks)")

    lines = [fmt("gain (target suites)", c.gain),
             fmt("alignment tax (general suites)", c.alignment_tax)]
    lines += [fmt(f"forgetting on {suite}", a) for suite, a in c.forgetting.items()
              if len(c.forgetting) > 1]
    return [line for line in lines if line]


def _short(value: object, width: int = 40) -> str:
    text = value if isinstance(value, str) else " | ".join(map(str, value))  # type: ignore[call-overload]
    text = text.strip().replace("\n", " ")
    return repr(text if len(text) <= width else text[:width - 1] + "…")


def _junit(c: Comparison) -> str:
    gated = [r for r in c.rows if r.gated]
    failed = sum(bool(r.reason) for r in gated)
    cases = []
    for r in gated:
        name = quoteattr(f"{r.suite}/{r.task} {r.metric}")
        detail = (f"{r.base:.4g} -> {r.tuned:.4g}, delta {r.delta:+.4g} "
                  f"[{r.ci_low:+.4g}, {r.ci_high:+.4g}], p adj {r.p_adjusted:.3g}")
        body = (f'<failure message={quoteattr(r.reason)}>{escape(detail)}</failure>'
                if r.reason else "")
        cases.append(f'  <testcase classname="ftguard.gate.{escape(r.suite)}" name={name}>'
                     f"{body}</testcase>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<testsuite name="ftguard-gate" tests="{len(gated)}" failures="{failed}">\n'
            + "\n".join(cases) + "\n</testsuite>")
