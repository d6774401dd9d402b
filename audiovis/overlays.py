"""Per-patch overlays (the analysis layer): one function per overlay mode, each reading an Analysis.

Every function returns an :class:`Overlay` (``values`` ``[num_patches]`` float32 in token order, or
None when the mode has nothing to show, e.g. no selection yet) and a label for the colour bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .analysis import Analysis

#: Overlay modes in menu order: key -> what the menu shows.
MODES: dict[str, str] = {
    "none": "None",
    "similarity": "Similarity to the selection",
    "attention": "Attention from the selection",
    "cls": "CLS attention",
    "rollout": "Attention rollout",
    "saliency": "Class saliency",
    "relevance": "Class relevance (attention x gradient)",
    "integrated_gradients": "Integrated gradients",
    "merged": "Merged tokens",
}


def mode_key(name: object) -> object:
    """The mode key ``name`` stands for: a key of :data:`MODES` or what the menu shows for it, in any case and
    with spaces or underscores (``"merged tokens"``, ``"Attention rollout"``, ``"integrated gradients"``);
    anything else is returned as it is, for the caller to refuse."""
    if not isinstance(name, str):
        return name
    text = " ".join(name.replace("_", " ").split()).lower()
    for key, label in MODES.items():
        if text in (key.replace("_", " "), label.lower()):
            return key
    return name


#: Modes whose map depends on the selection, the layer, the head and the class.
USES_SELECTION = frozenset({"similarity", "attention"})
USES_LAYER = frozenset({"similarity", "attention", "cls", "merged"})
USES_HEAD = frozenset({"attention", "cls"})
USES_CLASS = frozenset({"saliency", "relevance", "integrated_gradients"})


class Overlay(NamedTuple):
    values: np.ndarray | None
    label: str
    #: group id per patch for the "merged" mode (drawn as outlined regions), else None
    groups: np.ndarray | None = None


def _numpy(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(-1))


def _heads(head: int | None) -> str:
    return "mean of heads" if head is None else f"head {head}"


def similarity(analysis: "Analysis", selection: Sequence[int], layer: int) -> Overlay:
    """Cosine similarity of every patch to the mean embedding of the selection (``Analysis.similarity``)."""
    if not len(selection):
        return Overlay(None, "similarity: select patches")
    return Overlay(_numpy(analysis.similarity(list(selection), layer=layer)), f"cosine similarity, layer {layer}")


def attention_from(analysis: "Analysis", selection: Sequence[int], layer: int, head: int | None) -> Overlay:
    """How much the selected patches attend to each patch (``Analysis.attention_from``)."""
    if not len(selection):
        return Overlay(None, "attention: select patches")
    values = analysis.attention_from(list(selection), layer=layer, head=head)
    return Overlay(_numpy(values), f"attention from selection, layer {layer}, {_heads(head)}")


def cls_attention(analysis: "Analysis", layer: int, head: int | None) -> Overlay:
    """Attention of the prefix tokens to each patch (AST: cls and distillation rows averaged, like rollout)."""
    prefix = analysis.num_prefix_tokens
    if prefix == 0:
        return Overlay(None, "CLS attention: this model has no prefix token")
    attn = analysis.attention(layer, head)  # [heads, tokens, tokens] or [tokens, tokens]
    rows = attn[..., :prefix, prefix:]
    values = rows.reshape(-1, rows.shape[-1]).mean(axis=0)
    return Overlay(_numpy(values), f"CLS attention, layer {layer}, {_heads(head)}")


def rollout(analysis: "Analysis") -> Overlay:
    """Attention rollout through all layers (``Analysis.rollout``)."""
    return Overlay(_numpy(analysis.rollout()), "attention rollout")


def saliency(analysis: "Analysis", class_index: int) -> Overlay:
    """Gradient x input for one class (``Analysis.saliency``)."""
    name = analysis.labels[class_index] if 0 <= class_index < len(analysis.labels) else str(class_index)
    return Overlay(_numpy(analysis.saliency(class_index)), f"saliency: {name}")


def relevance(analysis: "Analysis", class_index: int) -> Overlay:
    """Gradient-weighted attention relevance for one class (``Analysis.relevance``)."""
    return Overlay(_numpy(analysis.relevance(class_index)), f"relevance: {_class_name(analysis, class_index)}")


def integrated_gradients(analysis: "Analysis", class_index: int) -> Overlay:
    """Integrated gradients on the input, summed per patch, for one class (``Analysis.integrated_gradients``)."""
    return Overlay(_numpy(analysis.integrated_gradients(class_index)),
                   f"integrated gradients: {_class_name(analysis, class_index)}")


def merged_tokens(analysis: "Analysis", layer: int) -> Overlay:
    """The token groups after block ``layer`` (``Analysis.merge_groups``): patches merged into one token
    share a group; every group is drawn as one outlined region in its own colour."""
    groups = np.asarray(analysis.merge_groups(layer), dtype=np.int64)
    count = len(np.unique(groups[groups >= 0]))
    if count == analysis.num_patches:
        return Overlay(None, f"merged tokens: none at layer {layer} (analyze with merge_ratio=... to merge)", groups)
    return Overlay(None, f"merged tokens, layer {layer}: {count} tokens for {analysis.num_patches} patches", groups)


def _class_name(analysis: "Analysis", class_index: int) -> str:
    return analysis.labels[class_index] if 0 <= class_index < len(analysis.labels) else str(class_index)


def compute(
    analysis: "Analysis",
    mode: str,
    *,
    selection: Sequence[int] = (),
    layer: int = -1,
    head: int | None = None,
    class_index: int = 0,
) -> Overlay:
    """The overlay of ``mode`` (a key of :data:`MODES`) for these settings."""
    if mode == "none":
        return Overlay(None, "")
    if mode == "similarity":
        return similarity(analysis, selection, layer)
    if mode == "attention":
        return attention_from(analysis, selection, layer, head)
    if mode == "cls":
        return cls_attention(analysis, layer, head)
    if mode == "rollout":
        return rollout(analysis)
    if mode == "saliency":
        return saliency(analysis, class_index)
    if mode == "relevance":
        return relevance(analysis, class_index)
    if mode == "integrated_gradients":
        return integrated_gradients(analysis, class_index)
    if mode == "merged":
        return merged_tokens(analysis, layer)
    raise ValueError(f"overlay mode must be one of {list(MODES)}, got {mode!r}")
