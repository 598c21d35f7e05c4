"""Time and peak memory of ``ftguard`` on hostile or huge inputs.

Each case writes its input to a temporary folder and runs the real CLI
(``python -m ftguard ...``) in its own child process; the child's wall time and peak
resident memory (``ru_maxrss`` from ``os.wait4``, so the number is that child's alone) are
reported with its exit code and the first line of what it said. Every child runs with an
address-space cap (``--mem-cap-mib``, default 8192) and a wall-clock limit (``--timeout``,
default 120 s), so a case that would eat the machine ends as ``MemoryError`` or ``timeout``
instead (a CPython 3.11 process that reaches the cap can also spin, retrying an exception
handler's allocation forever: the timeout, with SIGKILL, ends that too).

Cases:

* ``baseline``: ``suites validate`` on a 6-item suite: the interpreter's own footprint.
* ``big-item``: a 3-item choice task whose first item is one JSONL line of ``--big-mb`` (50)
  MB (a 50 MB ``question`` string); ``suites validate``, then ``eval --model fake --limit 1
  --out RUN.json``.
* ``million``: a choice task of ``--items`` (10^6) items of 4 choices; ``suites validate``,
  ``eval --model fake --limit 10`` and ``eval --model fake --subset 10``; and ``suites
  validate`` of a tenth of them, to show whether time and memory grow linearly.
* ``million-shots``: the same items with ``few_shot: {k: 5}`` drawn from the task's own
  data; ``suites validate``.
* ``million-typo``: the same items, the prompt naming a field they lack (every item fails
  to render); ``suites validate``.
* ``deep-jsonl``: a data line whose one field is nested ``--depth`` (100,000) brackets deep.
* ``alias-bomb``: suite.yaml with a billion-laughs alias bomb (9 levels of 9 aliases).
* ``few-shot-k``: ``few_shot.k: 8`` over a pool of 3 examples.
* ``compare-big``/``compare-deep``: ``ftguard compare`` of a RunRecord with a 50 MB
  prediction / with a sample target nested ``--depth`` deep, against a small valid record.

Run: ``.venv/bin/python benchmarks/resource_bounds.py [--items 1000000] [--big-mb 50]
[--depth 100000] [--cases baseline,million,...] [--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MC_TASK = """\
name: {name}
version: 1
role: general
tasks:
  - name: mc
    kind: choice
    data: data/mc.jsonl
    prompt: "Question: {{{{ question }}}}\\nAnswer:"
    choices_field: choices
    target_index: "{{{{ answer }}}}"
"""

OWN_SHOTS = """\
    few_shot: {k: 5}
"""

FEW_SHOT_TASK = MC_TASK + """\
    few_shot:
      k: 8
      data: data/shots.jsonl
"""


@dataclass
class Outcome:
    case: str
    command: str
    exit: str
    seconds: float
    peak_mib: float
    message: str


def mc_row(i: int, question: str | None = None) -> dict[str, object]:
    return {"id": f"q{i}", "question": question or f"What is {i} + 1?",
            "choices": [str(i + 1), str(i + 2), str(i), str(i - 1)], "answer": 0}


def write_suite(root: Path, yaml: str, rows: list[dict[str, object]] | None = None) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(yaml, encoding="utf-8")
    if rows is not None:
        with (root / "data" / "mc.jsonl").open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return root


def write_million(root: Path, n: int) -> Path:
    write_suite(root, MC_TASK.format(name="million"))
    with (root / "data" / "mc.jsonl").open("w", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            f.write("".join(json.dumps(mc_row(i)) + "\n" for i in range(start, min(n, start + 10_000))))
    return root


def write_big_item(root: Path, mib: int) -> Path:
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit "
    big = words * (mib * 2**20 // len(words))
    return write_suite(root, MC_TASK.format(name="big"),
                       [mc_row(0, big), mc_row(1), mc_row(2)])


def deep_value(depth: int) -> str:
    return "[" * depth + "]" * depth


def write_deep_jsonl(root: Path, depth: int) -> Path:
    write_suite(root, MC_TASK.format(name="deep"), [mc_row(1)])
    with (root / "data" / "mc.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"id": "deep", "question": "q", "choices": ["a", "b"], "answer": 0, '
                f'"junk": {deep_value(depth)}}}\n')
    return root


def write_alias_bomb(root: Path) -> Path:
    """Billion laughs: a0 is 9 strings, each a<k> 9 aliases of a<k-1>; a task's ``metrics``
    is a8, 9^9 = 387 million strings once expanded."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 9)]
    yaml = "\n".join(lines) + "\n" + MC_TASK.format(name="bomb") + "    metrics: *a8\n"
    return write_suite(root, yaml, [mc_row(i) for i in range(6)])


def write_few_shot(root: Path) -> Path:
    write_suite(root, FEW_SHOT_TASK.format(name="fewshot"), [mc_row(i) for i in range(6)])
    with (root / "data" / "shots.jsonl").open("w", encoding="utf-8") as f:
        for i in range(100, 103):
            f.write(json.dumps(mc_row(i)) + "\n")
    return root


def hostile_record(source: Path, dest: Path, *, big_mib: int = 0, depth: int = 0) -> Path:
    """``source`` (a RunRecord) with its first sample's prediction made ``big_mib`` MiB long,
    or its first sample's target nested ``depth`` deep (written as raw JSON text)."""
    text = source.read_text(encoding="utf-8")
    data = json.loads(text)
    sample = data["suites"][0]["tasks"][0]["samples"][0]
    marker = "@@HOSTILE@@"
    if big_mib:
        sample["prediction"] = marker
        payload = json.dumps("x" * (big_mib * 2**20))
    else:
        sample["target"] = marker
        payload = deep_value(depth)
    dest.write_text(json.dumps(data).replace(json.dumps(marker), payload, 1), encoding="utf-8")
    return dest


def run_case(case: str, args: list[str], timeout: float, mem_cap_mib: int,
             cwd: Path, root: Path = REPO) -> Outcome:
    """Run ``python -m ftguard ARGS`` in a fresh child; wall time and that child's peak RSS."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(root)}
    env.setdefault("FTGUARD_HOME", str(cwd / "home"))
    cap = mem_cap_mib * 2**20

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out_path, err_path = cwd / f"{case}.out", cwd / f"{case}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        # preexec_fn is unsafe only in a threaded parent; this script starts no threads
        proc = subprocess.Popen([sys.executable, "-m", "ftguard", *args], stdout=out,
                                stderr=err, cwd=cwd, env=env,
                                preexec_fn=limit)  # noqa: PLW1509
        status, usage, timed_out = None, None, False
        while status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = st, ru
            elif time.perf_counter() - start > timeout:
                proc.send_signal(signal.SIGKILL)
                timed_out = True
                _, status, usage = os.wait4(proc.pid, 0)
            else:
                time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    code = "timeout" if timed_out else str(proc.returncode)
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    message = (_first_line(stderr) if proc.returncode or timed_out
               else _summary(stdout) or _first_line(stderr))
    message = message.replace(f"{cwd}{os.sep}", "")
    if timed_out:
        message = f"killed after {timeout:.0f} s" + (f"; {message}" if message else "")
    shown = " ".join(os.path.relpath(a, cwd) if Path(a).is_absolute() else a for a in args)
    return Outcome(case, f"ftguard {shown}", code, round(seconds, 2),
                   round(usage.ru_maxrss / 1024, 1), message)  # ru_maxrss is in KiB


def _summary(stdout: str) -> str:
    """The ``ok`` line of ``suites validate``, or the item count of an ``eval`` table."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    ok = [line for line in lines if line.startswith("ok ")]
    if ok:
        return ok[0]
    cells = [line.strip("│ ").split("│") for line in lines if line.startswith("│")]
    if cells:
        return f"results table, n = {cells[0][-1].strip()} items scored per task"
    return lines[0] if lines else ""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ftguard: error")]
    picked = errors[0] if errors else (lines[-1] if lines else "")
    if picked.endswith("problem(s) found:") and len(lines) > lines.index(picked) + 1:
        picked += " " + lines[lines.index(picked) + 1]
    return picked if len(picked) <= 160 else picked[:157] + "..."


CASES = ("baseline", "big-item", "million", "million-shots", "million-typo", "deep-jsonl", "alias-bomb", "few-shot-k",
         "compare-big", "compare-deep")


def run_all(args: argparse.Namespace, work: Path) -> list[Outcome]:
    chosen = [c.strip() for c in args.cases.split(",")] if args.cases else list(CASES)
    outcomes: list[Outcome] = []

    def run(case: str, *cli: str | Path) -> Outcome:
        outcome = run_case(case, [str(a) for a in cli], args.timeout, args.mem_cap_mib, work,
                           args.ftguard_root)
        outcomes.append(outcome)
        print(f"  {outcome.case}: exit {outcome.exit}, {outcome.seconds} s, "
              f"{outcome.peak_mib} MiB", file=sys.stderr, flush=True)
        return outcome

    small = write_suite(work / "small", MC_TASK.format(name="small"),
                        [mc_row(i) for i in range(6)])
    small_run = work / "small.json"
    if "baseline" in chosen:
        run("baseline", "suites", "validate", small)
    if "big-item" in chosen:
        big = write_big_item(work / "big", args.big_mb)
        run("big-item", "suites", "validate", big)
        run("big-item", "eval", big, "--model", "fake", "--limit", "1", "--no-progress",
            "--out", work / "big.json")
    if {"million", "million-shots", "million-typo"} & set(chosen):
        tenth = write_million(work / "tenth", args.items // 10)
        million = write_million(work / "million", args.items)
    if "million" in chosen:
        run("million", "suites", "validate", tenth)  # a tenth of the items: is it linear?
        run("million", "suites", "validate", million)
        run("million", "eval", million, "--model", "fake", "--limit", "10", "--no-progress")
        run("million", "eval", million, "--model", "fake", "--subset", "10", "--no-progress")
    if "million-typo" in chosen:
        typo = write_suite(work / "typo", MC_TASK.format(name="typo").replace("{{ question }}",
                                                                             "{{ questoin }}"))
        os.link(million / "data" / "mc.jsonl", typo / "data" / "mc.jsonl")
        run("million-typo", "suites", "validate", typo)
    if "million-shots" in chosen:
        shots = write_suite(work / "shots", MC_TASK.format(name="shots") + OWN_SHOTS)
        os.link(million / "data" / "mc.jsonl", shots / "data" / "mc.jsonl")
        run("million-shots", "suites", "validate", shots)
    if "deep-jsonl" in chosen:
        run("deep-jsonl", "suites", "validate", write_deep_jsonl(work / "deep", args.depth))
    if "alias-bomb" in chosen:
        run("alias-bomb", "suites", "validate", write_alias_bomb(work / "bomb"))
    if "few-shot-k" in chosen:
        shots = write_few_shot(work / "fewshot")
        run("few-shot-k", "suites", "validate", shots)
        run("few-shot-k", "eval", shots, "--model", "fake", "--no-progress")
    if {"compare-big", "compare-deep"} & set(chosen):
        made = run_case("setup", ["eval", str(small), "--model", "fake", "--no-progress",
                                  "--out", str(small_run)], args.timeout, args.mem_cap_mib, work,
                        args.ftguard_root)
        if made.exit != "0":
            raise SystemExit(f"could not write the small RunRecord: {made.message}")
        if "compare-big" in chosen:
            bad = hostile_record(small_run, work / "big_run.json", big_mib=args.big_mb)
            run("compare-big", "compare", small_run, bad)
        if "compare-deep" in chosen:
            bad = hostile_record(small_run, work / "deep_run.json", depth=args.depth)
            run("compare-deep", "compare", small_run, bad)
    return outcomes


def print_table(outcomes: list[Outcome]) -> None:
    headers = ("case", "command", "exit", "s", "peak MiB", "message (first line)")
    rows = [(o.case, o.command, o.exit, f"{o.seconds:.2f}", f"{o.peak_mib:.0f}", o.message)
            for o in outcomes]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items of the large suite")
    parser.add_argument("--big-mb", type=int, default=50, help="MiB of the one-line item")
    parser.add_argument("--depth", type=int, default=100_000, help="nesting depth")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command")
    parser.add_argument("--mem-cap-mib", type=int, default=8192,
                        help="address-space cap of each child (RLIMIT_AS)")
    parser.add_argument("--ftguard-root", type=Path, default=REPO,
                        help="import ftguard from this folder (e.g. an export of an earlier "
                             "commit, to measure before and after a change)")
    parser.add_argument("--cases", help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ftguard-bounds-") as tmp:
        outcomes = run_all(args, Path(tmp))
    print(f"ftguard from {args.ftguard_root}; python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; each command a fresh process, capped at "
          f"{args.mem_cap_mib} MiB address space and {args.timeout:.0f} s")
    print_table(outcomes)
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n",
                                  encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
