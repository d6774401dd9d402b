"""Progressive attention-ranked token pruning (EViT, Liang et al. 2022; the scheme the audio TopK work builds on).

Pruning happens in stages, before blocks ``stages = (s_1, s_2, ...)``. Before block ``s_i`` the patch
tokens are ranked by the attention the prefix tokens (cls, distillation; heads averaged) paid them in
block ``s_i - 1``; the most attended ones stay, so that ``keep_ratio ** (i / len(stages))`` of the
patches remain after stage ``i`` and ``keep_ratio`` after the last. The inattentive ones are fused into
one token (their mean, the same token across stages: each stage folds its dropped patches into it),
which attention counts once for every patch it stands for (a key bias of ``log m``). Every stage thus
equals a full-layout pass in which each dropped patch holds the fused token (see
:mod:`audiovis.models.reduction`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F

from ..checks import is_int

if TYPE_CHECKING:
    from .base import SpectrogramModelMixin


def default_stages(num_layers: int) -> tuple[int, ...]:
    """Where pruning happens by default: before blocks 1, 1 + L/4 and 1 + L/2 (rounded, distinct, at most
    ``num_layers - 1``): early, where it saves the most, each stage after a block whose attention ranks it."""
    picks = [1, 1 + num_layers // 4, 1 + num_layers // 2]
    return tuple(sorted({min(max(1, s), max(1, num_layers - 1)) for s in picks}))


def check_stages(stages: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """``stages`` as increasing block indices in ``[1, num_layers]``, or a ValueError naming the problem."""
    out = []
    for s in stages:
        if not is_int(s) or not 1 <= s <= num_layers:
            raise ValueError(f"pruning stages must be block indices in [1, {num_layers}] (attention of the block before ranks the patches), got {list(stages)!r}")
        out.append(int(s))
    if not out or any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"pruning stages must be increasing block indices, got {list(stages)!r}")
    return tuple(out)


def stage_counts(num_patches: int, keep_ratio: float, num_stages: int) -> list[int]:
    """Patches kept after each stage: ``round(num_patches * keep_ratio ** (i / num_stages))``, the last equal to
    :func:`audiovis.models.pruning.num_kept`, never increasing."""
    from .pruning import num_kept

    final = num_kept(num_patches, keep_ratio)
    counts = [max(final, round(num_patches * keep_ratio ** ((i + 1) / num_stages))) for i in range(num_stages - 1)] + [final]
    for i in range(1, len(counts)):
        counts[i] = min(counts[i], counts[i - 1])
    return counts


def _block_with_prefix_rows(block, x: torch.Tensor, bias: torch.Tensor | None, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One block with fused attention (key bias ``[B, T]`` when given) and the prefix rows of its softmax ``[B, heads, P, T]``."""
    from .blocks import _qkv

    attn = block.attn
    q, k, v = _qkv(attn, block.norm1(x))
    logits = (q[:, :, :p] * attn.scale) @ k.transpose(-2, -1)
    mask = None if bias is None else bias.to(q.dtype)[:, None, None, :]
    if mask is not None:
        logits = logits + mask
    rows = torch.softmax(logits.float(), dim=-1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(x.shape[0], x.shape[1], attn.attn_dim)
    x = x + block.ls1(attn.proj(attn.norm(out)))
    x = x + block.ls2(block.mlp(block.norm2(x)))
    return x, rows


def prefix_scores(rows: torch.Tensor) -> torch.Tensor:
    """A patch's rank score ``[B, n]`` from the prefix tokens' attention rows ``[B, heads, P, n]``: the mean
    over heads and prefix tokens (EViT's cls attention)."""
    return rows.mean(dim=(1, 2))


@dataclass
class ProgressiveForward:
    """A progressive pass: final normed compact tokens (prefix, kept patches in token order, the fused
    token), logits, the kept patches ``[B, k]`` and the fused token's size (dropped patches)."""

    tokens: torch.Tensor
    logits: torch.Tensor
    kept: torch.Tensor
    fused_size: int
    #: the patches kept after each stage, ``[B, k_i]`` in token order
    stage_kept: list[torch.Tensor]


def forward_progressive(
    model: "SpectrogramModelMixin",
    x: torch.Tensor | None,
    keep_ratio: float,
    stages: Sequence[int] | None = None,
    *,
    patches: torch.Tensor | None = None,
    kept_per_stage: Sequence[torch.Tensor] | None = None,
    hidden_states: list[torch.Tensor] | None = None,
    sources: list[torch.Tensor | None] | None = None,
    inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> ProgressiveForward:
    """Run ``model`` on ``x`` ``[B, F, T]`` (or patch embeddings ``patches``) with progressive pruning.

    ``kept_per_stage`` (one ``[B, k_i]`` per stage) replays given choices instead of ranking (saliency
    of a recorded pass). ``hidden_states``/``sources`` receive every state and its layout (``[B, P + N]``
    compact rows, None before the first stage); ``inputs`` each stage's block input and layout.
    """
    from .blocks import check_attention_block

    p = int(model.num_prefix_tokens)
    n = model.grid.num_patches
    stages = check_stages(default_stages(model.num_layers) if stages is None else stages, model.num_layers)
    counts = stage_counts(n, keep_ratio, len(stages))
    if patches is None:
        patches = model.embed_patches(x)
    tokens = model.add_positions(patches)
    batch, _, dim = tokens.shape
    device = tokens.device
    index = torch.arange(n, device=device).expand(batch, n)  # original patch of each compact patch row
    source: torch.Tensor | None = None
    fused = 0  # patches the fused token stands for
    bias: torch.Tensor | None = None
    stage_kept: list[torch.Tensor] = []
    if hidden_states is not None:
        hidden_states.append(tokens)
    if sources is not None:
        sources.append(None)
    blocks = model.backbone.blocks
    for stage, (start, k) in enumerate(zip(stages, counts)):
        begin = 0 if stage == 0 else stages[stage - 1]
        for b in range(begin, start):
            if b == start - 1 and kept_per_stage is None:
                check_attention_block(blocks[b], b)
                tokens, rows = _block_with_prefix_rows(blocks[b], tokens, bias, p)
            else:
                tokens = blocks[b](tokens) if bias is None else blocks[b](tokens, attn_mask=bias.to(tokens.dtype)[:, None, None, :])
            if hidden_states is not None:
                hidden_states.append(tokens)
            if sources is not None:
                sources.append(source)
        live = index.shape[1]
        if kept_per_stage is None:
            scores = prefix_scores(rows[:, :, :, p:p + live])  # attention to the live patch rows only
            order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
            chosen = order.sort(dim=1).values  # compact rows of the kept patches, in token order
        else:
            wanted = kept_per_stage[stage].to(device)
            chosen = torch.searchsorted(index.contiguous(), wanted)
        live_rows = tokens[:, p:p + live]
        kept_rows = live_rows.gather(1, chosen[..., None].expand(-1, -1, dim))
        dropped_sum = live_rows.sum(dim=1) - kept_rows.sum(dim=1)
        dropped = live - k
        if fused:
            total = tokens[:, -1] * fused + dropped_sum
        else:
            total = dropped_sum
        fused += dropped
        parts = [tokens[:, :p], kept_rows]
        if fused:
            parts.append((total / fused).unsqueeze(1))
            bias = tokens.new_zeros(batch, p + k + 1)
            bias[:, -1] = math.log(fused)
        tokens = torch.cat(parts, dim=1)
        index = index.gather(1, chosen)
        stage_kept.append(index)
        if sources is not None or inputs is not None:
            source = torch.full((batch, p + n), p + k, dtype=torch.long, device=device)
            source[:, :p] = torch.arange(p, device=device)
            source.scatter_(1, index + p, (p + torch.arange(k, device=device)).expand(batch, -1))
            if inputs is not None:
                inputs[start] = (tokens, source)
    for b in range(stages[-1], len(blocks)):
        tokens = blocks[b](tokens) if bias is None else blocks[b](tokens, attn_mask=bias.to(tokens.dtype)[:, None, None, :])
        if hidden_states is not None:
            hidden_states.append(tokens)
        if sources is not None:
            sources.append(source)
    tokens = model.backbone.norm(tokens)
    if model.head_reads_patches and fused:
        from .pruning import full_layout

        logits = model.forward_head(full_layout(tokens, index, n, p))
    else:
        logits = model.forward_head(tokens)
    return ProgressiveForward(tokens, logits, index, fused, stage_kept)
