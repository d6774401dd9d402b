"""python -m audiovis.export --execute on a small notebook, the page opened in Chromium with the network cut off:
its viewers and the explorer's viewer paint and take clicks, other widgets render or say why not."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import numpy as np
import pytest

from .harness import REPO_ROOT
from .static_page import offline_page
from .viewer_page import CANVAS, VIEWER, canvas_pixels

pytestmark = pytest.mark.e2e

SETUP = """
import numpy as np, torch
import audiovis as av
sr = 16000
t = np.arange(4 * sr) / sr
wav = (0.4 * np.sin(2 * np.pi * (200 * t + 400 * t ** 2))).astype(np.float32)
audio = av.Audio(torch.tensor(wav)[None], sr)
spec = av.KaldiFbank()(audio)
grid = av.PatchGrid(input_shape=(128, 1024), patch_size=(16, 16), stride=(10, 10))
viewer = av.SpectrogramViewer(spec, grid=grid, audio=audio, height=240)
viewer.select([5 * 101 + 20])
viewer
"""

EXPLORER = """
torch.manual_seed(0)
config = av.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_length=400, num_labels=3, labels=["tone", "chirp", "hum"], multi_label=False)
ex = av.explore(wav, av.ASTModel(config).eval(), sample_rate=sr, height=200)
ex
"""


FOREIGN = """
import traitlets
class Foreign(W.DOMWidget):  # a widget whose front end this page cannot have
    _model_module = traitlets.Unicode("some-widget-lib").tag(sync=True)
    _model_name = traitlets.Unicode("SomeModel").tag(sync=True)
    _view_module = traitlets.Unicode("some-widget-lib").tag(sync=True)
    _view_name = traitlets.Unicode("SomeView").tag(sync=True)
Foreign()
"""


def _wait_console(op, text: str, timeout: float = 5.0) -> None:
    """Wait until the page logged a message containing ``text`` (the viewer logs failed playback)."""
    import time

    deadline = time.monotonic() + timeout
    while not any(text in line for line in op.console):
        assert time.monotonic() < deadline, f"no console message with {text!r}: {op.console[-5:]}"
        op.page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A small tutorial"),
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("import ipywidgets as W\nW.IntSlider(value=3, description='n')"),
        nbformat.v4.new_code_cell(EXPLORER),
        nbformat.v4.new_code_cell(FOREIGN),
    ])
    nbformat.write(nb, folder / "tutorial.ipynb")
    out = folder / "site" / "tutorial.html"
    out.parent.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "audiovis.export", str(folder / "tutorial.ipynb"), "-o", str(out), "--execute"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "widget outputs" in run.stdout
    return out


def test_exported_notebook_widgets_render_offline(browser, exported):
    assert exported.stat().st_size < 8_000_000
    with offline_page(browser, height=1400) as op:
        op.open(exported, ready="body[data-audiovis-widgets]", timeout=60000)
        page = op.page
        assert page.evaluate("() => document.body.dataset.audiovisWidgets") == "rendered"
        viewers = page.locator(VIEWER)
        assert viewers.count() == 2  # the viewer and the explorer's viewer
        page.wait_for_function(
            f"() => [...document.querySelectorAll('{VIEWER}')].every((v) => Number(v.dataset.drawCount ?? 0) > 0)",
            timeout=20000,
        )
        first = viewers.nth(0)
        canvas = first.locator(CANVAS)
        canvas.scroll_into_view_if_needed()
        assert canvas_pixels(canvas)[..., :3].std() > 20
        assert canvas_pixels(viewers.nth(1).locator(CANVAS))[..., :3].std() > 10
        # the selection saved with the widget state is drawn; a click replaces it
        readout = first.locator('[data-testid="audiovis-readout"]')
        assert "1 selected" in readout.inner_text()
        box = canvas.bounding_box()
        page.keyboard.down("Shift")  # shift-click adds a patch
        page.mouse.click(box["x"] + (300 + 8) / 1024 * box["width"], box["y"] + box["height"] * (1 - (40 + 8) / 128))
        page.keyboard.up("Shift")
        page.wait_for_function("(el) => el.textContent.includes('2 selected')", arg=readout.element_handle(), timeout=5000)

        # ipywidgets controls render, the explorer's Bokeh plot is drawn from its saved figure, a widget of
        # an unknown library shows a placeholder saying why
        assert page.locator(".widget-slider, .widget-hslider").count() >= 1
        assert page.locator(".widget-dropdown select").count() >= 3  # the explorer's menus
        page.wait_for_function(
            "() => window.Bokeh && [...window.Bokeh.index].some((v) => v.model && v.model.renderers && v.model.renderers.length)",
            timeout=20000,
        )
        assert page.locator('[data-testid="audiovis-static-bokeh"]').count() == 1
        placeholder = page.locator('[data-testid="audiovis-widget-placeholder"]')
        assert placeholder.count() == 1 and "some-widget-lib SomeView" in placeholder.inner_text()

        # --execute read each viewer's audio from the kernel into the page: playback starts
        first.locator('[data-testid="audiovis-play"]').click()
        page.wait_for_function("() => window.__avAudio.starts >= 1", timeout=15000)
        first.locator('[data-testid="audiovis-play"]').click()
        # "▶ patches" is computed in the page from that audio
        first.locator('[data-testid="audiovis-play-patches"]').click()
        page.wait_for_function("() => window.__avAudio.starts >= 2", timeout=15000)
        op.screenshot("export_tutorial_page")
        assert not op.errors, op.errors
        assert op.blocked == [], f"the page tried the network: {op.blocked}"


def test_notebook_saved_by_jupyterlab_with_widget_state_exports(lab, browser, tmp_path):
    """JupyterLab's "Save Widget State Automatically" writes the same metadata: such a notebook exports
    without --execute, and its viewer renders offline with the selection made in JupyterLab."""
    from audiovis.export import export_notebook

    setting = lab.server.root_dir.parent / "settings" / "@jupyter-widgets" / "jupyterlab-manager" / "plugin.jupyterlab-settings"
    setting.parent.mkdir(parents=True, exist_ok=True)
    setting.write_text('{"saveState": true}')
    try:
        nb = lab.open_notebook(cells=[SETUP])  # the page loads its settings now
    finally:
        setting.unlink()
    nb.run_all()
    nb.wait_for_widget(0, VIEWER)
    nb.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
    path = lab.server.root_dir / nb.path
    saved = nbformat.read(path, as_version=4)
    assert "application/vnd.jupyter.widget-state+json" in saved.metadata.get("widgets", {})
    report = export_notebook(path, tmp_path / "from_lab.html")
    assert report.widget_views == 1
    with offline_page(browser) as op:
        op.open(report.path, ready="body[data-audiovis-widgets]", timeout=60000)
        page = op.page
        page.wait_for_function(f"() => Number(document.querySelector('{VIEWER}')?.dataset.drawCount ?? 0) > 0", timeout=20000)
        assert canvas_pixels(page.locator(CANVAS))[..., :3].std() > 20
        readout = page.locator('[data-testid="audiovis-readout"]')
        assert "1 selected" in readout.inner_text()
        page.locator('[data-testid="audiovis-play"]').click()  # no audio without --execute: it says so
        _wait_console(op, "export with --execute to keep it")
        assert not op.errors and op.blocked == []
