"""Regenerate reports/example.html and docs/report.png (needs chromium for the screenshot).

    .venv/bin/python docs/make_report_example.py

Two synthetic RunRecords (a base model and a LoRA candidate that gains on the target suite
and loses a little on general knowledge), compared with ftguard's paired statistics.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ftguard.compare import compare
from ftguard.record import MetricResult, ModelInfo, RunRecord, SampleResult, SuiteResult, TaskResult
from ftguard.report import write_report
from ftguard.train.record import discover_train_record

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = {
    "knowledge": ("What is the capital of {}?", ["Paris", "Rome", "Madrid", "Berlin", "Vienna"]),
    "arithmetic": ("What is {} + 17?", ["42", "58", "61", "73", "99"]),
    "reading": ("Passage {}: who left the house first?", ["Anna", "Ben", "Carla", "Dev", "Eli"]),
    "clause_type": ("Classify the clause: 'The Supplier shall indemnify {} ...'",
                    ["indemnity", "termination", "liability", "confidentiality", "payment"]),
}
PLAN = {  # (suite, task): (n, base accuracy, correct->wrong, wrong->correct)
    ("general", "knowledge"): (400, 0.72, 34, 9),
    ("general", "arithmetic"): (300, 0.55, 12, 10),
    ("general", "reading"): (250, 0.80, 8, 6),
    ("legal", "clause_type"): (300, 0.48, 6, 70),
}


def _runs() -> tuple[RunRecord, RunRecord]:
    rng = np.random.default_rng(7)
    tasks: dict[str, dict[str, list[TaskResult]]] = {"base": {}, "tuned": {}}
    for (suite, task), (n, acc, c2w, w2c) in PLAN.items():
        base = rng.random(n) < acc
        tuned = base.copy()
        tuned[rng.choice(np.flatnonzero(base), c2w, replace=False)] = False
        tuned[rng.choice(np.flatnonzero(~base), w2c, replace=False)] = True
        template, answers = QUESTIONS[task]
        for side, correct in (("base", base), ("tuned", tuned)):
            samples = []
            for i, ok in enumerate(correct):
                target = answers[i % len(answers)]
                wrong = answers[(i + 1 + (side == "tuned")) % len(answers)]
                samples.append(SampleResult(id=f"{task}-{i:04d}", prompt_hash=f"{task}{i}",
                                            prompt=template.format(f"item {i}"), target=target,
                                            prediction=target if ok else wrong,
                                            scores={"acc": float(ok)}))
            value = float(correct.mean())
            half = 1.96 * (value * (1 - value) / n) ** 0.5
            metric = MetricResult(value=value, ci_low=value - half, ci_high=value + half, n=n,
                                  higher_is_better=True, ci_method="wilson")
            tasks[side].setdefault(suite, []).append(
                TaskResult(name=task, kind="choice", metrics={"acc": metric}, samples=samples))

    def record(side: str, spec: str, adapter: str | None) -> RunRecord:
        model = ModelInfo(spec=spec, fingerprint=f"sha256:{'3f9a1c' if side == 'base' else 'b7e042'}"
                          + "0" * 58, dtype="synthetic", backend="synthetic", adapter=adapter, device="none")
        return RunRecord(model=model, created="2026-11-23T12:00:00+00:00", suites=[
            SuiteResult(name=s, version="1", hash=f"sha256:{s}", tasks=t,
                        role="target" if s == "legal" else "general")
            for s, t in tasks[side].items()])

    return (record("base", "synthetic-base (example data)", None),
            record("tuned", "synthetic-candidate (example data)", "example-adapter"))


def main() -> int:
    comparison = compare(*_runs(), resamples=2000, seed=1234)
    comparison = comparison.model_copy(update={"created": "2026-11-23T12:00:00+00:00"})
    out = write_report(comparison, ROOT / "reports" / "example.html",
                       train=discover_train_record(comparison.tuned))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    chromium = shutil.which("chromium")
    if not chromium:
        print("chromium not found: no screenshot", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}/profile",
                        f"--screenshot={shot}", "--window-size=1100,1500", out.as_uri()],
                       check=True, capture_output=True, timeout=120)
        png = ROOT / "docs" / "report.png"
        shutil.copyfile(shot, png)
    print(f"wrote {png} ({png.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
