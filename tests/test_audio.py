"""Audio and load_audio: formats, conversions, segment reads, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch

import audiovis as av
from audiovis.errors import AudioLoadError

from .ci import skip_or_fail


def test_wav_roundtrip_keeps_samples(wav_file, tone):
    path = wav_file(tone, 16000, subtype="FLOAT")
    audio = av.load_audio(path)
    assert audio.sample_rate == 16000
    assert audio.waveform.dtype == torch.float32 and audio.waveform.shape == (1, tone.size)
    np.testing.assert_array_equal(audio.numpy()[0], tone)
    assert audio.source == path and "16000 Hz" in repr(audio) and "clip.wav" in repr(audio)


@pytest.mark.parametrize("name,fmt,subtype,tol", [
    ("a.flac", "FLAC", "PCM_16", 1 / 32768),
    ("a.ogg", "OGG", "VORBIS", 0.05),
    ("a.wav", "WAV", "PCM_24", 1 / 2**23),
])
def test_compressed_and_integer_formats(tmp_path, tone, name, fmt, subtype, tol):
    path = tmp_path / name
    sf.write(path, tone, 16000, format=fmt, subtype=subtype)
    audio = av.load_audio(path)
    assert audio.num_samples == tone.size
    assert np.max(np.abs(audio.numpy()[0] - tone)) <= tol + 1e-7


def test_mp3_when_libsndfile_supports_it(tmp_path, tone):
    if "MP3" not in sf.available_formats():  # soundfile's own wheels (libsndfile >= 1.1) read and write MP3
        skip_or_fail(f"this libsndfile ({sf.__libsndfile_version__}) has no MP3 support; CI needs soundfile >= 0.12")
    path = tmp_path / "a.mp3"
    sf.write(path, tone, 16000, format="MP3")
    audio = av.load_audio(path)
    assert audio.sample_rate == 16000
    assert abs(audio.num_samples - tone.size) < 2000  # encoder delay/padding
    decoded = audio.numpy()[0]
    spectrum = np.abs(np.fft.rfft(decoded * np.hanning(decoded.size)))
    peak_hz = np.argmax(spectrum) * 16000 / decoded.size
    assert abs(peak_hz - 440.0) < 2.0, peak_hz  # the tone came back, not noise or silence
    assert 0.3 < np.sqrt(np.mean(decoded**2)) / np.sqrt(np.mean(tone**2)) < 1.5


def test_stereo_file_mono_and_channels(wav_file, tone):
    stereo = np.stack([tone, -0.5 * tone], axis=1)
    path = wav_file(stereo, 16000, subtype="FLOAT")
    both = av.load_audio(path, mono=False)
    assert both.num_channels == 2
    np.testing.assert_allclose(both.numpy(), stereo.T)
    mono = av.load_audio(path)
    np.testing.assert_allclose(mono.numpy()[0], stereo.mean(axis=1), atol=1e-7)


def test_integer_arrays_are_scaled():
    i16 = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_allclose(av.load_audio(i16, 8000).numpy()[0], [-1.0, 0.0, 0.5, 32767 / 32768])
    i32 = np.array([-(2**31), 2**30], dtype=np.int32)
    np.testing.assert_allclose(av.load_audio(i32, 8000).numpy()[0], [-1.0, 0.5])
    u8 = np.array([0, 128, 192], dtype=np.uint8)
    np.testing.assert_allclose(av.load_audio(u8, 8000).numpy()[0], [-1.0, 0.0, 0.5])
    f64 = np.array([0.25, -0.5], dtype=np.float64)
    out = av.load_audio(f64, 8000)
    assert out.waveform.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy()[0], [0.25, -0.5])


def test_array_layouts_and_tensors():
    samples_first = np.zeros((1000, 2), dtype=np.float32)
    samples_first[:, 1] = 1.0
    audio = av.load_audio(samples_first, 8000, mono=False)
    assert audio.waveform.shape == (2, 1000) and float(audio.waveform[1].mean()) == 1.0
    t = torch.linspace(-1, 1, 500, dtype=torch.float64)
    out = av.load_audio(t, 8000)
    assert out.waveform.shape == (1, 500) and out.waveform.dtype == torch.float32


def test_resample_matches_torchaudio(wav_file, tone):
    import torchaudio.functional as AF

    path = wav_file(tone, 16000, subtype="FLOAT")
    audio = av.load_audio(path, sample_rate=8000)
    ref = AF.resample(torch.from_numpy(tone)[None], 16000, 8000)
    assert audio.sample_rate == 8000
    torch.testing.assert_close(audio.waveform, ref)
    assert av.load_audio(audio, 16000).sample_rate == 16000


def test_segment_read_equals_full_read_then_slice(wav_file, chirp):
    path = wav_file(chirp, 16000, subtype="FLOAT")
    full = av.load_audio(path).numpy()[0]
    part = av.load_audio(path, offset=0.5, duration=0.25).numpy()[0]
    np.testing.assert_array_equal(part, full[8000:12000])
    tail = av.load_audio(path, offset=1.5).numpy()[0]
    np.testing.assert_array_equal(tail, full[24000:])


def test_segment_read_seeks_instead_of_reading_all(wav_file, chirp, monkeypatch):
    path = wav_file(chirp, 16000, subtype="FLOAT")
    requested: list[int] = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    av.load_audio(path, offset=1.0, duration=0.1)
    assert requested == [1600]


def test_audio_methods():
    wav = torch.stack([torch.ones(16000), torch.zeros(16000)])
    audio = av.Audio(wav, 16000)
    assert audio.duration == 1.0 and audio.num_channels == 2
    assert audio.to_mono().waveform.shape == (1, 16000)
    assert float(audio.to_mono().waveform.mean()) == 0.5
    seg = audio.segment(0.25, 0.5)
    assert seg.num_samples == 4000
    assert audio.resample(8000).num_samples == 8000
    assert isinstance(audio.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="before its start"):
        audio.segment(0.5, 0.25)


# --- errors -------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        av.load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        av.load_audio(tmp_path)


def test_text_file_is_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not a sound")
    with pytest.raises(AudioLoadError, match="notes.wav.*could not be decoded"):
        av.load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioLoadError, match="empty file"):
        av.load_audio(path)


def test_header_only_and_truncated_wav(tmp_path, wav_file, tone):
    good = wav_file(tone, 16000)
    data = open(good, "rb").read()
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(data[:44])
    with pytest.raises(AudioLoadError, match="header.wav"):
        av.load_audio(header_only)
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(data[: 44 + 2 * 1000])
    audio = av.load_audio(truncated)  # libsndfile reads what is there
    assert audio.num_samples == 1000
    np.testing.assert_allclose(audio.numpy()[0], tone[:1000], atol=1 / 32768)


def test_offset_past_end(wav_file, tone):
    path = wav_file(tone, 16000)
    with pytest.raises(AudioLoadError, match="past the end"):
        av.load_audio(path, offset=5.0)
    with pytest.raises(ValueError, match="offset"):
        av.load_audio(path, offset=-1.0)
    with pytest.raises(ValueError, match="duration"):
        av.load_audio(path, duration=0)


@pytest.mark.parametrize("bad,match", [
    (np.zeros(0, dtype=np.float32), "no samples"),
    (np.zeros((2, 0), dtype=np.float32), "no samples"),
    (np.zeros((2, 2, 10), dtype=np.float32), "3 dimensions"),
    (np.array(1.0), "0 dimensions"),
    (np.array(["a", "b"]), "not audio"),
])
def test_bad_arrays(bad, match):
    with pytest.raises(AudioLoadError, match=match):
        av.load_audio(bad, 16000)


def test_array_needs_rate_and_valid_rate(tone):
    with pytest.raises(AudioLoadError, match="sample_rate"):
        av.load_audio(tone)
    for rate in (0, -16000, float("nan"), 16000.5, "16k"):
        with pytest.raises(AudioLoadError, match="sample_rate"):
            av.load_audio(tone, rate)


def test_unsupported_source_types():
    with pytest.raises(AudioLoadError, match="list"):
        av.load_audio([0.1, 0.2], 16000)
    with pytest.raises(AudioLoadError, match="dict"):
        av.load_audio({"a": 1}, 16000)


def _source(kind, wav_file, tone):
    if kind == "path":
        return wav_file(tone, 16000)
    if kind == "pathlib":
        from pathlib import Path

        return Path(wav_file(tone, 16000))
    if kind == "numpy":
        return tone
    if kind == "tensor":
        return torch.from_numpy(tone)
    return av.Audio(torch.from_numpy(tone)[None], 16000, "tone.wav")


SOURCE_KINDS = ["path", "pathlib", "numpy", "tensor", "Audio"]
SOURCE_NAMES = {"path": "clip.wav", "pathlib": "clip.wav", "numpy": r"array of shape \(16000,\)",
                "tensor": r"array of shape \(16000,\)", "Audio": r"Audio\(1 ch, 16000 Hz"}


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("offset,duration,problem", [
    (-1.0, None, "offset"), (float("nan"), None, "offset"), (float("inf"), None, "offset"), ("1.0", None, "offset"),
    (0.0, 0.0, "duration"), (0.0, -0.5, "duration"), (0.0, float("nan"), "duration"), (0.0, float("inf"), "duration"),
])
def test_bad_offset_or_duration_rejected_for_every_source(kind, offset, duration, problem, wav_file, tone):
    """Arrays and Audio used to read from 0 for offset=-1 where a path raised: now every source raises."""
    source = _source(kind, wav_file, tone)
    bad = re.escape(repr(offset if problem == "offset" else duration))
    with pytest.raises(ValueError, match=rf"{SOURCE_NAMES[kind]}.*: {problem} must be .*, got {bad}$"):
        av.load_audio(source, 16000 if kind in ("numpy", "tensor") else None, offset=offset, duration=duration)


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_good_segment_is_the_same_for_every_source(kind, wav_file, tone):
    source = _source(kind, wav_file, tone)
    part = av.load_audio(source, 16000 if kind in ("numpy", "tensor") else None, offset=0.25, duration=0.5)
    np.testing.assert_allclose(part.numpy()[0], tone[4000:12000], atol=1 / 32768)


@pytest.mark.parametrize("kind", ["numpy", "Audio"])
def test_offset_past_the_end_of_an_array_names_it(kind, wav_file, tone):
    with pytest.raises(AudioLoadError, match=rf"{SOURCE_NAMES[kind]}.*offset 5.0 s.*holds no samples"):
        av.load_audio(_source(kind, wav_file, tone), 16000 if kind == "numpy" else None, offset=5.0)


def test_audio_segment_outside_the_clip_is_named_and_never_counts_from_the_end():
    """segment(100, 200) of a 1 s clip gave an empty Audio; segment(-3, -1) gave samples counted from the
    clip's end (Python's negative slicing); a NaN start raised "cannot convert float NaN to integer"."""
    clip = av.load_audio(np.arange(16000, dtype=np.float32) / 16000, 16000)
    with pytest.raises(ValueError, match=r"^segment 100-200 s holds no samples: the clip is 1\.000 s long"):
        clip.segment(100, 200)
    with pytest.raises(ValueError, match=r"^segment 1\.5-end s holds no samples"):
        clip.segment(1.5)
    with pytest.raises(ValueError, match=r"^segment -3--1 s holds no samples"):
        clip.segment(-3, -1)
    with pytest.raises(ValueError, match=r"segment start must be a number of seconds, got nan"):
        clip.segment(float("nan"), 1)
    with pytest.raises(ValueError, match=r"segment end must be a number of seconds, or None, got '2'"):
        clip.segment(0, "2")
    np.testing.assert_array_equal(clip.segment(-1, 0.5).numpy()[0], clip.numpy()[0, :8000])  # clipped to the clip
    assert clip.segment(0.5, 5).num_samples == 8000 and clip.segment(0.25, 0.25).num_samples == 0


@pytest.mark.parametrize("rate", [0, -8000, 16000.5, float("nan"), "16k"])
def test_bad_target_rate_for_a_file_names_the_file_before_reading(rate, wav_file, tone, monkeypatch):
    path = wav_file(tone, 16000)

    def no_read(*args, **kwargs):
        raise AssertionError("the file was opened before the rate was checked")

    monkeypatch.setattr(sf, "SoundFile", no_read)
    with pytest.raises(AudioLoadError, match=rf"clip\.wav.*sample_rate must be a positive"):
        av.load_audio(path, sample_rate=rate)


@pytest.mark.parametrize("rate", [0, -8000, 16000.5])
def test_bad_target_rate_for_audio_names_it(rate, tone):
    audio = av.Audio(torch.from_numpy(tone)[None], 16000, "tone.wav")
    with pytest.raises(AudioLoadError, match=r"Audio\(.*tone\.wav.*sample_rate must be a positive"):
        av.load_audio(audio, sample_rate=rate)
