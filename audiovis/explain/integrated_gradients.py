"""Integrated gradients (Sundararajan, Taly & Yan 2017) of a class logit on the input spectrogram,
summed over each patch's footprint.

Attribution of input value ``x_i``: ``(x_i - x'_i) · mean_k ∂f/∂x_i (x' + α_k (x - x'))`` with
``α_k = (k + 1/2) / steps`` (the midpoint Riemann sum, captum's ``riemann_middle``); ``x'`` is the
baseline. The attributions add up to about ``f(x) - f(x')`` (completeness). A patch's score is the sum
over its whole footprint, so with overlapping patches a shared value counts in each patch that holds it;
values no patch covers count in none.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..checks import check_int
from ..patches import PatchGrid

#: Interpolated inputs per forward/backward pass.
BATCH_SIZE = 8


def baseline_input(x: torch.Tensor, baseline) -> torch.Tensor:
    """The baseline input ``[F, T]``: "mean" (the input's mean everywhere), "zero", a number, or an array like ``x``."""
    if isinstance(baseline, str) or np.isscalar(baseline):
        from .faithfulness import baseline_value

        return torch.full_like(x, baseline_value(x, baseline))
    arr = torch.as_tensor(np.asarray(baseline), dtype=x.dtype)
    if tuple(arr.shape) != tuple(x.shape):
        raise ValueError(f"baseline array must have the input's shape {tuple(x.shape)}, got {tuple(arr.shape)}")
    if not bool(torch.isfinite(arr).all()):
        raise ValueError("baseline array holds a non-finite value")
    return arr


def integrated_gradients(
    logit: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, baseline: torch.Tensor, steps: int = 32,
    batch_size: int = BATCH_SIZE,
) -> torch.Tensor:
    """Attributions ``[F, T]`` of ``logit`` (inputs ``[B, F, T]`` -> one score each ``[B]``, differentiable).

    Args:
        logit: the scored function, batched.
        x: the input ``[F, T]``.
        baseline: the reference input ``[F, T]``.
        steps: points of the midpoint Riemann sum along the straight path.
        batch_size: interpolated inputs per pass.
    """
    steps = check_int(steps, "steps", minimum=1)
    x, baseline = x.detach().float(), baseline.detach().float()
    delta = x - baseline
    alphas = (torch.arange(int(steps), dtype=torch.float32) + 0.5) / int(steps)
    total = torch.zeros_like(x, dtype=torch.float64)
    for chunk in alphas.split(batch_size):
        points = (baseline[None] + chunk[:, None, None] * delta[None]).requires_grad_(True)
        (grad,) = torch.autograd.grad(logit(points).sum(), points)
        total += grad.detach().double().sum(dim=0)
    return (delta.double() * total / int(steps)).float()


def patch_sums(values: torch.Tensor | np.ndarray, grid: PatchGrid) -> np.ndarray:
    """``[num_patches]``: the sum of ``values`` ``[F, T]`` over each patch's footprint (token order)."""
    v = torch.as_tensor(np.asarray(values), dtype=torch.float64)[None, None]
    sums = torch.nn.functional.avg_pool2d(v, grid.patch_size, stride=grid.stride) * (grid.patch_size[0] * grid.patch_size[1])
    return sums[0, 0].reshape(-1).float().numpy()
