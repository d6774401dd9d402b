"""Building blocks over timm ``Block``s: explicit attention, its probabilities, and the inference context.

What the forward stages (``models/base.py`` ``run_blocks``), the reduced passes (pruning, merging,
progressive pruning) and the layers above (the Analysis, explanations) share. They take a block and its
input, nothing of the model around it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from ..errors import ConfigError


def check_attention_block(block: nn.Module, index: int) -> None:
    """Explicit attention needs timm's standard ``Attention`` (fused qkv, no gate)."""
    from timm.layers import Attention

    attn = getattr(block, "attn", None)
    if not isinstance(attn, Attention) or getattr(attn, "gate", None) is not None:
        raise ConfigError(
            f"block {index} uses {type(attn).__name__}; attention maps need timm's standard Attention layer"
        )


def _qkv(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch, tokens, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    return attn.q_norm(q), attn.k_norm(k), v


def attention_probabilities(block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Softmax attention ``[B, heads, T, T]`` of ``block`` for its input ``hidden`` ``[B, T, D]``."""
    q, k, _ = _qkv(block.attn, block.norm1(hidden))
    return torch.softmax((q * block.attn.scale) @ k.transpose(-2, -1), dim=-1)


def _qk(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys only (a third less projection work than ``_qkv`` when values are not needed)."""
    if not isinstance(attn.qkv, nn.Linear):  # e.g. a quantized projection: its weight cannot be sliced
        q, k, _ = _qkv(attn, x)
        return q, k
    batch, tokens, _ = x.shape
    size = 2 * attn.num_heads * attn.head_dim
    bias = None if attn.qkv.bias is None else attn.qkv.bias[:size]
    qk = nn.functional.linear(x, attn.qkv.weight[:size], bias)
    q, k = qk.reshape(batch, tokens, 2, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    return attn.q_norm(q), attn.k_norm(k)


def mean_attention(block: nn.Module, hidden: torch.Tensor, *, heads_at_once: int = 4) -> torch.Tensor:
    """Head-mean softmax attention ``[B, T, T]`` of ``block`` for ``hidden`` ``[B, T, D]`` (no autograd).

    A few heads at a time, each softmax in place, so the ``[B, heads, T, T]`` maps are never held
    together: what attention rollout needs, at a third of the memory for 12 heads and as fast.
    """
    q, k = _qk(block.attn, block.norm1(hidden))
    heads = q.shape[1]
    q = (q * block.attn.scale).contiguous()
    keys = k.transpose(-2, -1).contiguous()
    total = torch.zeros(q.shape[0], q.shape[2], keys.shape[3], dtype=q.dtype, device=q.device)
    for start in range(0, heads, heads_at_once):
        chunk = slice(start, start + heads_at_once)
        total.add_(_softmax_last(q[:, chunk] @ keys[:, chunk]).sum(dim=1))
    return total.div_(heads)


def _softmax_last(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; in place when no gradient flows, so an attention map of 1214^2 per head is
    written once (a second buffer costs as much again in fresh memory): the same values as ``torch.softmax``."""
    if logits.requires_grad:
        return torch.softmax(logits, dim=-1)
    return torch.ops.aten._softmax.out(logits, -1, False, out=logits)


def block_with_attention(block: nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One timm ``Block`` in eval mode with explicit softmax attention: ``(output, probabilities)``.

    ``bias`` ``[B, T]`` is added to every query's attention logits for each key (see ``run_blocks``).
    """
    attn = block.attn
    q, k, v = _qkv(attn, block.norm1(x))
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits.add_(bias[:, None, None, :]) if not logits.requires_grad else logits + bias[:, None, None, :]
    probs = _softmax_last(logits)
    out = (probs @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], attn.attn_dim)
    out = attn.proj(attn.norm(out))
    x = x + block.ls1(out)
    x = x + block.ls2(block.mlp(block.norm2(x)))
    return x, probs


@contextmanager
def inference(module: nn.Module, *, grad: bool = False) -> Iterator[None]:
    """Eval mode (and no autograd unless ``grad``) for the duration; the train/eval mode is restored.

    Only the submodules found in training mode are switched (and switched back): a model already in
    eval mode, the usual case, costs one walk over its modules instead of two ``train()`` recursions
    (about half a millisecond per call on the demo model, a few percent of a pruned ``analyze``).
    """
    training = [m for m in module.modules() if m.training]
    for m in training:
        m.training = False
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        for m in training:
            m.training = True
