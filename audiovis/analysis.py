"""Analysis: one model window's predictions, embeddings and explanations, computed lazily and cached.

Conventions:

- arrays are numpy ``float32`` (read-only views of the cache: copy before changing them);
- ``layer`` counts transformer blocks like a Python index (``0`` = first block, ``-1`` = last);
  a layer's tokens are that block's output. ``norm=None`` applies the final LayerNorm to the last
  layer only, so ``layer=-1`` gives the features the head sees (Hugging Face's ``last_hidden_state``)
  and earlier layers the raw residual stream (Hugging Face's ``hidden_states[layer + 1]``);
- per-patch maps are ``[num_patches]`` in token order (``row * num_time + col``, prefix tokens excluded),
  ready for the viewer; attention matrices are over all tokens, prefix tokens first.

Attention maps come from the cached block inputs when first asked for (one block's q/k projection,
milliseconds to tens of milliseconds), unless ``analyze(..., attention=True)`` computed them all during
the pass. The Analysis keeps a reference to its model for these lazy computations.
"""

from __future__ import annotations

import difflib
import warnings
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from .checks import check_index, check_int, check_number, is_int
from .models.blocks import attention_probabilities, check_attention_block, inference, mean_attention
from .models.pruning import pruned_logits
from .models.reduction import ReducedStates, reduced_logits
from .patches import PatchGrid, check_patches
from .spectrogram import Spectrogram

if TYPE_CHECKING:
    from .audio import Audio
    from .explain.faithfulness import Faithfulness
    from .models.base import SpectrogramModelMixin


#: Seconds a computation runs before its progress bar appears (quick ones show none).
PROGRESS_DELAY = 1.0
#: Classes whose saliency one batched backward pass computes: each class holds its own gradients of every
#: activation (~40 MB on AST-base), so all 527 AudioSet classes at once would take over 20 GB.
SALIENCY_CLASSES_PER_PASS = 8


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar over ``total`` steps that appears only after :data:`PROGRESS_DELAY` seconds."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, delay=PROGRESS_DELAY, leave=False)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def probabilities_of(logits: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """Class probabilities from float32 logits ``[..., classes]``: sigmoid if ``multi_label``, else softmax."""
    logits = logits.detach().float().cpu()
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def clip_probabilities(window_probs: np.ndarray, multi_label: bool) -> np.ndarray:
    """A clip's class probabilities ``[classes]`` from its windows' ``[windows, classes]``: the maximum over
    windows for multi-label models (a class present anywhere in the clip), else their mean."""
    window_probs = np.asarray(window_probs)
    return window_probs.max(axis=0) if multi_label else window_probs.mean(axis=0)


def clip_scores(window_logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """:func:`clip_probabilities` in logit space, float64, for ranking clips: ``[classes]`` from the windows'
    logits ``[windows, classes]``. Multi-label: the maximum logit over windows (the logit of the maximum
    sigmoid, which saturates where logits do not); softmax: the log of the mean of the windows' softmax."""
    logits = np.asarray(window_logits, dtype=np.float64)
    if multi_label:
        return logits.max(axis=0)
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    return np.logaddexp.reduce(log_probs, axis=0) - np.log(len(log_probs))


def top_labels_of(probs: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable ``(label, probability)`` of ``probs`` ``[classes]``, most probable first (ties: lower index)."""
    k = check_int(k, "k", minimum=1)
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


UNTRAINED_HEAD_NOTE = (
    "untrained head: this model's classification head has random weights, so its labels and scores mean "
    "nothing (train or load a head, then set model.head_trained = True)"
)


class UntrainedHeadWarning(UserWarning):
    """Labels were read from a model whose classification head was never trained."""


def _check_head(head: object, heads: int, none_means: str) -> None:
    """IndexError unless ``head`` is an attention head of ``heads`` (negative counts from the end)."""
    if not is_int(head) or not -heads <= head < heads:
        raise IndexError(f"head must be an integer in {-heads}..{heads - 1}, or {none_means}; got {head!r}")


def _suggest(name: str, labels: Sequence[str]) -> str:
    """``"; did you mean 'Dog'?"`` for the labels equal to ``name`` but for case, else the closest spellings."""
    lowered = name.casefold()
    hits = [label for label in labels if label.casefold() == lowered]
    if not hits:
        by_fold: dict[str, str] = {}
        for label in labels:
            by_fold.setdefault(label.casefold(), label)
        hits = [by_fold[k] for k in difflib.get_close_matches(lowered, list(by_fold), n=3, cutoff=0.6)]
    return f"; did you mean {' or '.join(map(repr, hits))}?" if hits else " (labels are case-sensitive; see .labels)"


class Analysis:
    """The result of ``model.analyze(audio)`` for one window, starting ``offset`` s into the recording (its clock: ``Audio.start``).

    Made by the model's analysis (``model.analyze``), rarely by hand.

    Args:
        model: the model that ran.
        spectrogram: the window's model input.
        hidden_states: the layer outputs, embeddings first: ``[layers + 1, tokens, dim]`` or one tensor per
            layer (a reduced pass gives its compact states).
        logits: the classification head's output ``[classes]``.
        attentions: attention probabilities per layer ``[heads, tokens, tokens]`` when computed in the pass
            (None: computed when first asked for).
        offset: seconds of the window's start on the recording's clock.
        kept_patches: token indices kept by token pruning (None: every patch).
        prune_layer: the first block that ran on the kept patches only (None: no pruning).
        fused_dropped: whether the dropped patches ran on as one fused token.
    """

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
        #: False when the model's classification head was never trained (random weights): its labels mean nothing
        self.head_trained: bool = bool(getattr(model, "head_trained", True))
        self.offset = float(offset)
        self.num_prefix_tokens: int = int(model.backbone.num_prefix_tokens)
        # one [tokens, dim] tensor per layer: the forward pass's own outputs, never copied into one block
        # a reduced pass (pruning, merging) keeps its compact states and gives full layouts on access
        self._hidden: Sequence[torch.Tensor] = (
            hidden_states if isinstance(hidden_states, ReducedStates)
            else [h.detach().float().cpu().reshape(h.shape[-2], h.shape[-1]) for h in hidden_states]
        )
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

    def merge_groups(self, layer: int = -1) -> np.ndarray:
        """Group ids ``[num_patches]`` after block ``layer``: patches merged into one token share an id
        (``analyze(merge_ratio=...)``; a pruned pass's fused token is one group too), ids numbered in the
        order of each group's first patch; -1 for a patch pruned without fusing. Unreduced: every patch its own."""
        idx = self._layer(layer)
        if isinstance(self._hidden, ReducedStates):
            return _readonly(self._hidden.groups(idx + 1))
        return _readonly(np.arange(self.num_patches, dtype=np.int64))

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
        """The ``k`` most probable classes as ``(label, probability)``, most probable first.

        Warns (``UntrainedHeadWarning``) when the model's head was never trained (``head_trained``): its
        scores are those of random weights, however confident they look.
        """
        top = top_labels_of(self.probabilities, self.labels, k)
        if not self.head_trained:
            warnings.warn(UNTRAINED_HEAD_NOTE, UntrainedHeadWarning, stacklevel=2)
        return top

    # -- embeddings ------------------------------------------------------------------------------

    def _layer(self, layer: int) -> int:
        n = self.num_layers
        check_int(layer, "layer", error=TypeError)
        if not -n <= layer < n:
            raise IndexError(f"layer {layer} outside {-n}..{n - 1} (the model has {n} layers)")
        return int(layer) % n

    @property
    def hidden_states(self) -> np.ndarray:
        """``[num_layers + 1, tokens, dim]``: the embeddings, then every block's output (Hugging Face order)."""
        if self._stacked is None:
            self._stacked = torch.stack(list(self._hidden))
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
        """Cosine similarity ``[num_patches]`` of every patch embedding to the mean of ``patches``'.

        Args:
            patches: the reference patches: an index, indices or a boolean mask
                (:func:`~audiovis.patches.check_patches`).
            layer: the layer whose embeddings are compared (negative counts from the end).
            norm: apply the final LayerNorm (None: on the last layer only).

        Returns:
            float32 ``[num_patches]``, 1 where a patch points the same way as the reference.
        """
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
            if isinstance(self._hidden, ReducedStates):
                probs = self._hidden.attention(idx)
            else:
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
        _check_head(head, heads, "None for every head ([heads, tokens, tokens]; .mean(axis=0) is their mean)")
        return _readonly(probs[int(head)].numpy())

    def attention_from(self, patches: Sequence[int] | np.ndarray | int, layer: int = -1, head: int | None = None) -> np.ndarray:
        """How much ``patches`` attend to each patch ``[num_patches]``: their rows averaged (over heads too when ``head`` is None).

        Args:
            patches: the attending patches: an index, indices or a boolean mask.
            layer: the layer whose attention is read (negative counts from the end).
            head: one attention head (negative counts from the end), or None for the mean over heads.

        Returns:
            float32 ``[num_patches]``: the mean attention weight from ``patches`` to each patch.
        """
        idx = check_patches(patches, self.num_patches) + self.num_prefix_tokens
        if head is not None:
            _check_head(head, self.num_heads, "None for the mean over heads")
        att = self.attention(layer, head)
        rows = att[..., idx, :]
        rows = rows.mean(axis=tuple(range(rows.ndim - 1)))
        return rows[self.num_prefix_tokens:].astype(np.float32)

    def _mean_attention(self, idx: int) -> torch.Tensor:
        """Head-mean attention ``[tokens, tokens]`` float32 of layer ``idx``: from the cache when the maps of
        every head are there, else computed one head at a time and not kept (rollout needs each layer once)."""
        if idx in self._attn:
            return self._attn[idx].mean(dim=0)
        if isinstance(self._hidden, ReducedStates):
            return self._attention_tensor(idx, cache=False).mean(dim=0)
        block = self._model.backbone.blocks[idx]
        check_attention_block(block, idx)
        with inference(self._model):
            return mean_attention(block, self._hidden[idx][None].to(self._model.device))[0].float().cpu()

    def rollout(self, *, progress: bool = True) -> np.ndarray:
        """Attention rollout (Abnar & Zuidema 2020) per patch ``[num_patches]``.

        Each layer's head-averaged attention plus the identity (the residual path), rows renormalised,
        multiplied from the first to the last layer; the prefix tokens' rows are averaged (all rows for
        a model without prefix tokens). Only those averaged rows are needed, so the product is taken from
        the last layer down as a row vector times one layer's matrix at a time (``r @ A_L @ ... @ A_1``):
        one head-mean map per layer, never the ``tokens^3`` product of full maps. Computed once, then cached.

        Args:
            progress: show a progress bar when the computation lasts over a second.
        """
        if self._rollout is None:
            tokens, prefix = self.num_tokens, self.num_prefix_tokens
            rows = torch.zeros(tokens, dtype=torch.float64)
            rows[: prefix or tokens] = 1.0 / (prefix or tokens)
            with _progress(self.num_layers, "rollout", progress) as bar:
                for idx in reversed(range(self.num_layers)):
                    mean = self._mean_attention(idx)
                    # row vector times (0.5 * mean + 0.5 * I) / rowsum, without building that matrix
                    weights = rows / (0.5 * mean.sum(dim=-1, dtype=torch.float64) + 0.5)
                    rows = 0.5 * (weights.float() @ mean).double() + 0.5 * weights
                    bar.update()
            self._rollout = _readonly(rows[prefix:].float().numpy())
        return self._rollout

    # -- gradients -------------------------------------------------------------------------------

    def class_index(self, label: int | str | None) -> int:
        """A class by index or name; None is the most probable class."""
        if label is None:
            return int(np.argmax(self.logits))
        if isinstance(label, str):
            if label not in self.labels:
                raise KeyError(f"no class named {label!r} in this model's {len(self.labels)} labels{_suggest(label, self.labels)}")
            return self.labels.index(label)
        return check_index(label, len(self.labels), "class index")

    def saliency(self, class_index: int | str | None = None, *, progress: bool = True) -> np.ndarray:
        """Gradient x input per patch ``[num_patches]`` for one class (index, name, or None = top class).

        The input is each patch's embedding (the patch projection's output, before position
        embeddings); the score is the dot product of that embedding with the class logit's gradient.
        Cached per class; :meth:`saliencies` computes several classes in one pass.
        """
        c = self.class_index(class_index)
        if c not in self._saliency:
            self._compute_saliencies([c], progress)
        return self._saliency[c]

    def saliencies(self, classes: Sequence[int | str], *, progress: bool = True) -> np.ndarray:
        """:meth:`saliency` of several classes ``[len(classes), num_patches]``, in the order given.

        The classes not cached yet share one forward pass and batched backward passes of
        :data:`SALIENCY_CLASSES_PER_PASS` classes each (a class costs about a backward pass instead of a forward
        and a backward, and memory holds one batch's gradients); every result is cached per class.

        Args:
            classes: class indices or names.
            progress: show a progress bar when the computation lasts over a second.
        """
        if isinstance(classes, (str, int, np.integer)):
            raise TypeError(f"saliencies: classes must be a list of class indices or names, got {classes!r}; "
                            "use saliency() for one class")
        wanted = [self.class_index(c) for c in classes]
        missing = [c for c in dict.fromkeys(wanted) if c not in self._saliency]
        if missing:
            self._compute_saliencies(missing, progress)
        if not wanted:
            return np.empty((0, self.num_patches), dtype=np.float32)
        return np.stack([self._saliency[c] for c in wanted])

    def _saliency_logits(self, x: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Logits ``[1, classes]`` from patch embeddings, through the same pass (full, pruned, reduced) as the analysis."""
        model = self._model
        if isinstance(self._hidden, ReducedStates):
            return reduced_logits(model, x, patches, self._hidden)
        if self.prune_layer is None:
            return model.forward_head(model.backbone.norm(model.run_blocks(model.add_positions(patches))))
        kept = torch.from_numpy(self._kept.copy())[None].to(model.device)
        return pruned_logits(model, patches, kept, self.prune_layer, fuse=self.fused_dropped)

    def _compute_saliencies(self, classes: list[int], progress: bool) -> None:
        model = self._model
        label = f"saliency ({len(classes)} class{'es' if len(classes) > 1 else ''})"
        with _progress(2, label, progress) as bar, inference(model, grad=True):
            x = self.spectrogram.values[None].to(model.device)
            patches = model.embed_patches(x).detach().requires_grad_(True)
            logits = self._saliency_logits(x, patches)[0, classes]
            bar.update()
            for start in range(0, len(classes), SALIENCY_CLASSES_PER_PASS):
                part = logits[start : start + SALIENCY_CLASSES_PER_PASS]
                more = start + len(part) < len(classes)  # the forward graph serves the next part too
                if len(part) == 1:
                    (grad,) = torch.autograd.grad(part[0], patches, retain_graph=more)
                else:  # one backward for the part's classes: a batch of one-hot output gradients
                    one_hot = torch.eye(len(part), dtype=part.dtype, device=part.device)
                    (grad,) = torch.autograd.grad(part, patches, grad_outputs=one_hot, is_grads_batched=True,
                                                  retain_graph=more)
                maps = (grad.reshape(len(part), *patches.shape[1:]) * patches.detach()[0]).sum(dim=-1)
                for c, values in zip(classes[start : start + len(part)], maps.float().cpu().numpy()):
                    self._saliency[c] = _readonly(values.copy())
            bar.update()

    # -- explanations (maths in audiovis/explain/) -----------------------------------------------

    #: Per-patch maps ``faithfulness`` and ``explanation_audio`` accept by name.
    EXPLANATION_METHODS = ("attention", "rollout", "saliency", "relevance", "integrated_gradients")

    def _explain_cache(self) -> dict:
        return self.__dict__.setdefault("_explanations", {})

    def _forward_logits(self, x: torch.Tensor, grad: bool = False) -> torch.Tensor:
        """Logits ``[B, classes]`` of model inputs ``[B, F, T]``, pruned like this analysis when it was
        (differentiable in ``x`` when ``grad``)."""
        model = self._model
        with inference(model, grad=grad):
            x = x.to(model.device)
            if isinstance(self._hidden, ReducedStates):
                return reduced_logits(model, x, model.embed_patches(x), self._hidden).float().cpu()
            if self.prune_layer is None:
                return model(x).float().cpu()
            kept = torch.from_numpy(self._kept.copy())[None].expand(x.shape[0], -1).to(model.device)
            return pruned_logits(model, model.embed_patches(x), kept, self.prune_layer, fuse=self.fused_dropped).float().cpu()

    def relevance(self, class_index: int | str | None = None) -> np.ndarray:
        """Gradient-weighted attention relevance per patch ``[num_patches]`` for one class (Chefer, Gur & Wolf,
        CVPR 2021): each block's attention times its gradient (positive part, mean of heads) propagated
        through the blocks with the residual identity; the prefix tokens' rows (see
        :mod:`audiovis.explain.relevance`). One forward and one backward pass; cached per class.
        """
        from .explain.relevance import attention_relevance

        c = self.class_index(class_index)
        cache = self._explain_cache().setdefault("relevance", {})
        if c not in cache:
            if self.prune_layer is not None or type(self._hidden).__name__ == "ReducedStates":
                raise ValueError("relevance follows the full model's attention: analyse without keep_ratio/merge_ratio")
            cache[c] = _readonly(attention_relevance(self._model, self.spectrogram.values, c))
        return cache[c]

    def integrated_gradients(self, class_index: int | str | None = None, steps: int = 32,
                             baseline: str | float | np.ndarray = "mean") -> np.ndarray:
        """Integrated gradients of one class's logit on the input spectrogram, summed over each patch's
        footprint ``[num_patches]`` (see :mod:`audiovis.explain.integrated_gradients`).

        Args:
            class_index: the class (index, name, None = top class).
            steps: points of the midpoint Riemann sum (``steps`` forward and backward passes, batched).
            baseline: "mean" (the input's mean everywhere), "zero", a number, or an array like the input.

        Returns:
            ``[num_patches]`` float32, cached per class, steps and named baseline.
        """
        from .explain import integrated_gradients as ig

        c = self.class_index(class_index)
        x = self.spectrogram.values
        ref = ig.baseline_input(x, baseline)
        key = (c, steps, baseline) if isinstance(baseline, (str, int, float)) else None
        cache = self._explain_cache().setdefault("integrated_gradients", {})
        if key is None or key not in cache:
            pixels = ig.integrated_gradients(lambda points: self._forward_logits(points, grad=True)[:, c], x, ref, steps)
            value = _readonly(ig.patch_sums(pixels, self.grid))
            if key is None:
                return value
            cache[key] = value
        return cache[key]

    def patch_map(self, method: str | np.ndarray | Sequence[float], class_index: int | str | None = None) -> np.ndarray:
        """A per-patch map ``[num_patches]`` by name (:attr:`EXPLANATION_METHODS`) or the user's own array.

        "attention" is the last layer's prefix-token attention to each patch (mean of heads), the
        explorer's CLS overlay; the class-specific maps use ``class_index`` (None = top class).
        """
        from .explain.faithfulness import check_map

        if not isinstance(method, str):
            return check_map(method, self.num_patches).astype(np.float32)
        if method not in self.EXPLANATION_METHODS:
            raise ValueError(f"unknown explanation method {method!r}; choose from {list(self.EXPLANATION_METHODS)} "
                             f"or pass an array of {self.num_patches} values")
        if method == "attention":
            prefix = self.num_prefix_tokens
            rows = self.attention(-1)[:, :prefix] if prefix else self.attention(-1)
            return rows.mean(axis=(0, 1))[prefix:].astype(np.float32)
        if method == "rollout":
            return self.rollout(progress=False)
        if method == "saliency":
            return self.saliency(class_index, progress=False)
        return getattr(self, method)(class_index)

    def faithfulness(
        self,
        method: str | np.ndarray | Sequence[float],
        *,
        class_index: int | str | None = None,
        steps: int = 20,
        baseline: str | float = "mean",
        seed: int = 0,
        num_random: int = 3,
    ) -> "Faithfulness":
        """Deletion / insertion curves and areas of a per-patch map for one class, next to random orders.

        Patches are removed (restored) highest first, ``steps`` steps from none to all; a removed patch's
        whole footprint on the model input becomes ``baseline`` ("mean" of the input, "zero", or a
        number). See :mod:`audiovis.explain.faithfulness` for how overlapping footprints are resolved.
        About ``2 * steps`` forward passes in batches; the random orders' logits (all classes) are kept for
        later calls on this analysis, whatever the map or class. The first call on an analysis also runs
        the random orders, about ``2 * steps`` passes each: ``num_random=1`` halves that call's cost (the
        demo model: about 2.8-3.2 s with 3 orders, 1.4 s with 1) for a noisier random reference.

        Args:
            method: a name of :attr:`EXPLANATION_METHODS` or an array ``[num_patches]``.
            class_index: the class followed (index, name, None = top class).
            steps: steps from no patch to all patches.
            baseline: what a removed footprint becomes.
            seed: seed of the random orders.
            num_random: random orders averaged for the random curves (at least 1).

        Returns:
            An :class:`~audiovis.explain.faithfulness.Faithfulness`.
        """
        from .explain.faithfulness import faithfulness

        c = self.class_index(class_index)
        scores = self.patch_map(method, c)
        return faithfulness(
            self._forward_logits, self.spectrogram.values, self.grid, scores, class_index=c,
            multi_label=self.multi_label, steps=steps, baseline=baseline, seed=seed, num_random=num_random,
            method=method if isinstance(method, str) else "custom", label=self.labels[c],
            random_cache=self._explain_cache().setdefault("random_curves", {}),
        )

    #: The window's own sound (set by ``model.analyze`` for audio input; None for a Spectrogram input).
    audio: "Audio | None" = None

    def patch_audio(self, patches: Sequence[int] | np.ndarray | int) -> "Audio":
        """The window's audio reduced to the time-frequency region of ``patches`` (token indices).

        The window's waveform at the model's rate goes through an STFT, a soft mask covering the
        patches' frames and their bins' Hz edges (mel bands included), and an inverse STFT: an
        :class:`~audiovis.Audio` of the window's length and the model's rate. See
        :mod:`audiovis.explain.patch_audio`.
        """
        from .explain.patch_audio import window_patch_audio

        idx = check_patches(patches, self.num_patches)
        if self.audio is None:
            raise ValueError(
                "this analysis was made from a Spectrogram (or without its audio), so it has no sound: analyse "
                "the audio itself (model.analyze(audio)) to listen to patches"
            )
        return window_patch_audio(self.audio, self.grid, self.spectrogram, idx, window_start=self.offset)

    def top_patches(self, method: str | np.ndarray | Sequence[float], top: float = 0.1, *,
                    class_index: int | str | None = None) -> np.ndarray:
        """Token indices of the highest ``top`` fraction (at least one) of a per-patch map, highest first.

        Args:
            method: a map name of :attr:`EXPLANATION_METHODS` or an array of one value per patch.
            top: the fraction of patches returned, in (0, 1].
            class_index: the class of a class-specific map (index or name; None: the top class).

        Returns:
            int64 token indices, highest value first.
        """
        from .explain.faithfulness import patch_order

        top = check_number(top, "top", low=0, high=1, low_open=True, what="a fraction in (0, 1]")
        scores = self.patch_map(method, class_index)
        count = max(1, int(round(top * self.num_patches)))
        return patch_order(scores)[:count]

    def explanation_audio(self, method: str | np.ndarray | Sequence[float], top: float = 0.1, *,
                          class_index: int | str | None = None) -> "Audio":
        """:meth:`patch_audio` of the top ``top`` fraction of a per-patch map (see :meth:`faithfulness`'s ``method``).

        Args:
            method: a map name of :attr:`EXPLANATION_METHODS` or an array of one value per patch.
            top: the fraction of patches kept, in (0, 1].
            class_index: the class of a class-specific map (index or name; None: the top class).

        Returns:
            An :class:`~audiovis.Audio` of the window's sound inside those patches.
        """
        return self.patch_audio(self.top_patches(method, top, class_index=class_index))

    def __repr__(self) -> str:
        rows, cols = self.grid.grid_shape
        top = ", ".join(f"{name} {p:.2f}" for name, p in top_labels_of(self.probabilities, self.labels, 3))
        if not self.head_trained:
            top += " (untrained head)"
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
