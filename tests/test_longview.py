"""LongViewer: windows cut from the chunked spectrogram agree with the model's own windowed analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

import audiovis as av
from audiovis.widgets.longview import LongViewer


@pytest.fixture(scope="module")
def setup():
    sr = 16000
    rng = np.random.default_rng(5)
    x = (0.05 * rng.standard_normal(int(47.3 * sr))).astype(np.float32)
    t = np.arange(sr) / sr
    x[20 * sr: 21 * sr] += (0.5 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    audio = av.load_audio(x, sr)
    torch.manual_seed(0)
    config = av.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          num_labels=5, labels=["a", "b", "c", "d", "e"])
    model = av.ASTModel(config).eval()
    lv = LongViewer(audio, model, top_k=3)
    lv.send = lambda *a, **k: None
    return audio, model, lv


def test_window_labels_match_analyze_windows(setup):
    audio, model, lv = setup
    reference = model.analyze_windows(audio)  # the model's own sliding windows, segment by segment
    assert len(lv.windows) == len(reference) == 5
    for window, ref in zip(lv.windows, reference):
        assert window.start_seconds == pytest.approx(ref.offset + float(lv.spectrogram.time_offset), abs=1e-9)
        got = dict(window.labels)
        for label, p in ref.top_labels(3):
            assert got[label] == pytest.approx(p, abs=1e-4)
    assert lv._windows[2] == {"start": 2048, "end": 3072, "labels": [[l, p] for l, p in lv.windows[2].labels]}


def test_grid_appears_for_the_window_under_view(setup):
    _, model, lv = setup
    assert lv.window is None and lv._grid is None
    lv.show_window(2)
    assert lv.window == 2 and lv._grid == model.grid.to_dict() and lv._grid_offset == 2048
    lv.select([17, 3])
    assert lv.selected_patches == [3, 17]
    a = lv.analysis
    assert a is lv.analysis  # computed once per window
    np.testing.assert_allclose(a.spectrogram.numpy(), lv.spectrogram.numpy()[:, 2048:3072])
    # Panning by half a window moves to the neighbour nearest the view's centre, clearing the selection.
    t0, t1 = lv.time_range
    lv.time_range = (t0 + 0.6 * (t1 - t0), t1 + 0.6 * (t1 - t0))
    assert lv.window == 3 and lv._grid_offset == 3072 and lv.selected_patches == []
    lv.time_range = lv.full_time_range
    assert lv.window is None and lv._grid is None and lv.analysis is None
    with pytest.raises(traitlets.TraitError, match="no patch grid"):
        lv.select([1])


def test_last_window_is_padded_and_bad_window_index_is_named(setup):
    _, _, lv = setup
    last = lv.windows[-1]
    assert last.start == 4096 and last.end == 5120 > lv.spectrogram.num_frames
    lv.show_window(4)
    assert lv.analysis.spectrogram.num_frames == 1024
    with pytest.raises(IndexError, match="window 5 outside 0..4"):
        lv.show_window(5)


def test_to_png_draws_the_window_grid_at_its_offset(setup):
    """The selection of a window's patch appears in the PNG where that window's frames are shown."""
    import io

    from PIL import Image

    _, model, lv = setup
    lv.show_window(2)
    grid, width = model.grid, 500
    patch = grid.index(3, 50)

    def plot() -> np.ndarray:
        image = np.asarray(Image.open(io.BytesIO(lv.to_png(width=width))).convert("RGB")).astype(int)
        return image[4 : 4 + lv.height, 64 : 64 + width]

    lv.clear_selection()
    before = plot()
    lv.select([patch])
    changed = np.argwhere(np.abs(plot() - before).sum(axis=2) > 0)
    cell = grid.cell_bounds(patch)
    f0, f1 = (float(f) for f in lv.spectrogram.time_to_frame(np.asarray(lv.time_range)))
    start = lv.windows[2].start
    x0 = (cell.time_start + start - f0) / (f1 - f0) * width
    x1 = (cell.time_end + start - f0) / (f1 - f0) * width
    y0 = lv.height - cell.freq_end / grid.input_shape[0] * lv.height
    y1 = lv.height - cell.freq_start / grid.input_shape[0] * lv.height
    assert changed.size, "the selected cell was not drawn in the view"
    (top, left), (bottom, right) = changed.min(axis=0), changed.max(axis=0)
    assert abs(left - x0) <= 1 and abs(right + 1 - x1) <= 1, (left, right, x0, x1)
    assert abs(top - y0) <= 1 and abs(bottom + 1 - y1) <= 1, (top, bottom, y0, y1)
    lv.clear_selection()
