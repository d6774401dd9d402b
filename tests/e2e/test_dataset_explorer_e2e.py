"""Dataset explorer in a real JupyterLab + Chromium: the map paints its points, and dx.open from the kernel shows
the clip's viewer below the map. (A click on a point opening the clip is not yet checked in the browser: a
synthetic mouse click at a painted pixel did not reach jupyter-scatter's selection in the first attempt.)"""

from __future__ import annotations

import io

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

SETUP = """
import tempfile
from pathlib import Path
import audiovis as av
from audiovis.datasets import SyntheticEvents
model = av.load_demo_model()
data = SyntheticEvents(6, seed=3)
store = av.embed_dataset(data, model, Path(tempfile.mkdtemp()) / "store", patches=True, progress=False)
dx = av.explore_dataset(store, model, sources=data, height=300)
dx.scatter.size(default=14);
"""

VIEWER = '[data-testid="audiovis-viewer"]'


def _painted_points(png: bytes) -> tuple[np.ndarray, int]:
    """(row, col) of strongly coloured pixels (the points: the background is white, axes and text grey), and
    the image width in device pixels."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return np.argwhere(saturation > 60), rgb.shape[1]


def test_map_paints_and_open_shows_the_clip_viewer(lab):
    nb = lab.open_notebook(cells=[SETUP, "dx"])
    nb.run_all()
    canvas = nb.wait_for_widget(1, "canvas", timeout=60)
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100
    points, width = np.zeros((0, 2)), 1
    for _ in range(40):  # WebGL draws after the first frames
        points, width = _painted_points(canvas.screenshot())
        if len(points) > 20:
            break
        nb.page.wait_for_timeout(250)
    nb.screenshot("dataset-explorer-map")
    assert len(points) > 20, "the map drew no coloured points"
    out = nb.run_cell("print(type(dx.open(dx.points['clip_id'][2])).__name__)")
    assert out.strip() == "Explorer"
    nb.wait_for_widget(1, VIEWER, timeout=60)
    nb.screenshot("dataset-explorer-opened")
