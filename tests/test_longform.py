"""Chunked front ends (audiovis.longform) against the one-shot computation of the same front end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
import audiovis.longform as longform
from audiovis.errors import ConfigError
from audiovis.longform import chunked_spectrogram

FRONT_ENDS = {
    "stft-db": lambda: av.STFTSpectrogram(n_fft=512, hop_length=128),
    "stft-odd-reflect-power": lambda: av.STFTSpectrogram(n_fft=401, hop_length=100, win_length=300,
                                                         to_db=False, pad_mode="reflect"),
    "mel-db": lambda: av.MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=160),
    "mel-slaney-magnitude": lambda: av.MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=200, power=1.0,
                                                      mel_scale="slaney", norm="slaney", to_db=False, n_mels=64),
    "kaldi": lambda: av.KaldiFbank(target_frames=None),
}


def _noisy_events(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Quiet noise with a few loud tone bursts, [samples, channels] (soundfile's layout)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = 0.01 * rng.standard_normal((n, channels))
    t = np.arange(n) / sr
    for start, freq in ((0.7, 1000.0), (2.05, 3000.0), (seconds - 0.4, 500.0)):
        burst = (t >= start) & (t < start + 0.15)
        x[burst] += 0.5 * np.sin(2 * np.pi * freq * t[burst])[:, None]
    return x.astype(np.float32)


def assert_same_spectrogram(got: av.Spectrogram, ref: av.Spectrogram, atol: float) -> None:
    assert got.shape == ref.shape
    scale = float(ref.values.abs().max())
    torch.testing.assert_close(got.values, ref.values, rtol=1e-5, atol=atol * max(1.0, scale))
    np.testing.assert_array_equal(got.times, ref.times)
    np.testing.assert_array_equal(got.frequencies, ref.frequencies)
    np.testing.assert_array_equal(got.frequency_edges, ref.frequency_edges)
    assert (got.scale, got.units, got.hop_length, got.sample_rate, got.valid_frames) == (
        ref.scale, ref.units, ref.hop_length, ref.sample_rate, ref.valid_frames)


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
@pytest.mark.parametrize("chunk_seconds", [0.004, 0.37, 1.0, 100.0])
def test_chunked_equals_one_shot_at_native_rate(name, chunk_seconds, wav_file):
    # 3.01 s: frames do not divide evenly into chunks; 0.004 s chunks hold one or two frames each.
    path = wav_file(_noisy_events(3.01, 16000), 16000, subtype="FLOAT")
    frontend = FRONT_ENDS[name]()
    ref = frontend(av.load_audio(path))
    got = chunked_spectrogram(frontend, path, chunk_seconds=chunk_seconds)
    # Per-frame transforms read the same samples: equal up to float summation order (measured 0 to 2e-6).
    assert_same_spectrogram(got, ref, atol=1e-6)


@pytest.mark.parametrize("name", ["mel-db", "kaldi", "stft-db"])
def test_chunked_equals_one_shot_from_stereo_44k_file(name, wav_file):
    """Mel and Kaldi resample 44.1 kHz to 16 kHz in chunks too (margins of the sinc filter, then trim)."""
    path = wav_file(_noisy_events(4.3, 44100, channels=2), 44100, subtype="FLOAT")
    frontend = FRONT_ENDS[name]()
    ref = frontend(av.load_audio(path))
    got = chunked_spectrogram(frontend, path, chunk_seconds=0.9)
    assert_same_spectrogram(got, ref, atol=1e-5)


def test_in_memory_audio_and_progress():
    audio = av.load_audio(_noisy_events(2.5, 16000)[:, 0], 16000)
    frontend = av.KaldiFbank(target_frames=None)
    seen: list[tuple[int, int]] = []
    got = chunked_spectrogram(frontend, audio, chunk_seconds=0.5, progress=lambda done, total: seen.append((done, total)))
    assert_same_spectrogram(got, frontend(audio), atol=1e-6)
    total = got.num_frames
    assert [d for d, _ in seen] == sorted({min(total, k * 50) for k in range(1, total // 50 + 2)})
    assert all(t == total for _, t in seen)


def test_top_db_floor_uses_the_global_maximum(wav_file):
    """The loudest sound is in the last chunk: a floor taken per chunk would clip the quiet chunks wrongly."""
    sr = 16000
    x = 1e-3 * np.random.default_rng(1).standard_normal(sr * 4).astype(np.float32)
    t = np.arange(sr) / sr
    x[3 * sr:] += (0.9 * np.sin(2 * np.pi * 800 * t)).astype(np.float32)
    path = wav_file(x, sr, subtype="FLOAT")
    frontend = av.MelSpectrogram(sample_rate=sr, hop_length=160, top_db=40.0)
    ref = frontend(av.load_audio(path))
    got = chunked_spectrogram(frontend, path, chunk_seconds=1.0)
    assert_same_spectrogram(got, ref, atol=1e-6)
    peak = float(got.values.max())
    first_chunk = got.values[:, :90]
    assert float(first_chunk.min()) == pytest.approx(peak - 40.0)  # the floor of the whole recording
    assert float(first_chunk.max()) < peak - 20.0  # the first chunk alone would have set a lower floor


def test_file_is_read_by_segments(monkeypatch, wav_file):
    sr, seconds, chunk = 16000, 6.0, 1.0
    path = wav_file(_noisy_events(seconds, sr), sr, subtype="FLOAT")
    reads: list[tuple[float, float]] = []
    real = longform.load_audio

    def spy(source, *args, **kwargs):
        reads.append((kwargs["offset"], kwargs["duration"]))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(longform, "load_audio", spy)
    frontend = av.MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=160)
    got = chunked_spectrogram(frontend, path, chunk_seconds=chunk)
    assert len(reads) == -(-got.num_frames // 100)
    context = 2 * 1024 / sr  # at most one window of context on either side
    assert max(d for _, d in reads) <= chunk + context
    assert reads[0][0] == 0.0 and reads[-1][0] + reads[-1][1] == pytest.approx(seconds)


def test_errors_name_the_problem(wav_file, tmp_path):
    path = wav_file(_noisy_events(0.5, 16000), 16000)
    with pytest.raises(ConfigError, match="target_frames=None"):
        chunked_spectrogram(av.KaldiFbank(), path)
    with pytest.raises(ConfigError, match="STFTSpectrogram, MelSpectrogram and KaldiFbank"):
        chunked_spectrogram(torch.nn.Identity(), path)
    with pytest.raises(ConfigError, match="chunk_seconds"):
        chunked_spectrogram(av.STFTSpectrogram(), path, chunk_seconds=0)
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        chunked_spectrogram(av.STFTSpectrogram(), tmp_path / "nowhere.wav")
    with pytest.raises(av.AudioLoadError, match="file path or an Audio"):
        chunked_spectrogram(av.STFTSpectrogram(), np.zeros(16000, dtype=np.float32))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(av.AudioLoadError, match="bad.wav"):
        chunked_spectrogram(av.STFTSpectrogram(), bad)
