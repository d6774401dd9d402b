"""Strings from Python are text, never markup: hostile labels, units and class names in a real browser.

One notebook shows a SpectrogramViewer (heatmap label and units hostile: tooltip and colour bar), a
LongViewer (hostile class names: the label strip) and an Explorer (the same classes: the predictions
panel and the class menu). Every string must appear literally, no dialog may open, and the page may
hold no element the markup would have created.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg onload=alert(2)>'
SCRIPT = "<script>alert(3)</script>"

SETUP = f"""
import dataclasses
import numpy as np, torch
import audiovis as av
from audiovis.widgets.longview import LongViewer
IMG, SVG, SCRIPT = {IMG!r}, {SVG!r}, {SCRIPT!r}
sr = 16000
t = np.arange(3 * sr) / sr
wav = (0.4 * np.sin(2 * np.pi * (200 * t + 400 * t ** 2))).astype(np.float32)
audio = av.load_audio(wav, sr)
spec = dataclasses.replace(av.KaldiFbank()(audio), units=IMG)
grid = av.PatchGrid()
viewer = av.SpectrogramViewer(spec, grid=grid, audio=audio, height=240)
viewer.set_heatmap(np.linspace(0, 1, grid.num_patches), label=SVG)
torch.manual_seed(0)
config = av.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                      max_length=400, num_labels=3, labels=[IMG, SVG, SCRIPT], multi_label=False)
model = av.ASTModel(config).eval()
noise = (0.05 * np.random.default_rng(0).standard_normal(12 * sr)).astype(np.float32)
lv = LongViewer(av.load_audio(noise, sr), model, top_k=1, height=200)
ex = av.explore(wav, model, sample_rate=sr)
"""

VIEWER = '[data-testid="audiovis-viewer"]'
CANVAS = '[data-testid="spectrogram-canvas"]'

# Record every string drawn on a canvas (colour bar label, label strip): canvas text cannot run, but
# it must still be the literal string.
JS_RECORD_CANVAS_TEXT = """
() => {
  window.__audiovisTexts = [];
  const original = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
    window.__audiovisTexts.push(String(text));
    return original.call(this, text, ...rest);
  };
}
"""

# Elements the strings would create if they were parsed as HTML anywhere on the page.
JS_INJECTED = """
() => ({
  handlers: document.querySelectorAll('[onerror], [onload]').length,
  images: document.querySelectorAll('img[src="x"]').length,
  svgs: [...document.querySelectorAll('svg')].filter((s) => s.getAttribute('onload') !== null).length,
  scripts: [...document.scripts].filter((s) => s.textContent.includes('alert(3)')).length,
})
"""


def test_hostile_strings_render_as_text(lab):
    nb = lab.open_notebook(cells=[SETUP, "viewer", "lv", "ex"])
    nb.evaluate(JS_RECORD_CANVAS_TEXT)
    nb.run_all()

    # SpectrogramViewer: the tooltip names the heatmap (SVG) and the units (IMG), as text.
    widget = nb.wait_for_widget(1, VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    nb.page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.5 * box["height"])
    tooltip = widget.locator('[data-testid="audiovis-tooltip"]')
    tooltip.wait_for(state="visible", timeout=5000)
    text = tooltip.inner_text()
    assert f"\n{SVG}: " in text and f" {IMG}" in text, text
    assert tooltip.locator("img, svg, script").count() == 0
    nb.page.mouse.move(0, 0)

    # LongViewer: each window's top label is drawn on the strip's canvas, literally.
    nb.wait_for_widget(2, VIEWER)
    nb.page.wait_for_function(
        "(labels) => window.__audiovisTexts.some((t) => labels.some((l) => t.startsWith(l)))",
        arg=[IMG, SVG, SCRIPT], timeout=15000,
    )
    texts = nb.evaluate("() => window.__audiovisTexts")
    assert SVG in texts  # the viewer's colour bar label
    strip = [t for t in texts if any(t.startswith(label) for label in (IMG, SVG, SCRIPT))]
    assert any(t.split(" ")[-1].replace(".", "").isdigit() for t in strip), strip  # "label 0.42": not cut

    # Explorer: the predictions panel and the class menu show the class names as text.
    panel = nb.output_locator(3)
    panel.locator(VIEWER).wait_for(state="visible", timeout=60000)
    for label in (IMG, SVG, SCRIPT):
        assert panel.get_by_text(label, exact=True).count() >= 1, label
    options = [o.replace("\xa0", " ") for o in panel.locator("select option").all_inner_texts()]  # ipywidgets: nbsp
    assert any(o.startswith(IMG) for o in options) and any(o.startswith(SCRIPT) for o in options), options

    assert nb.evaluate(JS_INJECTED) == {"handlers": 0, "images": 0, "svgs": 0, "scripts": 0}
    assert lab.dialogs == [], lab.dialogs
    assert nb.page_errors == []
    nb.screenshot("xss_strings_as_text")
