"""Attention-ranked token pruning in stages (EViT, Liang et al. 2022; the scheme the audio TopK work builds on).

Pruning happens in stages, at blocks ``stages = (s_1, s_2, ...)``. At block ``s_i`` the live patches are
ranked by the attention the cls token pays them in that block: its query against every key of the
block's input, heads averaged, as EViT ranks. The score of a patch is the mean of that attention over
the patch and its grid neighbours (3 x 3, fewer at the edges): attention is peaked on a few patches of
an event (on the demo model its perplexity is about 55 of 468 patches) and overlapping neighbours carry
the same sound, so without the neighbourhood the ranking below the peaks is noise. The most attended
patches stay, so that ``keep_ratio ** (i / len(stages))`` of the patches remain after stage ``i`` and
``keep_ratio`` after the last. The inattentive ones are fused into one token (the mean of their states,
the same token across stages: each stage folds its dropped patches into it), which attention counts
once for every patch it stands for (a key bias of ``log m``).

As in EViT, the stage block's attention still reads every token it was given (keys and values of all
of them), but only the kept tokens and the fused token query (EViT computes every token's attention and
fuses afterwards), and the block's MLP and every later block run on those alone. A stage thus equals a
full-layout pass in which every dropped patch queries as the fused token and holds its output from then
on (see :mod:`audiovis.models.reduction`, which rebuilds the full layout).

By default there is one stage, at block 0 (:func:`default_stages`): ``keep_ratio=0.5`` then removes
about half of the blocks' work (0.47 of the demo model's multiply-accumulates; energy pruning 0.44).
EViT prunes at blocks 4, 7 and 10 of 12 with a keep rate per stage. Measured on the demo model's
training clips (``SyntheticEvents(1200, seed=0)``, top-1 agreement with the full model at keep 0.5):
this default 0.96; stages ``[0, 2]`` 0.98 for 24 % more work (``prune_layer=[0, 2]``), ``[0, 1, 2]``
0.95; with the queries pruned too (the block entirely on the kept tokens) 0.95, ranked by the raw cls
attention 0.84, by the distillation token's 0.78, by both prefix tokens' 0.94; the former scheme
(stages before blocks 1, 2, 3 ranked by the block before) 0.71 at 0.69 of the work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import is_int
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..patches import PatchGrid
    from .base import SpectrogramModelMixin

#: the neighbourhood a patch's attention score is averaged over (patches of the grid, per axis)
NEIGHBOURHOOD = 3


def default_stages(num_layers: int) -> tuple[int, ...]:
    """Where pruning happens by default: at block 0 alone (see the module docstring)."""
    return (0,)


def check_stages(stages: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """``stages`` as increasing block indices in ``[0, num_layers - 1]``, or a ValueError naming the problem."""
    out = []
    for s in stages:
        if not is_int(s) or not 0 <= s < num_layers:
            raise ValueError(f"pruning stages must be block indices in [0, {num_layers - 1}] (the block's own "
                             f"attention ranks the patches), got {list(stages)!r}")
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


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[B, T, heads * d]`` -> ``[B, heads, T, d]``."""
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _project(attn: nn.Module, hidden: torch.Tensor, part: slice) -> torch.Tensor:
    """Rows ``part`` of the fused q/k/v projection (``slice(0, 1)``: queries, ``slice(1, 3)``: keys and
    values) of ``hidden`` ``[B, T, D]``; a projection whose weight cannot be sliced (quantized) runs whole."""
    size = attn.num_heads * attn.head_dim
    rows = slice(part.start * size, part.stop * size)
    if isinstance(attn.qkv, nn.Linear):
        bias = attn.qkv.bias
        return F.linear(hidden, attn.qkv.weight[rows], None if bias is None else bias[rows])
    return attn.qkv(hidden)[..., rows]


def cls_attention(attn: nn.Module, query: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The attention the cls token pays every key, heads averaged ``[B, T]`` float32, from its normed input
    ``query`` ``[B, 1, D]``, the keys ``[B, heads, T, d]`` and their bias ``[B, T]``."""
    q = attn.q_norm(_heads(_project(attn, query, slice(0, 1)), attn.num_heads))
    logits = ((q * attn.scale) @ keys.transpose(-2, -1))[:, :, 0].float()  # [B, heads, T]
    if bias is not None:
        logits = logits + bias.float()[:, None, :]
    return torch.softmax(logits, dim=-1).mean(dim=1)


def stage_attention(block: nn.Module, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    mask: torch.Tensor | None) -> torch.Tensor:
    """A stage block's output for ``queries`` ``[B, t, D]`` (its input after pruning) attending over the
    keys and values of every token of its input before pruning (``[B, heads, T, d]``, key mask ``mask``)."""
    attn = block.attn
    q = attn.q_norm(_heads(_project(attn, block.norm1(queries), slice(0, 1)), attn.num_heads))
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=None if mask is None else mask.to(q.dtype))
    out = out.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], attn.attn_dim)
    x = queries + block.ls1(attn.proj(attn.norm(out)))
    return x + block.ls2(block.mlp(block.norm2(x)))


def neighbourhood_scores(attention: torch.Tensor, index: torch.Tensor, fused_share: torch.Tensor | None,
                         grid: "PatchGrid") -> torch.Tensor:
    """Rank scores ``[B, k]`` of the live patches ``index`` ``[B, k]`` from the attention they get
    ``[B, k]``: the mean over each patch's 3 x 3 grid neighbourhood of the attention per patch, a patch
    already fused counting its share ``fused_share`` ``[B]`` of the fused token's attention."""
    batch = attention.shape[0]
    n = grid.num_patches
    if fused_share is None:
        full = attention.new_zeros(batch, n)
    else:
        full = fused_share[:, None].expand(batch, n).clone()
    full.scatter_(1, index, attention)
    pooled = F.avg_pool2d(full.view(batch, 1, *grid.grid_shape), NEIGHBOURHOOD, stride=1, padding=NEIGHBOURHOOD // 2,
                          count_include_pad=False)
    return pooled.flatten(1).gather(1, index)


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
    counts = dict(zip(stages, stage_counts(n, keep_ratio, len(stages))))
    if kept_per_stage is None and p == 0:
        raise ConfigError(f"attention-ranked pruning ranks patches by the cls token's attention; "
                          f"{type(model).__name__} has no prefix token: use keep_by='energy' or merge_ratio=... "
                          "for this model")
    if patches is None:
        patches = model.embed_patches(x)
    tokens = model.add_positions(patches)
    batch, _, dim = tokens.shape
    device = tokens.device
    index = torch.arange(n, device=device).expand(batch, n)  # original patch of each compact patch row
    source: torch.Tensor | None = None
    fused = 0  # patches the fused token stands for
    bias: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    stage_kept: list[torch.Tensor] = []
    if hidden_states is not None:
        hidden_states.append(tokens)
    if sources is not None:
        sources.append(None)
    for b, block in enumerate(model.backbone.blocks):
        if b not in counts:
            tokens = block(tokens) if mask is None else block(tokens, attn_mask=mask)
        else:
            check_attention_block(block, b)
            attn = block.attn
            k, live = counts[b], index.shape[1]
            hidden = block.norm1(tokens)
            keys, values = (_heads(t, attn.num_heads) for t in _project(attn, hidden, slice(1, 3)).chunk(2, dim=-1))
            keys = attn.k_norm(keys)
            if kept_per_stage is None:
                attention = cls_attention(attn, hidden[:, :1], keys, bias)
                share = attention[:, -1] / fused if fused else None
                scores = neighbourhood_scores(attention[:, p:p + live], index, share, model.grid)
                order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
                chosen = order.sort(dim=1).values  # compact rows of the kept patches, in token order
            else:
                chosen = torch.searchsorted(index.contiguous(), kept_per_stage[len(stage_kept)].to(device).contiguous())
            live_rows = tokens[:, p:p + live]
            kept_rows = live_rows.gather(1, chosen[..., None].expand(-1, -1, dim))
            total = live_rows.sum(dim=1) - kept_rows.sum(dim=1)
            if fused:
                total = total + tokens[:, -1] * fused
            fused += live - k
            parts = [tokens[:, :p], kept_rows]
            if fused:
                parts.append((total / fused).unsqueeze(1))
            queries = torch.cat(parts, dim=1)
            tokens = stage_attention(block, queries, keys, values, mask)
            if fused:
                bias = tokens.new_zeros(batch, p + k + 1)
                bias[:, -1] = math.log(fused)
                mask = bias.to(tokens.dtype)[:, None, None, :]
            index = index.gather(1, chosen)
            stage_kept.append(index)
            if sources is not None or inputs is not None:
                source = torch.full((batch, p + n), p + k, dtype=torch.long, device=device)
                source[:, :p] = torch.arange(p, device=device)
                source.scatter_(1, index + p, (p + torch.arange(k, device=device)).expand(batch, -1))
                if inputs is not None:
                    inputs[b] = (queries, source)
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
