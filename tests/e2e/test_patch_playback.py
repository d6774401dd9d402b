""""▶ patches" in a real JupyterLab + Chromium: the kernel answers with the selected patches' sound, an
AudioContext runs, and the buffer the viewer plays is exactly the region's span (at the model's rate)."""

from __future__ import annotations

import json

import pytest

from .viewer_page import VIEWER, viewer_setup

pytestmark = pytest.mark.e2e

N_TIME = 101

# Installed before the page loads: every AudioContext, and the size and rate of every audio buffer made.
RECORD = """
(() => {
  const contexts = (window.__avContexts = []);
  const Native = window.AudioContext;
  window.AudioContext = class extends Native {
    constructor(...args) { super(...args); contexts.push(this); }
  };
  const buffers = (window.__avBuffers = []);
  const createBuffer = BaseAudioContext.prototype.createBuffer;
  BaseAudioContext.prototype.createBuffer = function (channels, length, rate) {
    buffers.push({ channels, length, rate });
    return createBuffer.call(this, channels, length, rate);
  };
})();
"""


@pytest.fixture(scope="module")
def nb(lab_module):
    lab_module.context.add_init_script(RECORD)
    notebook = lab_module.open_notebook(cells=[viewer_setup(height=320), "viewer"])
    notebook.run_all()
    notebook.wait_for_widget(1, VIEWER)
    return notebook


def test_play_patches_plays_only_the_region(nb):
    widget = nb.output_locator(1).locator(VIEWER)
    button = widget.locator('[data-testid="audiovis-play-patches"]')
    play = widget.locator('[data-testid="audiovis-play"]')
    assert button.is_disabled()  # nothing selected yet
    patches = [4 * N_TIME + 20, 5 * N_TIME + 24]  # frames [200, 256): 2.0-2.56 s, two bands
    nb.run_cell(
        "played = []\n"
        "viewer.observe(lambda change: played.append(change['new']), 'playhead')\n"
        f"viewer.select({patches})"
    )
    nb.page.wait_for_function("(b) => !b.disabled", arg=button.element_handle())
    out = nb.run_cell(
        f"boxes = [grid.bounds_hz_s(p, spec) for p in {patches}]\n"
        "t0, t1 = min(b[0] for b in boxes), max(b[1] for b in boxes)\n"
        "print(json.dumps([t0, t1, round((t1 - t0) * spec.sample_rate)]))"
    )
    t0, t1, expected = json.loads(out.strip().splitlines()[-1])
    before = nb.evaluate("() => window.__avBuffers.length")
    button.click()
    nb.page.wait_for_function("(n) => window.__avBuffers.length > n", arg=before, timeout=30000)
    made = nb.evaluate("(n) => window.__avBuffers.slice(n)", before)
    assert made == [{"channels": 1, "length": expected, "rate": 16000}], made
    nb.page.wait_for_function("() => window.__avContexts.some((c) => c.state === 'running')", timeout=15000)
    nb.page.wait_for_function("(b) => b.dataset.state === 'paused'", arg=play.element_handle(), timeout=30000)
    # the playhead moved through the region's span only and stopped at its end
    text = nb.poll_cell("print(json.dumps(played))", lambda s: bool(json.loads(s)) and abs(json.loads(s)[-1] - t1) < 2e-3)
    played = json.loads(text)
    assert all(t0 - 2e-3 <= t <= t1 + 2e-3 for t in played), (t0, t1, played)
    # the main player's whole clip was never loaded for this
    assert all(b["length"] == expected for b in nb.evaluate("() => window.__avBuffers"))
