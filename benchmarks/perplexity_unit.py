"""Which paired unit for a perplexity corpus: whole documents, or fixed-length chunks?

Chunks give a 20k-word corpus a large n, but the chunks of one document share its topic and
style, so a fine-tune's effect on them is correlated: a test that treats chunks as independent
units judges "these particular texts", not documents of the kind the corpus samples. This
script measures both on real models and what the correlation does to the false-alarm rate:

1. per-token negative log-likelihoods of every document of the shipped perplexity tasks
   (legal_corpus, english_corpus) under the base model and a candidate (default: the demo's
   LoRA adapter), scored in lm-eval's rolling windows as ftguard scores them;
2. the paired swap test of token perplexity with documents as the unit, and with consecutive
   ``--chunk``-token pieces of the documents as the unit;
3. the intra-document correlation (ICC) of the chunks' per-token log-likelihood changes and
   the design effect ``1 + (m - 1) ICC`` (m chunks per document): how much chunk-level
   variance understates the variance that matters;
4. a simulation with these sizes and this ICC under a null that holds for documents (each
   document's change is drawn around 0, its chunks around the document's change): the
   false-alarm rate of the chunk-level and of the document-level swap test at alpha 0.05.

Run (after ``ftguard demo``): ``.venv/bin/python benchmarks/perplexity_unit.py
[--adapter runs/demo/train/adapter] [--chunk 128] [--sims 1000]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def token_nlls(backend: object, text: str, max_length: int) -> np.ndarray:
    """Per-token NLL of ``text`` in ftguard's rolling windows (lm-eval's scheme)."""
    import torch

    from ftguard.models.hf_encode import rolling_windows

    tok, model = backend.tokenizer, backend.model  # type: ignore[attr-defined]
    tokens = tok(text, add_special_tokens=False)["input_ids"]
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    out: list[float] = []
    for sequence, scored in rolling_windows(tokens, prefix, max_length):
        ids = torch.tensor([list(sequence)])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
        out += nll[-scored:].tolist()
    return np.array(out)


def chunk_stats(nlls: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``[nll, tokens]`` per chunk of ``size`` scored tokens, and each chunk's document."""
    stats, owner = [], []
    for d, x in enumerate(nlls):
        for start in range(0, len(x), size):
            piece = x[start:start + size]
            stats.append([piece.sum(), len(piece)])
            owner.append(d)
    return np.array(stats), np.array(owner)


def icc(values: np.ndarray, groups: np.ndarray) -> float:
    """One-way ANOVA intra-class correlation of ``values`` grouped by ``groups``."""
    labels = np.unique(groups)
    k = len(labels)
    sizes = np.array([np.sum(groups == g) for g in labels])
    means = np.array([values[groups == g].mean() for g in labels])
    n = len(values)
    msb = np.sum(sizes * (means - values.mean()) ** 2) / (k - 1)
    msw = sum(((values[groups == g] - m) ** 2).sum() for g, m in zip(labels, means)) / (n - k)
    m0 = (n - np.sum(sizes**2) / n) / (k - 1)
    return float((msb - msw) / (msb + (m0 - 1) * msw))


def simulate(sizes: list[int], chunk: int, rho: float, sims: int, seed: int
             ) -> tuple[float, float]:
    """False-alarm rates (chunk unit, document unit) under a document-level null."""
    from ftguard.metrics.perplexity import perplexity_from_stats
    from ftguard.stats import paired_swap_p_values

    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    n_chunks = len(owner)
    # per-token NLL of a chunk: 2.5 + noise; the change: a document effect + a chunk effect
    doc = rng.normal(0, math.sqrt(rho), (sims, len(sizes)))[:, owner]
    change = 0.1 * (doc + rng.normal(0, math.sqrt(1 - rho), (sims, n_chunks)))
    level = 2.5 + 0.3 * rng.normal(size=(sims, n_chunks))
    base = np.stack([level * chunk, np.full_like(level, chunk)], axis=-1)
    tuned = np.stack([(level + change) * chunk, np.full_like(level, chunk)], axis=-1)
    # a random half of each pair's roles swapped: base and tuned exchangeable per document
    flip = rng.random((sims, len(sizes)))[:, owner, None] < 0.5
    base, tuned = np.where(flip, tuned, base), np.where(flip, base, tuned)
    p_chunk = paired_swap_p_values(base, tuned, perplexity_from_stats, resamples=999)
    onehot = np.eye(len(sizes))[owner]  # chunk -> document
    docs = [np.einsum("snk,nd->sdk", s, onehot) for s in (base, tuned)]
    p_doc = paired_swap_p_values(docs[0], docs[1], perplexity_from_stats, resamples=999)
    return float(np.mean(p_chunk < 0.05)), float(np.mean(p_doc < 0.05))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapter", default=str(ROOT / "runs" / "demo" / "train" / "adapter"))
    ap.add_argument("--chunk", type=int, default=128, help="tokens per chunk (128)")
    ap.add_argument("--max-length", type=int, default=1024, help="rolling window (1024)")
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--out", help="write the figures as JSON")
    args = ap.parse_args(argv)
    if not Path(args.adapter).is_dir():
        print(f"no adapter at {args.adapter}: run `ftguard demo` first or pass --adapter",
              file=sys.stderr)
        return 2
    from ftguard.metrics.perplexity import perplexity_from_stats
    from ftguard.models.load import LoadOptions, load_backend
    from ftguard.stats import paired_swap_test
    from ftguard.suite import load_suite

    tasks = [(load_suite(ROOT / "suites" / s), t) for s, t in (("legal", "legal_corpus"),
                                                               ("general", "english_corpus"))]
    texts = {t: [i.prompt for i in next(x for x in suite.tasks if x.name == t).instances]
             for suite, t in tasks}
    nlls: dict[str, dict[str, list[np.ndarray]]] = {}
    for side, adapter in (("base", None), ("tuned", args.adapter)):
        backend = load_backend(LoadOptions(adapter=adapter, batch_size=1))
        nlls[side] = {t: [token_nlls(backend, x, args.max_length) for x in docs]
                      for t, docs in texts.items()}
        del backend
    figures = {}
    for task in texts:
        base_docs, tuned_docs = nlls["base"][task], nlls["tuned"][task]
        doc_b = np.array([[x.sum(), len(x)] for x in base_docs])
        doc_t = np.array([[x.sum(), len(x)] for x in tuned_docs])
        ch_b, owner = chunk_stats(base_docs, args.chunk)
        ch_t, _ = chunk_stats(tuned_docs, args.chunk)
        by_doc = paired_swap_test(doc_b, doc_t, perplexity_from_stats)
        by_chunk = paired_swap_test(ch_b, ch_t, perplexity_from_stats)
        rho = icc((ch_t[:, 0] - ch_b[:, 0]) / ch_b[:, 1], owner)
        m = len(owner) / len(base_docs)
        sizes = [int(np.sum(owner == d)) for d in range(len(base_docs))]
        alarm_chunk, alarm_doc = simulate(sizes, args.chunk, max(rho, 0.0), args.sims, seed=7)
        figures[task] = {
            "documents": len(base_docs), "chunks": len(owner),
            "perplexity": [by_doc.base, by_doc.tuned],
            "document unit": {"p": by_doc.p_value, "ci": [by_doc.ci_low, by_doc.ci_high],
                              "method": by_doc.method, "mde": by_doc.mde},
            "chunk unit": {"p": by_chunk.p_value, "ci": [by_chunk.ci_low, by_chunk.ci_high],
                           "method": by_chunk.method, "mde": by_chunk.mde},
            "icc": rho, "design effect": 1 + (m - 1) * rho,
            "false alarms (simulated, alpha 0.05)": {"chunk unit": alarm_chunk,
                                                      "document unit": alarm_doc}}
    text = json.dumps(figures, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
