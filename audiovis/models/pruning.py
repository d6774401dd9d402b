"""Reduced compute at inference: token pruning, and coarser patch strides from a stride-10 checkpoint.

Token pruning keeps the top-k patches by a score and runs the remaining blocks on those tokens only. Each
kept token carries the position embedding it was given at the input (tokens are gathered after the
position embeddings are added), so the blocks see them where they are. Two scores:

- ``"energy"``: how far the patch's mean input value (AST's input is a normalised log-mel, so its mean
  log energy) rises above the median of its row of patches, i.e. above its frequency band's typical
  level in this clip. Raw energy would keep loud background bands (brown noise, hum) over quieter events
  in other bands. Pruning happens before block 0 by default. AST's front end zero-pads a short clip
  before normalising, which puts the padding at a middling level: a clip mostly of padding takes its
  band medians from the padding.
- ``"attention"``: the attention the prefix tokens (AST: cls and dist; averaged, all heads averaged) pay
  to each patch in block ``prune_layer - 1``, which runs on every token; pruning happens after it.

With ``fuse_dropped`` (the default) the dropped patches are not simply discarded: their mean becomes one
extra token, and attention counts it once for each patch it stands for (a key bias of ``log m`` for ``m``
patches, as Token Merging's proportional attention does). The pruned blocks then behave exactly as if
every dropped patch had been replaced by that mean: the background still reaches the class tokens, at
the cost of one token. ``fuse_dropped=False`` drops them outright.

Works on any model of this package (``ASTModel``, ``ViTModel``); stride conversion needs an ``ASTModel``.

Kept token indices are returned in token order; ties in the score go to the lower index. With
``keep_ratio=1.0`` nothing is dropped and the pass is exactly the unpruned one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_int, check_number, check_pair
from ..errors import ConfigError
from ..patches import PatchGrid

if TYPE_CHECKING:
    from .ast import ASTModel
    from .base import SpectrogramModelMixin

KeepBy = Literal["energy", "attention"]
KEEP_BY: tuple[str, ...] = ("energy", "attention")
DEFAULT_PRUNE_LAYER = {"energy": 0, "attention": 2}


def check_keep_ratio(keep_ratio: float) -> float:
    """``keep_ratio`` as a float in (0, 1], or a ValueError naming it."""
    return check_number(keep_ratio, "keep_ratio", low=0, high=1, low_open=True,
                        what="a number in (0, 1] (the share of patches kept)")


def num_kept(num_patches: int, keep_ratio: float) -> int:
    """Patches kept out of ``num_patches``: ``round(keep_ratio * num_patches)``, at least 1."""
    return max(1, min(num_patches, round(check_keep_ratio(keep_ratio) * num_patches)))


def resolve_prune_layer(keep_by: str, prune_layer: int | None, num_layers: int) -> int:
    """The index of the first block that runs on the kept tokens only, checked against the model depth."""
    if keep_by not in KEEP_BY:
        raise ValueError(f"keep_by must be one of {list(KEEP_BY)}, got {keep_by!r}")
    layer = DEFAULT_PRUNE_LAYER[keep_by] if prune_layer is None else prune_layer
    low = 1 if keep_by == "attention" else 0
    why = "attention scores come from block prune_layer - 1, so " if keep_by == "attention" else ""
    return check_int(layer, "prune_layer", minimum=low, maximum=num_layers,
                     what=f"in [{low}, {num_layers}] ({why}the model has {num_layers} blocks)")


def patch_energy(x: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """Mean input value over each patch's footprint: ``[B, F, T]`` spectrograms -> ``[B, N]`` in token order."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if tuple(x.shape[-2:]) != tuple(grid.input_shape):
        raise ValueError(f"spectrogram batch {tuple(x.shape)} does not match the grid's input {grid.input_shape}")
    pooled = F.avg_pool2d(x.float(), kernel_size=grid.patch_size, stride=grid.stride)
    return pooled.flatten(1)


def energy_scores(x: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """The ``"energy"`` score ``[B, N]``: each patch's footprint mean minus the median of its grid row."""
    energy = patch_energy(x, grid)
    rows = energy.view(energy.shape[0], *grid.grid_shape)
    return (rows - rows.median(dim=2, keepdim=True).values).flatten(1)


def prefix_attention(probs: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """Attention ``[B, heads, T or P, T]`` -> what the prefix tokens pay each patch ``[B, N]`` (heads and prefix averaged)."""
    p = num_prefix_tokens
    return probs[:, :, :p, p:].mean(dim=(1, 2))


def block_with_prefix_attention(block: nn.Module, x: torch.Tensor, num_prefix_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One timm ``Block`` (eval mode) with fused attention, plus the prefix tokens' attention rows ``[B, heads, P, T]``.

    q, k and v are projected once; only the ``P`` prefix rows of the softmax are formed explicitly.
    """
    from .blocks import _qkv

    attn = block.attn
    q, k, v = _qkv(attn, block.norm1(x))
    rows = torch.softmax((q[:, :, :num_prefix_tokens] * attn.scale) @ k.transpose(-2, -1), dim=-1)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape[0], x.shape[1], attn.attn_dim)
    x = x + block.ls1(attn.proj(attn.norm(out)))
    x = x + block.ls2(block.mlp(block.norm2(x)))
    return x, rows


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[B, k]`` of the ``k`` highest scores per row, in ascending (token) order; ties to the lower index."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    return order[:, :k].sort(dim=1).values


def gather_patches(
    tokens: torch.Tensor, kept: torch.Tensor, num_prefix_tokens: int, *, fuse: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The prefix tokens, the kept patch tokens ``kept`` ``[B, k]`` and, with ``fuse``, the mean of the
    dropped ones: ``([B, P + k (+ 1), D], key bias)``.

    The key bias ``[B, T]`` (None without a fused token) is ``log m`` for the fused token of ``m``
    patches, 0 elsewhere: attention then treats it as ``m`` copies of itself.
    """
    p = num_prefix_tokens
    patches = tokens[:, p:]
    index = kept.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])
    gathered = torch.gather(patches, 1, index)
    out = torch.cat([tokens[:, :p], gathered], dim=1)
    dropped = patches.shape[1] - kept.shape[1]
    if not fuse or dropped == 0:
        return out, None
    fused = (patches.sum(dim=1) - gathered.sum(dim=1)) / dropped
    bias = tokens.new_zeros(out.shape[0], out.shape[1] + 1)
    bias[:, -1] = math.log(dropped)
    return torch.cat([out, fused.unsqueeze(1)], dim=1), bias


def full_layout(tokens: torch.Tensor, kept: torch.Tensor, num_patches: int, num_prefix_tokens: int) -> torch.Tensor:
    """Compact tokens with a fused token ``[B, P + k + 1, D]`` -> ``[B, P + N, D]`` in token order, every
    dropped patch holding the fused token."""
    p = num_prefix_tokens
    batch, _, dim = tokens.shape
    patches = tokens[:, -1:].expand(batch, num_patches, dim).clone()
    k = kept.shape[1]
    patches.scatter_(1, kept.unsqueeze(-1).expand(-1, -1, dim), tokens[:, p : p + k])
    return torch.cat([tokens[:, :p], patches], dim=1)


def pruned_head(model: "SpectrogramModelMixin", tokens: torch.Tensor, kept: torch.Tensor, fused: bool) -> torch.Tensor:
    """Logits from final normed compact tokens; a head that pools patch tokens counts the fused token
    once for every patch it stands for."""
    if fused and model.head_reads_patches:
        tokens = full_layout(tokens, kept, model.grid.num_patches, model.num_prefix_tokens)
    return model.forward_head(tokens)


@dataclass
class PrunedForward:
    """A pruned pass: final tokens (after the final norm: prefix, kept patches in token order, then the
    fused token when ``fused``), logits, kept patches and the layer pruning happened before."""

    tokens: torch.Tensor
    logits: torch.Tensor
    kept: torch.Tensor
    prune_layer: int
    fused: bool = False


def forward_pruned(
    model: "SpectrogramModelMixin",
    x: torch.Tensor,
    *,
    keep_ratio: float,
    keep_by: KeepBy = "energy",
    prune_layer: int | None = None,
    fuse_dropped: bool = True,
    hidden_states: list[torch.Tensor] | None = None,
    attentions: list[torch.Tensor] | None = None,
) -> PrunedForward:
    """Run ``model`` on ``x`` ``[B, F, T]`` keeping ``keep_ratio`` of the patches from block ``prune_layer`` on.

    ``fuse_dropped`` merges the dropped patches into one token (see the module docstring).
    ``hidden_states`` (when given) receives the blocks' input and every block's output, as
    ``model.run_blocks`` records them; from ``prune_layer`` on they hold the compact tokens.
    ``attentions`` (when given) receives explicit attention probabilities of every block.
    Call under ``torch.no_grad()`` / ``inference_mode`` for inference; the model's mode is not changed.
    """
    x = model.as_image(x)
    grid = model.grid
    p = model.num_prefix_tokens
    layer = resolve_prune_layer(keep_by, prune_layer, model.num_layers)
    k = num_kept(grid.num_patches, keep_ratio)

    tokens = model.add_positions(model.embed_patches(x))
    if hidden_states is not None:
        hidden_states.append(tokens)
    if k == grid.num_patches:  # everything kept: the unpruned pass, whatever the score
        tokens = model.backbone.norm(model.run_blocks(tokens, hidden_states=hidden_states, attentions=attentions))
        kept = torch.arange(k, device=x.device).expand(x.shape[0], k)
        return PrunedForward(tokens=tokens, logits=model.forward_head(tokens), kept=kept, prune_layer=layer)
    if keep_by == "energy":
        scores = energy_scores(x, grid)
        tokens = model.run_blocks(tokens, stop=layer, hidden_states=hidden_states, attentions=attentions)
    else:
        from .blocks import block_with_attention, check_attention_block

        tokens = model.run_blocks(tokens, stop=layer - 1, hidden_states=hidden_states, attentions=attentions)
        block = model.backbone.blocks[layer - 1]
        check_attention_block(block, layer - 1)
        if attentions is not None:
            tokens, probs = block_with_attention(block, tokens)
            attentions.append(probs)
        else:
            tokens, probs = block_with_prefix_attention(block, tokens, p)
        if hidden_states is not None:
            hidden_states.append(tokens)
        scores = prefix_attention(probs, p)

    kept = top_k(scores, k)
    tokens = finish_pruned(model, tokens, kept, layer, fuse=fuse_dropped, hidden_states=hidden_states, attentions=attentions)
    return PrunedForward(tokens=tokens, logits=pruned_head(model, tokens, kept, fuse_dropped), kept=kept,
                         prune_layer=layer, fused=fuse_dropped)


def finish_pruned(
    model: "SpectrogramModelMixin",
    tokens: torch.Tensor,
    kept: torch.Tensor,
    prune_layer: int,
    *,
    fuse: bool = True,
    hidden_states: list[torch.Tensor] | None = None,
    attentions: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Block ``prune_layer``'s input ``[B, P + N, D]`` -> final normed compact tokens ``[B, P + k (+ 1), D]``."""
    tokens, bias = gather_patches(tokens, kept, model.num_prefix_tokens, fuse=fuse)
    tokens = model.run_blocks(tokens, start=prune_layer, hidden_states=hidden_states, attentions=attentions, key_bias=bias)
    return model.backbone.norm(tokens)


def pruned_logits(
    model: "SpectrogramModelMixin", patches: torch.Tensor, kept: torch.Tensor, prune_layer: int, *, fuse: bool = True
) -> torch.Tensor:
    """Logits from patch embeddings ``[B, N, D]`` with a given kept set (differentiable in ``patches``)."""
    tokens = model.run_blocks(model.add_positions(patches), stop=prune_layer)
    return pruned_head(model, finish_pruned(model, tokens, kept, prune_layer, fuse=fuse), kept, fuse)


def source_rows(kept: torch.Tensor, num_patches: int, num_prefix_tokens: int, fused: bool) -> torch.Tensor:
    """For one clip's kept patches ``[k]``: the compact row of every full-layout token ``[P + N]`` (a
    dropped patch -> the fused token's row ``P + k``, or -1 without one)."""
    p, k = num_prefix_tokens, kept.numel()
    source = torch.full((p + num_patches,), p + k if fused else -1, dtype=torch.long)
    source[:p] = torch.arange(p)
    source[kept.cpu() + p] = torch.arange(p, p + k)
    return source


class PrunedModel(nn.Module):
    """``model`` with token pruning as a plain module: ``PrunedModel(model, 0.5)(x)`` -> logits."""

    def __init__(
        self,
        model: "SpectrogramModelMixin",
        keep_ratio: float,
        keep_by: KeepBy = "energy",
        prune_layer: int | None = None,
        fuse_dropped: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.keep_ratio = check_keep_ratio(keep_ratio)
        self.keep_by = keep_by
        self.prune_layer = resolve_prune_layer(keep_by, prune_layer, model.num_layers)
        self.fuse_dropped = bool(fuse_dropped)

    @property
    def num_tokens(self) -> int:
        """Patch tokens the pruned blocks run on (the fused token not counted)."""
        return num_kept(self.model.grid.num_patches, self.keep_ratio)

    def extra_repr(self) -> str:
        return f"keep_ratio={self.keep_ratio}, keep_by={self.keep_by!r}, prune_layer={self.prune_layer}, fuse_dropped={self.fuse_dropped}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_pruned(
            self.model, x, keep_ratio=self.keep_ratio, keep_by=self.keep_by, prune_layer=self.prune_layer,
            fuse_dropped=self.fuse_dropped,
        ).logits


# -- coarser strides --------------------------------------------------------------------------


def _axis_weights(num_new: int, stride_new: int, num_old: int, stride_old: int) -> torch.Tensor:
    """Linear interpolation ``[num_new, num_old]`` from old grid positions to the new patches' start offsets."""
    start = torch.arange(num_new, dtype=torch.float64) * stride_new / stride_old
    u = start.clamp(0, num_old - 1)
    lo = u.floor().long().clamp(max=num_old - 1)
    hi = (lo + 1).clamp(max=num_old - 1)
    frac = u - lo.double()
    w = torch.zeros(num_new, num_old, dtype=torch.float64)
    rows = torch.arange(num_new)
    w[rows, lo] += 1 - frac
    w[rows, hi] += frac
    return w


def adapt_pos_embed_to_stride(pos_embed: torch.Tensor, old_grid: PatchGrid, new_grid: PatchGrid, num_prefix_tokens: int) -> torch.Tensor:
    """Position embeddings ``[1, P + N_old, D]`` for ``new_grid`` (same input and patch size, other stride).

    A new patch starting at bin ``b`` and frame ``f`` takes the embedding of the old grid at the
    fractional position ``(b / old_stride_f, f / old_stride_t)`` (bilinear; clamped at the last row and
    column), so each patch keeps the embedding of the place it covers. Prefix embeddings are copied.
    """
    if old_grid.input_shape != new_grid.input_shape or old_grid.patch_size != new_grid.patch_size:
        raise ConfigError(
            f"stride conversion keeps the input {old_grid.input_shape} and patch size {old_grid.patch_size}; "
            f"got input {new_grid.input_shape} and patch size {new_grid.patch_size}"
        )
    p = num_prefix_tokens
    if pos_embed.ndim != 3 or pos_embed.shape[1] != p + old_grid.num_patches:
        raise ConfigError(
            f"pos_embed of shape {tuple(pos_embed.shape)} does not fit {p} prefix tokens + the "
            f"{old_grid.num_freq} x {old_grid.num_time} grid"
        )
    dim = pos_embed.shape[-1]
    old = pos_embed[0, p:].reshape(old_grid.num_freq, old_grid.num_time, dim).double()
    wf = _axis_weights(new_grid.num_freq, new_grid.stride[0], old_grid.num_freq, old_grid.stride[0])
    wt = _axis_weights(new_grid.num_time, new_grid.stride[1], old_grid.num_time, old_grid.stride[1])
    new = torch.einsum("ar,bc,rcd->abd", wf, wt, old).reshape(1, new_grid.num_patches, dim)
    return torch.cat([pos_embed[:, :p], new.to(pos_embed.dtype)], dim=1)


def convert_stride(model: "ASTModel", stride: int | tuple[int, int] = 16) -> "ASTModel":
    """A copy of ``model`` cutting patches every ``stride`` (frequency, time) bins/frames, e.g. 16 = no overlap.

    Every weight is copied; the position embeddings are re-gridded by :func:`adapt_pos_embed_to_stride`.
    The result is a new model in eval mode on the same device; ``model`` is unchanged.
    """
    sf, st = check_pair(stride, "stride", error=ConfigError)
    precision = getattr(model, "precision", "fp32")
    if precision != "fp32":
        raise ConfigError(f"convert_stride needs the float32 model; this one is {precision}: convert the stride, then quantize")
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "frequency_stride"):
        raise ConfigError(f"convert_stride needs an ASTModel (a config with strides), got {type(model).__name__}")
    new = type(model)(config.replace(frequency_stride=sf, time_stride=st))
    state = dict(model.state_dict())
    state["pos_embed"] = adapt_pos_embed_to_stride(state["pos_embed"], model.grid, new.grid, model.num_prefix_tokens)
    new.load_state_dict(state)
    new.head_trained = getattr(model, "head_trained", False)  # the same head, copied
    return new.to(model.pos_embed.device).eval()
