"""The n answers per item of a sampled or beam-searched ``generate`` task.

A greedy task asks one request per item, exactly as before sampling existed (same request,
same response-cache key). A task with ``do_sample`` or ``num_beams`` asks ``n`` requests per
item, answer ``j`` carrying ``sample=j`` and the decoding settings, so each answer is seeded,
cached and sharded on its own. The first answer is the item's ``prediction`` and is what the
task's ordinary metrics score; ``pass@k``, ``majority@n`` and ``mean@n`` read all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftguard.errors import UsageError
from ftguard.metrics.sampling import criteria, is_sampled, sampled_scores
from ftguard.models.base import Decoding, GenerateRequest
from ftguard.suite import Suite
from ftguard.suite.generation import GenerationSpec


def decoding_of(gen: GenerationSpec) -> Decoding | None:
    """The request's decoding settings; None for greedy decoding."""
    if gen.greedy:
        return None
    return Decoding(do_sample=gen.do_sample,
                    temperature=1.0 if gen.temperature is None else gen.temperature,
                    top_p=1.0 if gen.top_p is None else gen.top_p, top_k=gen.top_k, n=gen.n,
                    seed=gen.seed, num_beams=gen.num_beams)


def answer_requests(contexts: Sequence[str], gen: GenerationSpec) -> list[GenerateRequest]:
    """Every request of a generate task: one per item (greedy) or ``n`` per item, in item
    order."""
    decoding = decoding_of(gen)
    stop = tuple(gen.stop)
    if decoding is None:
        return [GenerateRequest(ctx, gen.max_new_tokens, stop) for ctx in contexts]
    return [GenerateRequest(ctx, gen.max_new_tokens, stop, decoding, j)
            for ctx in contexts for j in range(decoding.n)]


def answers_per_item(gen: GenerationSpec) -> int:
    return 1 if gen.greedy else gen.n


def plain_metrics(names: Sequence[str]) -> list[str]:
    """The metrics that score one answer (the first), without pass@k & co."""
    return [n for n in names if not is_sampled(n)]


def score_answers(names: Sequence[str], answers: Sequence[str], references: list[str],
                  instructions: object = None) -> dict[str, float]:
    """Each sampled metric among ``names`` for one item from its answers (empty when there
    is none); every answer is scored by the criteria they need."""
    needed = criteria(names)
    if not needed:
        return {}
    from ftguard.metrics.instruction_following import followed
    from ftguard.metrics.score import score_generate

    per_answer = [score_generate(str(a), references, needed,
                                 followed(str(a), instructions) if instructions else None)[0]
                  for a in answers]
    return sampled_scores(names, [str(a) for a in answers], per_answer)


def check_backend(suites: Sequence[Suite], backend: str) -> None:
    """UsageError (exit 2) for the first generate task whose decoding ``backend`` cannot
    honour (num_beams on an OpenAI-compatible server), before any model is asked anything."""
    from ftguard.models.registry import unsupported_decoding

    refused = unsupported_decoding(backend)
    for suite in suites:
        for task in suite.tasks:
            gen = task.spec.generation
            for key, why in refused.items():
                if task.spec.kind == "generate" and key not in gen.defaulted():
                    raise UsageError(
                        f"suite {suite.name}, task {task.spec.name}: generation.{key} "
                        f"{getattr(gen, key)!r} cannot be honoured by --backend {backend}: "
                        f"{why}.",
                        hint=f"Evaluate it in-process (--backend hf), or remove "
                             f"generation.{key} from {suite.root / 'suite.yaml'}.")
