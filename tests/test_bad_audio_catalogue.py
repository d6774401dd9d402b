"""The bad-audio catalogue: one test per hostile or careless input, each with its expected outcome.

Inputs that are merely unusual (integer PCM, 8 channels, 1 Hz or 384 kHz, one sample) must work;
inputs that are broken must raise an audiovis/OS error that names the input and the problem.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
import soundfile as sf

import audiovis as av
from audiovis.errors import AudioLoadError, InvalidAudioError

from .conftest import make_tone

FRONT_ENDS = [av.KaldiFbank(), av.MelSpectrogram(), av.STFTSpectrogram()]


@pytest.fixture
def pcm16(tmp_path) -> bytes:
    path = tmp_path / "ok.wav"
    sf.write(path, make_tone(seconds=0.5), 16000, subtype="PCM_16")
    return path.read_bytes()


def test_truncated_wav_reads_what_is_there(tmp_path, pcm16):
    path = tmp_path / "truncated.wav"
    path.write_bytes(pcm16[: len(pcm16) // 2 + 1])  # odd length: half a sample at the end
    audio = av.load_audio(path)
    assert audio.num_samples == (len(pcm16) // 2 + 1 - 44) // 2
    np.testing.assert_allclose(audio.numpy()[0], make_tone(seconds=0.5)[: audio.num_samples], atol=1 / 32768)


def test_text_renamed_wav(tmp_path):
    path = tmp_path / "readme.wav"
    path.write_text("RIFF? no, just text\n" * 10)
    with pytest.raises(AudioLoadError, match=r"readme\.wav.*could not be decoded"):
        av.load_audio(path)


def test_zero_length_file(tmp_path):
    path = tmp_path / "zero.wav"
    path.touch()
    with pytest.raises(AudioLoadError, match=r"zero\.wav.*empty file"):
        av.load_audio(path)


def test_header_only_file(tmp_path, pcm16):
    path = tmp_path / "header.wav"
    path.write_bytes(pcm16[:44])
    with pytest.raises(AudioLoadError, match=r"header\.wav"):
        av.load_audio(path)


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        av.load_audio(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.flac"):
        av.load_audio(tmp_path / "missing.flac")


def test_unreadable_permissions():
    """A file without read permission. Root reads any file, so as root the read runs with an unprivileged
    effective uid; any other user simply cannot read a mode-000 file of its own."""
    folder = tempfile.mkdtemp(prefix="audiovis-perm-")  # not under pytest's tmp dir: that is 0700 for root
    os.chmod(folder, 0o755)  # searchable by the unprivileged uid too
    path = os.path.join(folder, "secret.wav")
    sf.write(path, make_tone(seconds=0.1), 16000)
    os.chmod(path, 0o000)
    as_root = os.geteuid() == 0
    try:
        if as_root:
            os.seteuid(65534)
        with pytest.raises(PermissionError, match=r"secret\.wav.*permission denied"):
            av.load_audio(path)
    finally:
        if as_root:
            os.seteuid(0)
        shutil.rmtree(folder)


def test_zero_sample_array():
    with pytest.raises(AudioLoadError, match="no samples"):
        av.load_audio(np.zeros(0, dtype=np.float32), 16000)


@pytest.mark.parametrize("frontend", FRONT_ENDS, ids=lambda f: type(f).__name__)
def test_one_sample_array_gives_a_spectrogram(frontend):
    spec = frontend(av.load_audio(np.array([0.5], dtype=np.float32), 16000))
    assert spec.num_frames >= 1 and spec.valid_frames >= 1
    assert np.isfinite(spec.numpy()).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("frontend", FRONT_ENDS, ids=lambda f: type(f).__name__)
def test_non_finite_samples(frontend, bad):
    wav = make_tone(seconds=0.5)
    wav[777] = bad
    audio = av.load_audio(wav, 16000)  # loading keeps the samples as they are ...
    with pytest.raises(InvalidAudioError, match="sample 777"):  # ... the front end names the position
        frontend(audio)


@pytest.mark.parametrize("dtype,peak", [(np.int16, 2**15), (np.int32, 2**31), (np.uint8, None), (np.float64, None)])
def test_pcm_dtypes_are_converted(dtype, peak):
    ref = make_tone(seconds=0.1, amp=0.5).astype(np.float64)
    if dtype is np.uint8:
        data = np.round(ref * 128 + 128).astype(np.uint8)
        tol = 1 / 128
    elif peak:
        data = np.round(ref * peak).astype(dtype)
        tol = 1 / peak
    else:
        data, tol = ref, 1e-7
    audio = av.load_audio(data, 16000)
    assert audio.waveform.dtype.is_floating_point and str(audio.waveform.dtype) == "torch.float32"
    np.testing.assert_allclose(audio.numpy()[0], ref, atol=tol)


def test_eight_channel_file(tmp_path):
    data = np.stack([make_tone(100.0 * (c + 1), 0.5) for c in range(8)], axis=1)
    path = tmp_path / "eight.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    audio = av.load_audio(path, mono=False)
    assert audio.num_channels == 8
    np.testing.assert_array_equal(audio.numpy(), data.T)
    spec = av.MelSpectrogram()(audio)  # mixed to mono
    ref = av.MelSpectrogram()(av.load_audio(data.mean(axis=1), 16000))
    np.testing.assert_allclose(spec.numpy(), ref.numpy(), atol=1e-3)


@pytest.mark.parametrize("rate", [1, 384000])
def test_extreme_sample_rates(rate):
    samples = 5 if rate == 1 else rate // 2
    audio = av.load_audio(np.random.default_rng(0).uniform(-0.5, 0.5, samples).astype(np.float32), rate)
    assert audio.sample_rate == rate
    spec = av.KaldiFbank()(audio)  # resampled to 16 kHz
    assert spec.shape == (128, 1024)
    assert spec.valid_frames == (round(samples * 16000 / rate) - 400) // 160 + 1
    assert np.isfinite(spec.numpy()).all()


def test_two_hour_file_read_by_segment(tmp_path, monkeypatch):
    rate = 8000
    path = tmp_path / "two_hours.wav"
    block = (0.1 * np.sin(np.arange(rate * 60) * 0.05)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for _ in range(120):
            f.write(block)
    requested: list[int] = []
    original = sf.SoundFile.read
    monkeypatch.setattr(sf.SoundFile, "read", lambda self, frames=-1, *a, **k: requested.append(frames) or original(self, frames, *a, **k))
    audio = av.load_audio(path, offset=3600.0 + 30.0, duration=2.0)
    assert requested == [2 * rate]  # only the segment is read
    np.testing.assert_allclose(audio.numpy()[0], block[30 * rate: 32 * rate], atol=1 / 32768)


def test_clip_shorter_than_one_patch_is_padded_with_padding_visible():
    audio = av.load_audio(make_tone(seconds=0.1), 16000)  # 8 frames < one 16-frame patch
    spec = av.KaldiFbank()(audio)
    assert spec.shape == (128, 1024) and spec.valid_frames == 8
    grid = av.PatchGrid()
    first = grid.bounds(grid.index(0, 0))
    assert first.time_end > spec.valid_frames  # the first patch reaches into the padding
    pad_value = np.float32((0 + 4.2677393) / (2 * 4.5689974))
    assert np.all(spec.numpy()[:, spec.valid_frames:] == pad_value)
