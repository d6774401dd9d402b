"""The explorer's "merged tokens" overlay in a real JupyterLab + Chromium: every group is drawn, outlined in its colour."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

SETUP = """
import numpy as np, torch
import audiovis as av
torch.manual_seed(0)
config = av.ASTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                      max_length=400, num_labels=3, multi_label=False)
model = av.ASTModel(config).eval()
sr = 16000
t = np.arange(4 * sr) / sr
wav = 0.4 * np.sin(2 * np.pi * (200 * t + 400 * t ** 2)) + 0.2 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)
res = model.analyze(wav.astype(np.float32), sample_rate=sr, merge_ratio=0.5)
ex = av.explore(res, overlay="merged", colormap="gray")
groups = res.merge_groups(-1)
"""

VIEWER = '[data-testid="audiovis-viewer"]'
CANVAS = '[data-testid="spectrogram-canvas"]'

# Distinct saturated hues on the canvas: a grey spectrogram has none, each group's outline brings its own.
JS_HUES = """
(selector) => {
  const canvas = document.querySelector(selector);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const hues = new Set();
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    const max = Math.max(r, g, b), min = Math.min(r, g, b);
    if (max - min < 120) continue;  // grey or washed out: not an outline
    let h;
    if (max === r) h = ((g - b) / (max - min) + 6) % 6; else if (max === g) h = (b - r) / (max - min) + 2; else h = (r - g) / (max - min) + 4;
    hues.add(Math.round(h * 60 / 4));
  }
  return hues.size;
}
"""


def test_merged_groups_are_drawn(lab):
    nb = lab.open_notebook(cells=[SETUP, "ex"])
    nb.run_all()
    widget = nb.wait_for_widget(1, VIEWER)
    widget.locator(CANVAS).scroll_into_view_if_needed()
    expected = int(nb.run_cell("print(len(np.unique(groups)))").strip())
    assert expected == 234  # 468 patches, half merged away
    nb.page.wait_for_function(f"() => document.querySelector('{VIEWER}').dataset.groups === '{expected}'", timeout=20000)
    colourful = nb.evaluate(f"({JS_HUES})('{CANVAS}')")
    assert colourful >= 30, f"only {colourful} outline hues drawn"
    nb.screenshot("merged-tokens-overlay")

    nb.run_cell("ex.overlay = 'none'")
    nb.page.wait_for_function(f"() => document.querySelector('{VIEWER}').dataset.groups === '0'", timeout=20000)
    assert nb.evaluate(f"({JS_HUES})('{CANVAS}')") < 3, "switching the overlay off removes the outlines"
    nb.run_cell("ex.layer = 0; ex.overlay = 'merged'")
    first = int(nb.run_cell("print(len(np.unique(res.merge_groups(0))))").strip())
    assert first > expected
    nb.page.wait_for_function(f"() => document.querySelector('{VIEWER}').dataset.groups === '{first}'", timeout=20000)
    assert not nb.page_errors
