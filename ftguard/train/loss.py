"""Weighted causal-LM loss: each predicted token counts with its own weight.

With every weight 1 it is exactly transformers' ``ForCausalLMLoss`` (mean token NLL over
labels that are not -100); with prompt weight 0 it is the NLL of the response tokens only.
"""

from __future__ import annotations

from typing import Any


def weighted_nll_sums(logits: Any, labels: Any, loss_weights: Any) -> tuple[Any, Any]:
    """``(sum(w * nll), sum(w))`` over the batch; token ``i`` is predicted from position ``i-1``.

    ``logits``: (batch, seq, vocab); ``labels``: (batch, seq) with -100 = ignored;
    ``loss_weights``: (batch, seq). Cross entropy is computed in float32.
    """
    import torch
    import torch.nn.functional as F

    # Shift the labels, not the logits: slicing (batch, seq, vocab) logits would copy them.
    shift_labels = F.pad(labels, (0, 1), value=-100)[:, 1:].to(logits.device)
    shift_weights = F.pad(loss_weights, (0, 1), value=0.0)[:, 1:].to(logits.device, torch.float32)
    vocab = logits.size(-1)
    nll = F.cross_entropy(logits.float().reshape(-1, vocab), shift_labels.reshape(-1),
                          ignore_index=-100, reduction="none")
    w = (shift_weights * (shift_labels != -100)).reshape(-1)
    return (w * nll).sum(), w.sum()


def weighted_causal_lm_loss(logits: Any, labels: Any, loss_weights: Any) -> Any:
    """``sum(w * nll) / sum(w)``: the mean token loss under the weights."""
    import torch

    total, weight = weighted_nll_sums(logits, labels, loss_weights)
    # An all-masked batch contributes 0 with a gradient path, not NaN.
    return total / weight.clamp_min(torch.finfo(torch.float32).tiny)
