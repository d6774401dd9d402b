"""What ASTModel and ViTModel share: input checks, the transformer-blocks loop, window inputs, ``analyze``.

A model here is a timm ``VisionTransformer`` (its ``backbone``) plus a front end and a PatchGrid. The
forward pass is split so each stage is reachable on its own:

``embed_patches(x)`` -> ``add_positions(patches)`` -> ``run_blocks(tokens)`` -> ``backbone.norm`` -> ``forward_head``

``run_blocks`` takes any token sequence (e.g. a subset of the patches, each carrying its own position
embedding) and can record every block's output and, on request, its attention probabilities (the
building blocks are in ``models/blocks.py``).

Running a model on audio (loading, windows, the Analysis result) is the analysis layer's work, which
models never import: ``analyze``, ``analyze_windows``, ``windows`` and ``window_starts`` are thin methods
that hand over to it through :mod:`audiovis.models.delegate` (:mod:`audiovis.runner`, :mod:`audiovis.windows`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..audio import Audio
from ..checks import check_int
from ..patches import PatchGrid
from ..spectrogram import KaldiFbank, Spectrogram, load_source
from .delegate import runner
from .blocks import block_with_attention, check_attention_block

AudioInput = Union[Audio, Spectrogram, str, os.PathLike, np.ndarray, torch.Tensor]

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer


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

        Args:
            tokens: the input tokens ``[B, T, D]``.
            start: the first block run.
            stop: the block after the last one run (None: through the last block).
            hidden_states: a list each block's output is appended to (None: not kept).
            attentions: a list each block's attention probabilities are appended to (None: fused attention).
            key_bias: ``[B, T]`` added to every query's attention logits for each key (None: no bias).

        Returns:
            The tokens after the last block run, ``[B, T, D]`` (before the final norm).
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
        return self.fit_window(self.spectrogram_of(load_source(audio, sample_rate)))

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
        start = check_int(start, "window start", minimum=0, maximum=max(1, spec.num_frames) - 1,
                          what=f"a frame in 0..{spec.num_frames - 1}")
        stop = min(spec.num_frames, start + self.input_shape[1])
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
    ) -> Any:
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
        :mod:`audiovis.models.pruning`; attention ranking without ``prune_layer`` ranks by block 0's cls
        attention and prunes within it, :mod:`audiovis.models.progressive`); ``merge_ratio > 0`` merges
        that share of the patch tokens away (:mod:`audiovis.models.merging`). Both keep the pass's compact
        states and rebuild full layouts and attention only when asked (:mod:`audiovis.models.reduction`);
        ``keep_ratio=1.0`` and ``merge_ratio=0`` are exactly the plain analysis.

        ``audio`` may also be a list (or tuple) of clips, each any of the above: the result is a plain list
        with one entry per clip (an Analysis, or a WindowedAnalyses for a long clip), analysed one after
        another with the same options; e.g. ``model.analyze(list(batch), sample_rate=16000)`` for the rows
        of a ``[clips, samples]`` tensor (given whole, its rows would be mixed as channels of one clip).

        Args:
            audio: an Audio, a path, an array (with ``sample_rate``), a Spectrogram, or a list of them.
            hop: seconds between window starts for long input (None: :attr:`window_seconds`).
            attention: compute every attention map during the pass.
            sample_rate: the rate of an array or tensor given as ``audio``.
            keep_ratio: the share of patch tokens kept (token pruning), in (0, 1].
            keep_by: how pruning ranks patches: ``"energy"`` or ``"attention"``.
            prune_layer: the first block that runs on the kept tokens only (with attention ranking, a list:
                the blocks pruning happens at, each ranking by its own cls attention).
            fuse_dropped: the dropped patches run on as one fused token.
            merge_ratio: the share of patch tokens merged away (token merging), in [0, 1).

        Returns:
            An :class:`~audiovis.Analysis`; a :class:`~audiovis.analysis.WindowedAnalyses` for input longer
            than one window; a list of those for a list of clips.
        """
        return runner().analyze(
            self, audio, hop=hop, attention=attention, sample_rate=sample_rate, keep_ratio=keep_ratio, keep_by=keep_by,
            prune_layer=prune_layer, fuse_dropped=fuse_dropped, merge_ratio=merge_ratio,
        )

    #: Windowed analyses whose hidden states would take more than this many bytes get a warning
    #: (:func:`audiovis.runner.warn_if_heavy`).
    HEAVY_ANALYSES_BYTES = 2 * 2**30

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
    ) -> Any:
        """One Analysis per model window over the whole clip, windows starting every ``hop`` seconds: always a list.

        ``hop`` defaults to :attr:`window_seconds` (windows tile the clip without overlap) while they fit;
        the last window ends at the end of the clip, overlapping the one before (:meth:`window_starts`:
        no window is mostly padding); only a clip shorter than one window is padded. ``windows`` picks some
        of them by index (default: all). Each Analysis has ``offset`` (its start, s) and a spectrogram whose
        times are absolute: the recording's clock, from the clip's ``Audio.start`` (0 for a whole file; 60
        for ``load_audio(path, offset=60)`` or ``audio.segment(60, 64)``).

        A Spectrogram is windowed the same way over its ``valid_frames``: windows of ``input_shape[1]``
        frames every ``hop`` seconds rounded to whole frames (:meth:`window_spectrogram`); the times stay the spectrogram's and
        ``offset`` is read from them (:func:`audiovis.windows.audio_time`: ``start * hop`` for a whole clip's spectrogram). For KaldiFbank models, a spectrogram made by the front end without
        ``target_frames`` gives the windows of its audio; for dB front ends the floor is the whole
        spectrogram's rather than each window's. The pruning arguments are :meth:`analyze`'s, applied to
        every window.

        Args:
            audio: an Audio, a path, an array (with ``sample_rate``) or a Spectrogram.
            hop: seconds between window starts (None: :attr:`window_seconds`).
            windows: indices of the windows to analyse (None: all).
            attention: compute every attention map during the pass.
            sample_rate: the rate of an array or tensor given as ``audio``.
            keep_ratio: as in :meth:`analyze`.
            keep_by: as in :meth:`analyze`.
            prune_layer: as in :meth:`analyze`.
            fuse_dropped: as in :meth:`analyze`.
            merge_ratio: as in :meth:`analyze`.

        Returns:
            A :class:`~audiovis.analysis.WindowedAnalyses`, one Analysis per window, in time order.
        """
        return runner().analyze_windows(
            self, audio, hop=hop, windows=windows, attention=attention, sample_rate=sample_rate, keep_ratio=keep_ratio,
            keep_by=keep_by, prune_layer=prune_layer, fuse_dropped=fuse_dropped, merge_ratio=merge_ratio,
        )

    def window_starts(self, source: Audio | Spectrogram, hop: float | None = None) -> list:
        """Where the model windows over ``source`` start: seconds for an Audio, frames for a Spectrogram.

        The rule is :func:`audiovis.windows.window_starts`: input that fits one window has one
        start; longer input gets a window every ``hop`` (default :attr:`window_seconds`) while one fits,
        then one that ends at the end of the input (its start on the front end's frame grid), so no
        window is mostly padding. A Spectrogram counts its ``valid_frames`` (the padding a front end
        added to reach ``target_frames`` is not input), ``hop`` rounded to whole frames.
        """
        return runner().model_window_starts(self, source, hop)

    def windows(
        self, audio: AudioInput, *, hop: float | None = None, sample_rate: int | None = None
    ) -> list[tuple[float, Spectrogram]]:
        """``(offset in s, model input)`` of every window :meth:`analyze_windows` would run, without running the model.

        For batch pipelines (the embedding store) that run many clips' windows through the model together:
        the windows, their inputs and offsets are exactly :meth:`analyze`'s (the one window rule).

        Args:
            audio: an Audio, a path, an array (with ``sample_rate``) or a Spectrogram.
            hop: seconds between window starts (None: :attr:`window_seconds`).
            sample_rate: the rate of an array or tensor given as ``audio``.

        Returns:
            ``(offset, spectrogram)`` per window: its start in seconds and the model input.
        """
        return runner().model_windows(self, audio, hop=hop, sample_rate=sample_rate)

    def _pad_value(self) -> float | None:
        """What the front end pads a short input with, when it says (KaldiFbank), else None."""
        fe = self.frontend
        if isinstance(fe, KaldiFbank):
            if not fe.normalize:
                return 0.0
            return float((torch.zeros((), dtype=torch.float32) - fe.mean) / (fe.std * 2))
        return None

    @property
    def span_seconds(self) -> float:
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

    def spectrogram_of(self, source: Audio | Spectrogram) -> Spectrogram:
        """The model's input spectrogram of ``source``: its front end applied to Audio, or a Spectrogram checked
        to be one (same front end, or units, scale and hop) with the model's number of frequency bins."""
        if isinstance(source, Spectrogram):
            self._check_frontend(source)
        spec = source if isinstance(source, Spectrogram) else self.frontend(source)
        if spec.num_bins != self.input_shape[0]:
            raise ValueError(
                f"the spectrogram has {spec.num_bins} frequency bins but the model takes {self.input_shape[0]}"
            )
        return spec


def check_model(model: Any, caller: str, *, error: type[Exception] = TypeError) -> "SpectrogramModelMixin":
    """``model`` when it is an audiovis model, else ``error`` naming ``caller`` and what it got.

    One home for the rule, so a call given its arguments in the wrong order (``extract_embeddings(model,
    clips)``) says so instead of failing later on a missing attribute.

    Args:
        model: what the caller was given as its model.
        caller: how the error names the call (``"extract_embeddings"``).
        error: the exception class raised.

    Returns:
        ``model``, unchanged.
    """
    if not isinstance(model, SpectrogramModelMixin):
        name = type(model).__name__
        got = repr(model) if isinstance(model, (str, os.PathLike)) else f"{'an' if name[0] in 'AEIOUaeiou' else 'a'} {name}"
        raise error(f"{caller}: model must be an audiovis model (ASTModel, ViTModel, av.load_demo_model()), "
                    f"got {got}")
    return model
