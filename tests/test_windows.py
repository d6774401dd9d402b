"""The one window rule (audiovis/windows.py) answers every caller alike, and models reach it only through
the slot the package root fills (models/delegate.py)."""

from __future__ import annotations

import numpy as np
import pytest

import audiovis as av
from audiovis.models import delegate
from audiovis.windows import model_window_starts, window_starts
from audiovis.widgets.longview import LongViewer

SR = 16000
BAD_HOPS = (0, -1.0, float("nan"), float("inf"), True, "0.5", [0.5])


@pytest.fixture(scope="module")
def demo():
    return av.load_demo_model()


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    return av.load_audio((0.1 * rng.standard_normal(int(9.5 * SR))).astype(np.float32), SR)


def test_every_caller_refuses_a_bad_hop_with_one_error_type(demo, clip):
    calls = {
        "analyze": lambda hop: demo.analyze(clip, hop=hop),
        "analyze_windows": lambda hop: demo.analyze_windows(clip, hop=hop),
        "windows": lambda hop: demo.windows(clip, hop=hop),
        "window_starts": lambda hop: demo.window_starts(clip, hop),
        "LongViewer": lambda hop: LongViewer(clip, demo, hop=hop, background=False),
    }
    for name, call in calls.items():
        for bad in BAD_HOPS:
            with pytest.raises(av.ConfigError, match="hop must be a positive number of seconds"):
                call(bad)
    spec = demo.frontend(clip)  # a whole-clip spectrogram: a hop under one frame (10 ms) is refused everywhere
    with pytest.raises(av.ConfigError, match="one frame"):
        demo.analyze(spec, hop=0.004)
    with pytest.raises(av.ConfigError, match="one frame"):
        LongViewer(clip, demo, hop=0.004, background=False)


def test_the_model_the_longviewer_and_the_rule_agree_window_for_window(demo, clip):
    hop = 1.5
    seconds = demo.window_starts(clip, hop)
    # the plain rule by hand: every hop while a window (4 s + the last Kaldi frame's 15 ms) fits, then one
    # ending at the end of the clip, rounded down to the 10 ms frame grid
    span = demo.window_seconds + 0.015
    expected = [k * hop for k in range(int((clip.duration - span) // hop) + 1)]
    last = np.floor((clip.duration - span) / 0.01 + 1e-6) * 0.01
    expected.append(last)
    assert seconds == pytest.approx(expected)
    assert window_starts(clip.duration, span, hop, grid=0.01) == seconds
    lv = LongViewer(clip, demo, hop=hop, background=False)
    frames = [w.start for w in lv.windows]
    assert model_window_starts(demo, lv.spectrogram, hop) == frames
    assert frames == [int(round(s / 0.01)) for s in seconds]  # the same windows, in frames of the same clock


def test_a_model_without_the_analysis_layer_says_so(demo, clip, monkeypatch):
    monkeypatch.setattr(delegate, "_loader", None)
    with pytest.raises(RuntimeError, match="analysis layer.*import audiovis"):
        demo.analyze(clip)
    monkeypatch.undo()
    assert len(demo.analyze(clip)) == 3
