"""Spectrogram front ends: small ``nn.Module``s turning an Audio into a :class:`Spectrogram` image.

Every Spectrogram is ``[freq, time]`` with its axes (frame centre times, bin centre and edge
frequencies), so a viewer can draw it and a PatchGrid can map patches to seconds and Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from .audio import Audio, load_audio
from .checks import check_int, check_number, check_rate
from .errors import ConfigError, InvalidAudioError
from .framewise import block_spectra, centred_frames, kaldi_prepare, log_, output, snipped_frames

Scale = Literal["linear", "mel"]
Units = Literal["power", "magnitude", "dB", "log", "normalized-fbank"]


@dataclass(frozen=True, repr=False)
class Spectrogram:
    """A time-frequency image ``values[freq, time]`` with the axes needed to draw and index it.

    ``times`` are frame centres (s), evenly spaced by ``hop_length / sample_rate``;
    ``frequencies`` are bin centres (Hz) and ``frequency_edges`` the ``freq + 1`` band edges (Hz);
    ``valid_frames`` counts the leading frames computed from real signal (the rest is padding).
    ``frontend`` names the front end and the settings that made the values (its ``signature``; None for
    a hand-made Spectrogram), so a model can refuse values made another way than its own input.

    Args:
        values: the image ``[freq, time]`` (float32 tensor).
        times: frame centres in seconds ``[time]``.
        frequencies: bin centres in Hz ``[freq]``.
        frequency_edges: band edges in Hz ``[freq + 1]``.
        scale: ``"linear"`` or ``"mel"`` frequency axis.
        units: what the values are: ``"power"``, ``"magnitude"``, ``"dB"``, ``"log"`` or ``"normalized-fbank"``.
        hop_length: samples between frames.
        sample_rate: the audio's samples per second.
        valid_frames: leading frames computed from real signal (the rest is padding).
        source: where the sound came from (a path, or None).
        frontend: the making front end's ``signature`` (None for a hand-made Spectrogram).
    """

    values: torch.Tensor
    times: np.ndarray
    frequencies: np.ndarray
    frequency_edges: np.ndarray
    scale: Scale
    units: Units
    hop_length: int
    sample_rate: int
    valid_frames: int
    source: str | None = field(default=None, compare=False)
    frontend: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(f"Spectrogram values must be [freq, time], got shape {tuple(self.values.shape)}")
        num_freq, num_time = self.values.shape
        if len(self.times) != num_time or len(self.frequencies) != num_freq or len(self.frequency_edges) != num_freq + 1:
            raise ValueError(
                f"Spectrogram axes do not fit values {tuple(self.values.shape)}: "
                f"{len(self.times)} times, {len(self.frequencies)} frequencies, {len(self.frequency_edges)} edges"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    @property
    def num_bins(self) -> int:
        return self.shape[0]

    @property
    def num_frames(self) -> int:
        return self.shape[1]

    @property
    def hop_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def time_offset(self) -> float:
        """Time (s) of the left edge of frame 0: frame ``x`` (continuous) is at ``time_offset + x * hop``."""
        return float(self.times[0]) - 0.5 * self.hop_seconds if len(self.times) else 0.0

    @property
    def duration(self) -> float:
        return self.num_frames * self.hop_seconds

    def frame_to_time(self, frame: float | np.ndarray) -> float | np.ndarray:
        """Continuous frame coordinate (left edge of frame 0 is 0) -> seconds."""
        return self.time_offset + np.asarray(frame, dtype=np.float64) * self.hop_seconds

    def time_to_frame(self, seconds: float | np.ndarray) -> float | np.ndarray:
        """Seconds -> continuous frame coordinate."""
        return (np.asarray(seconds, dtype=np.float64) - self.time_offset) / self.hop_seconds

    def bin_to_hz(self, bin_coord: float | np.ndarray) -> float | np.ndarray:
        """Continuous bin coordinate (bottom edge of bin 0 is 0) -> Hz, piecewise linear over the band edges."""
        return np.interp(np.asarray(bin_coord, dtype=np.float64), np.arange(self.num_bins + 1), self.frequency_edges)

    def hz_to_bin(self, hz: float | np.ndarray) -> float | np.ndarray:
        """Hz -> continuous bin coordinate (inverse of :meth:`bin_to_hz`)."""
        return np.interp(np.asarray(hz, dtype=np.float64), self.frequency_edges, np.arange(self.num_bins + 1))

    def numpy(self) -> np.ndarray:
        return self.values.detach().cpu().numpy()

    def __repr__(self) -> str:
        return (
            f"Spectrogram({self.num_bins} {self.scale} bins x {self.num_frames} frames, {self.units}, "
            f"hop {self.hop_seconds * 1000:.1f} ms, {self.valid_frames} valid frames)"
        )


def _mono_waveform(
    audio: Audio | torch.Tensor, sample_rate: int | None, target_rate: int | None, owner: str = "front end",
) -> tuple[torch.Tensor, int, str | None]:
    """A checked mono waveform ``[samples]`` at ``target_rate`` (or its own rate)."""
    if isinstance(audio, Audio):
        wav, rate, source = audio.waveform, audio.sample_rate, audio.source
        if sample_rate is not None and sample_rate != rate:
            raise InvalidAudioError(
                f"{owner}: {source or 'the Audio'} is at {rate} Hz but sample_rate={sample_rate!r} was given; an Audio "
                "carries its own rate (resample it with audio.resample(rate) if that is what you meant)"
            )
    elif isinstance(audio, torch.Tensor):
        what = f"{owner}: waveform tensor of shape {tuple(audio.shape)}"
        if sample_rate is None:
            raise InvalidAudioError(f"{what} needs its sample_rate; pass frontend(wav, sample_rate)")
        rate = check_rate(sample_rate, what, InvalidAudioError)
        wav, source = audio, None
        if wav.ndim == 1:
            wav = wav[None]
        if wav.ndim != 2:
            raise InvalidAudioError(f"{what}: expected [samples] or [channels, samples]")
        wav = wav.to(torch.float32)
    else:
        raise InvalidAudioError(f"{owner}: front ends take an Audio or a waveform tensor, got {type(audio).__name__}")
    name = source or "waveform"
    if wav.shape[-1] == 0:
        raise InvalidAudioError(f"{name}: no samples to analyse")
    # one cheap pass first: a NaN/Inf makes the sum non-finite (so, rarely, does an overflow; hence the recheck);
    # numpy's sum runs on this thread alone (torch's would fork and join its threads, slow on a busy machine)
    total = wav.detach().numpy().sum() if wav.device.type == "cpu" else wav.sum()
    if not bool(np.isfinite(float(total))) and not bool(torch.isfinite(wav).all()):
        ch, pos = (int(v) for v in torch.nonzero(~torch.isfinite(wav))[0])
        value = float(wav[ch, pos])
        raise InvalidAudioError(
            f"{name}: sample {pos} (channel {ch}, {pos / rate:.4f} s) is {value}; "
            "front ends need finite samples (replace NaN/Inf, e.g. torch.nan_to_num)"
        )
    if wav.shape[0] > 1:
        wav = wav.mean(dim=0, keepdim=True)
    if target_rate is not None and rate != target_rate:
        import torchaudio.functional as AF

        wav = AF.resample(wav, rate, target_rate)
        rate = target_rate
    return wav[0], rate, source


def _start_of(audio: Audio | torch.Tensor) -> float:
    """Where ``audio`` starts in its recording (s): an Audio's ``start``; a bare tensor starts at 0."""
    return audio.start if isinstance(audio, Audio) else 0.0


def _framewise_power(
    wav: torch.Tensor, *, n_fft: int, hop_length: int, window: torch.Tensor, pad_mode: str, power: float,
    project: torch.Tensor | None = None, decibels: _Decibels | None = None,
) -> torch.Tensor:
    """Centred STFT power (``power=2``) or magnitude of ``wav`` ``[samples]``: ``[n_fft // 2 + 1, frames]``,
    or ``[k, frames]`` after ``project`` ``[n_fft // 2 + 1, k]`` (a mel filterbank), in dB by ``decibels``.

    The values of ``torch.stft(center=True)`` + ``abs().pow(power)`` (+ the projection, + ``decibels``),
    computed a block of frames at a time by :func:`~audiovis.framewise.block_spectra` (frames from
    ``centred_frames``: views of ``wav``, the few edge frames cut from padded copies of its ends).
    """
    half = n_fft // 2
    if pad_mode in ("reflect", "circular") and wav.shape[-1] <= half:
        raise InvalidAudioError(
            f"{wav.shape[-1]} samples are too few for pad_mode={pad_mode!r} with n_fft={n_fft} (needs more than "
            f"{half}); use pad_mode='constant'"
        )
    if window.numel() < n_fft:  # torch.stft centres a shorter window in the frame
        left = (n_fft - window.numel()) // 2
        window = torch.nn.functional.pad(window, (left, n_fft - window.numel() - left))
    window = window.to(wav)
    if torch.is_grad_enabled() and (wav.requires_grad or (project is not None and project.requires_grad)):
        # differentiable reference path (the buffers of the block path take out= arguments, which autograd refuses)
        spec = torch.stft(wav, n_fft, hop_length, window=window, center=True, pad_mode=pad_mode,
                          return_complex=True).abs().pow(power)
        spec = spec if project is None else (spec.T @ project.to(spec)).T
        return spec if decibels is None else decibels(spec)
    segments, num_frames = centred_frames(wav, n_fft, hop_length, pad_mode)

    def prepare(frames: torch.Tensor, first_frame: int, dest: torch.Tensor, scratch: dict) -> None:
        torch.mul(frames, window, out=dest)

    return block_spectra(segments, num_frames, fft_size=n_fft, prepare=prepare, power=power,
                         project=None if project is None else project.to(wav),
                         decibels=None if decibels is None else (decibels.multiplier, decibels.top_db))


def _pad_mode(pad_mode: str, owner: str) -> str:
    modes = ("constant", "reflect", "replicate", "circular")
    if pad_mode not in modes:
        raise ConfigError(f"{owner}: pad_mode must be one of {list(modes)}, got {pad_mode!r}")
    return pad_mode


def _mel_edges(mel_low: float, mel_high: float, num_bins: int, to_hz) -> tuple[np.ndarray, np.ndarray]:
    """Centres and band edges (Hz) of ``num_bins`` triangular filters evenly spaced in mel."""
    step = (mel_high - mel_low) / (num_bins + 1)
    centres = to_hz(mel_low + step * np.arange(1, num_bins + 1))
    edges = to_hz(mel_low + step * (np.arange(num_bins + 1) + 0.5))
    return centres.astype(np.float64), edges.astype(np.float64)


def _htk_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _htk_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


_SLANEY_F_SP = 200.0 / 3
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def _slaney_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _SLANEY_F_SP
    log_part = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(hz >= _SLANEY_MIN_LOG_HZ, log_part, mel)


def _slaney_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(
        mel >= _SLANEY_MIN_LOG_MEL,
        _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL)),
        _SLANEY_F_SP * mel,
    )


def _kaldi_mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _kaldi_hz(mel):
    return 700.0 * (np.exp(np.asarray(mel, dtype=np.float64) / 1127.0) - 1.0)


def _mel_filterbank(n_fft: int, sample_rate: int, f_min: float, f_max: float, n_mels: int,
                    mel_scale: str, norm: str | None) -> np.ndarray:
    """torchaudio's (and librosa's) triangular mel filterbank ``[n_fft // 2 + 1, n_mels]``, computed in float64.

    torchaudio builds it in float32; at a filter's edge, where a weight is a difference of nearly equal
    frequencies, that costs up to ~1e-5 absolute, i.e. a few 1e-4 relative error on a sound whose energy
    sits there (a chirp). Same formulas, double precision: librosa's values to ~1e-7.
    """
    to_mel, to_hz = (_htk_mel, _htk_hz) if mel_scale == "htk" else (_slaney_mel, _slaney_hz)
    bins = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    f_pts = to_hz(np.linspace(float(to_mel(f_min)), float(to_mel(f_max)), n_mels + 2))
    slopes = f_pts[None, :] - bins[:, None]
    f_diff = np.diff(f_pts)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        fb *= 2.0 / (f_pts[2:] - f_pts[:-2])
    return fb


def _positive_int(value, name: str, owner: str) -> int:
    return check_int(value, f"{owner}: {name}", minimum=1, error=ConfigError)


class _Decibels(nn.Module):
    """Power or magnitude -> dB, clamped to ``top_db`` below the maximum (as torchaudio's AmplitudeToDB)."""

    def __init__(self, power: float, top_db: float | None) -> None:
        super().__init__()
        self.multiplier = 10.0 if power == 2.0 else 20.0
        self.top_db = top_db

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        db = self.multiplier * torch.log10(torch.clamp(x, min=1e-10))
        if self.top_db is not None:
            db = torch.maximum(db, db.max() - self.top_db)
        return db


class STFTSpectrogram(nn.Module):
    """Linear-frequency STFT spectrogram, in power, magnitude or dB: torchaudio's ``Spectrogram`` values,
    computed a block of frames at a time.

    Frames are centred (``center=True``): frame ``i`` is centred at ``i * hop_length`` samples; the ends
    are padded with ``pad_mode`` ("constant", as librosa).

    Args:
        n_fft: FFT size in samples; ``n_fft // 2 + 1`` frequency bins.
        hop_length: samples between frames (default ``win_length // 4``).
        win_length: window length in samples, at most ``n_fft`` (default ``n_fft``).
        window: ``"hann"``, ``"hamming"`` or ``"blackman"``.
        power: 2 for power, 1 for magnitude.
        to_db: convert to decibels.
        top_db: dB range kept below the maximum (None: no floor).
        pad_mode: how the ends are padded: ``"constant"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str = "hann",
        power: float = 2.0,
        to_db: bool = True,
        top_db: float | None = 80.0,
        pad_mode: str = "constant",
    ) -> None:
        super().__init__()
        import torchaudio

        self.n_fft = _positive_int(n_fft, "n_fft", "STFTSpectrogram")
        self.win_length = _positive_int(win_length or n_fft, "win_length", "STFTSpectrogram")
        self.hop_length = _positive_int(hop_length or self.win_length // 4, "hop_length", "STFTSpectrogram")
        if self.win_length > self.n_fft:
            raise ConfigError(f"STFTSpectrogram: win_length {self.win_length} is longer than n_fft {self.n_fft}")
        if power not in (1.0, 2.0):
            raise ConfigError(f"STFTSpectrogram: power must be 1 (magnitude) or 2 (power), got {power!r}")
        windows = {"hann": torch.hann_window, "hamming": torch.hamming_window, "blackman": torch.blackman_window}
        if window not in windows:
            raise ConfigError(f"STFTSpectrogram: window must be one of {sorted(windows)}, got {window!r}")
        self.window, self.power, self.to_db, self.top_db = window, float(power), bool(to_db), top_db
        self.pad_mode = _pad_mode(pad_mode, "STFTSpectrogram")
        self.transform = torchaudio.transforms.Spectrogram(
            n_fft=self.n_fft, win_length=self.win_length, hop_length=self.hop_length,
            window_fn=windows[window], power=self.power, pad_mode=pad_mode,
        )
        self.decibels = _Decibels(self.power, top_db)

    @property
    def signature(self) -> str:
        """This front end and every setting that decides its values (the Spectrogram's ``frontend``)."""
        return (f"STFTSpectrogram(n_fft={self.n_fft}, win_length={self.win_length}, hop_length={self.hop_length}, "
                f"window={self.window!r}, power={self.power}, to_db={self.to_db}, top_db={self.top_db}, "
                f"pad_mode={self.pad_mode!r})")

    def linear_values(self, wav: torch.Tensor) -> torch.Tensor:
        """``[bins, frames]`` power or magnitude of a mono waveform ``[samples]``, before any dB."""
        return self._values(wav, None)

    def _values(self, wav: torch.Tensor, decibels: _Decibels | None) -> torch.Tensor:
        return _framewise_power(wav, n_fft=self.n_fft, hop_length=self.hop_length, window=self.transform.window,
                                pad_mode=self.pad_mode, power=self.power, decibels=decibels)

    def forward(self, audio: Audio | torch.Tensor, sample_rate: int | None = None) -> Spectrogram:
        wav, rate, source = _mono_waveform(audio, sample_rate, None, type(self).__name__)
        values = self._values(wav, self.decibels if self.to_db else None)  # dB block by block, in cache
        num_bins, num_frames = values.shape
        bin_hz = rate / self.n_fft
        freqs = np.arange(num_bins) * bin_hz
        edges = np.clip((np.arange(num_bins + 1) - 0.5) * bin_hz, 0.0, rate / 2)
        return Spectrogram(
            values=values.contiguous(),
            times=np.arange(num_frames) * self.hop_length / rate + _start_of(audio),
            frequencies=freqs,
            frequency_edges=edges,
            scale="linear",
            units="dB" if self.to_db else ("power" if self.power == 2.0 else "magnitude"),
            hop_length=self.hop_length,
            sample_rate=rate,
            valid_frames=min(num_frames, wav.shape[-1] // self.hop_length + 1),
            source=source,
            frontend=self.signature,
        )


class MelSpectrogram(nn.Module):
    """Mel spectrogram, HTK or Slaney mel scale, optionally in dB: torchaudio's ``MelSpectrogram`` values
    (its window and filterbank), computed a block of frames at a time.

    Audio at another rate is resampled to ``sample_rate`` first. Frames are centred, padded with
    ``pad_mode`` ("constant" matches librosa's default).

    Args:
        sample_rate: the rate the audio is resampled to, Hz.
        n_fft: FFT size in samples.
        hop_length: samples between frames (default ``win_length // 4``).
        n_mels: mel filters (frequency bins of the output).
        f_min: lowest frequency of the filterbank, Hz.
        f_max: highest frequency, Hz (default: Nyquist).
        power: 2 for power, 1 for magnitude.
        mel_scale: ``"htk"`` or ``"slaney"``.
        norm: None, or ``"slaney"`` for area-normalised filters.
        to_db: convert to decibels.
        top_db: dB range kept below the maximum (None: no floor).
        win_length: window length in samples, at most ``n_fft`` (default ``n_fft``).
        pad_mode: how the ends are padded: ``"constant"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int | None = None,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        mel_scale: Literal["htk", "slaney"] = "htk",
        norm: Literal["slaney"] | None = None,
        to_db: bool = True,
        top_db: float | None = 80.0,
        win_length: int | None = None,
        pad_mode: str = "constant",
    ) -> None:
        super().__init__()
        import torchaudio

        owner = "MelSpectrogram"
        self.sample_rate = _positive_int(sample_rate, "sample_rate", owner)
        self.n_fft = _positive_int(n_fft, "n_fft", owner)
        self.win_length = _positive_int(win_length or n_fft, "win_length", owner)
        self.hop_length = _positive_int(hop_length or self.win_length // 4, "hop_length", owner)
        self.n_mels = _positive_int(n_mels, "n_mels", owner)
        nyquist = self.sample_rate / 2
        self.f_min = float(f_min)
        self.f_max = float(nyquist if f_max is None else f_max)
        if not 0 <= self.f_min < self.f_max <= nyquist:
            raise ConfigError(f"{owner}: need 0 <= f_min < f_max <= {nyquist} Hz, got f_min={f_min}, f_max={f_max}")
        if mel_scale not in ("htk", "slaney"):
            raise ConfigError(f"{owner}: mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")
        if norm not in (None, "slaney"):
            raise ConfigError(f"{owner}: norm must be None or 'slaney', got {norm!r}")
        if power not in (1.0, 2.0):
            raise ConfigError(f"{owner}: power must be 1 (magnitude) or 2 (power), got {power!r}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"{owner}: win_length {self.win_length} is longer than n_fft {self.n_fft}")
        self.power, self.mel_scale, self.norm, self.to_db, self.top_db = float(power), mel_scale, norm, bool(to_db), top_db
        self.pad_mode = _pad_mode(pad_mode, owner)
        self.transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=self.win_length,
            hop_length=self.hop_length, f_min=self.f_min, f_max=self.f_max, n_mels=self.n_mels,
            power=self.power, norm=norm, mel_scale=mel_scale, pad_mode=pad_mode,
        )
        fb = self.transform.mel_scale.fb
        fb.copy_(torch.from_numpy(_mel_filterbank(self.n_fft, self.sample_rate, self.f_min, self.f_max, self.n_mels,
                                                  mel_scale, norm)).to(fb.dtype))
        self.decibels = _Decibels(self.power, top_db)
        to_mel, to_hz = (_htk_mel, _htk_hz) if mel_scale == "htk" else (_slaney_mel, _slaney_hz)
        self._centres, self._edges = _mel_edges(float(to_mel(self.f_min)), float(to_mel(self.f_max)), self.n_mels, to_hz)

    @property
    def signature(self) -> str:
        """This front end and every setting that decides its values (the Spectrogram's ``frontend``)."""
        return (f"MelSpectrogram(sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
                f"hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}, "
                f"power={self.power}, mel_scale={self.mel_scale!r}, norm={self.norm!r}, to_db={self.to_db}, "
                f"top_db={self.top_db}, pad_mode={self.pad_mode!r})")

    def linear_values(self, wav: torch.Tensor) -> torch.Tensor:
        """``[n_mels, frames]`` mel power or magnitude of a mono waveform ``[samples]`` at ``sample_rate``,
        before any dB."""
        return self._values(wav, None)

    def _values(self, wav: torch.Tensor, decibels: _Decibels | None) -> torch.Tensor:
        return _framewise_power(wav, n_fft=self.n_fft, hop_length=self.hop_length,
                                window=self.transform.spectrogram.window, pad_mode=self.pad_mode, power=self.power,
                                project=self.transform.mel_scale.fb, decibels=decibels)

    def forward(self, audio: Audio | torch.Tensor, sample_rate: int | None = None) -> Spectrogram:
        wav, rate, source = _mono_waveform(audio, sample_rate, self.sample_rate, type(self).__name__)
        values = self._values(wav, self.decibels if self.to_db else None)  # dB block by block, in cache
        num_frames = values.shape[-1]
        return Spectrogram(
            values=values.contiguous(),
            times=np.arange(num_frames) * self.hop_length / rate + _start_of(audio),
            frequencies=self._centres.copy(),
            frequency_edges=self._edges.copy(),
            scale="mel",
            units="dB" if self.to_db else ("power" if self.power == 2.0 else "magnitude"),
            hop_length=self.hop_length,
            sample_rate=rate,
            valid_frames=min(num_frames, wav.shape[-1] // self.hop_length + 1),
            source=source,
            frontend=self.signature,
        )


_KALDI_PRESETS = {
    "audioset": dict(mean=-4.2677393, std=4.5689974, target_frames=1024),
    "esc50": dict(mean=-6.6268077, std=5.358466, target_frames=512),
    "speechcommands": dict(mean=-6.845978, std=5.5654526, target_frames=128),
}


class KaldiFbank(nn.Module):
    """AST's front end: Kaldi log-mel filterbank at 16 kHz, padded/cut to ``target_frames``, normalised.

    The values of ``torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False,
    window_type="hanning", dither=0.0, frame_shift=10)`` (25 ms windows, 10 ms hop, frames not centred:
    only those that fit), zero-padded or cut at the end, then ``(x - mean) / (2 * std)``. Other sample
    rates are resampled to 16 kHz. Computed a block of frames at a time
    (:func:`~audiovis.framewise.block_spectra`): each frame minus its mean, pre-emphasis 0.97, the
    window, zero-padded to 512, power spectrum, Kaldi's mel banks, ``log(max(x, eps))``; only the frames
    kept are computed.

    Args:
        num_mel_bins: mel filters (frequency bins of the output).
        target_frames: frames of the output, padded or cut at the end (None: as many as the audio gives).
        mean: the dataset mean subtracted when normalising.
        std: the dataset standard deviation (the values are divided by twice it).
        normalize: apply ``(x - mean) / (2 * std)``.
    """

    sample_rate = 16000
    frame_length_ms = 25.0
    frame_shift_ms = 10.0

    def __init__(
        self,
        num_mel_bins: int = 128,
        target_frames: int | None = 1024,
        mean: float = -4.2677393,
        std: float = 4.5689974,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.num_mel_bins = _positive_int(num_mel_bins, "num_mel_bins", "KaldiFbank")
        self.target_frames = None if target_frames is None else _positive_int(target_frames, "target_frames", "KaldiFbank")
        if normalize:
            check_number(std, "KaldiFbank: std", low=0, low_open=True, error=ConfigError)
        self.mean, self.std, self.normalize = float(mean), float(std), bool(normalize)
        nyquist = self.sample_rate / 2
        self._centres, self._edges = _mel_edges(float(_kaldi_mel(20.0)), float(_kaldi_mel(nyquist)), self.num_mel_bins, _kaldi_hz)

    @classmethod
    def preset(cls, name: Literal["audioset", "esc50", "speechcommands"], **overrides) -> "KaldiFbank":
        """AST's dataset presets: AudioSet (default), ESC-50, Speech Commands V2."""
        key = name.lower().replace("-", "").replace("_", "").replace(" ", "")
        if key not in _KALDI_PRESETS:
            raise ConfigError(f"unknown KaldiFbank preset {name!r}; choose from {sorted(_KALDI_PRESETS)}")
        return cls(**{**_KALDI_PRESETS[key], **overrides})

    @property
    def hop_length(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @property
    def win_length(self) -> int:
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def signature(self) -> str:
        """This front end and every setting that decides its values (the Spectrogram's ``frontend``); not
        ``target_frames``, which only sets how many frames are kept (``valid_frames`` counts the real ones)."""
        norm = f"mean={self.mean}, std={self.std}" if self.normalize else "normalize=False"
        return f"KaldiFbank(num_mel_bins={self.num_mel_bins}, {norm})"

    def extra_repr(self) -> str:
        return (
            f"num_mel_bins={self.num_mel_bins}, target_frames={self.target_frames}, "
            f"mean={self.mean}, std={self.std}, normalize={self.normalize}"
        )

    #: Kaldi's settings that AST uses (torchaudio.compliance.kaldi.fbank's defaults besides these)
    _preemphasis = 0.97
    _fft_size = 512  # the window rounded up to a power of two
    _low_hz = 20.0

    def _banks(self) -> torch.Tensor:
        """Kaldi's mel banks ``[257, num_mel_bins]`` (torchaudio's own, with the Nyquist bin's zero row)."""
        banks = getattr(self, "_banks_cache", None)
        if banks is None:
            from torchaudio.compliance.kaldi import get_mel_banks

            mel, _ = get_mel_banks(self.num_mel_bins, self._fft_size, float(self.sample_rate), self._low_hz, 0.0,
                                   100.0, -500.0, 1.0)
            banks = torch.nn.functional.pad(mel, (0, 1)).T.contiguous().to(torch.float32)
            self._banks_cache = banks
        return banks

    def _window(self) -> torch.Tensor:
        """Kaldi's "hanning" window (a symmetric Hann window), made once."""
        window = getattr(self, "_window_cache", None)
        if window is None:
            window = self._window_cache = torch.hann_window(self.win_length, periodic=False, dtype=torch.float32)
        return window

    def _log_mel(self, wav: torch.Tensor, normalize: bool, frames: int | None = None) -> torch.Tensor:
        """Kaldi log-mel features ``[bins, frames]`` of a 16 kHz mono waveform of at least ``win_length``
        samples, normalised or not; ``frames``: as many columns, computed or padded (raw zeros) at the end."""
        from torchaudio.compliance import kaldi

        win, hop = self.win_length, self.hop_length
        if wav.shape[-1] < win:
            raise InvalidAudioError(f"KaldiFbank: {wav.shape[-1]} samples are fewer than one {win}-sample frame")
        valid = (wav.shape[-1] - win) // hop + 1
        total = valid if frames is None else frames
        keep = min(valid, total)
        eps = torch.finfo(torch.float32).eps
        if torch.is_grad_enabled() and wav.requires_grad:  # differentiable reference path
            feats = kaldi.fbank(
                wav[None], sample_frequency=self.sample_rate, window_type="hanning",
                num_mel_bins=self.num_mel_bins, htk_compat=True, use_energy=False, dither=0.0,
                frame_shift=self.frame_shift_ms, frame_length=self.frame_length_ms,
            )[:keep].T
            feats = torch.nn.functional.pad(feats, (0, total - keep))
            return (feats - self.mean) / (self.std * 2) if normalize else feats
        mean, scale = self.mean, self.std * 2

        def log(block: torch.Tensor) -> None:  # in place, while the block is in cache
            log_(block.clamp_(min=eps))
            if normalize:
                block.sub_(mean).div_(scale)

        window = self._window()
        out = output(self.num_mel_bins, total, wav)
        block_spectra(snipped_frames(wav, win, hop, keep), keep, fft_size=self._fft_size,
                      prepare=kaldi_prepare(window, self._preemphasis), power=2.0, project=self._banks(),
                      finish=log, out=out[:, :keep])
        if total > keep:  # padding frames: raw zeros, normalised as the features are
            pad = torch.zeros(1)
            out[:, keep:] = ((pad - mean) / scale if normalize else pad)
        return out

    def fbank(self, wav: torch.Tensor) -> torch.Tensor:
        """Raw Kaldi log-mel features ``[frames, bins]`` of a 16 kHz mono waveform ``[samples]`` (at least
        ``win_length`` samples): ``torchaudio.compliance.kaldi.fbank``'s values with this front end's settings."""
        return self._log_mel(wav, normalize=False).T

    def forward(self, audio: Audio | torch.Tensor, sample_rate: int | None = None) -> Spectrogram:
        wav, rate, source = _mono_waveform(audio, sample_rate, self.sample_rate, type(self).__name__)
        if wav.shape[-1] < self.win_length:
            wav = torch.nn.functional.pad(wav, (0, self.win_length - wav.shape[-1]))
        values = self._log_mel(wav, self.normalize, self.target_frames)
        valid = min((wav.shape[-1] - self.win_length) // self.hop_length + 1, values.shape[1])
        num_frames = values.shape[1]
        hop = self.hop_length
        return Spectrogram(
            values=values,
            times=(np.arange(num_frames) * hop + self.win_length / 2) / self.sample_rate + _start_of(audio),
            frequencies=self._centres.copy(),
            frequency_edges=self._edges.copy(),
            scale="mel",
            units="normalized-fbank" if self.normalize else "log",
            hop_length=hop,
            sample_rate=self.sample_rate,
            valid_frames=valid,
            source=source,
            frontend=self.signature,
        )


def load_source(source: object, sample_rate: int | None = None) -> Audio | Spectrogram:
    """What a model runs on, from what the user passed: an Audio or a Spectrogram as it is; a path, array or
    tensor read by :func:`~audiovis.audio.load_audio` (``sample_rate``: a file's rate to resample to, or an
    array's own rate)."""
    if isinstance(source, (Audio, Spectrogram)):
        return source
    return load_audio(source, sample_rate)  # type: ignore[arg-type]
