"""One description of a reduced-compute pass, and the full token layout of what such a pass recorded.

A :class:`Reduction` says how a pass saves compute: ``method`` ``"prune"`` (keep a share of the patch
tokens, see :mod:`audiovis.models.pruning`) or ``"merge"`` (token merging, see
:mod:`audiovis.models.merging`), with its ``ratio``, ``ranking``, ``layer`` and ``fuse``. It travels from
``model.analyze`` through the pass to the :class:`~audiovis.Analysis`, instead of loose keyword arguments.

A reduced pass runs its blocks on fewer tokens than the model has patches. :class:`ReducedStates` keeps
what it computed in that compact form (one ``[tokens, dim]`` state per layer and, for each, where every
patch of the full layout lives in it) and rebuilds the full layout only when asked: a layer's hidden
states (a patch holds the state of the token it was pruned into or merged into), a block's attention
(a token standing for ``m`` patches shares its column among them; see :meth:`ReducedStates.attention`),
the merge groups. Nothing of size ``tokens x tokens`` exists unless attention is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator, Literal, Sequence

import numpy as np
import torch

from ..checks import check_int, is_int
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import SpectrogramModelMixin

Method = Literal["prune", "merge"]

#: ``keep_by="attention"`` without ``prune_layer`` prunes in stages ranked by each stage block's own cls
#: attention (:mod:`audiovis.models.progressive`: EViT's ranking, inattentive patches fused; one stage at
#: block 0 by default, a list of blocks for several); an integer ``prune_layer`` keeps the single-stage
#: scheme of :mod:`audiovis.models.pruning` (ranked by the attention of the block before it).
PROGRESSIVE_BY_DEFAULT = True
METHODS: tuple[str, ...] = ("prune", "merge")


@dataclass(frozen=True)
class Reduction:
    """How a pass reduces its tokens.

    - ``method``: ``"prune"`` or ``"merge"``.
    - ``ratio``: pruning: the share of patches kept, in (0, 1]; merging: the share of patch tokens merged
      away by the last block, in [0, 1).
    - ``ranking``: pruning: ``"energy"`` or ``"attention"`` (what decides which patches stay); merging:
      ``"keys"`` (tokens with the most similar attention keys merge, as Token Merging does).
    - ``layer``: pruning: the first block that runs on the kept tokens (None: the ranking's default), or
      for attention ranking a tuple of blocks to prune at, each ranking by its own attention
      (:mod:`audiovis.models.progressive`; None: at block 0);
      merging: the last block that merges (None: ``num_layers // 3``, or later blocks when a high ratio needs them;
      see :func:`audiovis.models.merging.merge_schedule`).
    - ``fuse``: pruning: the dropped patches run on as one fused token (proportional attention).
    """

    method: str = "prune"
    ratio: float = 1.0
    ranking: str = "energy"
    layer: int | tuple[int, ...] | None = None
    fuse: bool = True

    @classmethod
    def from_options(
        cls,
        *,
        keep_ratio: float = 1.0,
        keep_by: str = "energy",
        prune_layer: int | None = None,
        fuse_dropped: bool = True,
        merge_ratio: float = 0.0,
    ) -> "Reduction | None":
        """The reduction ``analyze``'s public keywords ask for, checked; None for the plain pass."""
        from .merging import check_merge_ratio
        from .pruning import check_keep_ratio

        keep = check_keep_ratio(keep_ratio)
        merge = check_merge_ratio(merge_ratio)
        if keep < 1.0 and merge > 0.0:
            raise ValueError(f"choose token pruning (keep_ratio={keep_ratio!r}) or token merging (merge_ratio={merge_ratio!r}), not both")
        if not isinstance(fuse_dropped, (bool, np.bool_)):
            raise ValueError(f"fuse_dropped must be True or False, got {fuse_dropped!r}")
        if merge > 0.0:
            pruning = [f"{name}={value!r}" for name, value, given in (
                ("keep_by", keep_by, keep_by != "energy"), ("prune_layer", prune_layer, prune_layer is not None),
                ("fuse_dropped", fuse_dropped, not fuse_dropped)) if given]
            if pruning:  # e.g. prune_layer read as the block where merging ends: it would change nothing
                raise ValueError(f"{', '.join(pruning)} set{'s' if len(pruning) == 1 else ''} token pruning, which "
                                 f"merge_ratio={merge_ratio!r} does not use (merging follows its own schedule over the "
                                 f"blocks); drop {'it' if len(pruning) == 1 else 'them'}, or prune instead with keep_ratio")
            return cls("merge", merge, "keys", None, True)
        from .pruning import KEEP_BY

        if keep_by not in KEEP_BY:
            raise ValueError(f"keep_by must be one of {list(KEEP_BY)}, got {keep_by!r}")
        layer: int | tuple[int, ...] | None = None
        if isinstance(prune_layer, (list, tuple)) and keep_by == "attention":
            layer = tuple(prune_layer)  # progressive stages, checked by resolve
        elif prune_layer is not None:
            if not is_int(prune_layer):
                raise ValueError(f"prune_layer must be an integer block index (or, with keep_by='attention', a list of "
                                 f"them for progressive pruning), got {prune_layer!r}")
            layer = int(prune_layer)
        return cls("prune", keep, keep_by, layer, bool(fuse_dropped))

    def resolve(self, model: "SpectrogramModelMixin") -> "Reduction":
        """This reduction with ``layer`` filled in (merging: left None for the default span) and checked against
        ``model`` (ValueError/ConfigError otherwise)."""
        if self.method == "prune":
            from .pruning import check_keep_ratio, resolve_prune_layer

            check_keep_ratio(self.ratio)
            if self.is_progressive:
                from .progressive import check_stages, default_stages

                if not self.fuse:
                    raise ValueError("progressive attention pruning always fuses the dropped patches; pass fuse_dropped=True")
                stages = default_stages(model.num_layers) if self.layer is None else self.layer
                return replace(self, layer=check_stages(stages, model.num_layers))
            return replace(self, layer=resolve_prune_layer(self.ranking, self.layer, model.num_layers))
        if self.method == "merge":
            from .merging import check_mergeable, check_merge_ratio

            check_merge_ratio(self.ratio)
            check_mergeable(model)
            from .merging import merge_schedule

            n = model.num_layers
            layer = self.layer
            if layer is not None:  # None: the default span, which a high ratio may run past (merge_schedule)
                layer = check_int(layer, "the last merging block", minimum=0, maximum=n - 1,
                                  what=f"in [0, {n - 1}] (the model has {n} blocks)")
            merge_schedule(model.grid.num_patches, self.ratio, n, layer)  # a ratio out of reach fails here
            return replace(self, layer=layer)
        raise ValueError(f"reduction method must be one of {list(METHODS)}, got {self.method!r}")

    @property
    def is_progressive(self) -> bool:
        """Attention-ranked pruning in stages (:mod:`audiovis.models.progressive`): ``layer`` is a tuple of
        blocks, or None with ``ranking="attention"`` and :data:`PROGRESSIVE_BY_DEFAULT`."""
        if self.method != "prune" or self.ranking != "attention":
            return False
        return isinstance(self.layer, tuple) or (self.layer is None and PROGRESSIVE_BY_DEFAULT)

    def is_identity(self, num_patches: int) -> bool:
        """Whether this reduction leaves every patch token in place (the plain pass)."""
        if self.method == "prune":
            from .pruning import num_kept

            return num_kept(num_patches, self.ratio) == num_patches
        from .merging import num_merged

        return num_merged(num_patches, self.ratio) == 0


def resolve_options(
    model: "SpectrogramModelMixin",
    *,
    keep_ratio: float = 1.0,
    keep_by: str = "energy",
    prune_layer: int | None = None,
    fuse_dropped: bool = True,
    merge_ratio: float = 0.0,
) -> Reduction | None:
    """The checked :class:`Reduction` that ``analyze``'s keywords ask of ``model``, resolved; None for the plain pass.

    Args:
        model: the model the pass runs on (its blocks and patches decide the defaults and the checks).
        keep_ratio, keep_by, prune_layer, fuse_dropped, merge_ratio: ``model.analyze``'s keywords.

    Returns:
        The resolved reduction, or None when it leaves every patch token in place.
    """
    reduction = Reduction.from_options(keep_ratio=keep_ratio, keep_by=keep_by, prune_layer=prune_layer,
                                       fuse_dropped=fuse_dropped, merge_ratio=merge_ratio)
    reduction = reduction.resolve(model)
    return None if reduction.is_identity(model.grid.num_patches) else reduction


def _check_source(source: torch.Tensor | None, num_tokens: int) -> torch.Tensor | None:
    if source is None:
        return None
    source = torch.as_tensor(source, dtype=torch.long).cpu()
    if source.shape != (num_tokens,):
        raise ValueError(f"a layout source must hold one row per token ({num_tokens}), got {tuple(source.shape)}")
    return source


class ReducedStates(Sequence[torch.Tensor]):
    """A reduced pass's hidden states for one clip, in the full token layout on access.

    ``states[i]`` ``[t_i, D]`` is the compact input of block 0 (``i = 0``) or block ``i - 1``'s output;
    ``sources[i]`` ``[P + N]`` gives, for every token of the full layout, its row in ``states[i]``
    (``-1``: a patch pruned without fusing; None: the identity, nothing reduced yet). ``inputs[b]``
    ``(tokens, source)`` is block ``b``'s input when it differs from ``states[b]`` (pruning happens
    between two blocks); for a block in ``keys_before`` it holds the queries and ``states[b]`` the keys
    (a pruning stage attends over every token it had). ``self[i]`` is ``[P + N, D]`` float32 on the
    CPU: each token's row of its compact state; a patch pruned without fusing holds the state it was
    dropped with.
    """

    def __init__(
        self,
        model: "SpectrogramModelMixin",
        states: Sequence[torch.Tensor],
        sources: Sequence[torch.Tensor | None],
        *,
        reduction: Reduction,
        inputs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] | None = None,
        kept: np.ndarray | None = None,
        keys_before: Sequence[int] = (),
    ) -> None:
        if len(states) != len(sources):
            raise ValueError(f"{len(states)} states but {len(sources)} layouts")
        self.model = model
        self.reduction = reduction
        self.num_tokens = int(model.num_prefix_tokens) + model.grid.num_patches
        self.states = [s.detach() for s in states]
        self.sources = [_check_source(s, self.num_tokens) for s in sources]
        #: pruning: the patches kept (token order); None otherwise
        self.kept = None if kept is None else np.asarray(kept, dtype=np.int64)
        #: progressive pruning: the patches kept after each stage (to replay the pass with gradients)
        self.stage_kept: list[torch.Tensor] | None = None
        self.inputs = {b: (t.detach(), _check_source(s, self.num_tokens)) for b, (t, s) in (inputs or {}).items()}
        #: blocks whose attention ran from ``inputs[b]`` (queries) over ``states[b]`` (keys: every token
        #: before the block pruned; progressive pruning's stages)
        self.keys_before = frozenset(int(b) for b in keys_before)

    def __len__(self) -> int:
        return len(self.states)

    def __getitem__(self, index: int) -> torch.Tensor:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]  # type: ignore[return-value]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"state {index} outside 0..{n - 1}")
        index %= n
        source = self.sources[index]
        state = self.states[index]
        if source is None:
            return state.float().cpu()
        valid = source >= 0
        full = state[source.clamp(min=0).to(state.device)].float().cpu()
        if not bool(valid.all()):
            missing = ~valid
            for earlier in range(index - 1, -1, -1):  # a patch pruned unfused keeps the state it was dropped with
                before = self.sources[earlier]
                held = missing if before is None else missing & (before >= 0)
                if bool(held.any()):
                    rows = torch.nonzero(held).flatten()
                    origin = rows if before is None else before[rows]
                    full[rows] = self.states[earlier][origin.to(self.states[earlier].device)].float().cpu()
                    missing &= ~held
                if not bool(missing.any()):
                    break
        return full

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[i] for i in range(len(self)))

    def block_input(self, block: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Block ``block``'s compact input ``[t, D]`` and its layout."""
        if block in self.inputs:
            return self.inputs[block]
        return self.states[block], self.sources[block]

    def sizes(self, source: torch.Tensor, rows: int) -> torch.Tensor:
        """How many full-layout tokens each of ``rows`` compact rows stands for."""
        return torch.bincount(source[source >= 0], minlength=rows)

    def attention(self, block: int) -> torch.Tensor:
        """Attention probabilities of ``block`` in the full layout ``[heads, P + N, P + N]``, float32 on the CPU.

        Recomputed from the block's compact input with the key bias the pass used (``log`` of each
        token's size). A token standing for ``m`` patches gives each of them its row, and its column
        shared equally among them (attention to the ``m`` copies it stands for), so rows still sum to
        one; a patch pruned without fusing has a zero row and column. A pruning stage's block
        (``keys_before``) has the rows of its queries (kept and fused tokens) over the columns of the
        tokens it had before pruning.
        """
        from .blocks import _qkv, attention_probabilities, check_attention_block, inference

        model = self.model
        layer = model.backbone.blocks[block]
        check_attention_block(layer, block)
        tokens, source = self.block_input(block)
        keys, key_source = (self.states[block], self.sources[block]) if block in self.keys_before else (tokens, source)
        param = next(layer.parameters())
        dtype = param.dtype if param.dtype.is_floating_point else torch.float32
        hidden = tokens[None].to(model.device, dtype)
        with inference(model):
            if source is None and key_source is None:
                return attention_probabilities(layer, hidden)[0].float().cpu()
            q, k, _ = _qkv(layer.attn, layer.norm1(hidden))
            if keys is not tokens:
                _, k, _ = _qkv(layer.attn, layer.norm1(keys[None].to(model.device, dtype)))
            sizes = torch.ones(keys.shape[0], dtype=torch.long) if key_source is None else self.sizes(key_source, keys.shape[0])
            logits = ((q * layer.attn.scale) @ k.transpose(-2, -1)).float()
            if bool((sizes > 1).any()):
                logits = logits + sizes.clamp(min=1).float().log().to(logits.device)
            probs = torch.softmax(logits, dim=-1)[0].cpu()
        rows = torch.arange(self.num_tokens) if source is None else source.clamp(min=0)
        cols = torch.arange(self.num_tokens) if key_source is None else key_source.clamp(min=0)
        full = probs[:, rows][:, :, cols] / sizes[cols].clamp(min=1).float()
        if source is not None and bool((source < 0).any()):
            full[:, source < 0] = 0.0
        if key_source is not None and bool((key_source < 0).any()):
            full[:, :, key_source < 0] = 0.0
        return full

    def groups(self, state: int) -> np.ndarray:
        """Group ids ``[N]`` of the patches at ``state``: patches in one token share an id (numbered in the
        order of their first patch); a patch pruned without fusing gets -1."""
        source = self.sources[state]
        p = int(self.model.num_prefix_tokens)
        n = self.num_tokens - p
        if source is None:
            return np.arange(n, dtype=np.int64)
        rows = source[p:].numpy()
        out = np.full(n, -1, dtype=np.int64)
        valid = rows >= 0
        _, first, inverse = np.unique(rows[valid], return_index=True, return_inverse=True)
        rank = np.empty(first.size, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(first.size)
        out[valid] = rank[inverse]
        return out

    def logits_from_patches(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[1, classes]`` of this pass recomputed from patch embeddings ``patches`` ``[1, N, D]``
        (differentiable in them) with the same reduction; ``x`` ``[1, F, T]`` is the model input."""
        return reduced_logits(self.model, x, patches, self)


@dataclass
class ReducedPass:
    """What :func:`reduced_pass` returns: the lazy full-layout states, logits ``[classes]``, and the
    patches still holding tokens of their own at the end (pruning: the kept ones)."""

    states: ReducedStates
    logits: torch.Tensor
    kept: np.ndarray | None = None
    prune_layer: int | None = None
    fused: bool = False


def reduced_pass(model: "SpectrogramModelMixin", x: torch.Tensor, reduction: Reduction) -> ReducedPass:
    """Run ``model`` on one input ``x`` ``[1, F, T]`` under ``reduction`` (resolved) and record its compact states.

    Call under :func:`audiovis.models.blocks.inference`. No attention map and no full-layout tensor is made.
    """
    if reduction.method == "prune" and reduction.is_progressive:
        from .progressive import forward_progressive

        states, sources, inputs = [], [], {}
        out = forward_progressive(model, x, reduction.ratio, reduction.layer, hidden_states=states, sources=sources,
                                  inputs=inputs)
        record = ReducedStates(model, [s[0] for s in states], [None if s is None else s[0] for s in sources],
                               reduction=reduction, inputs={b: (t[0], s[0]) for b, (t, s) in inputs.items()},
                               kept=out.kept[0].cpu().numpy(), keys_before=reduction.layer)
        record.stage_kept = [k[0].cpu() for k in out.stage_kept]
        return ReducedPass(record, out.logits[0], record.kept, int(reduction.layer[0]), out.fused_size > 0)
    if reduction.method == "prune":
        from .pruning import forward_pruned, gather_patches, source_rows

        states: list[torch.Tensor] = []
        out = forward_pruned(model, x, keep_ratio=reduction.ratio, keep_by=reduction.ranking,  # type: ignore[arg-type]
                             prune_layer=reduction.layer, fuse_dropped=reduction.fuse, hidden_states=states)
        layer, p, n = out.prune_layer, int(model.num_prefix_tokens), model.grid.num_patches
        kept = out.kept[0].cpu()
        source = source_rows(kept, n, p, out.fused)
        sources = [None if i <= layer else source for i in range(len(states))]
        gathered, _ = gather_patches(states[layer], out.kept, p, fuse=out.fused)
        record = ReducedStates(model, [s[0] for s in states], sources, reduction=reduction,
                               inputs={layer: (gathered[0], source)} if layer < model.num_layers else None,
                               kept=kept.numpy())
        return ReducedPass(record, out.logits[0], kept.numpy(), layer, out.fused)
    if reduction.method == "merge":
        from .merging import forward_merged

        states, sources = [], []
        out = forward_merged(model, x, reduction.ratio, last_layer=reduction.layer, hidden_states=states, sources=sources)
        record = ReducedStates(model, [s[0] for s in states], [None if s is None else s[0] for s in sources], reduction=reduction)
        return ReducedPass(record, out.logits[0])
    raise ValueError(f"reduction method must be one of {list(METHODS)}, got {reduction.method!r}")


def reduced_logits(model: "SpectrogramModelMixin", x: torch.Tensor, patches: torch.Tensor, states: ReducedStates) -> torch.Tensor:
    """Logits ``[B, classes]`` of the reduced pass ``states`` recorded, from patch embeddings ``patches``
    ``[B, N, D]`` (differentiable in them): pruning keeps the recorded patches, merging recomputes its
    matching from these embeddings (the same matching when they are the recorded ones)."""
    reduction = states.reduction
    if reduction.method == "prune" and reduction.is_progressive:
        from .progressive import forward_progressive

        replay = [k[None].expand(patches.shape[0], -1) for k in states.stage_kept]
        return forward_progressive(model, x, reduction.ratio, reduction.layer, patches=patches, kept_per_stage=replay).logits
    if reduction.method == "prune":
        from .pruning import pruned_logits

        kept = torch.as_tensor(states.kept)[None].expand(patches.shape[0], -1).to(patches.device)
        return pruned_logits(model, patches, kept, int(reduction.layer), fuse=reduction.fuse)
    from .merging import forward_merged

    return forward_merged(model, x, reduction.ratio, last_layer=reduction.layer, patches=patches).logits


def describe(reduction: Reduction | None) -> str:
    """A short human name of ``reduction`` for tables and titles."""
    if reduction is None:
        return "full"
    if reduction.method == "merge":
        return f"merge {reduction.ratio:g}"
    return f"prune {reduction.ranking} {reduction.ratio:g}"



def block_tokens(model: "SpectrogramModelMixin", reduction: Reduction | None) -> list[tuple[int, int]]:
    """Tokens each block's attention and MLP run on under ``reduction`` (resolved), ``[(attention, mlp)]``."""
    p, n, depth = int(model.num_prefix_tokens), model.grid.num_patches, model.num_layers
    full = p + n
    if reduction is None or reduction.is_identity(n):
        return [(full, full)] * depth
    if reduction.method == "merge":
        from .merging import merge_schedule

        out, t = [], full
        for r in merge_schedule(n, reduction.ratio, depth, reduction.layer):
            out.append((t, t - r))
            t -= r
        return out
    if reduction.is_progressive:
        from .progressive import stage_counts

        stages = list(reduction.layer)
        counts = stage_counts(n, reduction.ratio, len(stages))
        out, t = [], full
        for b in range(depth):
            if b in stages:
                kept = counts[stages.index(b)]
                t = p + kept + (1 if kept < n else 0)  # the fused token
            out.append((t, t))
        return out
    from .pruning import num_kept

    k = num_kept(n, reduction.ratio)
    reduced = p + k + (1 if reduction.fuse and k < n else 0)
    return [(full, full) if b < reduction.layer else (reduced, reduced) for b in range(depth)]


def key_tokens(model: "SpectrogramModelMixin", reduction: Reduction | None) -> list[int]:
    """Tokens each block computes keys and values for: its attention tokens (:func:`block_tokens`), except
    that a progressive pruning stage attends over every token it had before pruning."""
    tokens = block_tokens(model, reduction)
    if reduction is None or not reduction.is_progressive or reduction.is_identity(model.grid.num_patches):
        return [t for t, _ in tokens]
    full = int(model.num_prefix_tokens) + model.grid.num_patches
    return [(tokens[b - 1][1] if b else full) if b in reduction.layer else tokens[b][0] for b in range(len(tokens))]


def analytic_macs(model: "SpectrogramModelMixin", reduction: Reduction | None = None) -> int:
    """Multiply-accumulates of one forward pass under ``reduction``: patch embedding, per block q/k/v and output
    projections (``4 t D^2``; ``2 (t + s) D^2`` when ``t`` queries attend over ``s`` keys, as a progressive
    pruning stage does, :func:`key_tokens`), attention (``2 t s D``), MLP (``2 t' D I``), and the head.
    Norms, softmax and the merging/pruning bookkeeping (a stage's cls query) are not counted."""
    vit = model.backbone
    dim = int(vit.embed_dim)
    ph, pw = model.grid.patch_size
    block = vit.blocks[0]
    hidden = int(getattr(block.mlp.fc1, "out_features", 4 * dim))
    total = model.grid.num_patches * ph * pw * dim
    for (queries, mlp_tokens), keys in zip(block_tokens(model, reduction), key_tokens(model, reduction)):
        total += 2 * (queries + keys) * dim * dim + 2 * queries * keys * dim + 2 * mlp_tokens * dim * hidden
    return int(total + dim * len(model.labels))
