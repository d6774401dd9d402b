"""Property-based tests (hypothesis): front-end shapes and axes, PatchGrid protocol pieces, the selection protocol.

References are independent of the code under test: frame counts from the STFT/Kaldi definitions,
filter centres from librosa and torchaudio's Kaldi mel banks, patch footprints by brute force, and
the browser's selection rule re-stated in :func:`expected_selection`.
"""

from __future__ import annotations

import json
import logging
import math
import warnings

import librosa
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import audiovis as av
from audiovis.widgets.viewer import SpectrogramViewer

FAST = settings(max_examples=40, deadline=None)


def noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32))


def resampled_length(n: int, rate: int, target: int) -> int:
    """torchaudio's resample length: ceil(n * target / rate), exactly (the ratio is reduced by the gcd)."""
    return n if rate == target else -(-n * target // rate)


def assert_time_axis(spec: av.Spectrogram, first_centre: float, hop_seconds: float) -> None:
    """Frame k is centred at first_centre + k * hop; the continuous frame axis maps back and forth."""
    k = np.arange(spec.num_frames)
    np.testing.assert_allclose(spec.times, first_centre + k * hop_seconds, rtol=0, atol=1e-9)
    assert spec.hop_seconds == pytest.approx(hop_seconds, rel=1e-12)
    np.testing.assert_allclose(spec.frame_to_time(k + 0.5), spec.times, rtol=0, atol=1e-9)
    np.testing.assert_allclose(spec.time_to_frame(spec.times), k + 0.5, rtol=0, atol=1e-6)
    assert 1 <= spec.valid_frames <= spec.num_frames


def assert_frequency_axis(spec: av.Spectrogram) -> None:
    """Band edges bracket the centres; the continuous bin axis maps back and forth."""
    edges, centres = spec.frequency_edges, spec.frequencies
    assert len(edges) == spec.num_bins + 1 and np.all(np.diff(edges) >= 0)
    assert np.all(edges[:-1] <= centres + 1e-9) and np.all(centres <= edges[1:] + 1e-9)
    coords = np.linspace(0, spec.num_bins, 4 * spec.num_bins + 1)
    if np.all(np.diff(edges) > 0):
        np.testing.assert_allclose(spec.hz_to_bin(spec.bin_to_hz(coords)), coords, atol=1e-6)


# ---- front ends ----------------------------------------------------------------------------------


@FAST
@given(
    n=st.integers(1, 6000),
    rate=st.integers(100, 96000),
    n_fft=st.integers(8, 1024),
    data=st.data(),
)
def test_stft_shape_and_axes(n, rate, n_fft, data):
    win = data.draw(st.integers(2, n_fft), label="win_length")
    hop = data.draw(st.integers(1, win), label="hop_length")
    spec = av.STFTSpectrogram(n_fft=n_fft, hop_length=hop, win_length=win)(noise(n), rate)
    padded = n + 2 * (n_fft // 2)  # centred frames: n_fft // 2 samples of padding each side
    assert spec.shape == (n_fft // 2 + 1, 1 + (padded - n_fft) // hop)
    assert spec.sample_rate == rate and spec.hop_length == hop and spec.scale == "linear"
    assert_time_axis(spec, 0.0, hop / rate)
    np.testing.assert_allclose(spec.frequencies, np.fft.rfftfreq(n_fft, 1 / rate), rtol=1e-12)
    assert spec.frequency_edges[0] == 0 and spec.frequency_edges[-1] == pytest.approx(rate / 2)
    assert_frequency_axis(spec)
    assert np.isfinite(spec.numpy()).all()


@FAST
@given(
    n=st.integers(1, 8000),
    in_rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    sr=st.sampled_from([8000, 16000, 22050, 32000]),
    n_fft=st.sampled_from([256, 400, 512, 1024]),
    hop=st.integers(32, 400),
    n_mels=st.integers(1, 96),
    mel_scale=st.sampled_from(["htk", "slaney"]),
    band=st.tuples(st.floats(0, 0.45), st.floats(0.55, 1.0)),
)
def test_mel_shape_and_axes(n, in_rate, sr, n_fft, hop, n_mels, mel_scale, band):
    f_min, f_max = band[0] * sr / 2, band[1] * sr / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchaudio warns about empty filters with many mels and a small FFT
        frontend = av.MelSpectrogram(sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                     f_min=f_min, f_max=f_max, mel_scale=mel_scale)
        spec = frontend(noise(n), in_rate)
    m = resampled_length(n, in_rate, sr)
    assert spec.shape == (n_mels, 1 + m // hop) and spec.sample_rate == sr and spec.scale == "mel"
    assert_time_axis(spec, 0.0, hop / sr)
    # librosa's mel_frequencies(n + 2) are the filters' feet and centres: the centres are the inner n
    reference = librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max, htk=mel_scale == "htk")[1:-1]
    np.testing.assert_allclose(spec.frequencies, reference, rtol=1e-6, atol=1e-6)
    assert f_min < spec.frequency_edges[0] and spec.frequency_edges[-1] < f_max
    assert np.all(np.diff(spec.frequency_edges) > 0)
    assert_frequency_axis(spec)


@FAST
@given(
    n=st.integers(1, 12000),
    rate=st.sampled_from([8000, 16000, 22050, 44100]),
    bins=st.integers(4, 128),
    target=st.one_of(st.none(), st.integers(1, 200)),
)
def test_kaldi_shape_and_axes(n, rate, bins, target):
    from torchaudio.compliance.kaldi import get_mel_banks

    spec = av.KaldiFbank(num_mel_bins=bins, target_frames=target)(noise(n), rate)
    m = max(400, resampled_length(n, rate, 16000))  # shorter input is padded to one 25 ms window
    raw = 1 + (m - 400) // 160  # Kaldi's snip_edges framing: 25 ms windows every 10 ms
    assert spec.shape == (bins, raw if target is None else target)
    assert spec.valid_frames == (raw if target is None else min(raw, target))
    assert spec.sample_rate == 16000 and spec.hop_length == 160
    assert_time_axis(spec, 200 / 16000, 0.01)  # frame k covers samples [160 k, 160 k + 400)
    _, centres = get_mel_banks(bins, 512, 16000.0, 20.0, 0.0, 100.0, -500.0, 1.0)
    np.testing.assert_allclose(spec.frequencies, centres.double().numpy().ravel(), rtol=1e-5)
    assert_frequency_axis(spec)
    if target is not None and target > raw:  # padding frames hold the normalised zero
        np.testing.assert_allclose(spec.numpy()[:, raw:], (0 + 4.2677393) / (2 * 4.5689974), rtol=1e-6)


# ---- PatchGrid protocol pieces -------------------------------------------------------------------


@st.composite
def grids(draw):
    pf, pt = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    sf, stt = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    return av.PatchGrid((draw(st.integers(pf, 50)), draw(st.integers(pt, 70))), (pf, pt), (sf, stt))


@settings(max_examples=150, deadline=None)
@given(grids())
def test_grid_counts_and_to_dict(grid):
    """grid_shape counts the positions k with k * stride + patch <= size; to_dict survives JSON."""
    for axis in (0, 1):
        size, p, s = grid.input_shape[axis], grid.patch_size[axis], grid.stride[axis]
        assert grid.grid_shape[axis] == sum(1 for k in range(size + 1) if k * s + p <= size)
    assert grid.num_patches == len(grid) == grid.grid_shape[0] * grid.grid_shape[1]
    d = json.loads(json.dumps(grid.to_dict()))
    assert av.PatchGrid(d["input_shape"], d["patch_size"], d["stride"]) == grid
    assert d["grid_shape"] == list(grid.grid_shape)


@settings(max_examples=100, deadline=None)
@given(grids())
def test_stride_cells_tile_the_covered_area(grid):
    """Cells never overlap, lie inside their patch, and cover exactly what uncovered() leaves out."""
    F, T = grid.input_shape
    owner = -np.ones((F, T), dtype=int)
    for i in range(grid.num_patches):
        cell, full = grid.cell_bounds(i), grid.bounds(i)
        assert full.time_start <= cell.time_start < cell.time_end <= full.time_end
        assert full.freq_start <= cell.freq_start < cell.freq_end <= full.freq_end
        block = owner[cell.freq_start:cell.freq_end, cell.time_start:cell.time_end]
        assert (block == -1).all(), f"cell {i} overlaps another"
        block[...] = i
    bins, frames = grid.uncovered()
    covered = np.ones((F, T), dtype=bool)
    covered[bins, :] = False
    covered[:, frames] = False
    np.testing.assert_array_equal(owner >= 0, covered)
    for f, t in zip(*np.nonzero(covered)):  # patch_at at a cell's centre point is its owner
        assert grid.patch_at(t + 0.5, f + 0.5) == owner[f, t]


@settings(max_examples=100, deadline=None)
@given(grids(), st.data())
def test_index_rejects_what_is_not_a_patch(grid, data):
    rows, cols = grid.grid_shape
    r, c = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, cols - 1))
    assert grid.index(r, c) == r * cols + c == grid.index(float(r), float(c))
    assert grid.position(grid.index(r, c)) == (r, c)
    bad = data.draw(st.sampled_from([0.5, -1, rows + cols + 100, float("nan"), True, "1", 10**30]))
    with pytest.raises(IndexError):
        grid.index(bad, c)
    with pytest.raises(IndexError):
        grid.position(bad if not isinstance(bad, int) or isinstance(bad, bool) else grid.num_patches + abs(bad))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_seconds_and_hz_boxes_agree_with_frames_and_bins(data):
    """patches_in(box in s/Hz, spec) == patches_in(the same box converted by the axes' own definition)."""
    frames = data.draw(st.integers(20, 200))
    hop, rate = data.draw(st.sampled_from([(160, 16000), (256, 22050), (512, 44100)]))
    spec = av.STFTSpectrogram(n_fft=64, hop_length=hop, win_length=64)(noise(hop * (frames - 1)), rate)
    grid = av.PatchGrid(spec.shape, (data.draw(st.integers(1, 8)), data.draw(st.integers(1, 12))),
                        (data.draw(st.integers(1, 8)), data.draw(st.integers(1, 12))))
    t = sorted(data.draw(st.lists(st.floats(-0.1, spec.duration + 0.1), min_size=2, max_size=2)))
    hz = sorted(data.draw(st.lists(st.floats(0, rate / 2), min_size=2, max_size=2)))
    hop_s = hop / rate
    frame = [(x - (spec.times[0] - hop_s / 2)) / hop_s for x in t]  # frame centres k * hop, left edge -hop/2
    bin_hz = rate / 64
    # linear STFT bins: edges at (k - 0.5) * bin_hz, clipped to [0, Nyquist]
    edges = np.clip((np.arange(spec.num_bins + 1) - 0.5) * bin_hz, 0, rate / 2)
    bins = [float(np.interp(h, edges, np.arange(spec.num_bins + 1))) for h in hz]
    assert grid.patches_in((*t, *hz), spec) == grid.patches_in((*frame, *bins))
    index = data.draw(st.integers(0, grid.num_patches - 1))
    b, box = grid.bounds(index), grid.bounds_hz_s(index, spec)
    assert box.time_start == pytest.approx(spec.times[0] - hop_s / 2 + b.time_start * hop_s)
    assert box.freq_end == pytest.approx(float(np.interp(b.freq_end, np.arange(spec.num_bins + 1), edges)))


# ---- the selection protocol ----------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2000, 2000), st.integers(), st.floats(), st.text(max_size=4),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=12)
index_like = st.one_of(st.integers(-20, 1250), st.integers(), st.floats(), st.booleans(), st.none(), st.text(max_size=3),
                       st.lists(st.integers(0, 5), max_size=2))
browser_updates = st.one_of(
    st.fixed_dictionaries({"selected_patches": st.lists(index_like, max_size=30)}),
    st.fixed_dictionaries({"selected_patches": json_values}),
    st.fixed_dictionaries({"hovered_patch": st.one_of(index_like, json_values)}),
    st.fixed_dictionaries({"time_range": st.one_of(st.lists(st.floats(), min_size=2, max_size=2), json_values)}),
    st.fixed_dictionaries({"playhead": st.one_of(st.floats(), json_values)}),
    st.dictionaries(st.sampled_from(["_meta", "_grid", "masked_patches", "vmin", "colormap", "other"]), json_values, max_size=2),
)
custom_messages = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["audio", "tile", "x"]), "id": st.one_of(st.integers(), json_scalars),
                           "chunk": json_scalars, "level": json_scalars, "index": json_scalars}),
)
python_calls = st.lists(st.integers(0, 1211), max_size=8)


def is_index(v, n: int) -> bool:
    """The browser-side rule, restated: an integer (or integer-valued float), not a bool, in 0..n-1."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, float) and not (math.isfinite(v) and v == int(v)):
        return False
    return 0 <= v < n


def expected_selection(before: list[int], update: dict, n: int) -> list[int]:
    if "selected_patches" not in update or not isinstance(update["selected_patches"], list):
        return before
    return sorted({int(v) for v in update["selected_patches"] if is_index(v, n)})


@pytest.fixture(scope="module")
def viewer() -> SpectrogramViewer:
    audio = av.load_audio(noise(16000).numpy(), 16000)
    v = SpectrogramViewer(av.KaldiFbank()(audio), grid=av.PatchGrid(), audio=audio)
    v.send = lambda content, buffers=None: None
    return v


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(browser_updates.map(lambda u: ("update", u)), custom_messages.map(lambda m: ("custom", m)),
                          python_calls.map(lambda p: ("python", p))), max_size=12))
def test_any_sequence_of_browser_messages_leaves_a_valid_selection(viewer, messages):
    n = viewer.grid.num_patches
    logging.disable(logging.WARNING)  # thousands of expected warnings
    try:
        viewer.select([])
        expected: list[int] = []
        for kind, message in messages:
            if kind == "update":
                viewer.set_state(message)
                expected = expected_selection(expected, message, n)
            elif kind == "custom":
                viewer._handle_custom_msg(message, [])
            else:
                viewer.select(message)
                expected = sorted(set(message))
            sel = viewer.selected_patches
            assert sel == expected
            assert sel == sorted(set(sel)) and all(type(p) is int and 0 <= p < n for p in sel)
            h = viewer.hovered_patch
            assert h is None or (type(h) is int and 0 <= h < n)
            t0, t1 = viewer.time_range
            assert math.isfinite(t0) and math.isfinite(t1) and t0 < t1
            assert viewer._meta["n_frames"] == 1024 and viewer._grid == viewer.grid.to_dict()
    finally:
        logging.disable(logging.NOTSET)
