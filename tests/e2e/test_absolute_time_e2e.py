"""A viewer of a part of a recording (``audio.segment(60, 64)``) in a real JupyterLab + Chromium: its axes
read 60 s on, and playback (the whole part and a selection) plays the right samples on that clock."""

from __future__ import annotations

import json

import pytest

from .viewer_page import VIEWER

pytestmark = pytest.mark.e2e

N_TIME = 101

SETUP = """
import json
import numpy as np
import audiovis as av
sr = 16000
t = np.arange(64 * sr) / sr
wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)).astype(np.float32)
part = av.load_audio(wav, sr).segment(60, 64)
spec = av.KaldiFbank()(part)
grid = av.PatchGrid(input_shape=(128, 1024), patch_size=(16, 16), stride=(10, 10))
viewer = av.SpectrogramViewer(spec, grid=grid, audio=part, height=320)
played = []
viewer.observe(lambda change: played.append(change['new']), 'playhead')
"""

# Installed before the page loads: the size of every audio buffer made and every buffer source's start offset.
RECORD = """
(() => {
  const buffers = (window.__avBuffers = []);
  const starts = (window.__avStarts = []);
  const createBuffer = BaseAudioContext.prototype.createBuffer;
  BaseAudioContext.prototype.createBuffer = function (channels, length, rate) {
    buffers.push({ channels, length, rate });
    return createBuffer.call(this, channels, length, rate);
  };
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (when, offset, duration) {
    starts.push({ offset, duration });
    return start.call(this, when, offset, duration);
  };
})();
"""


def test_part_of_a_recording_shows_and_plays_its_own_time(lab):
    lab.context.add_init_script(RECORD)
    nb = lab.open_notebook(cells=[SETUP, "viewer"])
    nb.run_all()
    widget = nb.wait_for_widget(1, VIEWER)
    widget.scroll_into_view_if_needed()
    readout = widget.locator('[data-testid="audiovis-readout"]')
    nb.page.wait_for_function("(el) => el.textContent.includes('60.01–70.25 s')", arg=readout.element_handle(),
                              timeout=15000)

    # a selection at 62.0-62.16 s plays exactly those samples of the part (from 2.0 s into its buffer)
    patch = 4 * N_TIME + 20
    out = nb.run_cell(f"print(json.dumps(grid.bounds_hz_s({patch}, spec)[:2]))")
    t0, t1 = json.loads(out.strip().splitlines()[-1])
    assert 61.99 < t0 < 62.01  # the grid's times are the recording's
    nb.run_cell(f"viewer.select([{patch}])")
    button = widget.locator('[data-testid="audiovis-play-selection"]')
    nb.page.wait_for_function("(b) => !b.disabled", arg=button.element_handle(), timeout=15000)
    button.click()
    nb.page.wait_for_function("() => window.__avStarts.length > 0", timeout=30000)
    (first,) = nb.evaluate("() => window.__avStarts")
    assert first["offset"] == pytest.approx(t0 - 60.0, abs=1e-6) and first["duration"] == pytest.approx(t1 - t0, abs=1e-6)
    assert nb.evaluate("() => window.__avBuffers") == [{"channels": 1, "length": 4 * 16000, "rate": 16000}]
    play = widget.locator('[data-testid="audiovis-play"]')
    nb.page.wait_for_function("(b) => b.dataset.state === 'paused'", arg=play.element_handle(), timeout=30000)
    text = nb.poll_cell("print(json.dumps(played))", lambda s: bool(json.loads(s)) and abs(json.loads(s)[-1] - t1) < 2e-3)
    played = json.loads(text)
    assert all(t0 - 2e-3 <= t <= t1 + 2e-3 for t in played), (t0, t1, played)

    # the whole part: from its start at 60 s, and the kernel's playhead follows on the same clock
    nb.run_cell("viewer.playhead = 60.0\nplayed.clear()")
    play.click()
    out = nb.poll_cell("print(viewer.playhead > 60.3)", lambda o: o.strip() == "True", timeout=15)
    assert out.strip() == "True"
    play.click()  # pause
    assert nb.evaluate("() => window.__avStarts")[1]["offset"] == pytest.approx(0.0, abs=1e-6)
    played = json.loads(nb.run_cell("print(json.dumps(played))").strip().splitlines()[-1])
    assert played and all(60.0 <= t <= 64.0 for t in played), played
