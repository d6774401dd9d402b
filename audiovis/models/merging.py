"""Token merging (ToMe, Bolya et al. 2023) on this package's models: fewer tokens by fusing similar ones.

In every merging block, between attention and MLP (where ToMe merges), ``r`` patch tokens merge into
others by bipartite soft matching on the attention keys:

- the block's keys, averaged over heads, are the similarity metric (cosine);
- the current patch tokens alternate between set A (even positions) and set B (odd positions); each A
  token finds its most similar B token, and the ``r`` A tokens with the best matches merge into theirs;
- a merged token is the size-weighted average of what it absorbed (size = how many patches it stands
  for), and attention counts a token of size ``s`` as ``s`` copies of itself (a key bias of ``log s``:
  proportional attention).

The prefix tokens (cls, distillation) never merge. The token order after a merge is: prefix, the A
tokens that stayed (in their order), then the B tokens; ties in the matching go to the lower index.

The schedule spreads ``round(merge_ratio * num_patches)`` merges over blocks ``0..last_layer`` the way
ToMe's "decreasing" schedule does: the number merged falls linearly from the first block to the last, so
the early, expensive blocks lose the most (:func:`merge_schedule`). A merge never takes more than half
of the current patch tokens (what does not fit moves to the next block, past the default end if need
be). By default merging ends at block ``num_layers // 3``
(:func:`default_last_layer`): spread over every block, as ToMe spreads it on 197-token ViTs, half of
AST-base's 1212 patches removed by the last block leave 63 % of the multiply-accumulates (at most 1.6x
faster); ending at block 4 leaves 53 %. ``last_layer=num_layers - 1`` gives ToMe's whole-depth spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_number
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import SpectrogramModelMixin


def check_merge_ratio(merge_ratio: float) -> float:
    """``merge_ratio`` as a float in [0, 1), or a ValueError naming it."""
    return check_number(merge_ratio, "merge_ratio", low=0, high=1, high_open=True,
                        what="a number in [0, 1) (the share of patch tokens merged away)")


def num_merged(num_patches: int, merge_ratio: float) -> int:
    """Patch tokens merged away by the last block: ``round(merge_ratio * num_patches)``, fewer than ``num_patches``."""
    return min(num_patches - 1, round(check_merge_ratio(merge_ratio) * num_patches))


def check_mergeable(model: "SpectrogramModelMixin") -> None:
    """ConfigError unless every block has timm's standard attention (merging needs its keys)."""
    from .blocks import check_attention_block

    blocks = getattr(model.backbone, "blocks", None)
    if not blocks:
        raise ConfigError(f"token merging needs transformer blocks with attention; {type(model).__name__} has none")
    for index, block in enumerate(blocks):
        try:
            check_attention_block(block, index)
        except ConfigError as exc:
            raise ConfigError(f"token merging needs attention keys in every block: {exc}") from None


def default_last_layer(num_layers: int) -> int:
    """The last merging block by default: ``num_layers // 3`` (block 4 of AST-base's 12, block 1 of 4)."""
    return num_layers // 3


def merge_schedule(num_patches: int, merge_ratio: float, num_layers: int, last_layer: int | None = None) -> list[int]:
    """Tokens merged away in each of ``num_layers`` blocks: ``num_merged`` in all, falling linearly over
    blocks ``0..last_layer`` (default: :func:`default_last_layer`), none after it.

    A block merges at most half of its patch tokens; what does not fit moves to the next block. With the
    default ``last_layer`` that may go on past it, to the last block (a high ratio on a shallow model:
    merge 0.8 on 4 blocks); a ``last_layer`` given is kept. Raises a ValueError naming the largest ratio
    when ``merge_ratio`` cannot be reached.
    """
    total = num_merged(num_patches, merge_ratio)
    last = default_last_layer(num_layers) if last_layer is None else int(last_layer)
    if not 0 <= last < num_layers:
        raise ValueError(f"the last merging block must be in [0, {num_layers - 1}], got {last_layer!r}")
    span = last + 1
    weights = [span - i for i in range(span)]
    cumulative = [round(total * sum(weights[: i + 1]) / sum(weights)) for i in range(span)]
    wanted = [cumulative[0]] + [cumulative[i] - cumulative[i - 1] for i in range(1, span)]
    wanted += [0] * (num_layers - span)
    end = num_layers if last_layer is None else span  # the blocks the carry may reach
    schedule, tokens, carry = [], num_patches, 0
    for block, want in enumerate(wanted):
        r = min(want + carry, tokens // 2) if block < end else 0
        carry = want + carry - r
        schedule.append(r)
        tokens -= r
    if carry:
        most, left = 0, num_patches
        for _ in range(end):
            most, left = most + left // 2, left - left // 2
        where = f"blocks 0..{end - 1}" if last_layer is not None else f"the model's {num_layers} blocks"
        raise ValueError(
            f"merge_ratio={merge_ratio!r} merges {total} of {num_patches} patch tokens, more than {where} can (each "
            f"merges at most half of its tokens): at most merge_ratio={np.floor(most / num_patches * 1000) / 1000:g}"
        )
    return schedule


@dataclass
class MergeStep:
    """One merge: the new tokens ``[B, t', D]``, their sizes ``[B, t']`` and ``remap`` ``[B, t]``: the new row
    of every old row."""

    tokens: torch.Tensor
    sizes: torch.Tensor
    remap: torch.Tensor


def bipartite_merge(x: torch.Tensor, sizes: torch.Tensor, metric: torch.Tensor, r: int, num_prefix_tokens: int) -> MergeStep:
    """Merge ``r`` of the patch tokens of ``x`` ``[B, t, D]`` (sizes ``[B, t]``) by bipartite soft matching on
    ``metric`` ``[B, t, C]`` (see the module docstring). The prefix tokens stay first and unmerged.

    Tokens move as whole rows of ``x`` flattened to ``[B * t, D]`` (``index_select`` / ``index_add_``): a
    gather or scatter along dim 1 with an index expanded over ``D`` costs several times as much, and on
    the demo model the merge would then cost more than the MLP work it saves.
    """
    p = num_prefix_tokens
    batch, t, dim = x.shape
    na = (t - p + 1) // 2
    nb = (t - p) // 2
    r = min(r, na, nb)
    with torch.no_grad():
        m = F.normalize(metric[:, p:].float(), dim=-1, eps=1e-12)
        scores = m[:, 0::2] @ m[:, 1::2].transpose(-1, -2)  # [B, na, nb]
        best, match = scores.max(dim=-1)
        order = torch.argsort(best, dim=-1, descending=True, stable=True)
        src = order[:, :r]
        unmerged = order[:, r:].sort(dim=-1).values
        dst = match.gather(1, src)
    nu = na - r
    device = x.device
    first = (torch.arange(batch, device=device) * t + p)[:, None]  # each clip's first patch row
    b_rows = (first + 1 + 2 * torch.arange(nb, device=device)).reshape(-1)
    src_rows = (first + 2 * src).reshape(-1)
    kept_rows = (first + 2 * unmerged).reshape(-1)
    into = (torch.arange(batch, device=device)[:, None] * nb + dst).reshape(-1)  # rows of the B set
    flat = x.reshape(batch * t, dim)
    flat_sizes = sizes.reshape(-1).float()
    sb, sa = flat_sizes.index_select(0, b_rows), flat_sizes.index_select(0, src_rows)
    b = (flat.index_select(0, b_rows).float() * sb[:, None]).index_add_(
        0, into, flat.index_select(0, src_rows).float() * sa[:, None])
    sb = sb.index_add(0, into, sa)
    tokens = torch.cat([x[:, :p], flat.index_select(0, kept_rows).reshape(batch, nu, dim),
                        (b / sb[:, None]).to(x.dtype).reshape(batch, nb, dim)], dim=1)
    new_sizes = torch.cat([sizes[:, :p].float(), flat_sizes.index_select(0, kept_rows).reshape(batch, nu),
                           sb.reshape(batch, nb)], dim=1)
    remap = torch.empty(batch, t, dtype=torch.long, device=device)
    remap[:, :p] = torch.arange(p, device=device)
    remap[:, p + 1 :: 2] = p + nu + torch.arange(nb, device=device)
    remap.scatter_(1, p + 2 * unmerged, (p + torch.arange(nu, device=device)).expand(batch, -1))
    remap.scatter_(1, p + 2 * src, p + nu + dst)
    return MergeStep(tokens, new_sizes, remap)


def _bias(sizes: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if sizes is None else sizes.log().to(dtype)[:, None, None, :]


def block_with_merge(block: nn.Module, x: torch.Tensor, sizes: torch.Tensor | None, r: int, num_prefix_tokens: int) -> MergeStep:
    """One timm ``Block`` (eval mode) with proportional attention, merging ``r`` tokens between attention and MLP."""
    from .blocks import _qkv

    attn = block.attn
    q, k, v = _qkv(attn, block.norm1(x))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=_bias(sizes, q.dtype))
    out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], attn.attn_dim)
    x = x + block.ls1(attn.proj(attn.norm(out)))
    if sizes is None:
        sizes = x.new_ones(x.shape[:2], dtype=torch.float32)
    step = bipartite_merge(x, sizes, k.mean(dim=1), r, num_prefix_tokens)
    tokens = step.tokens + block.ls2(block.mlp(block.norm2(step.tokens)))
    return MergeStep(tokens, step.sizes, step.remap)


@dataclass
class MergedForward:
    """A merged pass: final normed compact tokens, logits, the compact row of every full-layout token
    (``source`` ``[B, P + N]``, None when nothing merged) and each compact token's size."""

    tokens: torch.Tensor
    logits: torch.Tensor
    source: torch.Tensor | None
    sizes: torch.Tensor | None


def forward_merged(
    model: "SpectrogramModelMixin",
    x: torch.Tensor | None,
    merge_ratio: float,
    *,
    last_layer: int | None = None,
    patches: torch.Tensor | None = None,
    hidden_states: list[torch.Tensor] | None = None,
    sources: list[torch.Tensor | None] | None = None,
) -> MergedForward:
    """Run ``model`` on ``x`` ``[B, F, T]`` (or on patch embeddings ``patches`` ``[B, N, D]``) merging
    ``merge_ratio`` of the patch tokens away by block ``last_layer`` (see :func:`merge_schedule`).

    ``hidden_states`` receives the blocks' input and every block's output (compact); ``sources`` the
    matching layouts (``[B, P + N]`` compact rows, None before the first merge). ``merge_ratio`` with no
    token to merge is exactly the plain pass.
    """
    p = int(model.num_prefix_tokens)
    n = model.grid.num_patches
    schedule = merge_schedule(n, merge_ratio, model.num_layers, last_layer)
    if any(schedule):
        check_mergeable(model)
    if patches is None:
        patches = model.embed_patches(x)
    tokens = model.add_positions(patches)
    if hidden_states is not None:
        hidden_states.append(tokens)
    if sources is not None:
        sources.append(None)
    sizes: torch.Tensor | None = None
    source: torch.Tensor | None = None
    for index, block in enumerate(model.backbone.blocks):
        r = schedule[index]
        if r:
            step = block_with_merge(block, tokens, sizes, r, p)
            tokens, sizes = step.tokens, step.sizes
            source = step.remap if source is None else step.remap.gather(1, source)
        elif sizes is not None:
            tokens = block(tokens, attn_mask=_bias(sizes, tokens.dtype))
        else:
            tokens = block(tokens)
        if hidden_states is not None:
            hidden_states.append(tokens)
        if sources is not None:
            sources.append(source)
    tokens = model.backbone.norm(tokens)
    if source is not None and model.head_reads_patches:  # a pooled head counts every patch a token stands for
        logits = model.forward_head(tokens.gather(1, source[..., None].expand(-1, -1, tokens.shape[-1])))
    else:
        logits = model.forward_head(tokens)
    return MergedForward(tokens, logits, source, sizes)


class MergedModel(nn.Module):
    """``model`` with token merging as a plain module: ``MergedModel(model, 0.5)(x)`` -> logits."""

    def __init__(self, model: "SpectrogramModelMixin", merge_ratio: float, last_layer: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.merge_ratio = check_merge_ratio(merge_ratio)
        self.last_layer = last_layer
        self.schedule = merge_schedule(model.grid.num_patches, merge_ratio, model.num_layers, last_layer)
        if any(self.schedule):
            check_mergeable(model)

    @property
    def num_tokens(self) -> int:
        """Patch tokens left after the last block."""
        return self.model.grid.num_patches - sum(self.schedule)

    def extra_repr(self) -> str:
        return f"merge_ratio={self.merge_ratio}, schedule={self.schedule}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_merged(self.model, x, self.merge_ratio, last_layer=self.last_layer).logits
