"""Explorer in a real JupyterLab + Chromium: viewer and Bokeh plot stay linked both ways, hover similarity draws locally."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

SETUP = """
import numpy as np, torch
import audiovis as av
torch.manual_seed(0)
config = av.ASTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                      max_length=400, num_labels=4, labels=["tone", "chirp", "<img src=x onerror=alert(1)>", "hum"],
                      multi_label=False)
model = av.ASTModel(config).eval()
sr = 16000
t = np.arange(4 * sr) / sr
wav = 0.4 * np.sin(2 * np.pi * (200 * t + 400 * t ** 2)) + 0.2 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)
ex = av.explore(wav.astype(np.float32), model, sample_rate=sr)
"""

VIEWER = '[data-testid="audiovis-viewer"]'
CANVAS = '[data-testid="spectrogram-canvas"]'

# The embedding plot's Bokeh view: its frame (data area) in page pixels and the data range it shows.
JS_PLOT_FRAME = """
() => {
  for (const view of window.Bokeh.index) {
    if (!view.frame || !view.canvas_view) continue;
    const box = view.frame.bbox;
    const page = view.canvas_view.el.getBoundingClientRect();
    return {
      left: page.left + box.left, top: page.top + box.top, width: box.width, height: box.height,
      x: [view.frame.x_scale.invert(box.left), view.frame.x_scale.invert(box.right)],
      y: [view.frame.y_scale.invert(box.bottom), view.frame.y_scale.invert(box.top)],
    };
  }
  return null;
}
"""

JS_SCROLL_TO_PLOT = """
() => {
  for (const view of window.Bokeh.index) {
    if (view.frame && view.canvas_view) view.canvas_view.el.scrollIntoView({block: "center"});
  }
}
"""

JS_SELECTED_POINTS = """
() => {
  const found = [];
  for (const doc of window.Bokeh.documents) {
    const source = doc.get_model_by_name("audiovis-embedding-points");
    if (source) found.push([...source.selected.indices].sort((a, b) => a - b));
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def nb(lab_module):
    notebook = lab_module.open_notebook(cells=[SETUP, "ex"])
    notebook.run_all()
    widget = notebook.wait_for_widget(1, VIEWER)
    widget.locator(CANVAS).scroll_into_view_if_needed()
    notebook.page.wait_for_function(JS_PLOT_FRAME, timeout=20000)
    return notebook


def _kernel_list(nb, expression: str, until) -> list[int]:
    return json.loads(nb.poll_cell(f"import json; print(json.dumps({expression}))", lambda out: until(json.loads(out))))


def test_selecting_a_patch_highlights_its_point(nb):
    nb.run_cell("ex.clear_selection()")
    canvas = nb.output_locator(1).locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    # patch (row 4, col 20) of the 12 x 39 grid: its stride cell is frames [200, 210), bins [40, 50)
    x = box["x"] + (205 / 400) * box["width"]
    y = box["y"] + box["height"] * (1 - 45 / 128)
    nb.page.mouse.click(x, y)
    patch = 4 * 39 + 20
    assert _kernel_list(nb, "ex.selection", lambda v: v != []) == [patch]
    nb.page.wait_for_function(
        JS_SELECTED_POINTS.replace("return found;", f"return found.length > 0 && found.every(f => f.length === 1 && f[0] === {patch});"),
        timeout=10000,
    )
    assert nb.evaluate(JS_SELECTED_POINTS)[-1] == [patch]
    status = nb.output_locator(1).get_by_text("1 patch selected")
    assert status.is_visible()


def test_box_selection_in_the_plot_selects_patches_in_the_viewer(nb):
    nb.run_cell("ex.clear_selection()")
    nb.evaluate(JS_SCROLL_TO_PLOT)
    nb.page.wait_for_timeout(300)
    frame = nb.evaluate(JS_PLOT_FRAME)
    assert frame is not None, "the embedding plot did not render"
    # drag a box over the left ~45% of the plot's data area (box select is the plot's active drag tool)
    fx0, fx1, fy0, fy1 = 0.05, 0.5, 0.05, 0.95
    x0, y0 = frame["left"] + fx0 * frame["width"], frame["top"] + fy0 * frame["height"]
    x1, y1 = frame["left"] + fx1 * frame["width"], frame["top"] + fy1 * frame["height"]
    nb.page.mouse.move(x0, y0)
    nb.page.mouse.down()
    nb.page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
    nb.page.mouse.move(x1, y1, steps=4)
    nb.page.mouse.up()

    selection = _kernel_list(nb, "sorted(ex.selection)", lambda v: v != [])
    # the points inside the box, from the plotted coordinates and the data range the browser shows
    xs, ys = frame["x"], frame["y"]
    lo_x, hi_x = xs[0] + fx0 * (xs[1] - xs[0]), xs[0] + fx1 * (xs[1] - xs[0])
    hi_y, lo_y = ys[1] - fy0 * (ys[1] - ys[0]), ys[1] - fy1 * (ys[1] - ys[0])
    coords = np.array(json.loads(nb.run_cell("import json; print(json.dumps(ex.embedding_plot.coordinates.tolist()))")))
    inside = (coords[:, 0] >= lo_x) & (coords[:, 0] <= hi_x) & (coords[:, 1] >= lo_y) & (coords[:, 1] <= hi_y)
    expected = np.flatnonzero(inside).tolist()
    assert 0 < len(expected) < len(coords)
    assert selection == expected
    assert _kernel_list(nb, "ex.viewer.selected_patches", lambda v: v != []) == expected
    readout = nb.output_locator(1).locator('[data-testid="audiovis-readout"]')
    assert f"{len(expected)} selected" in readout.inner_text()
    nb.screenshot("explorer_box_selection")


# The last similarity map the viewer computed in the browser (the root's test hook), as plain numbers.
JS_BROWSER_SIMILARITY = """
(el) => { const s = el.audiovisSimilarity; return s ? {index: s.index, values: Array.from(s.values)} : null; }
"""


def test_hover_similarity_is_drawn_in_the_browser(nb):
    selected = 4 * 39 + 20
    nb.run_cell(f"ex.overlay = 'similarity'\nex.select([{selected}])")
    widget = nb.output_locator(1).locator(VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    tooltip = widget.locator('[data-testid="audiovis-tooltip"]')
    root = widget.element_handle()
    layer = int(nb.run_cell("print(ex.layer)"))
    for row, col in [(8, 30), (2, 5), (11, 38)]:
        patch = row * 39 + col
        # the centre of the patch's stride cell: frames [10 col, 10 col + 10), bins [10 row, 10 row + 10) of 400 x 128
        nb.page.mouse.move(box["x"] + (10 * col + 5) / 400 * box["width"], box["y"] + box["height"] * (1 - (10 * row + 5) / 128))
        nb.page.wait_for_function("([el, p]) => el.audiovisSimilarity && el.audiovisSimilarity.index === p", arg=[root, patch])
        tooltip.wait_for(state="visible", timeout=5000)
        match = re.search(rf"cosine similarity to patch {patch}: ([-0-9.e]+)", tooltip.inner_text())
        assert match, tooltip.inner_text()
        assert float(match.group(1)) == pytest.approx(1.0, abs=1e-3)  # the hovered patch against itself
        # every other patch's value, computed in JS from the float16 embeddings, against the kernel's float64 map
        browser = nb.evaluate(JS_BROWSER_SIMILARITY, root)
        expected = np.array(json.loads(nb.run_cell(
            f"import json; print(json.dumps(ex.analysis.similarity([{patch}], {layer}).tolist()))"
        )))
        values = np.array(browser["values"])
        assert values.shape == expected.shape == (12 * 39,)
        assert np.ptp(expected) > 0.2, "a map that tells patches apart"
        np.testing.assert_allclose(values, expected, atol=2e-3)  # float16 inputs: errors ~2e-4
    # the hover never went to the kernel: its heatmap is still the similarity to the selected patch
    kernel = np.array(json.loads(nb.run_cell("print(json.dumps(np.asarray(ex.viewer.heatmap).tolist()))")))
    selection_map = np.array(json.loads(nb.run_cell(f"print(json.dumps(ex.analysis.similarity([{selected}], {layer}).tolist()))")))
    np.testing.assert_allclose(kernel, selection_map, atol=1e-6)
    assert np.abs(kernel - values).max() > 0.1  # and the browser drew something else: its own map
    nb.screenshot("explorer_hover_similarity")


def test_labels_are_text_and_no_dialog_opened(nb):
    panel = nb.output_locator(1)
    assert panel.get_by_text("<img src=x onerror=alert(1)>").count() >= 1  # shown literally
    assert nb.frontend.dialogs == []
    assert nb.page_errors == []


def test_explorer_renders_in_notebook7(notebook7):
    nb = notebook7.open_notebook(cells=[SETUP, "ex"])
    nb.run_all()
    nb.wait_for_widget(1, VIEWER)
    nb.page.wait_for_function(JS_PLOT_FRAME, timeout=20000)
    assert nb.output_locator(1).get_by_text("Top predictions").is_visible()
    assert nb.page_errors == []
