"""The ``ftguard demo`` command: base eval, fine-tune, tuned eval, gate, report, story."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ftguard.cli.options import parse_batch_size, tasks_option
from ftguard.errors import EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``demo`` on the main parser."""
    demo = commands.add_parser(
        "demo", parents=[common],
        help="the whole story on the embedded model: eval, fine-tune, eval, gate, report",
        description="Evaluate the embedded SmolLM2-135M-Instruct on the shipped legal and "
                    "general suites, fine-tune it on the legal train split, evaluate the "
                    "result, compare the two item by item under the gate and write an HTML "
                    "report. About 10-13 minutes on a 2-core CPU (--quick: about 4); a second run "
                    "reuses everything. Exit 0 whatever the gate says: the demo shows it.")
    demo.add_argument("--quick", action="store_true",
                      help="smaller samples and a shorter fine-tune (under 4 minutes)")
    demo.add_argument("--method", choices=("lora", "qlora", "full"), default="lora",
                      help="fine-tuning method (default lora)")
    demo.add_argument("--replay", action="store_true",
                      help="mix the general replay set into training (half of the examples), "
                           "to see how it changes the alignment tax")
    demo.add_argument("--out", "-o", metavar="DIR", type=Path, default=Path("runs/demo"),
                      help="output folder (default runs/demo)")
    demo.add_argument("--report", metavar="FILE", type=Path,
                      default=Path("reports/demo.html"), help="HTML report (reports/demo.html)")
    demo.add_argument("--suites", metavar="DIR", type=Path,
                      help="folder holding legal/ and general/ (default: the shipped suites)")
    demo.add_argument("--batch-size", default="auto", metavar="N|auto",
                      help="evaluation batch size")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    tasks_option(demo)
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ftguard.demo import DemoOptions, run_demo
    from ftguard.demo_story import tell
    from ftguard.engine.tasks import parse_tasks
    from ftguard.outputs import output_dir, output_file
    from ftguard.progress import ProgressBar

    output_dir(args.out, "--out")
    output_file(args.report, "--report")
    options = DemoOptions(quick=args.quick, method=args.method, replay=args.replay,
                          out=args.out, report=args.report, suites=args.suites,
                          batch_size=parse_batch_size(args.batch_size),
                          tasks=parse_tasks(args.tasks or []))
    result = run_demo(options, say=lambda text: print(text, flush=True),
                      reporter=lambda: ProgressBar(enabled=not args.no_progress))
    print()
    print(tell(result, options))
    return EXIT_OK
