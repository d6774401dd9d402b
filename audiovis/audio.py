"""Audio: a float32 waveform ``[channels, samples]`` with its sample rate, and ``load_audio``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from .checks import check_number, check_rate
from .errors import AudioLoadError

AudioSource = Union[str, os.PathLike, np.ndarray, torch.Tensor, "Audio"]

# 2-D arrays are read as [channels, samples]; one whose first axis is long and second short is
# soundfile's [samples, channels] layout and is transposed.
_MAX_CHANNELS = 64
# an array with more channels than stereo is mixed to mono with a warning naming the count (it may be a batch)
_MIXED_SILENTLY = 2


def _check_segment(offset: Any, duration: Any, what: str) -> tuple[float, float | None]:
    """``offset``/``duration`` as floats, or a ValueError naming ``what`` and the bad value."""
    offset = check_number(offset, f"{what}: offset", low=0, what="a finite number of seconds >= 0")
    if duration is not None:
        duration = check_number(duration, f"{what}: duration", low=0, low_open=True,
                                what="a positive, finite number of seconds (or None for the rest)")
    return offset, duration


@dataclass(frozen=True, repr=False)
class Audio:
    """A waveform ``[channels, samples]`` (float32 torch tensor) and its sample rate in Hz.

    ``start`` is the time (s) of sample 0 in the recording it came from: 0 for a whole file, 60 for
    ``load_audio(path, offset=60)`` or ``audio.segment(60, 64)``. Front ends put their frames at that
    time, so spectrograms, analyses (``offset``) and viewers show the recording's clock; ``segment``,
    ``resample`` and ``to_mono`` keep it.

    Args:
        waveform: the samples ``[channels, samples]`` (converted to float32).
        sample_rate: samples per second, a positive whole number.
        source: where the sound came from (a path, or None), shown in messages.
        start: seconds of sample 0 in the recording, >= 0.
    """

    waveform: torch.Tensor
    sample_rate: int
    source: str | None = field(default=None, compare=False)
    start: float = 0.0

    def __post_init__(self) -> None:
        wav = self.waveform
        if not isinstance(wav, torch.Tensor):
            raise AudioLoadError(f"Audio.waveform must be a torch.Tensor, got {type(wav).__name__}")
        if wav.ndim != 2:
            raise AudioLoadError(f"Audio.waveform must be [channels, samples], got shape {tuple(wav.shape)}")
        if wav.dtype != torch.float32:
            object.__setattr__(self, "waveform", wav.to(torch.float32))
        object.__setattr__(self, "sample_rate", check_rate(self.sample_rate, "Audio", AudioLoadError))
        start = check_number(self.start, "Audio.start", low=0, error=AudioLoadError,
                             what="a finite number of seconds >= 0")
        object.__setattr__(self, "start", start)

    @property
    def num_channels(self) -> int:
        return int(self.waveform.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.waveform.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sample_rate

    @property
    def end(self) -> float:
        """Time (s) of the end of the last sample in the recording's clock: ``start + duration``."""
        return self.start + self.duration

    def resample(self, sample_rate: int) -> "Audio":
        """This audio at another rate (torchaudio's band-limited sinc resampling)."""
        import torchaudio.functional as AF

        sample_rate = check_rate(sample_rate, "Audio.resample", AudioLoadError)
        if sample_rate == self.sample_rate:
            return self
        wav = AF.resample(self.waveform, self.sample_rate, sample_rate)
        return Audio(wav.contiguous(), sample_rate, self.source, self.start)

    def to_mono(self) -> "Audio":
        """The mean of all channels, as one channel."""
        if self.num_channels == 1:
            return self
        return Audio(self.waveform.mean(dim=0, keepdim=True), self.sample_rate, self.source, self.start)

    def segment(self, start: float, end: float | None = None) -> "Audio":
        """The part from ``start`` to ``end`` seconds of this clip (clipped to the clip).

        ``start``/``end`` count from this clip's first sample (not from :attr:`start`); the part's own
        :attr:`start` is where it lies in the recording: ``self.start`` + its first sample's time.
        """
        start = check_number(start, "segment start", what="a number of seconds")
        end = None if end is None else check_number(end, "segment end", what="a number of seconds, or None")
        if end is not None and end < start:
            raise ValueError(f"segment end {end} s is before its start {start} s")
        first = min(self.num_samples, max(0, int(round(start * self.sample_rate))))
        last = self.num_samples if end is None else min(self.num_samples, int(round(end * self.sample_rate)))
        last = max(first, last)  # (an end before the clip: no samples, never Python's counting from the end)
        if first == last and self.num_samples and (end is None or end > start):
            raise ValueError(f"segment {start:g}-{'end' if end is None else f'{end:g}'} s holds no samples: the clip is "
                             f"{self.duration:.3f} s long (start and end count from its first sample)")
        return Audio(self.waveform[:, first:last], self.sample_rate, self.source, self.start + first / self.sample_rate)

    def numpy(self) -> np.ndarray:
        """The waveform as a float32 numpy array ``[channels, samples]``."""
        return self.waveform.detach().cpu().numpy()

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        at = f" from {self.start:.3f} s" if self.start else ""
        return (
            f"Audio({self.num_channels} ch, {self.sample_rate} Hz, {self.num_samples} samples, "
            f"{self.duration:.3f} s{at}{src})"
        )


def _segment(audio: Audio, offset: float, duration: float | None, what: str) -> Audio:
    """``load_audio``'s ``offset``/``duration`` cut of an in-memory sound; an empty cut is an AudioLoadError."""
    try:
        return audio.segment(offset, None if duration is None else offset + duration)
    except ValueError:
        raise AudioLoadError(f"{what}: the selected segment (offset {offset} s, duration {duration} s) holds no "
                             f"samples (the sound is {audio.duration:.3f} s long)") from None


def _to_float32(array: np.ndarray, what: str) -> np.ndarray:
    """Integer PCM scaled to [-1, 1]; any float as float32."""
    kind = array.dtype.kind
    if kind == "f":
        return array.astype(np.float32, copy=False)
    if kind == "i":
        scale = float(2 ** (8 * array.dtype.itemsize - 1))
        return (array.astype(np.float64) / scale).astype(np.float32)
    if kind == "u":
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        return ((array.astype(np.float64) - half) / half).astype(np.float32)
    raise AudioLoadError(f"{what}: samples of dtype {array.dtype} are not audio (expected integer PCM or float)")


def _check_waveform_shape(shape: tuple[int, ...], what: str) -> None:
    """AudioLoadError when a 2-D array cannot be a waveform: both axes longer than a recording has channels.

    Such an array is a spectrogram's values (``[bins, frames]``), an image or a batch; read as
    audio it would be mixed from a hundred "channels" into one and analysed with confidence.
    """
    if len(shape) == 2 and min(shape) > _MAX_CHANNELS:
        raise AudioLoadError(
            f"{what} is not a waveform: read as audio it would have {min(shape)} channels, and a recording has at "
            f"most {_MAX_CHANNELS} (a spectrogram's values or a batch of clips look like this). Pass the Spectrogram "
            "object itself (model.analyze(spec)), a waveform as [samples] or [channels, samples], or several clips as "
            "a list (model.analyze([clip, ...], sample_rate=...)); audio with that many channels: "
            "Audio(torch.as_tensor(array), sample_rate)"
        )


def _from_array(data: np.ndarray | torch.Tensor, sample_rate: Any) -> Audio:
    what = f"array of shape {tuple(data.shape)}"
    _check_waveform_shape(tuple(data.shape), what)
    if sample_rate is None:
        raise AudioLoadError(f"{what}: an array has no sample rate of its own; pass sample_rate=...")
    rate = check_rate(sample_rate, what, AudioLoadError)
    if isinstance(data, torch.Tensor):
        if data.is_complex():
            raise AudioLoadError(f"{what}: complex samples are not audio")
        data = data.detach().cpu()
        array = data.numpy() if data.dtype != torch.bfloat16 else data.float().numpy()
    else:
        array = np.asarray(data)
    if array.ndim == 0 or array.ndim > 2:
        raise AudioLoadError(f"{what}: expected [samples] or [channels, samples], got {array.ndim} dimensions")
    if array.ndim == 1:
        array = array[None, :]
    elif array.shape[0] > _MAX_CHANNELS and array.shape[1] <= _MAX_CHANNELS:
        array = array.T
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise AudioLoadError(f"{what}: the array holds no samples")
    wav = torch.from_numpy(np.ascontiguousarray(_to_float32(array, what)))
    return Audio(wav, rate)


def _read_file(path: Path, offset: float, duration: float | None) -> Audio:
    import soundfile as sf

    if not path.exists():
        raise FileNotFoundError(f"no audio file at {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not an audio file")
    try:
        open(path, "rb").close()
    except PermissionError:
        raise PermissionError(f"{str(path)!r} cannot be read (permission denied)") from None
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{str(path)!r} is an empty file (0 bytes)")
    try:
        with sf.SoundFile(str(path)) as f:
            rate = int(f.samplerate)
            total = int(f.frames)
            start = int(round(offset * rate))
            if total <= 0:
                raise AudioLoadError(f"{str(path)!r} holds no audio samples (header only or empty data)")
            if start >= total:
                raise AudioLoadError(
                    f"offset {offset} s is past the end of {str(path)!r} ({total / rate:.3f} s long)"
                )
            count = total - start if duration is None else min(total - start, int(round(duration * rate)))
            if start:
                f.seek(start)
            data = f.read(max(count, 1), dtype="float32", always_2d=True)
    except AudioLoadError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioLoadError(f"{str(path)!r} could not be decoded as audio: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioLoadError(f"{str(path)!r} holds no decodable samples (truncated or header only)")
    if not np.all(np.isfinite(data)):
        bad = int(np.argwhere(~np.isfinite(data))[0][0])
        raise AudioLoadError(f"{str(path)!r} holds a non-finite sample at sample {start + bad}")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    return Audio(wav, rate, str(path), start / rate)


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    *,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> Audio:
    """Read a sound into an :class:`Audio`.

    ``source`` is a path (WAV, FLAC, OGG/Vorbis, MP3 where libsndfile reads it), a numpy array or torch
    tensor (``[samples]`` or ``[channels, samples]``; then ``sample_rate`` is the array's rate and is
    required), or an ``Audio``. For files and ``Audio``, ``sample_rate`` is the rate to resample to.
    ``offset``/``duration`` (seconds) select a segment; files are read from that point only (seek).
    Integer PCM is scaled to float32 in [-1, 1].

    Args:
        source: a path, a numpy array or torch tensor of samples, or an ``Audio``.
        sample_rate: the array's rate (required for arrays); for files and ``Audio``, the rate to resample to.
        mono: mix the channels down to one.
        offset: seconds from the start of the source where the segment begins.
        duration: seconds to read from ``offset`` (None: to the end).

    Returns:
        The sound as an :class:`Audio` whose ``start`` is ``offset`` (plus the source's own start).

    Raises:
        AudioLoadError: the source cannot be read or an argument is bad (named in the message).
        FileNotFoundError: no file at the path.
    """
    if isinstance(source, Audio):
        what = repr(source)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        what = f"array of shape {tuple(source.shape)}"
    elif isinstance(source, (str, os.PathLike)):
        what = repr(str(source))
    elif isinstance(source, (list, tuple)):
        raise AudioLoadError(
            "load_audio takes one sound; got a list/tuple. Pass np.asarray(samples) with sample_rate=..."
        )
    else:
        raise AudioLoadError(f"cannot read audio from a {type(source).__name__}; pass a path, an array or an Audio")
    # every argument is checked before anything is read, whatever the source
    offset, duration = _check_segment(offset, duration, what)
    if sample_rate is not None:
        sample_rate = check_rate(sample_rate, what, AudioLoadError)
    if isinstance(source, Audio):
        audio = source
        if offset or duration is not None:
            audio = _segment(audio, offset, duration, what)
        if sample_rate is not None:
            audio = audio.resample(sample_rate)
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        audio = _from_array(source, sample_rate)
        if offset or duration is not None:
            audio = _segment(audio, offset, duration, what)
        if mono and audio.num_channels > _MIXED_SILENTLY:
            import warnings

            warnings.warn(
                f"{what}: read as one clip of {audio.num_channels} channels and mixed to mono; if its rows are "
                "separate clips, pass them as a list (model.analyze([clip, ...], sample_rate=...))",
                UserWarning,
                stacklevel=2,
            )
    else:
        audio = _read_file(Path(source), offset, duration)
        if sample_rate is not None:
            audio = audio.resample(sample_rate)
    if audio.num_samples == 0:
        raise AudioLoadError(
            f"{what}: the selected segment (offset {offset} s, duration {duration} s) holds no samples"
        )
    return audio.to_mono() if mono else audio
