"""The demo's closing story: what the fine-tune bought, what it cost, and the gate's verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

ALPHA = 0.05
"""The gate's default level (the demo uses the default policy)."""

BEHAVIOUR = frozenset({
    "refusal_rate", "over_refusal_rate", "refusal_margin", "compliance_margin",
    "prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc",
    "inst_level_loose_acc", "consistency", "mean_variant", "worst_variant", "spread",
    "ece", "brier"})
"""Metrics of behaviour (safety both ways, instruction following, consistency across
prompt variants, calibration): the story gives them their own section, headline or not."""

if TYPE_CHECKING:
    from ftguard.demo import DemoOptions, DemoResult
    from ftguard.record import AggregateChange, ComparisonRow


def tell(result: DemoResult, options: DemoOptions) -> str:
    """A few short paragraphs for the terminal (plain text)."""
    c = result.comparison  # slice rows aside: the story is told per task
    c = c.model_copy(update={"rows": [r for r in c.rows if r.slice is None]})
    train = result.train
    step = train.best.step if train.best else train.steps
    mix = " mixed with general replay" if options.replay else ""
    lines = [(f"ftguard demo: SmolLM2-135M-Instruct, {train.method} on the legal train split"
             f"{mix}, checkpoint of step {step} of {train.steps}"), ""]
    lines += _section("What the fine-tune bought (legal, the target; paired change, 95% CI):",
                      [r for r in c.rows if r.role == "target" and r.headline
                       and "@" not in r.task], c.gain,
                      "Gain on legal")
    lines += _section("What it cost (general ability; a negative change is the alignment tax):",
                      [r for r in c.rows if r.role == "general" and r.headline
                       and r.metric not in BEHAVIOUR and "@" not in r.task],
                      c.alignment_tax, "Change of general ability")
    behaviour = [r for r in c.rows if r.metric in BEHAVIOUR and "@" not in r.task]
    if behaviour:
        lines += _section("What it did to behaviour (safety both ways, instruction following, "
                          "consistency, calibration):", behaviour, None, "")
    for role, name in (("target", "Legal"), ("general", "General")):
        for verdict in ("improved", "regressed"):
            found = [f"{r.task} {r.metric}" for r in c.rows if r.role == role
                     and r.verdict == verdict and r.headline]
            secondary = [f"{r.task} {r.metric}" for r in c.rows if r.role == role
                         and r.verdict == verdict and not r.headline]
            if found or secondary:
                lines.append(f"{name}, significantly {verdict} (adjusted p < "
                             f"{ALPHA}): " + ", ".join(found or ["no headline metric"])
                             + (f"; secondary metrics: {', '.join(secondary)}"
                                if secondary else ""))
    from ftguard.compare_output import verdict_word

    lines.append(f"Gate: {verdict_word(c)} ({c.policy_source}: {'; '.join(c.rules)})")
    lines += [f"  {failure}" for failure in c.failures]
    lines += [f"  underpowered: {line}" for line in c.underpowered]
    lines += [f"  not gated: {line}" for line in c.not_gated]
    lines += [f"  warning: {line}" for line in c.warnings]
    lines += ["", f"Report: {result.paths['report']}",
              (f"Comparison: {result.paths['comparison']}  (ftguard compare "
              f"{result.paths['base']} {result.paths['tuned']})"), _timing(result)]
    return "\n".join(lines)


def _section(title: str, rows: list[ComparisonRow], aggregate: AggregateChange | None,
             name: str) -> list[str]:
    lines = [title]
    width = max((len(f"{r.task} {r.metric}") for r in rows), default=0)
    for r in rows:
        arrow = "" if r.higher_is_better else " (lower is better)"
        from ftguard.gate import format_ci

        if not r.comparable:
            lines.append(f"  {f'{r.task} {r.metric}':<{width}}  {_num(r.base)} -> "
                         f"{_num(r.tuned)}  not compared item by item{arrow}")
            continue
        weak = "" if r.testable else " (untestable at this n)"
        lines.append(f"  {f'{r.task} {r.metric}':<{width}}  {_num(r.base)} -> {_num(r.tuned)}"
                     f"  {_signed(r.delta)} {format_ci(r.ci_low, r.ci_high)}"
                     f"  p={r.p_adjusted:.3g}  n={r.n}  {r.verdict}{weak}{arrow}")
    if aggregate is not None:
        lines.append(f"  {name}: {aggregate.value:+.1%} mean relative change "
                     f"[{aggregate.ci_text()}] over "
                     f"{len(aggregate.tasks)} tasks")
    lines.append("")
    return lines


def _num(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def _signed(value: float) -> str:
    return f"{value:+.3f}" if abs(value) < 10 else f"{value:+.1f}"


def _timing(result: DemoResult) -> str:
    s = result.seconds
    parts = [f"{label} {s[key] / 60:.1f}" for key, label in
             (("base_eval", "base eval"), ("train", "fine-tune"), ("tuned_eval", "tuned eval"))
             if key in s]
    return f"Took {s['total'] / 60:.1f} min ({', '.join(parts)}); a second run reuses all of it."
