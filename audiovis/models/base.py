"""What ASTModel and ViTModel share: input checks, the transformer-blocks loop, attention maps, ``analyze``.

A model here is a timm ``VisionTransformer`` (its ``backbone``) plus a front end and a PatchGrid. The
forward pass is split so each stage is reachable on its own:

``embed_patches(x)`` -> ``add_positions(patches)`` -> ``run_blocks(tokens)`` -> ``backbone.norm`` -> ``forward_head``

``run_blocks`` takes any token sequence (e.g. a subset of the patches, each carrying its own position
embedding) and can record every block's output and, on request, its attention probabilities.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Iterator, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..audio import Audio, _is_number, load_audio
from ..errors import AudioLoadError, ConfigError
from ..patches import PatchGrid, check_patches  # noqa: F401  (check_patches: the one patch-index check, re-exported)
from ..spectrogram import KaldiFbank, Spectrogram
from .windows import window_starts

AudioInput = Union[Audio, Spectrogram, str, os.PathLike, np.ndarray, torch.Tensor]

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

    from ..analysis import Analysis, WindowedAnalyses
    from .reduction import Reduction


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
    """Eval mode (and no autograd unless ``grad``) for the duration; the train/eval mode is restored."""
    was_training = module.training
    module.eval()
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        module.train(was_training)


def fit_frames(spec: Spectrogram, frames: int, fill: float | None = None) -> Spectrogram:
    """``spec`` cut or padded at the end to ``frames`` frames.

    Padding is ``fill`` when given, else 0, or the minimum for dB images.
    """
    have = spec.num_frames
    if have == frames:
        return spec
    hop = spec.hop_seconds
    times = spec.times[0] + np.arange(frames) * hop if have else np.arange(frames) * hop
    if have > frames:
        values = spec.values[:, :frames]
    else:
        if fill is None:
            fill = float(spec.values.min()) if spec.units == "dB" and have else 0.0
        pad = spec.values.new_full((spec.num_bins, frames - have), fill)
        values = torch.cat([spec.values, pad], dim=1)
    return replace(spec, values=values.contiguous(), times=times, valid_frames=min(spec.valid_frames, frames))


def check_hop(hop: float | None) -> float | None:
    """``hop`` (seconds between window starts) as a float, or None for the default (one window)."""
    if hop is None:
        return None
    if not _is_number(hop) or not math.isfinite(hop) or hop <= 0:
        raise ValueError(f"hop must be a positive number of seconds, got {hop!r}")
    return float(hop)


class SpectrogramModelMixin:
    """Analysis surface shared by ASTModel and ViTModel (mixed into an ``nn.Module``).

    Subclasses provide ``backbone`` (a timm VisionTransformer), ``frontend``, ``labels``,
    ``multi_label``, ``forward_head`` and ``pool_tokens``.
    """

    frontend: nn.Module
    labels: list[str]
    multi_label: bool
    #: whether ``forward_head`` reads the patch tokens (average pooling) or only the prefix tokens
    head_reads_patches: bool = False
    #: whether the classification head holds trained weights: False for a head built at random (a model
    #: made from a config, ``from_imagenet``, a ViT whose checkpoint has no head of this size); loaders
    #: that load a head set it True; set it yourself after training one. Where labels are shown
    #: (``Analysis.top_labels``, the Explorer) an untrained head is said to be one.
    head_trained: bool = False

    # -- geometry -------------------------------------------------------------------------------

    @property
    def backbone(self) -> "VisionTransformer":
        raise NotImplementedError

    @property
    def grid(self) -> PatchGrid:
        """The model's patches on its input ``(freq bins, frames)``, read from the patch embedding."""
        pe = self.backbone.patch_embed
        stride = tuple(getattr(pe, "stride", pe.patch_size))
        return PatchGrid(tuple(pe.img_size), tuple(pe.patch_size), stride)

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(freq bins, frames)`` of one model input."""
        return tuple(self.backbone.patch_embed.img_size)  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.backbone.patch_embed.proj.weight.device

    @property
    def num_layers(self) -> int:
        return len(self.backbone.blocks)

    @property
    def num_heads(self) -> int:
        return int(self.backbone.blocks[0].attn.num_heads)

    @property
    def window_seconds(self) -> float:
        """Seconds of audio between the starts of two adjacent model windows with no overlap."""
        fe = self.frontend
        return self.input_shape[1] * fe.hop_length / fe.sample_rate

    # -- forward stages -------------------------------------------------------------------------

    def as_image(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, F, T]`` or ``[B, 1, F, T]`` -> ``[B, 1, F, T]``, checked against the input shape."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"model input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) != self.input_shape:
            f, t = self.input_shape
            raise ValueError(f"model input must be [batch, {f}, {t}] (freq bins, frames), got {tuple(x.shape)}")
        return x

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embeddings ``[B, N, D]`` in token order, before prefix tokens and positions."""
        return self.backbone.patch_embed(self.as_image(x))

    def add_positions(self, patches: torch.Tensor) -> torch.Tensor:
        """Prefix tokens + position embeddings: the blocks' input ``[B, P + N, D]``."""
        vit = self.backbone
        return vit.norm_pre(vit.patch_drop(vit._pos_embed(patches)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Spectrogram batch -> the first block's input tokens ``[B, P + N, D]``."""
        return self.add_positions(self.embed_patches(x))

    def run_blocks(
        self,
        tokens: torch.Tensor,
        *,
        start: int = 0,
        stop: int | None = None,
        hidden_states: list[torch.Tensor] | None = None,
        attentions: list[torch.Tensor] | None = None,
        key_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run blocks ``start:stop`` on ``tokens`` ``[B, T, D]`` (any T: prefix + any patch subset).

        Each block's output is appended to ``hidden_states`` when given. With ``attentions`` the blocks
        use explicit softmax attention and append its probabilities ``[B, heads, T, T]``; otherwise
        timm's fused attention runs. ``key_bias`` ``[B, T]`` is added to the attention logits of every
        key (token pruning gives a token standing for ``m`` patches ``log m``).
        """
        blocks = self.backbone.blocks
        mask = None if key_bias is None else key_bias.to(tokens.dtype)[:, None, None, :]
        for index in range(len(blocks))[start:stop]:
            block = blocks[index]
            if attentions is not None:
                check_attention_block(block, index)
                tokens, probs = block_with_attention(block, tokens, None if key_bias is None else key_bias.to(tokens.dtype))
                attentions.append(probs)
            elif mask is not None:
                tokens = block(tokens, attn_mask=mask)
            else:
                tokens = block(tokens)
            if hidden_states is not None:
                hidden_states.append(tokens)
        return tokens

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Spectrogram batch -> all tokens ``[B, P + N, D]`` after the final norm."""
        return self.backbone.norm(self.run_blocks(self.embed(x)))

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- analysis -------------------------------------------------------------------------------

    def spectrogram(self, audio: AudioInput, *, sample_rate: int | None = None) -> Spectrogram:
        """The model-input Spectrogram of ``audio``'s first window: the front end's, cut or padded to the input frames."""
        return self.fit_window(self._spectrogram(self._load(audio, sample_rate)))

    def fit_window(self, spec: Spectrogram) -> Spectrogram:
        """``spec`` cut or padded at the end to one model input (``input_shape[1]`` frames).

        Padding is what the front end pads with: a KaldiFbank pads its raw features with zeros before
        normalising (value ``(0 - mean) / (2 std)``); other front ends get 0, or the minimum for dB images.
        """
        return fit_frames(spec, self.input_shape[1], fill=self._pad_value())

    def window_spectrogram(self, spec: Spectrogram, start: int) -> Spectrogram:
        """Frames ``[start, start + input_shape[1])`` of a long ``spec``: one model input, its times kept.

        A last, short window is padded by :meth:`fit_window`. For a KaldiFbank model and ``spec`` made by
        its front end without ``target_frames``, this equals the front end's output on that window's audio
        (Kaldi frames are local), padding included.
        """
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < max(1, spec.num_frames):
            raise ValueError(f"window start must be a frame in 0..{spec.num_frames - 1}, got {start!r}")
        stop = min(spec.num_frames, int(start) + self.input_shape[1])
        cut = replace(spec, values=spec.values[:, start:stop].contiguous(), times=spec.times[start:stop],
                      valid_frames=max(0, min(spec.valid_frames, stop) - int(start)))
        return self.fit_window(cut)

    def analyze(
        self,
        audio: AudioInput | Sequence[AudioInput],
        *,
        hop: float | None = None,
        attention: bool = False,
        sample_rate: int | None = None,
        keep_ratio: float = 1.0,
        keep_by: str = "energy",
        prune_layer: int | None = None,
        fuse_dropped: bool = True,
        merge_ratio: float = 0.0,
    ) -> "Analysis | WindowedAnalyses | list[Analysis | WindowedAnalyses]":
        """Run the model on ``audio`` and keep what is needed to explain the result.

        ``audio`` is an Audio, a path, an array (with ``sample_rate``) or a ready Spectrogram. Audio that
        fits one model window (at most ``window_seconds`` plus the last frame's overhang; a Spectrogram of
        at most ``input_shape[1]`` valid frames) gives one :class:`~audiovis.Analysis`. Longer input gives a
        list of them (:class:`~audiovis.analysis.WindowedAnalyses`), one per window, windows starting every
        ``hop`` seconds (default: :attr:`window_seconds`, no overlap) while they fit, then one ending at the
        end of the input (:meth:`window_starts`); see :meth:`analyze_windows`, which always returns the list.
        A list of clips gives a list with one result per clip. ``attention=True`` computes all attention
        maps during the pass (explicit softmax); otherwise they are computed from the cached hidden
        states when first asked for. ``keep_ratio < 1`` prunes tokens (``keep_by="energy"|"attention"``,
        from block ``prune_layer``; ``fuse_dropped``: the dropped patches run on as one fused token; see
        :mod:`audiovis.models.pruning`); ``merge_ratio > 0`` merges that share of the patch tokens away
        (:mod:`audiovis.models.merging`). Both keep the pass's compact states and rebuild full layouts and
        attention only when asked (:mod:`audiovis.models.reduction`); ``keep_ratio=1.0`` and
        ``merge_ratio=0`` are exactly the plain analysis.

        ``audio`` may also be a list (or tuple) of clips, each any of the above: the result is a plain list
        with one entry per clip (an Analysis, or a WindowedAnalyses for a long clip), analysed one after
        another with the same options; e.g. ``model.analyze(list(batch), sample_rate=16000)`` for the rows
        of a ``[clips, samples]`` tensor (given whole, its rows would be mixed as channels of one clip).
        """
        hop = check_hop(hop)
        reduction = self._reduction(keep_ratio, keep_by, prune_layer, fuse_dropped, merge_ratio)
        options = dict(attention=attention, reduction=reduction)
        if isinstance(audio, (list, tuple)):
            clips = self._check_clips(audio)
            return [self.analyze(clip, hop=hop, sample_rate=sample_rate, attention=attention, keep_ratio=keep_ratio,
                                 keep_by=keep_by, prune_layer=prune_layer, fuse_dropped=fuse_dropped,
                                 merge_ratio=merge_ratio) for clip in clips]
        source = self._load(audio, sample_rate)
        starts = self.window_starts(source, hop)
        if len(starts) == 1:
            return self._analyze_window(source, starts[0], **options)
        from ..analysis import WindowedAnalyses

        self._warn_if_heavy(len(starts))
        return WindowedAnalyses(self._analyze_window(source, start, **options) for start in starts)

    @staticmethod
    def _check_clips(clips: Sequence) -> list:
        """The clips of a list given to ``analyze``: at least one, and none a bare number."""
        if len(clips) == 0:
            raise ValueError("analyze got an empty list of clips; pass at least one")
        if any(_is_number(c) or isinstance(c, bool) for c in clips):
            raise AudioLoadError(
                "analyze takes a list of clips (each a path, Audio, array or Spectrogram), got a list of numbers; "
                "for the samples of one clip pass np.asarray(samples) with sample_rate=..."
            )
        return list(clips)

    #: Windowed analyses whose hidden states would take more than this many bytes get a warning.
    HEAVY_ANALYSES_BYTES = 2 * 2**30

    def _warn_if_heavy(self, windows: int) -> None:
        """Warn before keeping every window's hidden states when that would take a lot of memory."""
        vit = self.backbone
        tokens = self.grid.num_patches + int(vit.num_prefix_tokens)
        need = windows * (self.num_layers + 1) * tokens * int(vit.embed_dim) * 4
        if need > self.HEAVY_ANALYSES_BYTES:
            import warnings

            warnings.warn(
                f"analysing {windows} windows keeps every window's hidden states, about {need / 2**30:.1f} GiB; "
                "for labels over a long recording use LongViewer(audio, model) or "
                "audiovis.widgets.longview.window_labels, or pick windows with analyze_windows(..., windows=[...])",
                UserWarning,
                stacklevel=3,
            )

    def analyze_windows(
        self,
        audio: AudioInput,
        *,
        hop: float | None = None,
        windows: Sequence[int] | None = None,
        attention: bool = False,
        sample_rate: int | None = None,
        keep_ratio: float = 1.0,
        keep_by: str = "energy",
        prune_layer: int | None = None,
        fuse_dropped: bool = True,
        merge_ratio: float = 0.0,
    ) -> "WindowedAnalyses":
        """One Analysis per model window over the whole clip, windows starting every ``hop`` seconds: always a list.

        ``hop`` defaults to :attr:`window_seconds` (windows tile the clip without overlap) while they fit;
        the last window ends at the end of the clip, overlapping the one before (:meth:`window_starts`:
        no window is mostly padding); only a clip shorter than one window is padded. ``windows`` picks some
        of them by index (default: all). Each Analysis has ``offset`` (its start, s) and a spectrogram whose
        times are absolute: the recording's clock, from the clip's ``Audio.start`` (0 for a whole file; 60
        for ``load_audio(path, offset=60)`` or ``audio.segment(60, 64)``).

        A Spectrogram is windowed the same way over its ``valid_frames``: windows of ``input_shape[1]``
        frames every ``hop`` seconds rounded to whole frames (:meth:`window_spectrogram`); the times stay the spectrogram's and
        ``offset`` is read from them (:meth:`_audio_time`: ``start * hop`` for a whole clip's spectrogram). For KaldiFbank models, a spectrogram made by the front end without
        ``target_frames`` gives the windows of its audio; for dB front ends the floor is the whole
        spectrogram's rather than each window's. The pruning arguments are :meth:`analyze`'s, applied to
        every window.
        """
        hop = check_hop(hop)
        reduction = self._reduction(keep_ratio, keep_by, prune_layer, fuse_dropped, merge_ratio)
        source = self._load(audio, sample_rate)
        starts = self.window_starts(source, hop)
        if windows is not None:
            picked = []
            for index in windows:
                if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(starts):
                    raise IndexError(f"window {index!r} outside 0..{len(starts) - 1}")
                picked.append(starts[int(index)])
            starts = picked
        self._warn_if_heavy(len(starts))
        from ..analysis import WindowedAnalyses

        options = dict(attention=attention, reduction=reduction)
        return WindowedAnalyses(self._analyze_window(source, start, **options) for start in starts)

    def _reduction(self, keep_ratio: float, keep_by: str, prune_layer: int | None, fuse_dropped: bool,
                   merge_ratio: float) -> "Reduction | None":
        """The checked :class:`~audiovis.models.reduction.Reduction` of ``analyze``'s keywords; None for the plain pass."""
        from .reduction import Reduction

        reduction = Reduction.from_options(keep_ratio=keep_ratio, keep_by=keep_by, prune_layer=prune_layer,
                                           fuse_dropped=fuse_dropped, merge_ratio=merge_ratio)
        reduction = reduction.resolve(self)
        return None if reduction.is_identity(self.grid.num_patches) else reduction

    def window_starts(self, source: Audio | Spectrogram, hop: float | None = None) -> list:
        """Where the model windows over ``source`` start: seconds for an Audio, frames for a Spectrogram.

        The rule is :func:`audiovis.models.windows.window_starts`: input that fits one window has one
        start; longer input gets a window every ``hop`` (default :attr:`window_seconds`) while one fits,
        then one that ends at the end of the input (its start on the front end's frame grid), so no
        window is mostly padding. A Spectrogram counts its ``valid_frames`` (the padding a front end
        added to reach ``target_frames`` is not input), ``hop`` rounded to whole frames.
        """
        hop = check_hop(hop)
        if isinstance(source, Spectrogram):
            frames = self.input_shape[1]
            self._spectrogram(source)  # checks the frequency bins and the front end
            step = frames if hop is None else int(round(hop / source.hop_seconds))
            if step < 1:
                raise ValueError(f"hop must be at least one frame ({source.hop_seconds} s) for a Spectrogram, got {hop!r}")
            return window_starts(max(1, min(source.valid_frames, source.num_frames)), frames, step, grid=1)
        fe = self.frontend
        step = self.window_seconds if hop is None else hop
        return window_starts(source.duration, self._span_seconds, step, grid=fe.hop_length / fe.sample_rate)

    def windows(
        self, audio: AudioInput, *, hop: float | None = None, sample_rate: int | None = None
    ) -> list[tuple[float, Spectrogram]]:
        """``(offset in s, model input)`` of every window :meth:`analyze_windows` would run, without running the model.

        For batch pipelines (the embedding store) that run many clips' windows through the model together:
        the windows, their inputs and offsets are exactly :meth:`analyze`'s (the one window rule).
        """
        hop = check_hop(hop)
        source = self._load(audio, sample_rate)
        return [self._window_input(source, start) for start in self.window_starts(source, hop)]

    def _window_input(self, source: Audio | Spectrogram, start: float | int) -> tuple[float, Spectrogram]:
        """``(offset, model input)`` of the window of ``source`` at ``start`` (s for Audio, frames for a Spectrogram)."""
        if isinstance(source, Spectrogram):
            return self._audio_time(source, int(start)), self.window_spectrogram(self._spectrogram(source), int(start))
        segment = self._window_audio(source, start)
        # the segment knows where it lies in the recording (Audio.start): its frames' times and the offset use that clock
        return segment.start, self.fit_window(self._spectrogram(segment))

    def _audio_time(self, spec: Spectrogram, frame: int) -> float:
        """Where the audio of frame ``frame`` of ``spec`` starts in the recording (s), rounded to a sample.

        The frame's centre less where the model's front end centres frame 0 of audio starting at 0 (a
        Kaldi frame: half its window later; centred STFT/mel frames: at 0). For a spectrogram of a whole
        clip starting at 0 this is ``frame * hop``; for a window cut from a recording, its time there.
        """
        fe = self.frontend
        lead = fe.win_length / 2 / fe.sample_rate if isinstance(fe, KaldiFbank) else 0.0
        seconds = float(spec.frame_to_time(frame + 0.5)) - lead
        return round(seconds * spec.sample_rate) / spec.sample_rate

    def _analyze_window(self, source: Audio | Spectrogram, start: float | int, **options) -> "Analysis":
        """The Analysis of the window of ``source`` starting at ``start`` (s for Audio, frames for a Spectrogram)."""
        offset, spec = self._window_input(source, start)
        result = self._analyze_input(spec, offset=offset, **options)
        if isinstance(source, Audio):
            result.audio = self._window_audio(source, start)  # what Analysis.patch_audio masks
        return result

    def _window_audio(self, source: Audio, start: float) -> Audio:
        """The samples the window at ``start`` (s) reads from ``source``."""
        if start == 0 and source.duration <= self._span_seconds:
            return source
        return source.segment(start, start + self._span_seconds)

    def _analyze_input(self, spec: Spectrogram, *, offset: float, attention: bool, reduction: "Reduction | None") -> "Analysis":
        return self._analyze_spectrogram(spec, attention=attention, offset=offset, reduction=reduction)

    def _pad_value(self) -> float | None:
        """What the front end pads a short input with, when it says (KaldiFbank), else None."""
        fe = self.frontend
        if isinstance(fe, KaldiFbank):
            if not fe.normalize:
                return 0.0
            return float((torch.zeros((), dtype=torch.float32) - fe.mean) / (fe.std * 2))
        return None

    @property
    def _span_seconds(self) -> float:
        """Seconds of audio one window reads: its frames' hops plus the last frame's overhang."""
        fe = self.frontend
        overhang = max(0, getattr(fe, "win_length", fe.hop_length) - fe.hop_length)
        return self.window_seconds + overhang / fe.sample_rate

    def _check_frontend(self, spec: Spectrogram) -> None:
        """ValueError unless ``spec``'s values were made as this model's input is (front end, units, normalisation).

        A Spectrogram made by a front end carries its ``signature``, compared whole; a hand-made one (no
        signature) must at least have the model's units, frequency scale and frame hop. Another front end's
        values (dB where the model saw normalised filterbanks, or another normalisation) give confident
        nonsense, so they are refused rather than run.
        """
        mine = getattr(self.frontend, "signature", None)
        if mine is None or spec.frontend == mine:
            return
        ref = self._frontend_reference()
        if spec.frontend is not None:
            problem = f"was made by {spec.frontend} ({spec.units})"
        else:
            diffs = [f"{name} {theirs!r} (the model's: {ours!r})" for name, theirs, ours in (
                ("units", spec.units, ref.units), ("scale", spec.scale, ref.scale),
                ("hop", f"{spec.hop_seconds * 1000:g} ms", f"{ref.hop_seconds * 1000:g} ms"),
            ) if theirs != ours]
            if not diffs:
                return
            problem = "has " + ", ".join(diffs)
        raise ValueError(
            f"this Spectrogram {problem}, but the model's input comes from {mine} ({ref.units}); values made "
            "another way would mean something else to the model. Pass the audio itself (the model computes its "
            "own spectrogram) or model.frontend(audio)."
        )

    def _frontend_reference(self) -> Spectrogram:
        """The model's front end on a few silent samples: its units, scale and hop (cached per front end)."""
        fe = self.frontend
        cached = self.__dict__.get("_frontend_probe")
        if cached is None or cached[0] is not fe:
            length = max(getattr(fe, "win_length", 0), getattr(fe, "n_fft", 0), fe.hop_length) * 2
            silence = Audio(torch.zeros(1, length), int(getattr(fe, "sample_rate", 16000)))
            with torch.no_grad():
                cached = (fe, fe(silence))
            self.__dict__["_frontend_probe"] = cached
        return cached[1]

    @staticmethod
    def _load(audio: AudioInput, sample_rate: int | None) -> Audio | Spectrogram:
        if isinstance(audio, (Audio, Spectrogram)):
            return audio
        if isinstance(audio, (str, os.PathLike)):
            return load_audio(audio, sample_rate=sample_rate)
        return load_audio(audio, sample_rate)

    def _spectrogram(self, source: Audio | Spectrogram) -> Spectrogram:
        if isinstance(source, Spectrogram):
            self._check_frontend(source)
        spec = source if isinstance(source, Spectrogram) else self.frontend(source)
        if spec.num_bins != self.input_shape[0]:
            raise ValueError(
                f"the spectrogram has {spec.num_bins} frequency bins but the model takes {self.input_shape[0]}"
            )
        return spec

    def _analyze_spectrogram(self, spec: Spectrogram, *, attention: bool, offset: float,
                             reduction: "Reduction | None" = None) -> "Analysis":
        from ..analysis import Analysis

        x = spec.values.to(self.device)
        if reduction is not None:  # compact states only; full layouts and attention when asked (models/reduction.py)
            from .reduction import reduced_pass

            with inference(self):
                done = reduced_pass(self, x[None], reduction)
            states = done.states
            return Analysis(
                model=self,
                spectrogram=spec,
                hidden_states=states,
                logits=done.logits,
                attentions=[states.attention(i) for i in range(self.num_layers)] if attention else None,
                offset=offset,
                kept_patches=done.kept,
                prune_layer=done.prune_layer,
                fused_dropped=done.fused,
            )
        hidden: list[torch.Tensor] = []
        attns: list[torch.Tensor] | None = [] if attention else None
        with inference(self):
            tokens = self.embed(x[None])
            hidden.append(tokens)
            tokens = self.run_blocks(tokens, hidden_states=hidden, attentions=attns)
            logits = self.forward_head(self.backbone.norm(tokens))
        return Analysis(
            model=self,
            spectrogram=spec,
            hidden_states=[h[0] for h in hidden],
            logits=logits[0],
            attentions=None if attns is None else [a[0] for a in attns],
            offset=offset,
        )
