"""Merge rules on one tensor, as their papers define them.

Every rule receives the base tensor ``base`` and the fine-tuned tensors ``tuned`` (same
shape), computes in float32 and returns float32; ``lam`` is the merging weight λ.

- ``linear``: ``sum(w_i * theta_i) / sum(w_i)``; with λ != 1 the result moves from the base
  towards it, ``base + λ (linear - base)`` (λ = 1 returns the weighted average itself, so
  weights (1, 0) reproduce model A bit for bit).
- ``task_arithmetic`` (Ilharco et al., 2023): task vectors ``tau_i = theta_i - base``;
  ``base + λ sum(w_i tau_i)``.
- ``ties`` (Yadav et al., 2023): trim each ``w_i tau_i`` to its top ``density`` fraction by
  magnitude, elect each element's sign as the sign of the trimmed vectors' sum, average the
  trimmed values that agree with it (disjoint mean, weighted by ``w_i``); ``base + λ mean``.
- ``dare`` (Yu et al., 2024): drop each element of each task vector with probability
  ``p = 1 - density`` and rescale the kept ones by ``1 / (1 - p)``, then task arithmetic. The
  mask of model ``i`` for tensor ``name`` is ``numpy.random.default_rng([seed,
  crc32(name), i]).random(shape) < density``: seeded, and independent of tensor order.
- ``slerp`` (Shoemake, 1985; exactly two models): spherical interpolation at ``t = λ`` between
  the two flattened tensors, linear where they are nearly parallel (|cos| > 0.9995) or one is
  zero.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ftguard.merge import METHODS

PARALLEL = 0.9995
"""|cos| above which SLERP interpolates linearly (the angle is too small to divide by)."""


@dataclass(frozen=True)
class MergeSpec:
    method: str
    weights: tuple[float, ...]
    """One weight per fine-tuned model."""
    lam: float = 1.0
    density: float = 0.5
    """ties: fraction of each task vector kept; dare: 1 - drop probability."""
    seed: int = 0
    """dare's drop masks."""

    def settings(self) -> dict[str, Any]:
        """The merge as recorded: method, weights, lambda, and density/seed where used."""
        return {"method": self.method, "weights": list(self.weights), "lambda": self.lam,
                "density": self.density if self.method in ("ties", "dare") else None,
                "seed": self.seed if self.method == "dare" else None}

    def describe(self) -> str:
        extra = {"ties": f", density {self.density}",
                 "dare": f", density {self.density}, seed {self.seed}"}.get(self.method, "")
        weights = ", ".join(f"{w:g}" for w in self.weights)
        return f"{self.method} (weights {weights}, lambda {self.lam:g}{extra})"


def merge_tensor(spec: MergeSpec, name: str, base: torch.Tensor,
                 tuned: Sequence[torch.Tensor]) -> torch.Tensor:
    """The merged float32 tensor ``name`` under ``spec``."""
    b = base.to(torch.float32)
    ts = [t.to(torch.float32) for t in tuned]
    w = spec.weights
    if spec.method == "linear":
        total = sum(w)
        merged = sum(((wi / total) * t for wi, t in zip(w, ts)), torch.zeros_like(b))
        return merged if spec.lam == 1 else b + spec.lam * (merged - b)
    if spec.method == "slerp":
        return slerp(ts[0], ts[1], spec.lam)
    taus = [t - b for t in ts]
    if spec.method == "task_arithmetic":
        return b + spec.lam * sum((wi * tau for wi, tau in zip(w, taus)), torch.zeros_like(b))
    if spec.method == "ties":
        return b + spec.lam * ties(taus, w, spec.density)
    if spec.method == "dare":
        dropped = [dare(tau, spec.density, spec.seed, name, i) for i, tau in enumerate(taus)]
        return b + spec.lam * sum((wi * d for wi, d in zip(w, dropped)), torch.zeros_like(b))
    raise ValueError(f"unknown merge method {spec.method!r} (one of {', '.join(METHODS)})")


def trim(tau: torch.Tensor, density: float) -> torch.Tensor:
    """``tau`` with all but its ``ceil(density * n)`` largest-magnitude elements zeroed."""
    n = tau.numel()
    keep = min(n, math.ceil(density * n))
    if keep >= n:
        return tau.clone()
    if keep == 0:
        return torch.zeros_like(tau)
    flat = tau.abs().flatten()
    threshold = torch.topk(flat, keep, sorted=False).values.min()
    return torch.where(tau.abs() >= threshold, tau, torch.zeros_like(tau))


def ties(taus: Sequence[torch.Tensor], weights: Sequence[float],
         density: float) -> torch.Tensor:
    """TIES-merged task vector: trim, elect sign, disjoint (weighted) mean. Works one model at
    a time (no stacked copies), so it holds a few tensors of this size."""
    trimmed = [trim(tau, density).mul_(w) for tau, w in zip(taus, weights)]
    sign = torch.zeros_like(trimmed[0])
    for t in trimmed:
        sign.add_(t)
    sign.sign_()
    summed = torch.zeros_like(sign)
    total = torch.zeros_like(sign)
    for t, w in zip(trimmed, weights):
        agree = (torch.sign(t) == sign) & (t != 0)
        summed.add_(torch.where(agree, t, 0.0))
        total.add_(agree, alpha=w)
        del agree
    del trimmed
    return torch.where(total > 0, summed / total.clamp_min(1e-12), 0.0)


def dare_mask(shape: tuple[int, ...], density: float, seed: int, name: str,
              index: int) -> np.ndarray:
    """Which elements DARE keeps (True) for model ``index``'s tensor ``name``."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), index])
    return rng.random(shape) < density


def dare(tau: torch.Tensor, density: float, seed: int, name: str, index: int) -> torch.Tensor:
    """Drop with probability ``1 - density``, rescale the rest by ``1 / density``."""
    if density >= 1:
        return tau.clone()
    keep = torch.from_numpy(dare_mask(tuple(tau.shape), density, seed, name, index))
    return torch.where(keep, tau / density, torch.zeros_like(tau))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from ``a`` (t = 0) to ``b`` (t = 1) of the flattened tensors."""
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return (1 - t) * a + t * b
    cos = float(torch.dot(a.flatten(), b.flatten()) / (na * nb))
    if abs(cos) > PARALLEL:
        return (1 - t) * a + t * b
    omega = math.acos(max(-1.0, min(1.0, cos)))
    s = math.sin(omega)
    return (math.sin((1 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b
