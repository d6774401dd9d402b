"""Shared fixtures: generated sounds (tones, chirps, espeak-ng speech) and sound files on disk."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from .ci import skip_or_fail


def make_tone(freq: float = 440.0, seconds: float = 1.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_chirp(f0: float = 200.0, f1: float = 6000.0, seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    rng = np.random.default_rng(0)
    return (0.4 * np.sin(phase) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture
def tone() -> np.ndarray:
    return make_tone()


@pytest.fixture
def chirp() -> np.ndarray:
    return make_chirp()


def _need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed; CI requires it (apt-get install {name})")
    return path


@pytest.fixture(scope="session")
def speech_16k(tmp_path_factory) -> np.ndarray:
    """A few seconds of espeak-ng speech at 16 kHz, mono float32."""
    espeak = _need_tool("espeak-ng")
    out = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(
        [espeak, "-w", str(out), "-s", "150", "Audio spectrogram transformers cut sound into patches."],
        check=True, capture_output=True,
    )
    data, sr = sf.read(out, dtype="float32")
    if sr != 16000:
        import torch
        import torchaudio.functional as AF

        data = AF.resample(torch.from_numpy(data)[None], sr, 16000)[0].numpy()
    return data


@pytest.fixture
def wav_file(tmp_path):
    """Write ``data`` ([samples] or [samples, channels]) to a file; returns its path."""

    def write(data: np.ndarray, sr: int = 16000, name: str = "clip.wav", **kw) -> str:
        path = tmp_path / name
        sf.write(path, data, sr, **kw)
        return str(path)

    return write
