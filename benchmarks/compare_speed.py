"""Speed of ``ftguard compare``'s statistics on a large pair of runs.

Two synthetic runs of the same ``--n`` (100,000) items, with one metric of each kind, tested
as ``ftguard compare`` tests them:

* ``acc`` -- 0/1 scores: exact McNemar test + Tango score interval (+ its MDE);
* ``f1`` -- continuous per-item scores: sign-flip test, ``--resamples`` (10,000) random
  sign patterns below 20,000 items, a paired t-test from there on (``paired-t``);
* ``perplexity`` -- corpus metric from k = 4 per-item statistics ``[nll, tokens, words,
  bytes]``: paired swap test, ``--resamples`` random swaps, jackknife interval.

and, for comparison, the percentile bootstraps compare used before (``f1 [boot]``,
``perplexity [boot]``; anti-conservative below a few dozen items). Each comparison runs
``--repeats`` (3) times and the fastest run is reported, with the result so that a change
of numbers is as visible as a change of speed. Target: under 3 s in total for compare's
three on a 2-core CPU. ``--scheme multinomial`` times exact bootstrap resampling instead of
the default (``auto``: double-or-nothing at this size, see ``ftguard.stats.resample``).
``--n 1000`` times the Monte Carlo sign-flip path.

Run: ``.venv/bin/python benchmarks/compare_speed.py [--n 100000] [--resamples 10000]
[--scheme auto] [--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftguard.metrics.perplexity import perplexity_from_stats
from ftguard.stats import (
    PairedResult,
    mcnemar_exact,
    paired_bootstrap,
    paired_corpus_bootstrap,
    paired_swap_test,
    sign_flip_test,
)


def synthetic_runs(n: int, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Base and tuned per-item data sharing item difficulty, the tuned run slightly worse
    on ``acc``, slightly better on ``f1`` and ``perplexity``."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    p_base = 1 / (1 + np.exp(-(0.5 + 2 * difficulty)))
    p_tuned = 1 / (1 + np.exp(-(0.45 + 2 * difficulty)))
    quality = rng.beta(0.5, 1.2, n)
    tokens = 5 + rng.poisson(rng.lognormal(4, 0.8, n)).astype(float)
    rate = 2 + 0.5 * difficulty

    def ppl_stats(nll: np.ndarray) -> np.ndarray:
        return np.column_stack([nll, tokens, np.ceil(0.75 * tokens), 4 * tokens])
    return {
        "acc": ((rng.random(n) < p_base).astype(float), (rng.random(n) < p_tuned).astype(float)),
        "f1": (np.clip(quality + rng.normal(0, 0.1, n), 0, 1),
               np.clip(quality + 0.005 + rng.normal(0, 0.1, n), 0, 1)),
        "perplexity": (ppl_stats(tokens * rate + 0.8 * np.sqrt(tokens) * rng.normal(size=n)),
                       ppl_stats(tokens * (rate - 0.01)
                                 + 0.8 * np.sqrt(tokens) * rng.normal(size=n))),
    }


def best_of(repeats: int, fn: Callable[[], PairedResult]) -> tuple[float, PairedResult]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    assert result is not None
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="items per run (100000)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--scheme", default="auto",
                        choices=["auto", "multinomial", "double-or-nothing"])
    parser.add_argument("--repeats", type=int, default=3, help="report the fastest of R runs")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)

    data = synthetic_runs(args.n)
    boot = {"resamples": args.resamples, "scheme": args.scheme}
    compare_jobs: dict[str, Callable[[], PairedResult]] = {
        "acc": lambda: mcnemar_exact(*data["acc"]),
        "f1": lambda: sign_flip_test(*data["f1"], resamples=args.resamples),
        "perplexity": lambda: paired_swap_test(*data["perplexity"], perplexity_from_stats,
                                               resamples=args.resamples),
    }
    jobs: dict[str, Callable[[], PairedResult]] = {
        **compare_jobs,
        "f1 [boot]": lambda: paired_bootstrap(*data["f1"], **boot),
        "perplexity [boot]": lambda: paired_corpus_bootstrap(*data["perplexity"],
                                                             perplexity_from_stats, **boot),
    }
    rows = []
    print(f"n = {args.n:,} items per run, {args.resamples:,} resamples, scheme {args.scheme}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, best of "
          f"{args.repeats}\n")
    print(f"{'metric':<18} {'method':<17} {'resampling':<18} {'seconds':>8}  "
          f"{'delta':>9}  {'95% CI':<21} {'p':>8}")
    for name, job in jobs.items():
        seconds, r = best_of(args.repeats, job)
        rows.append({"metric": name, "method": r.method, "resampling": r.resampling,
                     "seconds": seconds, "delta": r.delta, "ci_low": r.ci_low,
                     "ci_high": r.ci_high, "p_value": r.p_value})
        print(f"{name:<18} {r.method:<17} {r.resampling or '-':<18} {seconds:>8.3f}  "
              f"{r.delta:>+9.5f}  [{r.ci_low:+.5f}, {r.ci_high:+.5f}] {r.p_value:>8.2g}")
    total = sum(row["seconds"] for row in rows if row["metric"] in compare_jobs)
    print(f"{'compare total':<18} {'':<17} {'':<18} {total:>8.3f}   (target < 3 s)")
    if args.out:
        args.out.write_text(json.dumps({"n": args.n, "resamples": args.resamples,
                                        "rows": rows, "total_seconds": total}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
