"""The viewer in Notebook 7 (the `notebook` package), not only JupyterLab: it paints and clicks reach the kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .viewer_page import CANVAS, VIEWER, canvas_pixels, viewer_setup

pytestmark = pytest.mark.e2e

SETUP = viewer_setup(height=300)




def test_viewer_renders_and_clicks_select_in_notebook7(notebook7):
    nb = notebook7.open_notebook(cells=[SETUP, "viewer"])
    assert "/notebooks/" in nb.page.url  # Notebook 7's own page, not JupyterLab
    nb.run_all()
    widget = nb.wait_for_widget(1, VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    nb.page.wait_for_function("(el) => Number(el.dataset.drawCount ?? 0) >= 1", arg=widget.element_handle())

    rgb = canvas_pixels(canvas, "RGB").astype(float)
    assert rgb.shape[0] == 300
    assert rgb.std() > 20  # painted: real variance, not a blank or single-colour box
    # the chirp is drawn where the kernel's spectrogram has it: brightest bin per column agrees
    valid_columns = int(json.loads(nb.run_cell("print(json.dumps(spec.valid_frames))")) / 1024 * rgb.shape[1])
    peak_bins = json.loads(nb.run_cell("print(json.dumps(spec.numpy().argmax(0).tolist()))"))
    columns = np.arange(20, valid_columns - 20, 40)
    for x in columns:
        expected_bin = peak_bins[int((x + 0.5) / rgb.shape[1] * 1024)]
        brightest_row = int(np.argmax(rgb[:, x].sum(axis=1)))
        shown_bin = (1 - (brightest_row + 0.5) / rgb.shape[0]) * 128
        assert abs(shown_bin - expected_bin) <= 4, (x, shown_bin, expected_bin)

    box = canvas.bounding_box()

    def at(row: int, col: int) -> tuple[float, float]:  # centre of the patch's 10 x 10 stride cell
        return box["x"] + (col * 10 + 5) / 1024 * box["width"], box["y"] + box["height"] * (1 - (row * 10 + 5) / 128)

    def selection(until) -> list[int]:
        out = nb.poll_cell("print(json.dumps(viewer.selected_patches))", lambda text: until(json.loads(text)))
        return json.loads(out)

    nb.page.mouse.click(*at(6, 20))
    assert selection(lambda v: v != []) == [6 * 101 + 20]
    nb.page.keyboard.down("Shift")
    nb.page.mouse.click(*at(2, 70))
    assert selection(lambda v: len(v) == 2) == [2 * 101 + 70, 6 * 101 + 20]
    nb.page.mouse.click(*at(6, 20))
    nb.page.keyboard.up("Shift")
    assert selection(lambda v: len(v) == 1) == [2 * 101 + 70]

    nb.page.mouse.move(*at(6, 20))
    tooltip = widget.locator('[data-testid="audiovis-tooltip"]')
    tooltip.wait_for(state="visible", timeout=5000)
    assert tooltip.locator("div").first.inner_text() == f"patch {6 * 101 + 20} (row 6, col 20)"
    nb.screenshot("notebook7_viewer")
    assert nb.page_errors == []
