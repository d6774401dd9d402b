"""Front ends against independent references: transformers' ASTFeatureExtractor and librosa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.errors import ConfigError, InvalidAudioError

from .conftest import make_chirp, make_tone


def _ast_extractor(**kw):
    from transformers import ASTFeatureExtractor

    return ASTFeatureExtractor(**kw)  # constructed locally: no hub access


def _sound(name, request):
    """A test sound at 16 kHz; only "speech" needs espeak-ng (the speech_16k fixture)."""
    if name == "speech":
        return request.getfixturevalue("speech_16k")
    return {
        "tone": lambda: make_tone(1000.0, 3.0),
        "chirp": lambda: make_chirp(100.0, 7000.0, 4.0),
        "long": lambda: make_chirp(300.0, 3000.0, 12.0),  # longer than 1024 frames: cut
    }[name]()


@pytest.mark.parametrize("name", ["tone", "chirp", "speech", "long"])
def test_kaldi_fbank_equals_ast_feature_extractor(name, request):
    wav = _sound(name, request)
    ref = _ast_extractor()(wav, sampling_rate=16000, return_tensors="np")["input_values"][0]  # [time, freq]
    spec = av.KaldiFbank()(av.load_audio(wav, 16000))
    assert spec.shape == (128, 1024) and ref.shape == (1024, 128)
    assert np.max(np.abs(spec.numpy().T - ref)) <= 1e-5
    assert spec.valid_frames == min(1024, (len(wav) - 400) // 160 + 1)
    assert spec.units == "normalized-fbank" and spec.scale == "mel"


@pytest.mark.parametrize("preset,mean,std,frames", [
    ("esc50", -6.6268077, 5.358466, 512),
    ("speechcommands", -6.845978, 5.5654526, 128),
])
def test_kaldi_presets_equal_extractor_with_same_stats(preset, mean, std, frames):
    wav = make_chirp(200.0, 5000.0, 2.0)
    ref = _ast_extractor(mean=mean, std=std, max_length=frames)(wav, sampling_rate=16000, return_tensors="np")
    spec = av.KaldiFbank.preset(preset)(av.load_audio(wav, 16000))
    assert spec.shape == (128, frames)
    assert np.max(np.abs(spec.numpy().T - ref["input_values"][0])) <= 1e-5


def test_kaldi_resamples_other_rates():
    import torchaudio.functional as AF

    wav44 = make_chirp(200.0, 8000.0, 2.0, sr=44100)
    direct = av.KaldiFbank()(av.load_audio(wav44, 44100))
    wav16 = AF.resample(torch.from_numpy(wav44)[None], 44100, 16000)[0].numpy()
    ref = _ast_extractor()(wav16, sampling_rate=16000, return_tensors="np")["input_values"][0]
    assert np.max(np.abs(direct.numpy().T - ref)) <= 1e-5


def test_kaldi_axes():
    spec = av.KaldiFbank()(av.load_audio(make_tone(), 16000))
    assert spec.times[0] == pytest.approx(0.0125) and spec.hop_seconds == pytest.approx(0.01)
    # Kaldi's mel filters span 20 Hz..Nyquist; their centres are evenly spaced in mel (1127 ln(1 + f/700)).
    mel = 1127 * np.log1p(spec.frequencies / 700)
    assert np.allclose(np.diff(mel), np.diff(mel)[0])
    assert spec.frequency_edges[0] > 20 and spec.frequency_edges[-1] < 8000
    assert np.all(np.diff(spec.frequency_edges) > 0)
    assert np.all((spec.frequency_edges[:-1] < spec.frequencies) & (spec.frequencies < spec.frequency_edges[1:]))


def test_kaldi_short_clip_is_padded_with_padding_visible():
    spec = av.KaldiFbank()(av.load_audio(make_tone(seconds=0.05), 16000))
    assert spec.shape == (128, 1024) and spec.valid_frames == 3
    tiny = av.KaldiFbank()(av.load_audio(np.full(10, 0.1, dtype=np.float32), 16000))
    assert tiny.valid_frames == 1
    padded = spec.numpy()[:, spec.valid_frames:]
    assert np.allclose(padded, (0.0 - -4.2677393) / (2 * 4.5689974))  # zero fbank, normalised


@pytest.mark.parametrize("mel_scale,norm", [("htk", None), ("slaney", "slaney"), ("htk", "slaney")])
@pytest.mark.parametrize("name", ["speech", "chirp", "tone"])
def test_mel_spectrogram_equals_librosa(name, mel_scale, norm, request):
    import librosa

    wav = _sound(name, request)
    kw = dict(n_fft=1024, hop_length=256, n_mels=80, f_min=50.0, f_max=7600.0)
    spec = av.MelSpectrogram(sample_rate=16000, mel_scale=mel_scale, norm=norm, to_db=False, **kw)(av.load_audio(wav, 16000))
    ref = librosa.feature.melspectrogram(
        y=wav, sr=16000, n_fft=1024, hop_length=256, n_mels=80, fmin=50.0, fmax=7600.0,
        htk=mel_scale == "htk", norm=norm, power=2.0, center=True, pad_mode="constant",
    )
    assert spec.shape == ref.shape
    rel = np.abs(spec.numpy() - ref) / (np.abs(ref) + 1e-6 * ref.max())
    assert rel.max() <= 1e-4
    # bin centres equal librosa's mel frequencies (its n_mels + 2 points, inner ones)
    pts = librosa.mel_frequencies(n_mels=82, fmin=50.0, fmax=7600.0, htk=mel_scale == "htk")
    np.testing.assert_allclose(spec.frequencies, pts[1:-1], rtol=1e-6)


def test_mel_db_equals_librosa_power_to_db():
    import librosa

    wav = make_chirp()
    spec = av.MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64, top_db=80.0)(av.load_audio(wav, 16000))
    power = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=512, hop_length=160, n_mels=64, htk=True, norm=None, pad_mode="constant")
    ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0)
    assert spec.units == "dB"
    assert np.max(np.abs(spec.numpy() - ref)) <= 1e-3


def test_stft_equals_librosa():
    import librosa

    wav = make_chirp()
    spec = av.STFTSpectrogram(n_fft=512, hop_length=128, power=1.0, to_db=False)(av.load_audio(wav, 16000))
    ref = np.abs(librosa.stft(wav, n_fft=512, hop_length=128, window="hann", center=True, pad_mode="constant"))
    assert spec.shape == ref.shape and spec.units == "magnitude" and spec.scale == "linear"
    assert np.max(np.abs(spec.numpy() - ref)) <= 1e-4 * ref.max()
    np.testing.assert_allclose(spec.frequencies, librosa.fft_frequencies(sr=16000, n_fft=512))
    np.testing.assert_allclose(spec.times, librosa.frames_to_time(np.arange(ref.shape[1]), sr=16000, hop_length=128))


def test_geometry_helpers_round_trip():
    spec = av.MelSpectrogram()(av.load_audio(make_chirp(), 16000))
    frames = np.array([0.0, 3.5, 17.25])
    np.testing.assert_allclose(spec.time_to_frame(spec.frame_to_time(frames)), frames)
    bins = np.array([0.0, 10.5, 127.9])
    np.testing.assert_allclose(spec.hz_to_bin(spec.bin_to_hz(bins)), bins, atol=1e-9)
    # frame centre (x + 0.5) maps to the frame's centre time
    assert spec.frame_to_time(0.5) == pytest.approx(spec.times[0])


def test_front_ends_accept_tensor_plus_rate_and_mix_to_mono():
    wav = torch.from_numpy(np.stack([make_tone(), make_tone(2000.0)]))
    a = av.MelSpectrogram()(wav, 16000)
    b = av.MelSpectrogram()(av.load_audio(wav.mean(0), 16000))
    torch.testing.assert_close(a.values, b.values)


@pytest.mark.parametrize("frontend", [av.KaldiFbank(), av.MelSpectrogram(), av.STFTSpectrogram()], ids=lambda f: type(f).__name__)
def test_non_finite_samples_rejected_with_position(frontend):
    wav = make_tone()
    wav[12345] = np.nan
    with pytest.raises(InvalidAudioError, match=r"sample 12345 .*0\.77\d+ s.*nan"):
        frontend(av.load_audio(wav, 16000))
    wav[12345] = 0
    wav[99] = np.inf
    with pytest.raises(InvalidAudioError, match="sample 99"):
        frontend(av.load_audio(wav, 16000))


def test_front_end_errors():
    with pytest.raises(InvalidAudioError, match="sample_rate"):
        av.MelSpectrogram()(torch.zeros(100))
    with pytest.raises(InvalidAudioError, match="Audio or a waveform"):
        av.MelSpectrogram()(np.zeros(100))
    with pytest.raises(ConfigError, match="f_min"):
        av.MelSpectrogram(f_min=9000.0)
    with pytest.raises(ConfigError, match="n_mels"):
        av.MelSpectrogram(n_mels=0)
    with pytest.raises(ConfigError, match="mel_scale"):
        av.MelSpectrogram(mel_scale="bark")
    with pytest.raises(ConfigError, match="win_length"):
        av.STFTSpectrogram(n_fft=256, win_length=512)
    with pytest.raises(ConfigError, match="preset"):
        av.KaldiFbank.preset("librispeech")
    with pytest.raises(ConfigError, match="std"):
        av.KaldiFbank(std=0.0)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("seconds", [0.02, 1.0, 7.3])  # shorter than a frame; under one block; several blocks
def test_blockwise_front_ends_equal_torchaudio_transforms(pad_mode, power, seconds):
    """The block-at-a-time STFT gives torchaudio's own Spectrogram / MelSpectrogram values."""
    import torchaudio

    wav = torch.from_numpy(np.random.default_rng(7).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1)
    for n_fft, win_length, hop in ((400, 400, 160), (512, 320, 100), (1024, 1024, 256)):
        stft = av.STFTSpectrogram(n_fft=n_fft, win_length=win_length, hop_length=hop, power=power, to_db=False,
                                  pad_mode=pad_mode)
        if pad_mode in ("reflect", "circular") and wav.numel() <= n_fft // 2:  # torch.stft cannot either
            with pytest.raises(InvalidAudioError, match="too few"):
                stft(wav, 16000)
            continue
        reference = torchaudio.transforms.Spectrogram(n_fft=n_fft, win_length=win_length, hop_length=hop,
                                                      power=power, pad_mode=pad_mode)(wav)
        got = stft(wav, 16000).values
        assert got.shape == reference.shape
        torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-6 * float(reference.max()))
        mel = av.MelSpectrogram(n_fft=n_fft, win_length=win_length, hop_length=hop, n_mels=64, power=power,
                                to_db=False, pad_mode=pad_mode, mel_scale="slaney", norm="slaney")
        reference = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000, n_fft=n_fft, win_length=win_length, hop_length=hop, n_mels=64, power=power,
            pad_mode=pad_mode, mel_scale="slaney", norm="slaney")(wav)
        got = mel(wav, 16000).values
        assert got.shape == reference.shape
        torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-6 * float(reference.max()))


def test_too_short_for_reflect_padding_names_the_problem():
    with pytest.raises(InvalidAudioError, match="too few for pad_mode='reflect'"):
        av.MelSpectrogram(n_fft=1024, pad_mode="reflect")(torch.zeros(300), 16000)
    with pytest.raises(ConfigError, match="pad_mode"):
        av.STFTSpectrogram(pad_mode="mirror")
    with pytest.raises(ConfigError, match="win_length"):
        av.MelSpectrogram(n_fft=256, win_length=512)


@pytest.mark.parametrize("rate", [0, -1, 16000.5, float("nan")])
@pytest.mark.parametrize("frontend", [av.STFTSpectrogram(), av.MelSpectrogram(), av.KaldiFbank()],
                         ids=lambda f: type(f).__name__)
def test_tensor_with_bad_sample_rate_is_rejected_by_name(frontend, rate):
    """No NaN/negative times, no silent truncation of 16000.5, no error from inside torchaudio."""
    name = type(frontend).__name__
    with pytest.raises(InvalidAudioError, match=rf"{name}: waveform tensor of shape \(16000,\): sample_rate must be "
                                                rf"a positive whole number of Hz, got {rate}") as err:
        frontend(torch.zeros(16000), rate)
    assert isinstance(err.value, ValueError) and isinstance(err.value, av.AudiovisError)


def test_filterbank_with_empty_filters_equals_librosa():
    """More mels than a short FFT has bins: filters without any bin give rows of zeros, as in librosa."""
    import librosa

    wav = make_chirp(100.0, 7000.0, 1.0)
    with pytest.warns(UserWarning, match="all zero"):  # torchaudio's own warning about empty filters
        got = av.MelSpectrogram(n_fft=64, hop_length=32, n_mels=128, to_db=False)(av.load_audio(wav, 16000)).numpy()
    with pytest.warns(UserWarning, match="Empty filters"):
        ref = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=64, hop_length=32, n_mels=128, htk=True,
                                             norm=None, pad_mode="constant")
    empty = ref.max(axis=1) == 0
    assert empty.any() and not empty.all()  # the case is real: some filters are empty
    assert np.all(got[empty] == 0)
    rel = np.abs(got - ref) / (np.abs(ref) + 1e-6 * ref.max())
    assert rel.max() <= 1e-4


@pytest.mark.parametrize("frontend", [av.STFTSpectrogram(power=1.0, to_db=False), av.MelSpectrogram(to_db=False)],
                         ids=lambda f: type(f).__name__)
def test_front_ends_are_differentiable(frontend):
    """With autograd on and a waveform that requires grad, the values are the same and carry a gradient."""
    wav = torch.from_numpy(make_chirp(200.0, 4000.0, 1.0)).requires_grad_(True)
    values = frontend(wav, 16000).values
    values.sum().backward()
    assert wav.grad is not None and bool(torch.isfinite(wav.grad).all()) and float(wav.grad.abs().sum()) > 0
    with torch.no_grad():
        plain = frontend(wav.detach(), 16000).values
    torch.testing.assert_close(values.detach(), plain, rtol=1e-4, atol=1e-6 * float(plain.max()))


@pytest.mark.parametrize("frontend", [av.STFTSpectrogram(n_fft=256), av.MelSpectrogram(n_mels=32), av.KaldiFbank()],
                         ids=["stft", "mel", "kaldi"])
def test_an_audio_with_a_different_sample_rate_argument_is_refused(frontend):
    audio = av.load_audio(np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(av.InvalidAudioError, match=r"at 16000 Hz but sample_rate=8000 was given"):
        frontend(audio, 8000)
    assert frontend(audio, 16000).sample_rate == frontend(audio).sample_rate  # the same rate is fine
