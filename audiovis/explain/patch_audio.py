"""The sound of some patches: a window's waveform reduced to their time-frequency region.

The waveform (at the model's sample rate) goes through an STFT (Hann window of about 32 ms, hop a
quarter of it); a mask is 1 on every STFT cell whose frame centre lies inside a selected patch's
time span and whose bin centre lies inside its band, the band being the patch's bins mapped to Hz by
the spectrogram's band edges (a mel or fbank band covers its Hz edges, as the viewer's axes show);
the mask's edges are softened by one STFT bin and one frame outside the region (never lowering it
inside), and the inverse STFT gives the sound back, same length and rate. The mask of every patch is
1 over the whole patch-covered area, so that sound equals the window's audio there (STFT/iSTFT with
this window and hop reconstruct exactly up to float rounding).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from ..audio import Audio
from ..patches import Box, PatchGrid
from ..spectrogram import Spectrogram

#: STFT window length in seconds (rounded up to a power of two of samples).
WINDOW_SECONDS = 0.032


def stft_size(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` for ``sample_rate``: the power of two nearest :data:`WINDOW_SECONDS`, hop a quarter."""
    n_fft = 1 << max(4, int(round(np.log2(WINDOW_SECONDS * sample_rate))))
    return n_fft, n_fft // 4


def patch_boxes(grid: PatchGrid, spectrogram: Spectrogram, patches: np.ndarray, time_shift: float) -> list[Box]:
    """Each patch's footprint in seconds from the start of the waveform and Hz.

    ``time_shift`` is the spectrogram time (s) of the waveform's first sample.
    """
    boxes = []
    for p in patches:
        b = grid.bounds_hz_s(int(p), spectrogram)
        boxes.append(Box(b.time_start - time_shift, b.time_end - time_shift, b.freq_start, b.freq_end))
    return boxes


def region_mask(boxes: Sequence[Box], frame_times: np.ndarray, bin_hz: np.ndarray) -> np.ndarray:
    """``[bins, frames]`` float mask: 1 where a cell's centre lies in some box (half-open), softened outside."""
    mask = np.zeros((len(bin_hz), len(frame_times)), dtype=np.float32)
    for b in boxes:
        rows = (bin_hz >= b.freq_start) & (bin_hz < b.freq_end)
        cols = (frame_times >= b.time_start) & (frame_times < b.time_end)
        mask[np.ix_(rows, cols)] = 1.0
    return soften(mask)


def soften(mask: np.ndarray) -> np.ndarray:
    """``mask`` with a half-height ring one cell wide around it (diagonals a quarter): fewer clicks and
    less ringing than a hard edge; values inside stay 1."""
    padded = np.pad(mask, 1)
    ring = np.zeros_like(mask)
    for df, dt, w in ((-1, 0, 0.5), (1, 0, 0.5), (0, -1, 0.5), (0, 1, 0.5),
                      (-1, -1, 0.25), (-1, 1, 0.25), (1, -1, 0.25), (1, 1, 0.25)):
        np.maximum(ring, w * padded[1 + df: 1 + df + mask.shape[0], 1 + dt: 1 + dt + mask.shape[1]], out=ring)
    return np.maximum(mask, ring)


def masked_waveform(wav: torch.Tensor, sample_rate: int, boxes: Sequence[Box]) -> torch.Tensor:
    """The mono waveform ``wav`` ``[samples]`` kept only inside ``boxes`` (seconds from its start, Hz)."""
    n_fft, hop = stft_size(sample_rate)
    length = int(wav.shape[-1])
    window = torch.hann_window(n_fft, dtype=torch.float64)
    signal = wav.detach().to(torch.float64).cpu()
    spec = torch.stft(signal, n_fft, hop_length=hop, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    frame_times = np.arange(spec.shape[-1]) * hop / sample_rate
    bin_hz = np.arange(spec.shape[0]) * sample_rate / n_fft
    mask = torch.from_numpy(region_mask(boxes, frame_times, bin_hz).astype(np.float64))
    out = torch.istft(spec * mask, n_fft, hop_length=hop, window=window, center=True, length=length)
    return out.to(torch.float32)


def window_patch_audio(audio: Audio, grid: PatchGrid, spectrogram: Spectrogram, patches: np.ndarray, *,
                       window_start: float) -> Audio:
    """The window's ``audio`` reduced to the region of ``patches`` (token indices, already checked).

    Args:
        audio: the window's sound (any rate and channels: mixed to mono, resampled to the spectrogram's rate).
        grid: the model's patches on ``spectrogram``.
        spectrogram: the window's model input, whose axes place the patches in seconds and Hz.
        patches: token indices.
        window_start: the spectrogram time (s) of the audio's first sample.

    Returns:
        An Audio of the window's length at the spectrogram's rate (other fields, e.g. where it starts, kept).
    """
    mono = audio.to_mono().resample(spectrogram.sample_rate)
    boxes = patch_boxes(grid, spectrogram, patches, window_start)
    wav = masked_waveform(mono.waveform[0], spectrogram.sample_rate, boxes)
    return dataclasses.replace(mono, waveform=wav[None].contiguous())


def frame_boxes(grid: PatchGrid, spectrogram: Spectrogram, patches: Sequence[int], frame_offset: int = 0) -> list[Box]:
    """Each patch's footprint in seconds (on the spectrogram's clock) and Hz, the grid's frame 0 lying at
    frame ``frame_offset`` of ``spectrogram`` (a viewer showing one window of a long recording)."""
    boxes = []
    for p in patches:
        b = grid.bounds(int(p))
        t0, t1 = spectrogram.frame_to_time([b.time_start + frame_offset, b.time_end + frame_offset])
        f0, f1 = spectrogram.bin_to_hz([b.freq_start, b.freq_end])
        boxes.append(Box(float(t0), float(t1), float(f0), float(f1)))
    return boxes


def region_audio(samples: np.ndarray, sample_rate: int, audio_start: float, boxes: Sequence[Box],
                 rate: int) -> tuple[np.ndarray, float]:
    """The sound inside ``boxes`` (s on the audio's clock, Hz), cut to their time span: what "▶ patches" plays.

    Only the span plus one STFT window of context on each side is transformed (a long recording is not).

    Args:
        samples: mono samples ``[n]`` whose first plays at ``audio_start`` seconds.
        sample_rate: their rate.
        audio_start: the clock time of the first sample.
        boxes: the regions.
        rate: the rate to work and answer at (the spectrogram's).

    Returns:
        ``(float32 samples at rate, clock time of the first)``; a ValueError when the boxes miss the audio.
    """
    end = audio_start + len(samples) / sample_rate
    t0 = max(audio_start, min(b.time_start for b in boxes))
    t1 = min(end, max(b.time_end for b in boxes))
    if t1 <= t0:
        raise ValueError(f"the selected patches ({t0:.3f}-{t1:.3f} s) lie outside the audio ({audio_start:.3f}-{end:.3f} s)")
    context = 2 * WINDOW_SECONDS
    first = max(0, int(np.floor((t0 - context - audio_start) * sample_rate)))
    last = min(len(samples), int(np.ceil((t1 + context - audio_start) * sample_rate)))
    part = torch.from_numpy(np.ascontiguousarray(samples[first:last], dtype=np.float32))
    if sample_rate != rate:
        import torchaudio.functional as AF

        part = AF.resample(part[None], sample_rate, rate)[0]
    cut_start = audio_start + first / sample_rate
    shifted = [Box(b.time_start - cut_start, b.time_end - cut_start, b.freq_start, b.freq_end) for b in boxes]
    out = masked_waveform(part, rate, shifted).numpy()
    begin = int(round((t0 - cut_start) * rate))
    count = int(round((t1 - t0) * rate))
    return np.ascontiguousarray(out[begin: begin + count], dtype=np.float32), cut_start + begin / rate
