"""LongViewer: windows cut from the chunked spectrogram agree with the model's own windowed analysis."""

from __future__ import annotations

import threading

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


def test_batched_labels_equal_each_windows_own_analysis(setup):
    """The labels come from batched logits-only passes; each equals model.analyze of that window alone."""
    audio, model, lv = setup
    for window in lv.windows:
        alone = model.analyze(lv.window_spectrogram(lv.spectrogram, window.start))
        assert isinstance(alone, av.Analysis)
        expected = alone.top_labels(3)
        assert [name for name, _ in window.labels] == [name for name, _ in expected]
        np.testing.assert_allclose([p for _, p in window.labels], [p for _, p in expected], rtol=1e-5, atol=1e-6)
    # batches that do not divide the windows (2 + 2 + 1), another top_k, a multi-label head: the same rule
    sigmoid = av.ASTModel(model.config.replace(multi_label=True)).eval()
    sigmoid.load_state_dict(model.state_dict())
    calls = []
    small = LongViewer(audio, sigmoid, top_k=5, batch_size=2, background=False, progress=lambda *a: calls.append(a))
    assert [c for c in calls if c[0] == "windows"] == [("windows", 2, 5), ("windows", 4, 5), ("windows", 5, 5)]
    for window in small.windows:
        probs = sigmoid.analyze(small.window_spectrogram(small.spectrogram, window.start)).probabilities
        order = np.argsort(-probs, kind="stable")
        assert [name for name, _ in window.labels] == [sigmoid.labels[i] for i in order]
        np.testing.assert_allclose([p for _, p in window.labels], probs[order], rtol=1e-5, atol=1e-6)
    with pytest.raises(av.ConfigError, match="batch_size"):
        LongViewer(audio.segment(0, 1), model, batch_size=0)


def test_background_labels_fill_the_strip_and_equal_the_foreground_ones(setup):
    """The default: the viewer exists before its labels; they arrive in the strip and equal a blocking run's."""
    audio, model, lv = setup
    gate = threading.Event()
    original = model.forward_head

    def held(tokens):  # the first batch waits until the test has looked at the empty strip
        gate.wait(10)
        return original(tokens)

    pushed = []
    model.forward_head = held
    try:
        bg = LongViewer(audio, model, top_k=3, batch_size=2)
        bg.observe(lambda change: pushed.append(change["new"]), names="_windows")
        assert not bg.labels_done
        assert [w["labels"] for w in bg._windows] == [[]] * 5 and len(bg._windows) == 5
        with pytest.raises(TimeoutError, match=r"0 of 5 window labels ready after 0.05 s; .*background"):
            bg.wait_for_labels(timeout=0.05)
        bg.show_window(3)  # geometry works before the labels are there
        assert bg.window == 3 and bg._grid_offset == 3072
        gate.set()
        windows = bg.wait_for_labels(timeout=30)
    finally:
        model.forward_head = original
    assert bg.labels_done and windows == bg.windows
    assert [(w.start, w.end) for w in windows] == [(w.start, w.end) for w in lv.windows]
    for got, expected in zip(windows, lv.windows):
        assert [n for n, _ in got.labels] == [n for n, _ in expected.labels]
        np.testing.assert_allclose([p for _, p in got.labels], [p for _, p in expected.labels], rtol=1e-5, atol=1e-6)
    assert pushed and pushed[-1] == [{"start": w.start, "end": w.end, "labels": [[l, p] for l, p in w.labels]}
                                     for w in windows]


def test_background_failure_is_reported_and_the_viewer_keeps_working(setup, caplog):
    audio, model, _ = setup
    original = model.forward_head

    def broken(tokens):
        raise RuntimeError("out of memory (simulated)")

    model.forward_head = broken
    try:
        bg = LongViewer(audio, model)
        with pytest.raises(RuntimeError, match="window labels failed: out of memory"):
            bg.wait_for_labels(timeout=30)
        with pytest.raises(RuntimeError, match="out of memory"):
            bg.windows
        with pytest.raises(RuntimeError, match="out of memory"):  # the blocking form raises it at once
            LongViewer(audio, model, background=False)
    finally:
        model.forward_head = original
    assert "window labels failed after 0 of 5 windows" in caplog.text
    bg.show_window(1)
    assert bg.window == 1 and isinstance(bg.analysis, av.Analysis)


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


_EXIT_SCRIPT = """
import sys
import numpy as np
import soundfile as sf
import audiovis as av

path, mode = sys.argv[1], sys.argv[2]
sr = 16000
sf.write(path, (0.05 * np.random.default_rng(0).standard_normal(120 * sr)).astype(np.float32), sr)
lv = av.LongViewer(path, av.load_demo_model(), batch_size=4)  # 30 windows: labels still running at exit
print("labels_done_at_exit", lv.labels_done, flush=True)
if mode == "close":
    lv.close()
    print("closed; thread alive:", lv._labels_thread.is_alive(), flush=True)
"""


@pytest.mark.parametrize("mode", ["close", "no-close"])
def test_script_exits_cleanly_while_labels_are_computed(tmp_path, mode):
    """A script that ends (with or without close()) while the label thread is inside torch exits with 0.

    Before the fix the interpreter tore down with the thread mid-batch: "terminate called without an
    active exception", exit 134 (Aborted), on every run of this script.
    """
    import os
    import subprocess
    import sys

    script = tmp_path / "long_viewer_exit.py"
    script.write_text(_EXIT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "long.flac"), mode], capture_output=True,
                         text=True, timeout=300, env=env)
    assert "labels_done_at_exit False" in run.stdout, run.stdout + run.stderr  # the thread was still busy
    assert "terminate called" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr
    if mode == "close":
        assert "closed; thread alive: False" in run.stdout  # close() waited for the thread
