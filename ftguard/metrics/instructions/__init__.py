"""Verifiable instruction following, scored with IFEval's definitions.

A prompt carries instructions, each an IFEval id (``detectable_format:number_bullet_lists``)
and its kwargs (``{"num_bullets": 3}``); a response follows an instruction when its checker
says so. :func:`follow` gives per instruction a strict result and a loose one (also tried on
the response without its first and/or last line and without ``*``); :func:`aggregate` gives
IFEval's ``prompt_level_strict_acc``, ``prompt_level_loose_acc``, ``inst_level_strict_acc``,
``inst_level_loose_acc`` and a per-type breakdown.

The checkers give lm-eval's ``ifeval`` results on the same responses
(tests/test_instruction_checkers.py compares them one by one), with three differences:

- kwargs are required and validated; IFEval draws a missing one at random;
- ``change_case:english_lowercase`` / ``english_capital`` check the case only, without
  IFEval's langdetect call (not installed here, and unseeded it is not deterministic);
- the types in :data:`UNSUPPORTED` (response language, sentence counts, capital-word
  counts) need langdetect or NLTK's punkt data and are refused with that reason.
"""

from ftguard.metrics.instructions.data import InstructionPrompt, load_prompts, row_problems
from ftguard.metrics.instructions.follow import (
    Aggregate,
    TypeTally,
    aggregate,
    follow,
    loose_variants,
)
from ftguard.metrics.instructions.spec import (
    INSTRUCTION_TYPES,
    UNSUPPORTED,
    InstructionType,
    bind,
    kwargs_problems,
)

__all__ = [
    "INSTRUCTION_TYPES", "UNSUPPORTED", "Aggregate", "InstructionPrompt", "InstructionType",
    "TypeTally", "aggregate", "bind", "follow", "kwargs_problems", "load_prompts",
    "loose_variants", "row_problems",
]
