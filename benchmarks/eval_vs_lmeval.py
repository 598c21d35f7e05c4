"""ftguard vs lm-evaluation-harness: speed and agreement on the same tasks, model and batch.

Both sides evaluate the embedded SmolLM2-135M-Instruct (float32, CPU) on

* ``mc``: the first ``--mc-n`` items of ``suites/general/data/world_knowledge.jsonl``,
  multiple choice by log-likelihood, ``acc`` and ``acc_norm``;
* ``gen``: the first ``--gen-n`` items of ``suites/general/data/arithmetic.jsonl``, greedy
  generation stopped at ``"\\n"`` after at most 16 new tokens, exact match;
* ``ppl``: the first ``--ppl-n`` documents of ``suites/general/data/english_corpus.jsonl``,
  rolling-window log-likelihood, word perplexity and bits per byte;

with the prompt ``"Question: {{ question }}\\nAnswer:"`` and the same batch size. The model
is loaded once and shared: ftguard gets an ``HFBackend`` around it and lm-eval an ``HFLM``
around the very same ``torch.nn.Module``, so load time is reported separately and the timed
part is the evaluation proper (suite/task loading, tokenisation, forward passes, metrics).
lm-eval's import and ``TaskManager`` indexing happen before any timer starts.

Exact match: ftguard's ``exact_match_strict`` compares after ``str.strip()``; lm-eval's
``exact_match`` (``ignore_case``/``ignore_punctuation`` false) is given
``regexes_to_ignore: ["^\\s+", "\\s+$"]``, the same outer-whitespace strip, because the
raw generations start with a space (``" 23"``). Predictions are also compared raw,
text for text.

Then, for ftguard alone: the same three suites evaluated cold with ``cache=True`` (empty
caches: ``$FTGUARD_HOME`` points to a temporary folder meanwhile), re-run (suite results cached: no model call), and
re-run from the response cache only (suite results removed, every model answer read from
SQLite). And model FLOP utilisation: the forward FLOPs the tasks need, 2 x parameters x
tokens (tokens = what a scorer that shares nothing it need not repeat must run: each
question's context once plus its choices' tokens, prompt plus generated tokens, every
document token), over each side's wall time, as a fraction of this CPU's fp32 matmul
throughput measured here (best of a few 2048 x 2048 products).

Run: ``.venv/bin/python benchmarks/eval_vs_lmeval.py [--batch-size 16] [--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "suites" / "general" / "data"
PROMPT = "Question: {{ question }}\\nAnswer:"  # as it appears inside a YAML double-quoted string

FTGUARD_SUITES = {
    "mc": f"""\
name: bench-mc
version: 1
role: general
tasks:
  - name: world_knowledge
    kind: choice
    data: data.jsonl
    prompt: "{PROMPT}"
    choices_field: choices
    target_index: "{{{{ answer }}}}"
    target_delimiter: " "
    metrics: [acc, acc_norm]
""",
    "gen": f"""\
name: bench-gen
version: 1
role: general
tasks:
  - name: arithmetic
    kind: generate
    data: data.jsonl
    prompt: "{PROMPT}"
    target_field: answer
    generation: {{max_new_tokens: 16, stop: ["\\n"]}}
    metrics: [exact_match_strict]
""",
    "ppl": """\
name: bench-ppl
version: 1
role: general
tasks:
  - name: english_corpus
    kind: perplexity
    data: data.jsonl
    prompt: "{{ text }}"
    metrics: [word_perplexity, bits_per_byte]
""",
}

LMEVAL_TASKS = {
    "mc": """\
task: bench_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{prompt}"
doc_to_choice: choices
doc_to_target: answer
target_delimiter: " "
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""",
    "gen": """\
task: bench_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{prompt}"
doc_to_target: answer
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 16
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: false
    ignore_punctuation: false
    regexes_to_ignore: ["^\\\\s+", "\\\\s+$"]
""",
    "ppl": """\
task: bench_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""",
}

SOURCES = {"mc": "world_knowledge.jsonl", "gen": "arithmetic.jsonl", "ppl": "english_corpus.jsonl"}
METRICS = {"mc": ["acc", "acc_norm"], "gen": ["exact_match_strict"],
           "ppl": ["word_perplexity", "bits_per_byte"]}
LMEVAL_METRICS = {"acc": "acc,none", "acc_norm": "acc_norm,none",
                  "exact_match_strict": "exact_match,none",
                  "word_perplexity": "word_perplexity,none", "bits_per_byte": "bits_per_byte,none"}
PPL_REL_TOLERANCE = 1e-5
"""Perplexities are sums of float32 log-probabilities: equal to this relative tolerance."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16, help="both sides (default 16)")
    parser.add_argument("--mc-n", type=int, default=220,
                        help="multiple-choice items, 4 choices each (default 220, all)")
    parser.add_argument("--gen-n", type=int, default=50, help="generation items (50)")
    parser.add_argument("--ppl-n", type=int, default=12, help="perplexity documents (12)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="run each side R times, alternating who goes first; report the "
                             "fastest (default 3)")
    parser.add_argument("--tasks", default="mc,gen,ppl",
                        help="comma-separated subset of mc,gen,ppl")
    parser.add_argument("--no-cache-runs", action="store_true",
                        help="skip the cold / cached re-run measurement")
    parser.add_argument("--out", type=Path, help="write all numbers as JSON here")
    return parser.parse_args(argv)


def write_inputs(root: Path, n: dict[str, int]) -> dict[str, dict[str, Path]]:
    """Per task: an ftguard suite folder and an lm-eval task folder over the same JSONL."""
    out: dict[str, dict[str, Path]] = {}
    lmeval_dir = root / "lmeval_tasks"
    lmeval_dir.mkdir()
    for key, source in SOURCES.items():
        suite = root / f"suite_{key}"
        suite.mkdir()
        lines = (DATA / source).read_text(encoding="utf-8").splitlines(keepends=True)[:n[key]]
        data = suite / "data.jsonl"
        data.write_text("".join(lines), encoding="utf-8")
        (suite / "suite.yaml").write_text(FTGUARD_SUITES[key], encoding="utf-8")
        (lmeval_dir / f"bench_{key}.yaml").write_text(
            LMEVAL_TASKS[key].format(data=json.dumps(str(data)), prompt=PROMPT),
            encoding="utf-8")
        out[key] = {"suite": suite, "data": data}
    out["_lmeval"] = {"dir": lmeval_dir}
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_ftguard(suite: Path, backend: Any) -> tuple[float, Any]:
    import ftguard

    start = time.perf_counter()
    record = ftguard.evaluate([suite], backend=backend)
    return time.perf_counter() - start, record.suites[0].tasks[0]


def run_lmeval(task: str, lm: Any, manager: Any) -> tuple[float, dict[str, Any]]:
    import lm_eval

    start = time.perf_counter()  # the batch size was given to the HFLM
    out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager,
                                  log_samples=True)
    seconds = time.perf_counter() - start
    assert out is not None
    return seconds, {"results": out["results"][task],
                     "samples": {s["doc"]["id"]: s for s in out["samples"][task]}}


def compare(key: str, ours: Any, theirs: dict[str, Any]) -> dict[str, Any]:
    """Metric values and per-sample agreement of one task."""
    metrics = {m: {"ftguard": ours.metrics[m].value,
                   "lm_eval": float(theirs["results"][LMEVAL_METRICS[m]])} for m in METRICS[key]}
    mismatches: list[str] = []
    detail: dict[str, Any] = {}
    if key == "mc":
        max_diff = 0.0
        for s in ours.samples:
            t = theirs["samples"][s.id]
            lls = [r[0][0] for r in t["resps"]]
            max_diff = max(max_diff, *(abs(a - b) for a, b in zip(s.loglikelihoods, lls)))
            if s.scores["acc"] != t["acc"] or s.scores["acc_norm"] != t["acc_norm"]:
                mismatches.append(s.id)
        detail["max_abs_loglikelihood_diff"] = max_diff
        same = all(v["ftguard"] == v["lm_eval"] for v in metrics.values())
    elif key == "gen":
        for s in ours.samples:
            t = theirs["samples"][s.id]
            if s.prediction != t["filtered_resps"][0] or s.scores["exact_match_strict"] != \
                    t["exact_match"]:
                mismatches.append(s.id)
        detail["examples"] = [{"id": s.id, "ftguard": s.prediction,
                               "lm_eval": theirs["samples"][s.id]["filtered_resps"][0]}
                              for s in ours.samples[:3]]
        same = all(v["ftguard"] == v["lm_eval"] for v in metrics.values())
    else:
        max_rel = 0.0
        for s in ours.samples:
            nll = s.stats["word_perplexity"][0]
            loglikelihood = theirs["samples"][s.id]["filtered_resps"][0]
            rel = abs(nll + loglikelihood) / abs(loglikelihood)
            max_rel = max(max_rel, rel)
            if rel > PPL_REL_TOLERANCE:
                mismatches.append(s.id)
        detail["max_rel_nll_diff"] = max_rel
        same = all(abs(v["ftguard"] - v["lm_eval"]) <= PPL_REL_TOLERANCE * abs(v["lm_eval"])
                   for v in metrics.values())
    return {"metrics": metrics, "sample_mismatches": mismatches,
            "identical": same and not mismatches, **detail}


def warm_up(backend: Any, batch_size: int) -> None:
    """A few full-batch forward passes, so that neither side pays for first-touch costs
    (weights paged in, allocator and kernel setup)."""
    from ftguard.models.base import LoglikelihoodRequest

    requests = [LoglikelihoodRequest(f"Question: warm up number {i}\nAnswer:", " yes")
                for i in range(batch_size)]
    for _ in range(3):
        backend.loglikelihood(requests)


def needed_tokens(key: str, data: Path, tokenizer: Any, ours: Any) -> int:
    """Tokens any scorer must run for the task: see the module docstring."""
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    if key == "mc":
        return sum(count(f"Question: {r['question']}\nAnswer:")
                   + sum(count(" " + c) - 1 for c in r["choices"]) for r in rows)
    if key == "gen":
        by_id = {s.id: s.prediction or "" for s in ours.samples}
        return sum(count(f"Question: {r['question']}\nAnswer:") + count(by_id[r["id"]])
                   for r in rows)
    return sum(count(r["text"]) for r in rows)


def matmul_gflops() -> float:
    """This CPU's fp32 matmul throughput: best of several 2048 x 2048 products."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(8):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def cache_runs(paths: dict[str, dict[str, Path]], keys: list[str], backend: Any) -> dict[str, Any]:
    """ftguard with ``cache=True``: cold, re-run, and re-run from the response cache only."""
    import shutil

    import ftguard

    suites = [paths[k]["suite"] for k in keys]
    home = Path(tempfile.mkdtemp(prefix="ftguard-bench-home-"))
    user_home = os.environ.get("FTGUARD_HOME")
    os.environ["FTGUARD_HOME"] = str(home)  # empty caches, the user's left alone
    out: dict[str, Any] = {}
    records = {}
    try:
        for label in ("cold", "rerun", "rerun_responses_only"):
            if label == "rerun_responses_only":
                shutil.rmtree(home / "results", ignore_errors=True)
            start = time.perf_counter()
            records[label] = ftguard.evaluate(suites, backend=backend, cache=True)
            out[label] = time.perf_counter() - start
    finally:
        if user_home is None:
            del os.environ["FTGUARD_HOME"]
        else:
            os.environ["FTGUARD_HOME"] = user_home
        shutil.rmtree(home, ignore_errors=True)
    out["same_results"] = all(
        [t.metrics for t in records[label].suites[0].tasks]
        == [t.metrics for t in records["cold"].suites[0].tasks]
        for label in ("rerun", "rerun_responses_only"))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.tasks.split(",") if k.strip()]
    if not keys or any(k not in SOURCES for k in keys):
        print(f"--tasks {args.tasks}: choose from mc,gen,ppl", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ftguard-bench-") as tmp:
        report = run(args, keys, Path(tmp))
    print_table(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


def run(args: argparse.Namespace, keys: list[str], root: Path) -> dict[str, Any]:
    bs = args.batch_size
    counts = {"mc": args.mc_n, "gen": args.gen_n, "ppl": args.ppl_n}
    paths = write_inputs(root, counts)

    from ftguard.models.embedded import embedded_model_dir
    from ftguard.models.load import LoadOptions, load_backend

    model_dir = embedded_model_dir()
    start = time.perf_counter()
    backend = load_backend(LoadOptions(model=str(model_dir), device="cpu", dtype="float32",
                                       batch_size=bs))
    ftguard_load = time.perf_counter() - start

    start = time.perf_counter()
    import lm_eval  # noqa: F401
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import setup_logging

    setup_logging("WARNING")
    manager = TaskManager(include_path=str(paths["_lmeval"]["dir"]), include_defaults=False)
    lmeval_import = time.perf_counter() - start
    start = time.perf_counter()
    lm = HFLM(pretrained=backend.model, tokenizer=backend.tokenizer, batch_size=bs,
              device="cpu")
    lmeval_wrap = time.perf_counter() - start
    import torch

    warm_up(backend, bs)
    rss_after_load = peak_rss_mib()
    params = sum(p.numel() for p in backend.model.parameters())

    report: dict[str, Any] = {
        "model": str(model_dir), "batch_size": bs, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(), "parameters": params,
        "matmul_gflops": matmul_gflops(),
        "load_seconds": {"ftguard_model_load": ftguard_load,
                         "lmeval_import_and_task_index": lmeval_import,
                         "lmeval_hflm_wrap": lmeval_wrap},
        "tasks": {},
    }
    for key in keys:
        times: dict[str, list[float]] = {"ftguard": [], "lm_eval": []}
        ours: Any = None
        theirs: dict[str, Any] = {}
        for r in range(args.repeats):
            order = ["ftguard", "lm_eval"] if r % 2 == 0 else ["lm_eval", "ftguard"]
            for side in order:
                if side == "ftguard":
                    seconds, ours = run_ftguard(paths[key]["suite"], backend)
                else:
                    seconds, theirs = run_lmeval(f"bench_{key}", lm, manager)
                times[side].append(seconds)
        result = compare(key, ours, theirs)
        best = {s: min(v) for s, v in times.items()}
        tokens = needed_tokens(key, paths[key]["data"], backend.tokenizer, ours)
        gflop = 2 * params * tokens / 1e9
        result.update(n=counts[key], seconds=best, all_seconds=times, needed_tokens=tokens,
                      needed_gflop=gflop,
                      mfu={s: gflop / best[s] / report["matmul_gflops"] for s in best})
        report["tasks"][key] = result
    if not args.no_cache_runs:
        report["cache"] = cache_runs(paths, keys, backend)
    report["peak_rss_mib"] = {"after_load": rss_after_load, "end": peak_rss_mib()}
    return report


def print_table(report: dict[str, Any]) -> None:
    header = ["task", "n", "ftguard s", "lm-eval s", "ratio", "MFU ftguard", "MFU lm-eval",
              "metric", "ftguard", "lm-eval", "identical?"]
    rows = []
    for key, t in report["tasks"].items():
        for i, (metric, v) in enumerate(t["metrics"].items()):
            first = i == 0
            ratio = t["seconds"]["ftguard"] / t["seconds"]["lm_eval"]
            rows.append([key if first else "", str(t["n"]) if first else "",
                         f"{t['seconds']['ftguard']:.2f}" if first else "",
                         f"{t['seconds']['lm_eval']:.2f}" if first else "",
                         f"{ratio:.2f}" if first else "",
                         f"{t['mfu']['ftguard']:.1%}" if first else "",
                         f"{t['mfu']['lm_eval']:.1%}" if first else "",
                         metric, f"{v['ftguard']:.4f}",
                         f"{v['lm_eval']:.4f}", ("yes" if t["identical"] else "NO") if first
                         else ""])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    print(f"\nSmolLM2-135M-Instruct ({report['parameters'] / 1e6:.1f} M parameters), float32, "
          f"CPU ({report['torch_threads']} threads), batch size {report['batch_size']}, "
          f"best of {report['repeats']}")
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))
    for key, t in report["tasks"].items():
        if key == "mc":
            extra = f"max |Δ loglikelihood| = {t['max_abs_loglikelihood_diff']:.2e}"
        elif key == "gen":
            extra = "predictions compared raw, text for text"
        else:
            extra = f"max relative Δ NLL = {t['max_rel_nll_diff']:.2e}"
        print(f"{key}: {len(t['sample_mismatches'])} sample mismatches; {extra}; "
              f"{t['needed_tokens']} tokens needed = {t['needed_gflop']:.0f} GFLOP")
    print(f"MFU = 2 x parameters x tokens needed / wall time, over this CPU's fp32 matmul "
          f"throughput of {report['matmul_gflops']:.0f} GFLOP/s")
    if "cache" in report:
        c = report["cache"]
        print(f"ftguard --cache on these suites: cold {c['cold']:.2f} s; re-run "
              f"{c['rerun']:.3f} s ({c['cold'] / c['rerun']:.0f}x faster); re-run from the "
              f"response cache only {c['rerun_responses_only']:.3f} s "
              f"({c['cold'] / c['rerun_responses_only']:.0f}x faster); same results: "
              f"{'yes' if c['same_results'] else 'NO'}")
    loads = report["load_seconds"]
    print(f"model load (excluded): ftguard {loads['ftguard_model_load']:.2f} s; lm-eval import "
          f"+ TaskManager {loads['lmeval_import_and_task_index']:.2f} s, HFLM wrap "
          f"{loads['lmeval_hflm_wrap']:.2f} s")
    rss = report["peak_rss_mib"]
    print(f"peak RSS: {rss['after_load']:.0f} MiB after load, {rss['end']:.0f} MiB at the end "
          "(one process, both sides)")


if __name__ == "__main__":
    sys.exit(main())
