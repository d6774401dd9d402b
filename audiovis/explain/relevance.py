"""Gradient-weighted attention relevance (Chefer, Gur & Wolf, CVPR 2021), pooled to patches.

Each block's attention map ``A`` (per head) is weighted by the gradient of the class logit with respect
to it; the positive part, averaged over heads, ``Ā = E_h[(∇A ⊙ A)+]``, says how much each token's
attention contributed to the class. Relevance starts as the identity (every token its own, the
residual path) and is propagated through the blocks first to last: ``R ← R + Ā R``. A patch's
relevance is the prefix tokens' row of ``R`` (AST: cls and distillation rows averaged, the tokens the
head reads; all rows for a model without prefix tokens, like :meth:`~audiovis.Analysis.rollout`).

This is the gradient x attention rule the authors' public ViT code uses for the attention term
(their CVPR paper weights the LRP relevance of ``A``; Chefer et al., ICCV 2021, showed the attention
itself gives the same maps for self-attention models without a relevance pass through every layer).
Only the prefix rows of ``R`` are needed, so the product is taken as a row vector from the last block
down: ``r ← r + r Ā_b`` (``O(T²)`` per block instead of ``O(T³)``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.blocks import inference


def attention_relevance(model, x: torch.Tensor, class_index: int) -> np.ndarray:
    """Relevance per patch ``[num_patches]`` of ``class_index``'s logit for the model input ``x`` ``[F, T]``.

    ``model`` is a SpectrogramModelMixin with timm's standard attention (explicit softmax maps).
    """
    with inference(model, grad=True):
        inp = x.detach().to(model.device)[None].requires_grad_(True)
        attentions: list[torch.Tensor] = []
        tokens = model.run_blocks(model.embed(inp), attentions=attentions)
        logit = model.forward_head(model.backbone.norm(tokens))[0, int(class_index)]
        grads = torch.autograd.grad(logit, attentions)
    weighted = [(a.detach() * g)[0].clamp(min=0).mean(dim=0).double().cpu() for a, g in zip(attentions, grads)]
    prefix = int(model.backbone.num_prefix_tokens)
    count = weighted[0].shape[0]
    rows = torch.eye(count, dtype=torch.float64)[:prefix] if prefix else torch.eye(count, dtype=torch.float64)
    r = rows.mean(dim=0, keepdim=True)  # the mean of the prefix rows, propagated as one row vector
    for cam in reversed(weighted):
        r = r + r @ cam
    return r[0, prefix:].float().numpy()
