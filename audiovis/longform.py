"""Front ends over long recordings, computed in chunks read by segments (bounded memory).

``chunked_spectrogram(frontend, "hour.flac")`` gives the same Spectrogram as
``frontend(load_audio("hour.flac"))`` without holding the whole waveform: each chunk of frames is
computed from the samples it needs plus the frames' context (window overlap, and the resampling
filter's reach when the file is at another rate), and the frames touched by the chunk's own edges are
trimmed. dB with ``top_db`` needs the global maximum, so chunks are converted to dB without the floor
and the floor (``max - top_db``) is applied once at the end, in place.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch

from .audio import Audio, load_audio
from .checks import check_number
from .errors import AudioLoadError, ConfigError
from .spectrogram import KaldiFbank, MelSpectrogram, Spectrogram, STFTSpectrogram, _Decibels

LongSource = Union[str, os.PathLike, Audio]

# torchaudio.functional.resample defaults, used by the front ends: the filter reaches
# ceil(LOWPASS_WIDTH * orig / (min(orig, new) * ROLLOFF)) input samples either side (reduced rates).
_LOWPASS_WIDTH = 6
_ROLLOFF = 0.99


class _Reader:
    """Mono float32 samples ``[start, stop)`` of a file or an in-memory Audio, read by segments."""

    def __init__(self, source: LongSource) -> None:
        if isinstance(source, Audio):
            self.audio: Audio | None = source
            self.path: str | None = None
            self.rate = source.sample_rate
            self.length = source.num_samples
            self.name = source.source
            self.start = source.start  # the recording's clock: frames are placed from here
        elif isinstance(source, (str, os.PathLike)):
            import soundfile as sf

            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"no audio file at {str(path)!r}")
            try:
                info = sf.info(str(path))
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioLoadError(f"{str(path)!r} could not be decoded as audio: {exc}") from exc
            self.audio, self.path, self.start = None, str(path), 0.0
            self.rate, self.length, self.name = int(info.samplerate), int(info.frames), str(path)
            if self.length <= 0:
                raise AudioLoadError(f"{str(path)!r} holds no audio samples")
        else:
            raise AudioLoadError(
                f"chunked_spectrogram reads a file path or an Audio, got {type(source).__name__}; "
                "wrap arrays with load_audio(array, sample_rate)"
            )

    def read(self, start: int, stop: int) -> torch.Tensor:
        if self.audio is not None:
            wav = self.audio.waveform[:, start:stop]
            return (wav.mean(dim=0) if wav.shape[0] > 1 else wav[0]).contiguous()
        audio = load_audio(self.path, offset=start / self.rate, duration=(stop - start) / self.rate, mono=True)
        if audio.num_samples != stop - start:
            raise AudioLoadError(
                f"{self.path!r}: asked for samples {start}..{stop}, the file gave {audio.num_samples} "
                "(its header may announce more samples than it holds)"
            )
        return audio.waveform[0]


class _Resampled:
    """A reader's samples at another rate, read by segments, equal to resampling the whole signal.

    torchaudio's resampler maps each block of ``orig`` input samples (rates reduced by their gcd) to
    ``new`` output samples, from the block and ``width`` samples either side; reading whole blocks with
    that margin and trimming reproduces the one-shot output.
    """

    def __init__(self, inner: _Reader, rate: int) -> None:
        self.inner, self.rate, self.name = inner, rate, inner.name
        g = math.gcd(inner.rate, rate)
        self.orig, self.new = inner.rate // g, rate // g
        width = math.ceil(_LOWPASS_WIDTH * self.orig / (min(self.orig, self.new) * _ROLLOFF))
        self.margin_blocks = math.ceil(width / self.orig) + 1
        self.length = math.ceil(self.new * inner.length / self.orig)

    def read(self, start: int, stop: int) -> torch.Tensor:
        import torchaudio.functional as AF

        first = max(0, start // self.new - self.margin_blocks)
        last = -(-stop // self.new) + self.margin_blocks
        s, e = first * self.orig, min(self.inner.length, last * self.orig)
        out = AF.resample(self.inner.read(s, e)[None], self.inner.rate, self.rate)[0]
        base = first * self.new
        return out[start - base: stop - base]


@dataclass(frozen=True)
class _FramePlan:
    """How a front end cuts frames: frame ``i`` reads samples ``[i*hop - lead, i*hop - lead + span)``."""

    rate: int
    hop: int
    span: int
    lead: int
    count: Callable[[int], int]
    compute: Callable[[torch.Tensor], torch.Tensor]  # samples -> [freq, frames], the front end's own edges
    time_shift: float  # frame i is centred at (i * hop + time_shift) / rate seconds


def _plan(frontend: object, source_rate: int) -> _FramePlan:
    if isinstance(frontend, (STFTSpectrogram, MelSpectrogram)):
        rate = source_rate if isinstance(frontend, STFTSpectrogram) else frontend.sample_rate
        n_fft, hop = frontend.n_fft, frontend.hop_length
        raw_db = _Decibels(frontend.power, None) if frontend.to_db else None

        def compute(wav: torch.Tensor) -> torch.Tensor:
            values = frontend.linear_values(wav)
            return raw_db(values) if raw_db is not None else values

        return _FramePlan(rate, hop, n_fft, n_fft // 2, lambda n: 1 + (n + 2 * (n_fft // 2) - n_fft) // hop,
                          compute, 0.0)
    if isinstance(frontend, KaldiFbank):
        if frontend.target_frames is not None:
            raise ConfigError(
                "chunked_spectrogram: KaldiFbank must have target_frames=None for a long recording "
                f"(it has target_frames={frontend.target_frames}, which cuts or pads to a fixed length)"
            )
        win, hop = frontend.win_length, frontend.hop_length

        def compute(wav: torch.Tensor) -> torch.Tensor:
            if wav.shape[-1] < win:
                wav = torch.nn.functional.pad(wav, (0, win - wav.shape[-1]))
            feats = frontend.fbank(wav)
            if frontend.normalize:
                feats = (feats - frontend.mean) / (frontend.std * 2)
            return feats.T

        return _FramePlan(frontend.sample_rate, hop, win, 0, lambda n: 1 + max(0, n - win) // hop,
                          compute, win / 2)
    raise ConfigError(
        "chunked_spectrogram works with STFTSpectrogram, MelSpectrogram and KaldiFbank, "
        f"got {type(frontend).__name__}"
    )


def chunked_spectrogram(
    frontend: STFTSpectrogram | MelSpectrogram | KaldiFbank,
    source: LongSource,
    *,
    chunk_seconds: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> Spectrogram:
    """``frontend`` over a long file (or Audio), reading ``chunk_seconds`` of audio at a time.

    Equal to ``frontend(load_audio(source))`` (same values, axes and valid frames); working memory is
    one chunk of audio and its frames, besides the result. ``progress(done_frames, total_frames)`` is
    called after each chunk.

    Args:
        frontend: an STFTSpectrogram, MelSpectrogram or KaldiFbank.
        source: a sound file's path, or an Audio.
        chunk_seconds: seconds of audio read and transformed at a time, > 0.
        progress: called with ``(done_frames, total_frames)`` after each chunk (None: nothing).

    Returns:
        The whole recording's Spectrogram.
    """
    chunk_seconds = check_number(chunk_seconds, "chunked_spectrogram: chunk_seconds", low=0, low_open=True,
                                 error=ConfigError)
    reader = _Reader(source)
    plan = _plan(frontend, reader.rate)
    signal: _Reader | _Resampled = reader if reader.rate == plan.rate else _Resampled(reader, plan.rate)
    num_samples = signal.length
    num_frames = plan.count(num_samples)
    per_chunk = max(1, int(chunk_seconds * plan.rate) // plan.hop)
    context = -(-plan.lead // plan.hop)  # frames of left context so a chunk's own padding is never used

    values: torch.Tensor | None = None
    peak = -math.inf
    with torch.inference_mode():
        for a in range(0, num_frames, per_chunk):
            b = min(num_frames, a + per_chunk)
            start = max(0, (a - context) * plan.hop)
            stop = min(num_samples, (b - 1) * plan.hop - plan.lead + plan.span)
            if stop - start <= plan.span:  # "reflect" edge padding reads span // 2 + 1 samples at the ends
                stop = min(num_samples, start + plan.span + 1)
                start = max(0, (stop - plan.span - 1) // plan.hop * plan.hop)
            chunk = plan.compute(signal.read(start, stop))
            first = a - start // plan.hop
            part = chunk[:, first: first + (b - a)]
            if part.shape[1] != b - a:
                raise RuntimeError(f"chunk of frames {a}..{b} came out with {part.shape[1]} frames")
            if values is None:
                values = torch.empty((part.shape[0], num_frames), dtype=torch.float32)
            values[:, a:b] = part
            peak = max(peak, float(part.max()))
            if progress is not None:
                progress(b, num_frames)
        assert values is not None
        top_db = getattr(frontend, "top_db", None)
        if getattr(frontend, "to_db", False) and top_db is not None:
            values.clamp_(min=peak - top_db)

    axes = _axes(frontend, plan)
    return Spectrogram(
        values=values,
        times=(np.arange(num_frames) * plan.hop + plan.time_shift) / plan.rate + reader.start,
        frequencies=axes.frequencies,
        frequency_edges=axes.frequency_edges,
        scale=axes.scale,
        units=axes.units,
        hop_length=plan.hop,
        sample_rate=plan.rate,
        valid_frames=num_frames if isinstance(frontend, KaldiFbank) else min(num_frames, num_samples // plan.hop + 1),
        source=reader.name,
        frontend=getattr(frontend, "signature", None),
    )


def _axes(frontend: torch.nn.Module, plan: _FramePlan) -> Spectrogram:
    """The front end's frequency axis, scale and units, from a few frames of silence."""
    return frontend(torch.zeros(plan.span + plan.hop), plan.rate)
