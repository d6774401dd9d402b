"""The sound of patches: energy inside the selected band and span (scipy's STFT as the independent
measure), all patches give back the window's audio, windows that start later, other rates, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal as ss

import audiovis as av

SR = 16000
#: margins around the selected region when counting its energy: one 32 ms STFT window in time,
#: 100 Hz in frequency (about three STFT bins of the measuring transform)
MARGIN_S, MARGIN_HZ = 0.032, 100.0


@pytest.fixture(scope="module")
def model():
    return av.load_demo_model()


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def region(res, patches, shift: float):
    boxes = [res.grid.bounds_hz_s(int(p), res.spectrogram) for p in patches]
    return (min(b.time_start for b in boxes) - shift, max(b.time_end for b in boxes) - shift,
            min(b.freq_start for b in boxes), max(b.freq_end for b in boxes))


def energy_share_inside(wav: np.ndarray, box) -> float:
    """Share of ``wav``'s STFT energy inside ``box`` (s, Hz) grown by the margins (scipy, 512-point Hann)."""
    f, t, z = ss.stft(wav, fs=SR, nperseg=512, noverlap=384, boundary="zeros")
    power = np.abs(z) ** 2
    rows = (f >= box[2] - MARGIN_HZ) & (f <= box[3] + MARGIN_HZ)
    cols = (t >= box[0] - MARGIN_S) & (t <= box[1] + MARGIN_S)
    return float(power[np.ix_(rows, cols)].sum() / power.sum())


@pytest.mark.parametrize("rows, cols", [((5, 6), (10, 12)), ((0, 0), (0, 3)), ((11, 11), (30, 38)), ((3, 8), (20, 20))])
def test_energy_stays_inside_the_selected_band_and_span(model, rows, cols):
    res = model.analyze(av.load_audio(noise(4.0), SR))
    grid = res.grid
    patches = [grid.index(r, c) for r in range(rows[0], rows[1] + 1) for c in range(cols[0], cols[1] + 1)]
    out = res.patch_audio(patches)
    assert out.sample_rate == SR and out.num_samples == res.audio.num_samples and out.num_channels == 1
    wav = out.numpy()[0]
    box = region(res, patches, res.offset)
    assert energy_share_inside(wav, box) >= 0.90
    # the region keeps its energy: what the original had there (within 15 %)
    kept = energy_share_inside(wav, box) * float((wav.astype(np.float64) ** 2).sum())
    f, t, z = ss.stft(res.audio.numpy()[0], fs=SR, nperseg=512, noverlap=384, boundary="zeros")
    inner = (f >= box[2]) & (f <= box[3]), (t >= box[0]) & (t <= box[1])
    f2, t2, z2 = ss.stft(wav, fs=SR, nperseg=512, noverlap=384, boundary="zeros")
    ratio = (np.abs(z2[np.ix_(*inner)]) ** 2).sum() / (np.abs(z[np.ix_(*inner)]) ** 2).sum()
    assert 0.85 < ratio < 1.15
    assert kept > 0


def test_all_patches_give_back_the_window_audio(model):
    # a chirp inside the patch-covered band (20 Hz .. the top row's edge) and span
    t = np.arange(4 * SR) / SR
    wav = (0.3 * np.sin(2 * np.pi * (300 * t + 500 * t ** 2)) * np.sin(np.pi * t / 4) ** 2).astype(np.float32)
    res = model.analyze(av.load_audio(wav, SR))
    out = res.patch_audio(np.arange(res.num_patches)).numpy()[0]
    box = region(res, range(res.num_patches), res.offset)
    assert box[3] > 4500 and box[1] > 3.9
    # stated error: below 1e-3 of the peak, inside the covered span (the ends outside it fade)
    inside = slice(int((box[0] + 0.02) * SR), int((box[1] - 0.02) * SR))
    np.testing.assert_allclose(out[inside], wav[inside], atol=1e-3 * np.abs(wav).max())
    # broadband noise loses only what lies outside the covered band (mel edges below 20 Hz, above the top row)
    res = model.analyze(av.load_audio(noise(4.0, seed=3), SR))
    out = res.patch_audio(np.arange(res.num_patches)).numpy()[0]
    original = res.audio.numpy()[0]
    err = np.sum((out[inside] - original[inside]) ** 2) / np.sum(original[inside] ** 2)
    outside_band = 1 - (box[3] - box[2]) / (SR / 2)
    assert err < outside_band + 0.02


def test_a_later_window_uses_its_own_clock(model):
    # 10 s: a 1 kHz burst at 5.0-5.5 s; the second window starts 4 s (one window) in
    t = np.arange(10 * SR) / SR
    wav = noise(10.0, seed=1) * 0.05
    burst = (t >= 5.0) & (t < 5.5)
    wav[burst] += 0.5 * np.sin(2 * np.pi * 1000 * t[burst]).astype(np.float32)
    windows = model.analyze_windows(av.load_audio(wav, SR))
    res = next(r for r in windows if r.offset <= 5.0 and r.offset + 3.5 >= 5.5)
    assert res.offset > 0
    patches = res.grid.patches_in((5.0, 5.5, 900, 1100), res.spectrogram)
    out = res.patch_audio(patches).numpy()[0]
    local = np.arange(out.size) / SR + res.offset
    energy = out.astype(np.float64) ** 2
    assert energy[(local >= 4.95) & (local < 5.55)].sum() > 0.9 * energy.sum()
    assert energy.sum() > 0.5 * np.sum((0.5 * np.sin(2 * np.pi * 1000 * t[burst])) ** 2)


def test_other_rates_and_channels_come_back_at_the_model_rate(model):
    rate = 22050
    stereo = np.stack([noise(2.0 * rate / SR, seed=4)[: 2 * rate]] * 2)
    res = model.analyze(av.Audio(torch.from_numpy(stereo), rate))
    out = res.patch_audio([0, 1, 2])
    assert out.sample_rate == SR and out.num_channels == 1
    assert out.num_samples == pytest.approx(res.audio.num_samples * SR / rate, abs=1)


def test_explanation_audio_is_the_top_patches(model):
    res = model.analyze(av.load_audio(noise(4.0, seed=2), SR))
    top = res.top_patches("rollout", 0.1)
    assert len(top) == round(0.1 * res.num_patches)
    assert np.all(np.diff(res.rollout()[top]) <= 0)
    np.testing.assert_array_equal(res.explanation_audio("rollout", top=0.1).numpy(), res.patch_audio(top).numpy())
    mine = np.zeros(res.num_patches)
    mine[[7, 8]] = [2.0, 1.0]
    np.testing.assert_array_equal(res.top_patches(mine, top=1e-9), [7])


def test_bad_input_is_named(model):
    res = model.analyze(av.load_audio(noise(1.0), SR))
    with pytest.raises(ValueError, match="at least one patch"):
        res.patch_audio([])
    with pytest.raises(IndexError, match=f"patch index {res.num_patches} outside 0..{res.num_patches - 1}"):
        res.patch_audio([0, res.num_patches])
    with pytest.raises(IndexError, match="outside"):
        res.patch_audio(-1)
    with pytest.raises(ValueError, match="one value per patch"):
        res.explanation_audio(np.ones(5))
    with pytest.raises(ValueError, match="unknown explanation method 'lime'"):
        res.explanation_audio("lime")
    with pytest.raises(ValueError, match="top must be a fraction"):
        res.explanation_audio("rollout", top=0)
    from_spec = model.analyze(res.spectrogram)
    with pytest.raises(ValueError, match="made from a Spectrogram"):
        from_spec.patch_audio([1])


def test_viewer_answers_patch_audio_requests_with_the_region_only():
    audio = av.load_audio(noise(3.0, seed=5), SR)
    audio = av.Audio(audio.waveform, SR)
    spec = av.KaldiFbank(target_frames=None)(audio)
    grid = av.PatchGrid(input_shape=(128, spec.num_frames), patch_size=(16, 16), stride=(10, 10))
    viewer = av.SpectrogramViewer(spec, grid=grid, audio=audio)
    sent = []
    viewer.send = lambda content, buffers=None: sent.append((content, buffers))
    patches = [grid.index(4, 20), grid.index(5, 21)]
    viewer._on_message(viewer, {"id": 7, "type": "patch_audio", "patches": patches}, [])
    reply, buffers = sent[-1]
    assert "error" not in reply, reply
    samples = np.frombuffer(buffers[0], dtype="<f4")
    boxes = [grid.bounds_hz_s(p, spec) for p in patches]
    t0, t1 = min(b.time_start for b in boxes), max(b.time_end for b in boxes)
    assert reply["sample_rate"] == SR and reply["start"] == pytest.approx(t0, abs=1 / SR)
    assert len(samples) == round((t1 - t0) * SR) == reply["shape"][0]
    # the same sound as the window's patch_audio over that span (the STFT frames fall elsewhere: energy within 10 %)
    f0, f1 = min(b.freq_start for b in boxes), max(b.freq_end for b in boxes)
    full = np.zeros(audio.num_samples, dtype=np.float32)
    full[int(round(t0 * SR)): int(round(t0 * SR)) + len(samples)] = samples
    assert energy_share_inside(full, (t0, t1, f0, f1)) >= 0.9
    for bad in ([], [grid.num_patches], [-1], "all", None, [1.5], [True], [10**400], [float("nan")], [[1]], {"0": 1},
                list(range(grid.num_patches + 1))):
        viewer._on_message(viewer, {"id": 8, "type": "patch_audio", "patches": bad}, [])
        assert sent[-1][0]["id"] == 8 and "error" in sent[-1][0], bad
    silent = av.SpectrogramViewer(spec, grid=grid)
    silent.send = lambda content, buffers=None: sent.append((content, buffers))
    silent._on_message(silent, {"id": 9, "type": "patch_audio", "patches": [1]}, [])
    assert sent[-1][0]["error"] == "this viewer has no audio"


def test_long_viewer_plays_the_patches_of_the_window_under_view(model):
    from audiovis.widgets.longview import LongViewer

    t = np.arange(10 * SR) / SR
    wav = noise(10.0, seed=6) * 0.05
    burst = (t >= 5.0) & (t < 5.5)
    wav[burst] += 0.5 * np.sin(2 * np.pi * 1000 * t[burst]).astype(np.float32)
    lv = LongViewer(av.load_audio(wav, SR), model, background=False)
    window = next(i for i, r in enumerate(lv.windows) if r.start_seconds <= 5.0 and r.end_seconds >= 5.6)
    lv.show_window(window)
    res = lv.analysis
    assert res.offset > 0 and lv._grid_offset > 0
    patches = res.grid.patches_in((5.0, 5.5, 900, 1100), res.spectrogram)
    sent = []
    lv.send = lambda content, buffers=None: sent.append((content, buffers))
    lv._on_message(lv, {"id": 3, "type": "patch_audio", "patches": patches}, [])
    reply, buffers = sent[-1]
    assert "error" not in reply, reply
    boxes = [res.grid.bounds_hz_s(p, res.spectrogram) for p in patches]  # the window's own clock (absolute)
    t0, t1 = min(b.time_start for b in boxes), max(b.time_end for b in boxes)
    assert reply["start"] == pytest.approx(t0, abs=1.5 / SR)
    samples = np.frombuffer(buffers[0], dtype="<f4")
    assert len(samples) == round((t1 - t0) * SR)
    # it is the burst: about the energy of the 1 kHz tone inside the span
    local = reply["start"] + np.arange(len(samples)) / SR
    inside = (local >= 5.0) & (local < 5.5)
    tone = 0.5 * np.sin(2 * np.pi * 1000 * local[inside])
    assert np.sum(samples[inside].astype(np.float64) ** 2) == pytest.approx(np.sum(tone ** 2), rel=0.2)
