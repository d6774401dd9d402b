"""Analysis: one model window's predictions, embeddings and explanations, computed lazily and cached.

Conventions:

- arrays are numpy ``float32`` (read-only views of the cache: copy before changing them);
- ``layer`` counts transformer blocks like a Python index (``0`` = first block, ``-1`` = last);
  a layer's tokens are that block's output. ``norm=None`` applies the final LayerNorm to the last
  layer only, so ``layer=-1`` gives the features the head sees (Hugging Face's ``last_hidden_state``)
  and earlier layers the raw residual stream (Hugging Face's ``hidden_states[layer + 1]``);
- per-patch maps are ``[num_patches]`` in token order (``row * n_time + col``, prefix tokens excluded),
  ready for the viewer; attention matrices are over all tokens, prefix tokens first.

Attention maps come from the cached block inputs when first asked for (one block's q/k projection,
milliseconds to tens of milliseconds), unless ``analyze(..., attention=True)`` computed them all during
the pass. The Analysis keeps a reference to its model for these lazy computations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .models.base import attention_probabilities, check_attention_block, check_patches, inference
from .models.pruning import pruned_logits
from .patches import PatchGrid
from .spectrogram import Spectrogram

if TYPE_CHECKING:
    from .models.base import SpectrogramModelMixin


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def probabilities_of(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Class probabilities from float32 logits ``[..., classes]``: sigmoid if ``multi_label``, else softmax."""
    logits = logits.detach().float().cpu()
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def top_labels_of(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable ``(label, probability)`` of ``probs`` ``[classes]``, most probable first (ties: lower index)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    order = np.argsort(-probs, kind="stable")[: int(k)]
    return [(labels[i], float(probs[i])) for i in order]


class Analysis:
    """The result of ``model.analyze(audio)`` for one window (``offset`` seconds into the clip)."""

    def __init__(
        self,
        *,
        model: "SpectrogramModelMixin",
        spectrogram: Spectrogram,
        hidden_states: torch.Tensor | Sequence[torch.Tensor],
        logits: torch.Tensor,
        attentions: Sequence[torch.Tensor] | None = None,
        offset: float = 0.0,
        kept_patches: np.ndarray | Sequence[int] | None = None,
        prune_layer: int | None = None,
        fused_dropped: bool = False,
    ) -> None:
        self._model = model
        self.spectrogram = spectrogram
        self.grid: PatchGrid = model.grid
        self.labels: list[str] = list(model.labels)
        self.multi_label: bool = bool(model.multi_label)
        self.offset = float(offset)
        self.num_prefix_tokens: int = int(model.backbone.num_prefix_tokens)
        # one [tokens, dim] tensor per layer: the forward pass's own outputs, never copied into one block
        self._hidden: list[torch.Tensor] = [h.detach().float().cpu().reshape(h.shape[-2], h.shape[-1]) for h in hidden_states]
        self._stacked: torch.Tensor | None = None
        self._logits = logits.detach().float().cpu()
        self._attn: dict[int, torch.Tensor] = {}
        if attentions is not None:
            self._attn = {i: a.detach().float().cpu() for i, a in enumerate(attentions)}
        self._tokens: dict[tuple[int, bool], np.ndarray] = {}
        self._units: dict[tuple[int, bool], np.ndarray] = {}
        self._rollout: np.ndarray | None = None
        self._saliency: dict[int, np.ndarray] = {}
        # token pruning (models/pruning.py): blocks from prune_layer on ran on the kept patches only
        self.prune_layer: int | None = prune_layer
        #: whether the dropped patches ran on as one fused token (``fuse_dropped``) or were discarded
        self.fused_dropped: bool = bool(fused_dropped) and prune_layer is not None
        self._kept = _readonly(np.arange(self.grid.num_patches) if kept_patches is None else np.asarray(kept_patches, dtype=np.int64).copy())
        expected = self.num_prefix_tokens + self.grid.num_patches
        if self.num_tokens != expected:
            raise ValueError(f"hidden states hold {self.num_tokens} tokens, the grid needs {expected}")

    # -- sizes -----------------------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return len(self._hidden) - 1

    @property
    def num_heads(self) -> int:
        return self._model.num_heads

    @property
    def num_patches(self) -> int:
        return self.grid.num_patches

    @property
    def num_tokens(self) -> int:
        return int(self._hidden[0].shape[0])

    @property
    def dim(self) -> int:
        return int(self._hidden[0].shape[1])

    @property
    def kept_patches(self) -> np.ndarray:
        """Token indices of the patches the model kept (``analyze(keep_ratio=...)``); every patch when unpruned."""
        return self._kept

    @property
    def pruned_patches(self) -> np.ndarray:
        """Token indices of the patches pruning dropped (empty when unpruned): e.g. the viewer's ``masked_patches``."""
        return np.setdiff1d(np.arange(self.grid.num_patches), self._kept)

    # -- predictions -----------------------------------------------------------------------------

    @property
    def logits(self) -> np.ndarray:
        """Raw class scores ``[num_labels]``."""
        return _readonly(self._logits.numpy())

    @property
    def probabilities(self) -> np.ndarray:
        """Sigmoid of the logits for multi-label models (AudioSet), softmax otherwise."""
        return probabilities_of(self._logits, self.multi_label).numpy()

    def top_labels(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as ``(label, probability)``, most probable first."""
        return top_labels_of(self.probabilities, self.labels, k)

    # -- embeddings ------------------------------------------------------------------------------

    def _layer(self, layer: int) -> int:
        n = self.num_layers
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(f"layer must be an integer, got {layer!r}")
        if not -n <= layer < n:
            raise IndexError(f"layer {layer} outside {-n}..{n - 1} (the model has {n} layers)")
        return int(layer) % n

    @property
    def hidden_states(self) -> np.ndarray:
        """``[num_layers + 1, tokens, dim]``: the embeddings, then every block's output (Hugging Face order)."""
        if self._stacked is None:
            self._stacked = torch.stack(self._hidden)
        return _readonly(self._stacked.numpy())

    def tokens(self, layer: int = -1, *, norm: bool | None = None) -> np.ndarray:
        """All tokens ``[tokens, dim]`` (prefix first) of ``layer``; see the module notes for ``norm``."""
        idx = self._layer(layer)
        use_norm = idx == self.num_layers - 1 if norm is None else bool(norm)
        key = (idx, use_norm)
        if key not in self._tokens:
            hidden = self._hidden[idx + 1]
            if use_norm:
                with inference(self._model):
                    hidden = self._model.backbone.norm(hidden.to(self._model.device)).float().cpu()
            self._tokens[key] = _readonly(hidden.contiguous().numpy())
        return self._tokens[key]

    def patch_embeddings(self, layer: int = -1, *, norm: bool | None = None) -> np.ndarray:
        """Patch tokens ``[num_patches, dim]`` of ``layer`` in token order."""
        return self.tokens(layer, norm=norm)[self.num_prefix_tokens:]

    def prefix_embeddings(self, layer: int = -1, *, norm: bool | None = None) -> np.ndarray:
        """Prefix tokens ``[num_prefix_tokens, dim]`` of ``layer`` (AST: cls, distillation)."""
        return self.tokens(layer, norm=norm)[: self.num_prefix_tokens]

    def clip_embedding(self, layer: int = -1, *, norm: bool | None = None) -> np.ndarray:
        """One vector ``[dim]`` for the window: the model's pooling (AST: mean of cls and distillation)."""
        tokens = torch.from_numpy(self.tokens(layer, norm=norm).copy())[None]
        return self._model.pool_tokens(tokens)[0].numpy()

    def similarity(self, patches: Sequence[int] | np.ndarray | int, layer: int = -1, *, norm: bool | None = None) -> np.ndarray:
        """Cosine similarity ``[num_patches]`` of every patch embedding to the mean of ``patches``'."""
        idx = check_patches(patches, self.num_patches)
        key = (self._layer(layer), norm)
        if key not in self._units:
            emb = self.patch_embeddings(layer, norm=norm).astype(np.float64)
            self._units[key] = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        units = self._units[key]
        raw = self.patch_embeddings(layer, norm=norm)[idx].astype(np.float64).mean(axis=0)
        ref = raw / max(float(np.linalg.norm(raw)), 1e-12)
        return (units @ ref).astype(np.float32)

    # -- attention -------------------------------------------------------------------------------

    def _attention_tensor(self, idx: int, *, cache: bool = True) -> torch.Tensor:
        if idx in self._attn:
            return self._attn[idx]
        block = self._model.backbone.blocks[idx]
        check_attention_block(block, idx)
        with inference(self._model):
            device = self._model.device
            probs = attention_probabilities(block, self._hidden[idx][None].to(device))[0].float().cpu()
        if cache:
            self._attn[idx] = probs
        return probs

    def attention(self, layer: int = -1, head: int | None = None) -> np.ndarray:
        """Attention probabilities of ``layer``: ``[heads, tokens, tokens]``, or ``[tokens, tokens]`` for one head.

        Row ``i`` is how token ``i`` (prefix tokens first) distributes its attention over all tokens.
        """
        probs = self._attention_tensor(self._layer(layer))
        if head is None:
            return _readonly(probs.numpy())
        heads = probs.shape[0]
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not -heads <= head < heads:
            raise IndexError(f"head {head!r} outside {-heads}..{heads - 1}")
        return _readonly(probs[int(head)].numpy())

    def attention_from(self, patches: Sequence[int] | np.ndarray | int, layer: int = -1, head: int | None = None) -> np.ndarray:
        """How much ``patches`` attend to each patch ``[num_patches]``: their rows averaged (over heads too when ``head`` is None)."""
        idx = check_patches(patches, self.num_patches) + self.num_prefix_tokens
        att = self.attention(layer, head)
        rows = att[..., idx, :]
        rows = rows.mean(axis=tuple(range(rows.ndim - 1)))
        return rows[self.num_prefix_tokens:].astype(np.float32)

    def rollout(self) -> np.ndarray:
        """Attention rollout (Abnar & Zuidema 2020) per patch ``[num_patches]``.

        Each layer's head-averaged attention plus the identity (the residual path), rows renormalised,
        multiplied from the first to the last layer; the prefix tokens' rows are averaged (all rows for
        a model without prefix tokens).
        """
        if self._rollout is None:
            tokens = self.num_tokens
            eye = torch.eye(tokens, dtype=torch.float64)
            joint = eye
            for idx in range(self.num_layers):
                mean = self._attention_tensor(idx, cache=False).double().mean(dim=0)
                step = 0.5 * mean + 0.5 * eye
                step = step / step.sum(dim=-1, keepdim=True)
                joint = step @ joint
            prefix = self.num_prefix_tokens
            rows = joint[:prefix] if prefix else joint
            self._rollout = _readonly(rows.mean(dim=0)[prefix:].float().numpy())
        return self._rollout

    # -- gradients -------------------------------------------------------------------------------

    def class_index(self, label: int | str | None) -> int:
        """A class by index or name; None is the most probable class."""
        if label is None:
            return int(np.argmax(self.logits))
        if isinstance(label, str):
            if label not in self.labels:
                raise KeyError(f"no class named {label!r} in this model's {len(self.labels)} labels")
            return self.labels.index(label)
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < len(self.labels):
            raise IndexError(f"class index {label!r} outside 0..{len(self.labels) - 1}")
        return int(label)

    def saliency(self, class_index: int | str | None = None) -> np.ndarray:
        """Gradient x input per patch ``[num_patches]`` for one class (index, name, or None = top class).

        The input is each patch's embedding (the patch projection's output, before position
        embeddings); the score is the dot product of that embedding with the class logit's gradient.
        """
        c = self.class_index(class_index)
        if c not in self._saliency:
            model = self._model
            with inference(model, grad=True):
                x = self.spectrogram.values[None].to(model.device)
                patches = model.embed_patches(x).detach().requires_grad_(True)
                if self.prune_layer is None:
                    tokens = model.run_blocks(model.add_positions(patches))
                    logit = model.forward_head(model.backbone.norm(tokens))[0, c]
                else:
                    kept = torch.from_numpy(self._kept.copy())[None].to(model.device)
                    logit = pruned_logits(model, patches, kept, self.prune_layer, fuse=self.fused_dropped)[0, c]
                (grad,) = torch.autograd.grad(logit, patches)
            self._saliency[c] = _readonly((grad * patches.detach()).sum(dim=-1)[0].float().cpu().numpy())
        return self._saliency[c]

    def __repr__(self) -> str:
        rows, cols = self.grid.grid_shape
        top = ", ".join(f"{name} {p:.2f}" for name, p in self.top_labels(3))
        return (
            f"Analysis({rows} x {cols} patches, {self.num_layers} layers, offset {self.offset:.2f} s; top: {top})"
        )


class WindowedAnalyses(list):
    """One :class:`Analysis` per model window, in time order: what ``model.analyze`` returns for audio
    longer than the model window (and ``model.analyze_windows`` always).

    A plain ``list``; each item has its ``offset`` (s). Asking the list for an Analysis attribute
    (``result.logits``) raises an AttributeError that says which windows there are.
    """

    @property
    def offsets(self) -> list[float]:
        """Each window's start (s)."""
        return [a.offset for a in self]

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        spans = ", ".join(f"{a.offset:g} s" for a in self[:4]) + (", ..." if len(self) > 4 else "")
        raise AttributeError(
            f"{name!r}: this is a list of {len(self)} Analysis objects, one per model window (windows start at "
            f"{spans}), because the input is longer than the model window; index it (result[0].{name}), "
            "or analyse one part with audio.segment(start, end)"
        )
