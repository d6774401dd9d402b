"""The block-of-frames engine under the front ends (audiovis.framewise) against independent references:
torchaudio.compliance.kaldi.fbank for KaldiFbank, librosa for dB with empty mel filters, the plain
one-thread path for the worker pool."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.errors import InvalidAudioError
from audiovis.framewise import filter_bands

from .conftest import make_chirp, make_tone

#: largest |ours - torchaudio| in log-mel units seen on these sounds: 9.5e-7 (float32 rounding of values up
#: to ~16 in magnitude); the bound leaves a little room across CPUs and MKL versions
KALDI_ATOL = 1e-5


def _kaldi_reference(wav: np.ndarray, num_mel_bins: int = 128) -> torch.Tensor:
    from torchaudio.compliance import kaldi

    return kaldi.fbank(torch.from_numpy(wav)[None], sample_frequency=16000, window_type="hanning",
                       num_mel_bins=num_mel_bins, htk_compat=True, use_energy=False, dither=0.0,
                       frame_shift=10.0, frame_length=25.0)


def _sounds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "chirp": make_chirp(100.0, 7000.0, 4.0),
        "tone": make_tone(1000.0, 3.0),
        # 7.3 s: 728 frames, more than one 512-frame block
        "noise": (0.1 * rng.standard_normal(int(7.3 * 16000))).astype(np.float32),
        "dc offset": (0.5 + 0.01 * rng.standard_normal(16000)).astype(np.float32),  # the per-frame mean matters
        "quiet": (1e-4 * rng.standard_normal(32000)).astype(np.float32),
        "silence then tone": np.concatenate([np.zeros(8000, np.float32), make_tone(440.0, 1.0)]),
        "one frame": make_chirp(300.0, 3000.0, 0.025),  # exactly 400 samples
    }


@pytest.mark.parametrize("name", sorted(_sounds()))
def test_kaldi_fbank_equals_torchaudio_compliance_kaldi(name):
    wav = _sounds()[name]
    ref = _kaldi_reference(wav)
    raw = av.KaldiFbank(target_frames=None, normalize=False)
    spec = raw(av.load_audio(wav, 16000))
    assert spec.shape == (128, ref.shape[0]) and spec.valid_frames == ref.shape[0] and spec.units == "log"
    assert float((spec.values.T - ref).abs().max()) <= KALDI_ATOL
    torch.testing.assert_close(raw.fbank(torch.from_numpy(wav)), ref, rtol=0, atol=KALDI_ATOL)
    # normalised, padded to 1024 frames: padding frames hold raw zeros, normalised
    norm = av.KaldiFbank()
    got = norm(av.load_audio(wav, 16000)).values
    want = torch.nn.functional.pad(ref, (0, 0, 0, 1024 - ref.shape[0])).T
    want = (want - norm.mean) / (norm.std * 2)
    assert float((got - want).abs().max()) <= KALDI_ATOL / (2 * norm.std)


def test_kaldi_fbank_cut_computes_only_the_kept_frames_and_other_mel_counts():
    wav = _sounds()["noise"]  # 728 frames
    ref = _kaldi_reference(wav, num_mel_bins=64)
    spec = av.KaldiFbank(num_mel_bins=64, target_frames=300, normalize=False)(av.load_audio(wav, 16000))
    assert spec.shape == (64, 300) and spec.valid_frames == 300
    assert float((spec.values.T - ref[:300]).abs().max()) <= KALDI_ATOL


def test_kaldi_fbank_needs_a_whole_frame():
    with pytest.raises(InvalidAudioError, match="fewer than one 400-sample frame"):
        av.KaldiFbank().fbank(torch.zeros(399))


def test_kaldi_fbank_differentiable_path_equals_block_path():
    wav = torch.from_numpy(make_chirp(200.0, 4000.0, 1.0)).requires_grad_(True)
    frontend = av.KaldiFbank(target_frames=None)
    values = frontend(wav, 16000).values
    values.sum().backward()
    assert wav.grad is not None and bool(torch.isfinite(wav.grad).all())
    with torch.no_grad():
        plain = frontend(wav.detach(), 16000).values
    torch.testing.assert_close(values.detach(), plain, rtol=0, atol=KALDI_ATOL)


def test_db_with_empty_mel_filters_over_many_blocks_equals_librosa():
    """Filters over no FFT bin stay at the dB floor in every block (a block's log must not leak into the next)."""
    import librosa

    wav = make_chirp(100.0, 7000.0, 5.0)  # 2501 frames of hop 32: several blocks
    with pytest.warns(UserWarning, match="all zero"):
        spec = av.MelSpectrogram(n_fft=64, hop_length=32, n_mels=128, top_db=80.0)(av.load_audio(wav, 16000))
    with pytest.warns(UserWarning, match="Empty filters"):
        power = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=64, hop_length=32, n_mels=128, htk=True,
                                               norm=None, pad_mode="constant")
    ref = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0)
    assert (power == 0).all(axis=1).any()  # the case is real: rows of empty filters
    assert bool(torch.isfinite(spec.values).all())
    assert np.max(np.abs(spec.numpy() - ref)) <= 5e-3  # dB; float32 powers down to 80 dB below the peak


def test_db_with_a_band_of_filters_over_no_bin_stays_finite_in_every_block():
    """A run of filters over no FFT bin forms a band of its own, never written by a product: its rows must be
    reset for each block (the previous block's dB made them -inf, whose log is NaN)."""
    from audiovis.framewise import block_spectra, centred_frames
    from audiovis.spectrogram import _Decibels

    n_fft, hop = 256, 64
    bins = n_fft // 2 + 1
    project = torch.zeros(bins, 60)
    for k in range(20):  # filters 0..19 and 40..59 over two bins each; 20..39 over none
        project[2 * k : 2 * k + 2, k] = 1.0
        project[60 + 2 * k : 62 + 2 * k, 40 + k] = 1.0
    bands = filter_bands(project, 1024)
    assert any(hi <= lo and first <= 25 < last for first, last, lo, hi, _ in bands)  # the case is real
    wav = torch.from_numpy(make_chirp(100.0, 7000.0, 6.0))  # 1501 frames: several blocks per thread
    window = torch.hann_window(n_fft)
    segments, count = centred_frames(wav, n_fft, hop, "constant")
    got = block_spectra(segments, count, fft_size=n_fft, power=2.0, project=project, decibels=(10.0, None),
                        prepare=lambda frames, first, dest, scratch: torch.mul(frames, window, out=dest))
    power = torch.stft(wav, n_fft, hop, window=window, center=True, pad_mode="constant",
                       return_complex=True).abs().pow(2)
    want = _Decibels(2.0, None)((power.T @ project).T)
    assert bool(torch.isfinite(got).all())
    assert torch.equal(got[20:40], torch.full_like(got[20:40], -100.0))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-3)



def test_top_db_floor_reaches_only_the_blocks_that_need_it_and_equals_torchaudio():
    """The second pass (the ``top_db`` floor) runs only over blocks holding values under it: a loud tone then
    near-silence (blocks all above the floor, then blocks mostly under it) equals torchaudio's
    Spectrogram + AmplitudeToDB, and both kinds of block occur."""
    import torchaudio

    import audiovis.framewise as framewise

    rng = np.random.default_rng(5)
    tone = make_tone(1000.0, 6.0) + (0.05 * rng.standard_normal(96000)).astype(np.float32)  # no bin 80 dB down
    wav = np.concatenate([tone, (1e-7 * rng.standard_normal(6 * 16000)).astype(np.float32)])
    calls = []
    real_workers = framewise.block_workers

    def counting(count, work, **options):  # two calls: every block's spectra, then the floor's pass
        calls.append(count)
        return real_workers(count, work, **options)

    framewise.block_workers = counting
    try:
        got = av.STFTSpectrogram(n_fft=400, hop_length=160)(av.load_audio(wav, 16000)).values
    finally:
        framewise.block_workers = real_workers
    spec = torchaudio.transforms.Spectrogram(n_fft=400, hop_length=160, power=2.0, pad_mode="constant")
    want = torchaudio.transforms.AmplitudeToDB("power", top_db=80.0)(spec(torch.from_numpy(wav)))
    blocks, clamped = calls
    assert 0 < clamped < blocks  # some blocks needed the floor, others not
    assert float(got.min()) == pytest.approx(float(got.max()) - 80.0, abs=1e-4)  # the floor was applied
    torch.testing.assert_close(got, want, rtol=0, atol=2e-3)


def test_power_then_db_of_the_same_shape_in_one_thread_equals_the_log_of_the_power():
    """Each thread keeps its block buffers between calls; a dB front end needs one more than a power one of
    the same shape, so the two must not share them (a power call first, then a dB call, then power again)."""
    wav = av.load_audio(make_chirp(100.0, 7000.0, 3.0), 16000)
    power = av.STFTSpectrogram(n_fft=512, hop_length=160, to_db=False)
    decibels = av.STFTSpectrogram(n_fft=512, hop_length=160, top_db=None)
    first = power(wav).values
    db = decibels(wav).values
    torch.testing.assert_close(db, 10 * torch.log10(first.clamp(min=1e-10)), rtol=0, atol=1e-4)
    assert torch.equal(power(wav).values, first)

FRONT_ENDS = {
    "stft-db-400": lambda: av.STFTSpectrogram(n_fft=400, hop_length=160),
    "stft-magnitude-1024": lambda: av.STFTSpectrogram(n_fft=1024, hop_length=160, power=1.0, to_db=False),
    "mel-db-1024": lambda: av.MelSpectrogram(n_fft=1024, hop_length=160),
    "kaldi": lambda: av.KaldiFbank(target_frames=None),
}


def _noise(seconds: float, seed: int) -> torch.Tensor:
    return torch.from_numpy((0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32))


def _one_thread(frontend, wav: torch.Tensor) -> torch.Tensor:
    """The front end's values with one torch thread (every block in order here), the thread count put back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return frontend(wav, 16000).values
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_worker_pool_equals_one_thread_and_concurrent_calls(name):
    """Blocks on the worker pool (two threads) give the values of the same blocks run in order on one
    thread, also with two front-end calls at once from two threads."""
    frontend = FRONT_ENDS[name]()
    wav = _noise(seconds=20, seed=5)
    threads = torch.get_num_threads()
    alone = _one_thread(frontend, wav)
    torch.set_num_threads(2)
    try:
        results: dict[int, torch.Tensor] = {}
        callers = [threading.Thread(target=lambda i=i: results.__setitem__(i, frontend(wav * (i + 1), 16000).values))
                   for i in range(2)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        pooled = frontend(wav, 16000).values
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(pooled, alone)
    doubled = frontend(wav * 2, 16000).values
    assert torch.equal(results[0], alone) and torch.equal(results[1], doubled)
    assert torch.get_num_threads() == threads  # the pool's threads keep their setting to themselves


@pytest.mark.parametrize("name", sorted(FRONT_ENDS))
def test_short_input_runs_on_the_calling_thread_with_the_values_of_one_thread(name, monkeypatch):
    """Up to ``framewise._POOL_WORK`` (frames x FFT size) the blocks skip the worker pool and run here,
    single-threaded: the values of a one-thread run, the caller's thread count put back; longer input
    still goes to the pool."""
    import audiovis.framewise as framewise

    frontend = FRONT_ENDS[name]()
    wav = _noise(seconds=4, seed=6)
    threads = torch.get_num_threads()
    alone = _one_thread(frontend, wav)
    real_pool, used = framewise._pool, []
    monkeypatch.setattr(framewise, "_pool", lambda workers: used.append(workers) or real_pool(workers))
    torch.set_num_threads(2)
    try:
        short = frontend(wav, 16000).values
        assert torch.get_num_threads() == 2
        assert used == []  # 4 s: no hand-off to the pool
        frontend(torch.cat([wav] * 8), 16000)  # 32 s: the pool
        assert used and set(used) == {2}
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(short, alone)


def test_filter_bands_cover_every_filter_once_and_hold_all_weights():
    fb = av.MelSpectrogram(n_fft=1024, n_mels=128).transform.mel_scale.fb
    bands = filter_bands(fb, 256)
    firsts = [b[0] for b in bands]
    assert firsts[0] == 0 and [b[1] for b in bands][:-1] == firsts[1:] and bands[-1][1] == 128
    rebuilt = torch.zeros_like(fb)
    for first, last, lo, hi, weights in bands:
        rebuilt[lo:hi, first:last] = weights.T
    assert torch.equal(rebuilt, fb)
    assert filter_bands(fb, 256) is bands  # remembered by the filterbank's values
