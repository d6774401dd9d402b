"""SyntheticEvents: determinism, label/box consistency, energy really inside the boxes, class shapes, errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from collections import Counter

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.datasets import BOX_MARGIN_HZ, CLASSES, SyntheticEvents, portable
from audiovis.errors import ConfigError

SR = 16000


def _digest(clip) -> str:
    return hashlib.sha256(clip.waveform.numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def energy_set():
    """Clips and their unmixed sources, shared by the energy tests."""
    ds = SyntheticEvents(70, seed=11)
    return [(ds[i], ds.sources(i)) for i in range(len(ds))]


# --- portable arithmetic ---------------------------------------------------------------------------


def test_portable_functions_match_numpy():
    rng = np.random.default_rng(0)
    phases = rng.uniform(-1.5e6, 1.5e6, 200_000)
    assert np.max(np.abs(portable.sin(phases) - np.sin(phases))) <= 4e-16
    assert np.max(np.abs(portable.cos(phases) - np.cos(phases))) <= 4e-16
    small = rng.uniform(-4, 4, 100_000)
    assert np.max(np.abs(portable.sin(small) - np.sin(small))) <= 2.3e-16
    powers = rng.uniform(-80, 80, 100_000)
    assert np.max(np.abs(portable.exp2(powers) / np.exp2(powers) - 1)) <= 4e-16
    assert portable.exp2(-5000.0) == 0.0
    assert abs(float(portable.db_to_amplitude(-20.0)) - 0.1) <= 1e-16
    with pytest.raises(ValueError, match="phase"):
        portable.sin(np.array([1e7]))
    with pytest.raises(ValueError, match="finite"):
        portable.exp2(np.array([np.nan]))


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_items():
    a, b = SyntheticEvents(12, seed=5), SyntheticEvents(12, seed=5)
    for i in range(12):
        ca, cb = a[i], b[i]
        assert torch.equal(ca.waveform, cb.waveform)
        assert torch.equal(ca.labels, cb.labels)
        assert ca.events == cb.events and np.array_equal(ca.boxes, cb.boxes)
        assert ca.background == cb.background and ca.background_db == cb.background_db


def test_item_depends_only_on_seed_and_index():
    small, large = SyntheticEvents(4, seed=3), SyntheticEvents(500, seed=3)
    backwards = [large[i] for i in (3, 2, 1, 0)][::-1]
    for i in range(4):
        assert torch.equal(small[i].waveform, backwards[i].waveform)
        assert small[i].events == backwards[i].events
    assert torch.equal(large[-1].waveform, large[499].waveform)


def test_different_seeds_and_indices_differ():
    a, b = SyntheticEvents(10, seed=0), SyntheticEvents(10, seed=1)
    assert all(not torch.equal(a[i].waveform, b[i].waveform) for i in range(10))
    assert sum(not np.array_equal(a[i].boxes, b[i].boxes) for i in range(10)) == 10
    digests = {_digest(a[i]) for i in range(10)}
    assert len(digests) == 10


def test_items_are_identical_in_a_fresh_process_with_other_thread_settings():
    ds = SyntheticEvents(6, seed=2024)
    here = [_digest(ds[i]) for i in range(6)]
    code = (
        "import hashlib; from audiovis.datasets import SyntheticEvents; ds = SyntheticEvents(6, seed=2024); "
        "print(' '.join(hashlib.sha256(ds[i].waveform.numpy().tobytes()).hexdigest() for i in (5, 4, 3, 2, 1, 0)))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[::-1] == here


# --- labels, boxes, levels -------------------------------------------------------------------------


def test_labels_and_boxes_are_consistent():
    ds = SyntheticEvents(150, seed=7)
    counts, backgrounds = Counter(), Counter()
    for clip in (ds[i] for i in range(len(ds))):
        assert clip.class_names == CLASSES and clip.labels.shape == (len(CLASSES),)
        assert clip.waveform.shape == (1, 4 * SR) and clip.waveform.dtype == torch.float32
        assert 1 <= len(clip.events) <= 3
        indices = [e.class_index for e in clip.events]
        assert len(set(indices)) == len(indices), "one event per class in a clip"
        expected = torch.zeros(len(CLASSES))
        expected[indices] = 1.0
        assert torch.equal(clip.labels, expected)
        assert [CLASSES[k] for k in indices] == clip.event_labels
        assert [e.onset for e in clip.events] == sorted(e.onset for e in clip.events)
        for e, row in zip(clip.events, clip.boxes):
            assert tuple(row) == tuple(e.box)
            assert 0.0 < e.onset < e.offset < ds.duration
            assert 0.0 <= e.freq_low < e.freq_high <= SR / 2
            assert e.snr_db == pytest.approx(e.level_db - clip.background_db)
        assert float(clip.waveform.abs().max()) <= 0.99 + 1e-6
        counts.update(clip.event_labels)
        backgrounds[clip.background] += 1
    assert set(counts) == set(CLASSES) and min(counts.values()) >= 15
    assert set(backgrounds) == {"white", "pink", "brown", "hum", "silence"}


def test_levels_and_snr_match_the_sources():
    ds = SyntheticEvents(40, seed=8)
    for i in range(len(ds)):
        clip, src = ds[i], ds.sources(i)
        bg_db = 10 * np.log10(np.mean(src.background**2))
        for e, part in zip(clip.events, src.events):
            span = part[int(round(e.onset * SR)) : int(round(e.offset * SR))]
            event_db = 10 * np.log10(np.mean(span**2))
            assert event_db - bg_db == pytest.approx(e.snr_db, abs=1e-6)
            assert event_db <= e.level_db + 1e-6  # lower only when the mix was scaled to avoid clipping


def test_waveform_is_the_sum_of_its_sources(energy_set):
    for clip, src in energy_set[:20]:
        mix = src.background + sum(src.events)
        assert np.max(np.abs(clip.waveform[0].numpy() - mix)) <= 1e-7
        assert len(src.events) == len(clip.events)


# --- energy inside the boxes -----------------------------------------------------------------------


def test_events_are_silent_outside_their_time_span(energy_set):
    for clip, src in energy_set:
        for e, part in zip(clip.events, src.events):
            first, last = int(round(e.onset * SR)), int(round(e.offset * SR))
            assert not np.any(part[:first]) and not np.any(part[last:])
            assert np.any(part[first : first + SR // 100]) and np.any(part[last - SR // 100 : last])


def test_event_energy_lies_inside_its_band_on_a_fine_stft(energy_set):
    """Independent of the front end: a 64 ms STFT, bins whose centre is inside the box."""
    import librosa

    seen = set()
    for clip, src in energy_set:
        for e, part in zip(clip.events, src.events):
            power = np.abs(librosa.stft(part, n_fft=1024, hop_length=256)) ** 2
            per_bin = power.sum(axis=1)
            freqs = librosa.fft_frequencies(sr=SR, n_fft=1024)
            inside = (freqs >= e.freq_low) & (freqs <= e.freq_high)
            share = per_bin[inside].sum() / per_bin.sum()
            assert share >= 0.995, f"{e.label} in clip {clip.index}: {share:.4f} of its energy in {e.box}"
            # Tight: the box (less its analysis margin) is no wider than where 99.8 % of the energy lies.
            cdf = np.cumsum(per_bin) / per_bin.sum()
            q_low, q_high = freqs[np.searchsorted(cdf, 0.001)], freqs[np.searchsorted(cdf, 0.999)]
            slack = 0.15 * (e.freq_high - e.freq_low)
            assert e.freq_low >= q_low - BOX_MARGIN_HZ - slack, (e.label, q_low, e.box)
            assert e.freq_high <= q_high + BOX_MARGIN_HZ + slack, (e.label, q_high, e.box)
            seen.add(e.label)
    assert seen == set(CLASSES)


def test_event_energy_lies_inside_its_box_on_the_model_front_end(energy_set):
    """On AST's Kaldi fbank: mel rows the box overlaps, frames whose 25 ms window overlaps its time span."""
    fbank = av.KaldiFbank(target_frames=None, normalize=False)
    for clip, src in energy_set:
        for e, part in zip(clip.events, src.events):
            spec = fbank(torch.from_numpy(part.astype(np.float32)), SR)
            power = np.exp(spec.numpy().astype(np.float64))
            edges = spec.frequency_edges
            rows = (edges[1:] > e.freq_low) & (edges[:-1] < e.freq_high)
            half_window = fbank.win_length / SR / 2
            cols = (spec.times + half_window > e.onset) & (spec.times - half_window < e.offset)
            share = power[np.ix_(rows, cols)].sum() / power.sum()
            assert share >= 0.99, f"{e.label} in clip {clip.index}: {share:.4f} inside {e.box}"


def test_box_region_stands_out_in_the_mixed_clip(energy_set):
    """In the mix, the box's mean fbank energy is above the rest of the clip's (the event is audible there)."""
    fbank = av.KaldiFbank(target_frames=None, normalize=False)
    ratios = []
    for clip, _ in energy_set:
        spec = fbank(clip.audio)
        power = np.exp(spec.numpy().astype(np.float64))
        inside = np.zeros(power.shape, bool)
        for e in clip.events:
            rows = (spec.frequencies >= e.freq_low) & (spec.frequencies <= e.freq_high)
            cols = (spec.times >= e.onset) & (spec.times <= e.offset)
            inside[np.ix_(rows, cols)] = True
        ratios.append(10 * np.log10(power[inside].mean() / power[~inside].mean()))
    assert np.median(ratios) >= 10.0 and np.min(ratios) >= 0.0


# --- what each class looks like --------------------------------------------------------------------


def _event_parts(label: str, count: int = 6):
    ds = SyntheticEvents(200, seed=99, classes=[label])
    for i in range(count):
        clip, src = ds[i], ds.sources(i)
        yield clip.events[0], src.events[0]


def test_tone_peaks_at_its_frequency():
    for e, part in _event_parts("tone"):
        span = part[int(e.onset * SR) : int(e.offset * SR)]
        spectrum = np.abs(np.fft.rfft(span * np.hanning(len(span)), n=1 << 17))
        peak = np.argmax(spectrum) * SR / (1 << 17)
        assert peak == pytest.approx(e.params["frequency"], abs=1.0)


@pytest.mark.parametrize("label,sign", [("up_chirp", 1), ("down_chirp", -1)])
def test_chirps_sweep_in_their_direction(label, sign):
    import librosa

    for e, part in _event_parts(label):
        power = np.abs(librosa.stft(part, n_fft=1024, hop_length=256)) ** 2
        frames = power.sum(axis=0) > 0.01 * power.sum(axis=0).max()
        peak_hz = np.argmax(power[:, frames], axis=0) * SR / 1024
        assert sign * np.corrcoef(np.arange(len(peak_hz)), peak_hz)[0, 1] > 0.9
        assert peak_hz.min() >= e.freq_low and peak_hz.max() <= e.freq_high


def test_tremolo_loudness_pulses_and_vibrato_pitch_wobbles():
    import librosa

    for e, part in _event_parts("tremolo", 4):
        span = part[int(e.onset * SR) : int(e.offset * SR)]
        frame_rms = librosa.feature.rms(y=span, frame_length=256, hop_length=128)[0]
        assert frame_rms[5:-5].min() < 0.35 * frame_rms.max()
    for e, part in _event_parts("vibrato", 4):
        power = np.abs(librosa.stft(part, n_fft=2048, hop_length=256)) ** 2
        frames = power.sum(axis=0) > 0.1 * power.sum(axis=0).max()
        peak_hz = np.argmax(power[:, frames], axis=0) * SR / 2048
        assert peak_hz.max() - peak_hz.min() >= e.params["frequency"] * e.params["depth"]


# --- classes filter, convenience, errors -----------------------------------------------------------


def test_classes_filter_selects_and_orders_labels():
    ds = SyntheticEvents(40, seed=4, classes=["vibrato", "tone"])
    assert ds.class_names == ("vibrato", "tone") and ds.num_classes == 2
    seen = Counter()
    for clip in (ds[i] for i in range(len(ds))):
        assert clip.labels.shape == (2,) and 1 <= len(clip.events) <= 2
        for e in clip.events:
            assert clip.class_names[e.class_index] == e.label and clip.labels[e.class_index] == 1
        seen.update(clip.event_labels)
    assert set(seen) == {"vibrato", "tone"}
    single = SyntheticEvents(10, seed=4, classes=["impact"])
    assert all(single[i].event_labels == ["impact"] for i in range(10))


def test_clip_gives_audio_and_works_with_a_dataloader():
    ds = SyntheticEvents(5, seed=1, duration=2.5, sample_rate=22050)
    clip = ds[0]
    audio = clip.audio
    assert isinstance(audio, av.Audio) and audio.sample_rate == 22050 and audio.duration == pytest.approx(2.5)
    assert torch.equal(audio.waveform, clip.waveform)
    assert "seed 1" in repr(clip) and "5 clips" in repr(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=list)
    assert [len(b) for b in loader] == [2, 2, 1]


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_clips=0, seed=0), "num_clips"),
    (dict(num_clips=2.5, seed=0), "num_clips"),
    (dict(num_clips=True, seed=0), "num_clips"),
    (dict(num_clips=3, seed=-1), "seed"),
    (dict(num_clips=3, seed="7"), "seed"),
    (dict(num_clips=3, seed=None), "seed"),
    (dict(num_clips=3, seed=0, duration=1.0), "duration"),
    (dict(num_clips=3, seed=0, duration=float("nan")), "duration"),
    (dict(num_clips=3, seed=0, duration="4"), "duration"),
    (dict(num_clips=3, seed=0, sample_rate=8000), "sample_rate"),
    (dict(num_clips=3, seed=0, classes=["tone", "whistle"]), "whistle"),
    (dict(num_clips=3, seed=0, classes=["tone", "tone"]), "repeat"),
    (dict(num_clips=3, seed=0, classes=[]), "empty"),
    (dict(num_clips=3, seed=0, classes="tone"), "list of class names"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticEvents(**kwargs)


def test_bad_indices_raise():
    ds = SyntheticEvents(3, seed=0)
    with pytest.raises(IndexError, match="out of range"):
        ds[3]
    with pytest.raises(IndexError, match="out of range"):
        ds[-4]
    with pytest.raises(TypeError, match="integers"):
        ds[1.0]
    with pytest.raises(IndexError):
        ds.sources(10)
