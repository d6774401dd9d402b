"""Running a model on audio: what ``model.analyze`` and ``model.analyze_windows`` do, and batched window labels.

The analysis layer: it loads the input, cuts it into model windows (:mod:`audiovis.windows`, the one
window rule), runs each window through the model's forward stages (plain, or a reduced pass of
:mod:`audiovis.models.reduction`) and wraps what it recorded in an :class:`~audiovis.analysis.Analysis`.
Models never import this module: their ``analyze`` methods reach it through
:mod:`audiovis.models.delegate`, which the package root wires (see ``audiovis/__init__.py``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import torch

from .analysis import Analysis, WindowedAnalyses, probabilities_of, top_labels_of
from .audio import Audio
from .checks import check_index, check_int, is_number
from .errors import AudioLoadError, ConfigError
from .models.blocks import inference
from .models.reduction import Reduction, reduced_pass, resolve_options
from .spectrogram import Spectrogram, load_source
from .windows import check_hop, model_window_starts, model_windows, window_audio, window_input  # noqa: F401 (model_windows: model.windows)

if TYPE_CHECKING:
    from .models.base import SpectrogramModelMixin


def analyze(
    model: "SpectrogramModelMixin",
    audio: Any,
    *,
    hop: float | None = None,
    attention: bool = False,
    sample_rate: int | None = None,
    **reduction: Any,
) -> "Analysis | WindowedAnalyses | list[Analysis | WindowedAnalyses]":
    """``model.analyze(audio, ...)``: see :meth:`~audiovis.models.base.SpectrogramModelMixin.analyze` for every
    argument; ``reduction`` holds its reduced-compute keywords (``keep_ratio``, ``merge_ratio``, ...), which
    :func:`~audiovis.models.reduction.resolve_options` checks and turns into one description of the pass."""
    hop = check_hop(hop)
    options = dict(attention=attention, reduction=resolve_options(model, **reduction))
    if isinstance(audio, (list, tuple)):
        clips = check_clips(audio)
        warn_if_heavy(model, len(clips), attention=attention, unit="clip")
        return [analyze(model, clip, hop=hop, sample_rate=sample_rate, attention=attention, **reduction)
                for clip in clips]
    source = load_source(audio, sample_rate)
    starts = model_window_starts(model, source, hop)
    if len(starts) == 1:
        return analyze_window(model, source, starts[0], **options)
    warn_if_heavy(model, len(starts), attention=attention)
    return WindowedAnalyses(analyze_window(model, source, start, **options) for start in starts)


def analyze_windows(
    model: "SpectrogramModelMixin",
    audio: Any,
    *,
    hop: float | None = None,
    windows: Sequence[int] | None = None,
    attention: bool = False,
    sample_rate: int | None = None,
    **reduction: Any,
) -> WindowedAnalyses:
    """``model.analyze_windows(audio, ...)``: see :meth:`~audiovis.models.base.SpectrogramModelMixin.analyze_windows`
    (``reduction`` as in :func:`analyze`)."""
    hop = check_hop(hop)
    options = dict(attention=attention, reduction=resolve_options(model, **reduction))
    source = load_source(audio, sample_rate)
    starts = model_window_starts(model, source, hop)
    if windows is not None:
        starts = [starts[check_index(index, len(starts), "window")] for index in windows]
    warn_if_heavy(model, len(starts), attention=attention)
    return WindowedAnalyses(analyze_window(model, source, start, **options) for start in starts)


def check_clips(clips: Sequence) -> list:
    """The clips of a list given to ``analyze``: at least one, and none a bare number."""
    if len(clips) == 0:
        raise ValueError("analyze got an empty list of clips; pass at least one")
    if any(is_number(c) or isinstance(c, bool) for c in clips):
        raise AudioLoadError(
            "analyze takes a list of clips (each a path, Audio, array or Spectrogram), got a list of numbers; "
            "for the samples of one clip pass np.asarray(samples) with sample_rate=..."
        )
    return list(clips)


def warn_if_heavy(model: "SpectrogramModelMixin", count: int, *, attention: bool = False, unit: str = "window") -> None:
    """Warn before keeping ``count`` analyses' hidden states (and, with ``attention``, every attention map)
    when that would take more than the model's ``HEAVY_ANALYSES_BYTES``.

    Args:
        model: the model the analyses run on (its blocks, heads, tokens and width set the bytes).
        count: how many windows (or clips, at least one window each) are analysed and kept.
        attention: every block's attention maps are kept too (``attention=True``).
        unit: what ``count`` counts, for the message: ``"window"`` or ``"clip"``.
    """
    vit = model.backbone
    tokens = model.grid.num_patches + int(vit.num_prefix_tokens)
    per_window = (model.num_layers + 1) * tokens * int(vit.embed_dim) * 4
    if attention:
        per_window += model.num_layers * model.num_heads * tokens * tokens * 4
    need = count * per_window
    if need > model.HEAVY_ANALYSES_BYTES:
        kept = "hidden states and attention maps" if attention else "hidden states"
        advice = ("for clip vectors of many clips use av.extract_embeddings(clips, model) or av.embed_dataset"
                  if unit == "clip" else
                  "for labels over a long recording use LongViewer(audio, model) or audiovis.runner.window_labels, "
                  "or pick windows with analyze_windows(..., windows=[...])")
        if attention:
            advice += "; without attention=True each Analysis computes a layer's attention when it is asked for"
        warnings.warn(
            f"analysing {count} {unit}s keeps every {unit}'s {kept}, about {need / 2**30:.1f} GiB; {advice}",
            UserWarning,
            stacklevel=4,  # the caller of model.analyze / model.analyze_windows
        )


def analyze_window(model: "SpectrogramModelMixin", source: Audio | Spectrogram, start: float | int, *,
                   attention: bool, reduction: Reduction | None) -> Analysis:
    """The Analysis of the window of ``source`` starting at ``start`` (s for Audio, frames for a Spectrogram)."""
    offset, spec = window_input(model, source, start)
    result = analyze_spectrogram(model, spec, attention=attention, offset=offset, reduction=reduction)
    if isinstance(source, Audio):
        result.audio = window_audio(model, source, start)  # what Analysis.patch_audio masks
    return result


def analyze_spectrogram(model: "SpectrogramModelMixin", spec: Spectrogram, *, attention: bool, offset: float,
                        reduction: Reduction | None = None) -> Analysis:
    """One pass of ``model`` on one model input ``spec`` (plain, or under ``reduction``), as an Analysis."""
    x = spec.values.to(model.device)
    if reduction is not None:  # compact states only; full layouts and attention when asked (models/reduction.py)
        with inference(model):
            done = reduced_pass(model, x[None], reduction)
        states = done.states
        return Analysis(
            model=model,
            spectrogram=spec,
            hidden_states=states,
            logits=done.logits,
            attentions=[states.attention(i) for i in range(model.num_layers)] if attention else None,
            offset=offset,
            kept_patches=done.kept,
            prune_layer=done.prune_layer,
            fused_dropped=done.fused,
        )
    hidden: list[torch.Tensor] = []
    attns: list[torch.Tensor] | None = [] if attention else None
    with inference(model):
        tokens = model.embed(x[None])
        hidden.append(tokens)
        tokens = model.run_blocks(tokens, hidden_states=hidden, attentions=attns)
        logits = model.forward_head(model.backbone.norm(tokens))
    return Analysis(
        model=model,
        spectrogram=spec,
        hidden_states=[h[0] for h in hidden],
        logits=logits[0],
        attentions=None if attns is None else [a[0] for a in attns],
        offset=offset,
    )


def window_labels(
    model: Any,
    spec: Spectrogram,
    starts: Sequence[int],
    *,
    top_k: int = 3,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` labels of the model window starting at each frame of ``starts`` in ``spec``.

    Windows are cut with ``model.window_spectrogram`` and run ``batch_size`` at a time through
    ``forward_features`` + ``forward_head`` under ``torch.inference_mode``: logits only, no hidden states.
    The labels are those of ``model.analyze(model.window_spectrogram(spec, start)).top_labels(top_k)``
    (probabilities equal up to float rounding of the batched pass).

    Args:
        model: an audiovis model.
        spec: a long spectrogram made by the model's front end (without ``target_frames``).
        starts: window starts in frames (:func:`audiovis.windows.model_window_starts`).
        top_k: labels kept per window.
        batch_size: windows per forward pass.
        progress: ``progress(done, total)`` is called after each batch.

    Returns:
        One list of ``(label, probability)`` per window, most probable first.
    """
    labels: list[list[tuple[str, float]]] = []
    for batch in iter_window_labels(model, spec, starts, top_k=top_k, batch_size=batch_size):
        labels.extend(batch)
        if progress is not None:
            progress(len(labels), len(starts))
    return labels


def iter_window_labels(
    model: Any, spec: Spectrogram, starts: Sequence[int], *, top_k: int = 3, batch_size: int = 16,
) -> Iterator[list[list[tuple[str, float]]]]:
    """:func:`window_labels` a batch at a time: an iterator over the labels of ``starts[i : i + batch_size]``,
    in order. The arguments are checked at the call, before any batch runs."""
    batch_size = check_int(batch_size, "batch_size", minimum=1, error=ConfigError)
    top_k = check_int(top_k, "top_k", minimum=1)

    def batches() -> Iterator[list[list[tuple[str, float]]]]:
        for first in range(0, len(starts), int(batch_size)):
            batch = starts[first : first + int(batch_size)]
            with inference(model), torch.inference_mode():
                x = torch.stack([model.window_spectrogram(spec, int(s)).values for s in batch]).to(model.device)
                probs = probabilities_of(model.forward_head(model.forward_features(x)), model.multi_label).numpy()
            yield [top_labels_of(p, model.labels, top_k) for p in probs]

    return batches()
