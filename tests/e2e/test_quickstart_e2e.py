"""The quickstart notebook as a user runs it: JupyterLab, Run All, look, click a patch, read it in Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .viewer_page import CANVAS, VIEWER, canvas_pixels

pytestmark = pytest.mark.e2e

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"


def _code_cell(prefix: str) -> int:
    """Index of the notebook's cell whose source starts with `prefix` (the page shows the same cells)."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    found = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and "".join(c["source"]).startswith(prefix)]
    assert len(found) == 1, f"expected one cell starting with {prefix!r} in {NOTEBOOK.name}, found {found}"
    return found[0]



def test_quickstart_runs_paints_and_a_click_reaches_python(lab):
    explore_cell, read_cell, second_view = (
        _code_cell("ex = av.explore("), _code_cell("analysis = ex.analysis"), _code_cell("event = clip.events[0]")
    )
    nb = lab.open_notebook(path=NOTEBOOK)
    nb.run_all(timeout=300)
    widget = nb.wait_for_widget(explore_cell, VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    nb.page.wait_for_function("(el) => Number(el.dataset.drawCount ?? 0) >= 1", arg=widget.element_handle())
    rgb = canvas_pixels(canvas, "RGB").astype(float)
    assert rgb.std() > 10, "the spectrogram canvas is blank"

    # the notebook selected the first event's patches from Python: the second view shows them
    expected = json.loads(nb.run_cell("import json; print(json.dumps(grid.patches_in(event.box, spec)))"))
    readout = nb.wait_for_widget(second_view, VIEWER).locator('[data-testid="audiovis-readout"]')
    assert f"{len(expected)} selected" in readout.inner_text()

    # a click at the centre of a patch's stride cell selects that patch in the kernel
    shape = json.loads(nb.run_cell("print(json.dumps([grid.grid_shape, grid.stride, list(spec.shape)]))"))
    (rows, cols), (stride_f, stride_t), (n_bins, n_frames) = shape
    row, col = rows // 2, cols // 3
    box = canvas.bounding_box()
    x = box["x"] + (col * stride_t + stride_t / 2) / n_frames * box["width"]
    y = box["y"] + box["height"] * (1 - (row * stride_f + stride_f / 2) / n_bins)
    nb.page.mouse.click(x, y)
    patch = row * cols + col
    out = nb.poll_cell("print(json.dumps(ex.selection))", lambda text: json.loads(text) == [patch])
    assert json.loads(out) == [patch]

    # the user's next step: re-run the notebook's "read the selection" cell
    text = nb.rerun_cell(read_cell).text
    assert text.startswith("1 patches selected\n")
    assert f"patch {patch} ({row}, {col}):" in text
    # the similarity overlay followed the click: the kernel's heatmap is similarity to that patch
    same = nb.run_cell(f"print(bool(np.allclose(ex.heatmap, analysis.similarity([{patch}]), atol=1e-6)))")
    assert same.strip() == "True"
    nb.screenshot("quickstart_clicked")
    assert nb.page_errors == []
