"""SpectrogramViewer in a real JupyterLab + Chromium: it paints, clicks reach the kernel, pixels match to_png."""

from __future__ import annotations


import numpy as np
import pytest

from .viewer_page import CANVAS, VIEWER, canvas_pixels, viewer_setup

pytestmark = pytest.mark.e2e

SETUP = viewer_setup(height=320)




def _wait_drawn(nb, count: int) -> None:
    nb.page.wait_for_function(
        f"(n) => Number(document.querySelector('{VIEWER}')?.dataset.drawCount ?? 0) >= n", arg=count, timeout=15000
    )


def test_viewer_paints_and_click_selects_patch(lab):
    nb = lab.open_notebook(cells=[SETUP, "viewer", "viewer"])  # two views of one widget
    nb.run_all()
    widget = nb.wait_for_widget(1, VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    _wait_drawn(nb, 1)

    # the canvas paints: real pixel variance, not a blank or single-colour box
    rgba = canvas_pixels(canvas).astype(float)
    assert rgba.shape[0] == 320 and rgba[..., 3].min() == 255
    assert rgba[..., :3].std() > 20

    # click at the centre of patch (row 4, col 63): frames [630, 646), bins [40, 56)
    box = canvas.bounding_box()
    x = box["x"] + (630 + 8) / 1024 * box["width"]
    y = box["y"] + box["height"] * (1 - (40 + 8) / 128)
    nb.page.mouse.move(x, y)
    tooltip = widget.locator('[data-testid="audiovis-tooltip"]')
    tooltip.wait_for(state="visible", timeout=5000)
    assert "patch 467 (row 4, col 63)" in tooltip.inner_text()
    nb.page.mouse.click(x, y)
    text = nb.poll_cell("print(viewer.selected_patches)", lambda out: out.strip() != "[]")
    assert text.strip() == f"[{4 * 101 + 63}]"
    second = nb.output_locator(2).locator('[data-testid="audiovis-readout"]')
    assert "1 selected" in second.inner_text()  # the other view follows
    nb.page.mouse.move(x, y)
    nb.screenshot("viewer_smoke_selected")

    # shift-drag a rectangle: every patch overlapping it is selected, as PatchGrid.patches_in says
    x0, y0 = box["x"] + 0.20 * box["width"], box["y"] + 0.30 * box["height"]
    x1, y1 = box["x"] + 0.24 * box["width"], box["y"] + 0.40 * box["height"]
    nb.page.keyboard.down("Shift")
    nb.page.mouse.move(x0, y0)
    nb.page.mouse.down()
    nb.page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=3)
    nb.page.mouse.move(x1, y1, steps=3)
    nb.page.mouse.up()
    nb.page.keyboard.up("Shift")
    expected = nb.run_cell(
        f"print(grid.patches_in(({0.20 * 1024}, {0.24 * 1024}, {0.70 * 128}, {0.60 * 128})))"
    ).strip()
    got = nb.poll_cell("print(viewer.selected_patches)", lambda out: out.strip() != f"[{4 * 101 + 63}]")
    assert got.strip() == expected and len(eval(expected)) > 4

    # Escape clears once the viewer has keyboard focus (running cells moved it to the notebook)
    widget.focus()
    nb.page.keyboard.press("Escape")
    assert nb.poll_cell("print(viewer.selected_patches)", lambda out: out.strip() == "[]").strip() == "[]"


def test_zoom_from_python_and_pixels_match_to_png(lab):
    nb = lab.open_notebook(cells=[SETUP, "viewer"])
    nb.run_all()
    widget = nb.wait_for_widget(1, VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    _wait_drawn(nb, 1)
    nb.page.mouse.move(5, 5)  # pointer away: no hover outline

    draws = int(widget.evaluate("(el) => Number(el.dataset.drawCount)"))
    nb.run_cell("viewer.show_grid = False\nviewer.time_range = (2.0, 3.5)\nviewer.colormap = 'viridis'")
    _wait_drawn(nb, draws + 1)
    nb.page.wait_for_timeout(300)
    width = int(canvas.evaluate("(c) => c.width"))
    path = nb.frontend.server.root_dir / "expected.npy"
    nb.run_cell(
        "from audiovis.rendering.png import render_spectrogram\n"
        f"np.save({str(path)!r}, render_spectrogram(viewer._view(), {width}, 320))"
    )
    expected = np.load(path)
    got = canvas_pixels(canvas)
    assert got.shape == expected.shape
    mismatch = np.any(got != expected, axis=2)
    assert mismatch.mean() == 0.0, f"{mismatch.sum()} of {mismatch.size} pixels differ from to_png"

    # the time axis follows the zoom; the view reports it back
    assert "2.00–3.50 s" in widget.locator('[data-testid="audiovis-readout"]').inner_text()

    # wheel zoom in the browser updates time_range in the kernel
    box = canvas.bounding_box()
    nb.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    nb.page.mouse.wheel(0, 300)
    out = nb.poll_cell("print(tuple(round(v, 2) for v in viewer.time_range))", lambda o: o.strip() != "(2.0, 3.5)")
    t0, t1 = eval(out)
    assert t1 - t0 > 1.5 and t0 < 2.0 < 3.5 < t1  # zoomed out about the centre
    nb.screenshot("viewer_smoke_zoomed")

    # playback: the play button starts Web Audio and the playhead trait follows
    nb.run_cell("viewer.time_range = viewer.full_time_range")
    widget.locator('[data-testid="audiovis-play"]').click()
    out = nb.poll_cell("print(viewer.playhead > 0.3)", lambda o: o.strip() == "True", timeout=15)
    assert out.strip() == "True"
    widget.locator('[data-testid="audiovis-play"]').click()  # pause
