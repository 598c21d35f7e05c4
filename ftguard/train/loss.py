"""Weighted causal-LM loss: each predicted token counts with its own weight.

With every weight 1 it is exactly transformers' ``ForCausalLMLoss`` (mean token NLL over
labels that are not -100); with prompt weight 0 it is the NLL of the response tokens only.
"""

from __future__ import annotations

from typing import Any


def weighted_causal_lm_loss(logits: Any, labels: Any, loss_weights: Any) -> Any:
    """``sum(w * nll) / sum(w)`` over the batch; token ``i`` is predicted from position ``i-1``.

    ``logits``: (batch, seq, vocab); ``labels``: (batch, seq) with -100 = ignored;
    ``loss_weights``: (batch, seq). Cross entropy is computed in float32.
    """
    import torch
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:].to(shift_logits.device)
    shift_weights = loss_weights[:, 1:].to(shift_logits.device, torch.float32)
    valid = shift_labels != -100
    nll = F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                          shift_labels.reshape(-1), ignore_index=-100, reduction="none")
    w = (shift_weights * valid).reshape(-1)
    total = w.sum()
    # An all-masked batch contributes 0 with a gradient path, not NaN.
    return (w * nll).sum() / total.clamp_min(torch.finfo(torch.float32).tiny)
