"""PatchGrid geometry: AST numbers and properties checked against brute force over every patch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audiovis as av
from audiovis.errors import ConfigError

from .conftest import make_tone


@st.composite
def grids(draw):
    pf = draw(st.integers(1, 8))
    pt = draw(st.integers(1, 8))
    sf = draw(st.integers(1, 10))
    stt = draw(st.integers(1, 10))
    F = draw(st.integers(pf, 40))
    T = draw(st.integers(pt, 60))
    return av.PatchGrid((F, T), (pf, pt), (sf, stt))


def footprints(grid: av.PatchGrid) -> np.ndarray:
    """Brute-force footprints of every patch: [N, 4] (t0, t1, f0, f1), straight from the definition."""
    rows, cols = grid.grid_shape
    out = []
    for r in range(rows):  # frequency-major token order
        for c in range(cols):
            t0 = c * grid.stride[1]
            f0 = r * grid.stride[0]
            out.append((t0, t0 + grid.patch_size[1], f0, f0 + grid.patch_size[0]))
    return np.array(out)


def test_ast_numbers():
    grid = av.PatchGrid()
    assert grid.grid_shape == (12, 101) and grid.num_patches == 1212 and len(grid) == 1212
    bins, frames = grid.uncovered()
    assert bins.tolist() == [126, 127]
    assert frames.tolist() == list(range(1016, 1024))
    assert grid.index(4, 63) == 4 * 101 + 63
    assert grid.position(467) == (4, 63)
    assert grid.bounds(467) == (630, 646, 40, 56)
    assert av.PatchGrid(stride=16).grid_shape == (8, 64)


def test_bounds_hz_s_on_ast_spectrogram():
    spec = av.KaldiFbank()(av.load_audio(make_tone(seconds=10.0), 16000))
    grid = av.PatchGrid()
    box = grid.bounds_hz_s(grid.index(0, 1), spec)
    # frames 10..26: left edge of frame 10 is its centre (0.1125 s) minus half a hop
    assert box.time_start == pytest.approx(0.1075) and box.time_end == pytest.approx(0.2675)
    assert box.freq_start == pytest.approx(spec.frequency_edges[0])
    assert box.freq_end == pytest.approx(spec.frequency_edges[16])
    with pytest.raises(ValueError, match="does not match"):
        av.PatchGrid((64, 100)).bounds_hz_s(0, spec)


@settings(max_examples=150, deadline=None)
@given(grids())
def test_index_position_round_trip_and_order(grid):
    rows, cols = grid.grid_shape
    assert rows == (grid.input_shape[0] - grid.patch_size[0]) // grid.stride[0] + 1
    assert cols == (grid.input_shape[1] - grid.patch_size[1]) // grid.stride[1] + 1
    idx = np.arange(grid.num_patches)
    r, c = grid.position(idx)
    np.testing.assert_array_equal(grid.index(r, c), idx)
    np.testing.assert_array_equal(footprints(grid), [tuple(grid.bounds(i)) for i in idx])


@settings(max_examples=150, deadline=None)
@given(grids())
def test_coverage_and_uncovered(grid):
    covered = np.zeros(grid.input_shape, dtype=bool)
    for t0, t1, f0, f1 in footprints(grid):
        covered[f0:f1, t0:t1] = True
    bins, frames = grid.uncovered()
    expect = np.ones(grid.input_shape, dtype=bool)
    expect[bins, :] = False
    expect[:, frames] = False
    np.testing.assert_array_equal(covered, expect)


@settings(max_examples=150, deadline=None)
@given(grids(), st.data())
def test_patches_in_is_exactly_the_overlapping_patches(grid, data):
    F, T = grid.input_shape
    t0 = data.draw(st.floats(-5, T + 5, allow_nan=False))
    t1 = data.draw(st.floats(-5, T + 5, allow_nan=False))
    f0 = data.draw(st.floats(-5, F + 5, allow_nan=False))
    f1 = data.draw(st.floats(-5, F + 5, allow_nan=False))
    lo_t, hi_t, lo_f, hi_f = min(t0, t1), max(t0, t1), min(f0, f1), max(f0, f1)
    fp = footprints(grid)
    # half-open overlap; a zero-width box is a line that still touches the patches it lies in
    hi_t_eff = hi_t if hi_t > lo_t else lo_t + 1e-9
    hi_f_eff = hi_f if hi_f > lo_f else lo_f + 1e-9
    expect = np.flatnonzero((fp[:, 0] < hi_t_eff) & (fp[:, 1] > lo_t) & (fp[:, 2] < hi_f_eff) & (fp[:, 3] > lo_f))
    assert grid.patches_in((t0, t1, f0, f1)) == expect.tolist()


@settings(max_examples=150, deadline=None)
@given(grids(), st.data())
def test_patch_at_uses_stride_cells(grid, data):
    F, T = grid.input_shape
    frame = data.draw(st.floats(-2, T + 2, allow_nan=False))
    bin_ = data.draw(st.floats(-2, F + 2, allow_nan=False))
    hit = grid.patch_at(frame, bin_)
    bins, frames = grid.uncovered()
    covered_t = 0 <= frame < T and int(frame) not in frames
    covered_f = 0 <= bin_ < F and int(bin_) not in bins
    if not (covered_t and covered_f):
        assert hit is None
        return
    assert hit is not None
    cell = grid.cell_bounds(hit)
    assert cell.time_start <= frame < cell.time_end and cell.freq_start <= bin_ < cell.freq_end
    full = grid.bounds(hit)  # the selected patch always contains the point
    assert full.time_start <= frame < full.time_end and full.freq_start <= bin_ < full.freq_end


def test_cells_tile_the_covered_area():
    grid = av.PatchGrid((40, 57), (16, 16), (10, 10))
    owner = -np.ones(grid.input_shape, dtype=int)
    for i in range(grid.num_patches):
        t0, t1, f0, f1 = grid.cell_bounds(i)
        assert (owner[f0:f1, t0:t1] == -1).all(), "stride cells overlap"
        owner[f0:f1, t0:t1] = i
    bins, frames = grid.uncovered()
    assert bins.tolist() == [36, 37, 38, 39] and frames.tolist() == [56]
    assert (owner[:36, :56] >= 0).all()


def test_patches_in_seconds_and_hz():
    spec = av.KaldiFbank()(av.load_audio(make_tone(seconds=10.0), 16000))
    grid = av.PatchGrid()
    target = grid.index(3, 40)
    box = grid.bounds_hz_s(target, spec)
    inner = (box.time_start + 0.01, box.time_end - 0.01, box.freq_start + 1, box.freq_end - 1)
    got = grid.patches_in(inner, spec)
    frames = tuple(spec.time_to_frame([inner[0], inner[1]]))
    bins = tuple(spec.hz_to_bin([inner[2], inner[3]]))
    assert got == grid.patches_in((*frames, *bins))
    assert target in got and len(got) == 9  # 3 overlapping rows x 3 overlapping cols at stride 10


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_shape=(8, 100)), "larger than the input"),
    (dict(stride=(0, 10)), "positive"),
    (dict(stride=-1), "positive"),
    (dict(patch_size=(16,)), "pair"),
    (dict(input_shape=(128, 1024.5)), "positive integers"),
])
def test_bad_grids(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        av.PatchGrid(**kwargs)


def test_bad_indices():
    grid = av.PatchGrid()
    for bad in (-1, 1212, 3.5, float("nan")):
        with pytest.raises(IndexError):
            grid.position(bad)
    with pytest.raises(IndexError):
        grid.index(12, 0)
    assert grid.patch_at(float("nan"), 3) is None


def test_num_freq_and_num_time_and_their_deprecated_old_names():
    grid = av.PatchGrid(input_shape=(128, 1024), patch_size=(16, 16), stride=(10, 10))
    assert (grid.num_freq, grid.num_time) == grid.grid_shape == (12, 101)
    with pytest.warns(DeprecationWarning, match=r"PatchGrid\.n_freq is deprecated; use PatchGrid\.num_freq"):
        assert grid.n_freq == 12
    with pytest.warns(DeprecationWarning, match=r"PatchGrid\.n_time is deprecated; use PatchGrid\.num_time"):
        assert grid.n_time == 101


def test_a_subnormal_box_edge_still_touches_the_first_patch():
    grid = av.PatchGrid((1, 1), (1, 1), (1, 2))
    assert grid.patches_in((0.0, 5e-324, 0.0, 0.0)) == [0]  # hi / stride underflows to 0 in float


def test_one_patch_index_and_the_browsers_lenient_rule():
    from audiovis.errors import PatchIndexError
    from audiovis.patches import check_patch, filter_patches

    assert check_patch(np.int64(5), 10) == 5 and check_patch(7.0, 10) == 7 and check_patch(np.array(3), 10) == 3
    for bad in (True, [3], (3,), np.array([3]), "3", None, 2.5):
        with pytest.raises(PatchIndexError):
            check_patch(bad, 10, context="open: ")
    with pytest.raises(IndexError, match=r"open: patch 10 outside 0\.\.9"):
        check_patch(10, 10, context="open: ")
    kept, dropped = filter_patches([3, 1, 3.0, True, -1, 10, 2.5, "4", None, np.int64(9), 10**400], 10)
    assert kept == [1, 3, 9]
    assert dropped[:4] == [True, -1, 10, 2.5] and len(dropped) == 7
