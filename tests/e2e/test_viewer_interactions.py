"""SpectrogramViewer interactions in a real JupyterLab + Chromium, checked against the kernel's own geometry.

One notebook for the module (two views of one viewer): shift- and ctrl-click toggling, a heatmap set from
Python repainting exactly one patch's cell, the hover tooltip against ``PatchGrid.bounds_hz_s``, the hovered
patch's full footprint outlined, double-click resetting the zoom (and leaving an earlier click's selection),
drag panning, the canvas following its container's width, a click on the time axis seeking, play/pause while
the audio is still loading, "▶ selection" playing only the selection's span, and the cleanup ``render``
returns (listeners, observers, animation frames, AudioContext) when an output is re-rendered.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from .viewer_page import CANVAS, VIEWER, canvas_pixels, viewer_setup

pytestmark = pytest.mark.e2e

SETUP = viewer_setup(height=320)

N_BINS, N_FRAMES, N_TIME = 128, 1024, 101

# Installed before the page loads: records every AudioContext, event listener and ResizeObserver the page
# creates, so the test can tell which ones a destroyed view left behind. Listeners added with an
# AbortSignal count as removed when the signal aborts (removeEventListener is never called for them).
INSTRUMENT = """
(() => {
  const contexts = (window.__avAudioContexts = []);
  const Native = window.AudioContext;
  window.AudioContext = class extends Native {
    constructor(...args) { super(...args); contexts.push(this); }
  };
  const live = (window.__avListeners = new Set());
  const add = EventTarget.prototype.addEventListener;
  const remove = EventTarget.prototype.removeEventListener;
  const captureOf = (o) => (typeof o === 'boolean' ? o : !!(o && o.capture));
  EventTarget.prototype.addEventListener = function (type, fn, options) {
    const rec = { target: this, type, fn, capture: captureOf(options) };
    const signal = options && typeof options === 'object' ? options.signal : undefined;
    if (!(signal && signal.aborted)) {
      live.add(rec);
      if (signal) add.call(signal, 'abort', () => live.delete(rec));
    }
    return add.call(this, type, fn, options);
  };
  EventTarget.prototype.removeEventListener = function (type, fn, options) {
    const capture = captureOf(options);
    for (const rec of live) {
      if (rec.target === this && rec.type === type && rec.fn === fn && rec.capture === capture) live.delete(rec);
    }
    return remove.call(this, type, fn, options);
  };
  // audio buffers made (the audio arrived) and source nodes started / stopped, page-wide
  const audio = (window.__avAudio = { buffers: 0, starts: 0, stops: 0 });
  const createBuffer = BaseAudioContext.prototype.createBuffer;
  BaseAudioContext.prototype.createBuffer = function (...args) { audio.buffers++; return createBuffer.apply(this, args); };
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (...args) { audio.starts++; return start.apply(this, args); };
  const stop = AudioBufferSourceNode.prototype.stop;
  AudioBufferSourceNode.prototype.stop = function (...args) { audio.stops++; return stop.apply(this, args); };
  const observers = (window.__avObservers = []);
  const NativeRO = window.ResizeObserver;
  window.ResizeObserver = class extends NativeRO {
    constructor(cb) { super(cb); this.targets = new Set(); observers.push(this); }
    observe(t, o) { this.targets.add(t); return super.observe(t, o); }
    unobserve(t) { this.targets.delete(t); return super.unobserve(t); }
    disconnect() { this.targets.clear(); return super.disconnect(); }
  };
})();
"""

# What a view still holds on to, for the nodes under `root`.
JS_HELD = """
(root) => ({
  listeners: [...window.__avListeners].filter((r) => r.target instanceof Node && root.contains(r.target)).length,
  observed: window.__avObservers.filter((o) => [...o.targets].some((t) => root.contains(t))).length,
  drawCount: Number(root.dataset.drawCount ?? 0),
  connected: root.isConnected,
})
"""



def _draw_count(widget) -> int:
    return int(widget.evaluate("(el) => Number(el.dataset.drawCount ?? 0)"))


def _wait_redrawn(nb, widget, after: int) -> None:
    """Wait for a draw after the `after`-th, then one more animation frame so the canvas is composited."""
    widget.evaluate(
        "(el, n) => new Promise((resolve) => { const check = () => Number(el.dataset.drawCount) > n ?"
        " requestAnimationFrame(() => resolve()) : requestAnimationFrame(check); check(); })",
        after,
    )


def _kernel(nb, expression: str, until=lambda value: True, timeout: float = 20.0):
    """Value of a JSON-able kernel expression, re-read until `until(value)` holds."""
    out = nb.poll_cell(f"print(json.dumps({expression}))", lambda text: until(json.loads(text)), timeout=timeout)
    return json.loads(out)


def _pixel(box: dict, frame: float, bin_: float) -> tuple[float, float]:
    """Page coordinates of (frame, bin) on the unzoomed canvas."""
    return box["x"] + frame / N_FRAMES * box["width"], box["y"] + box["height"] * (1 - bin_ / N_BINS)


def _cell_centre(row: int, col: int) -> tuple[float, float]:
    """(frame, bin) at the centre of patch (row, col)'s stride cell (AST grid: 10 x 10 cells)."""
    return col * 10 + 5, row * 10 + 5


@pytest.fixture(scope="module")
def nb(lab_module):
    lab_module.context.add_init_script(INSTRUMENT)
    notebook = lab_module.open_notebook(cells=[SETUP, "viewer", "viewer"])
    notebook.run_all()
    for i in (1, 2):
        notebook.wait_for_widget(i, VIEWER)
    return notebook


@pytest.fixture
def view(nb):
    """The first output's viewer, unzoomed, nothing selected, no heatmap, pointer away, in view."""
    nb.run_cell("viewer.clear_selection(); viewer.set_heatmap(None); viewer.time_range = viewer.full_time_range")
    widget = nb.output_locator(1).locator(VIEWER)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    nb.page.mouse.move(2, 2)
    nb.page.wait_for_function(
        "(el) => el.querySelector('[data-testid=\"audiovis-readout\"]').textContent.includes('selected') === false",
        arg=widget.element_handle(),
    )
    # draws happen in animation frames: after three, whatever those changes scheduled is on the canvas
    nb.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => requestAnimationFrame(r))))")
    return widget, canvas


def test_shift_click_toggles_patches(nb, view):
    widget, canvas = view
    box = canvas.bounding_box()
    a, b = (3, 40), (7, 12)  # (row, col)
    ia, ib = a[0] * N_TIME + a[1], b[0] * N_TIME + b[1]

    nb.page.mouse.click(*_pixel(box, *_cell_centre(*a)))
    assert _kernel(nb, "viewer.selected_patches", lambda v: v != []) == [ia]
    nb.page.keyboard.down("Shift")
    nb.page.mouse.click(*_pixel(box, *_cell_centre(*b)))
    assert _kernel(nb, "viewer.selected_patches", lambda v: len(v) == 2) == sorted([ia, ib])
    nb.page.mouse.click(*_pixel(box, *_cell_centre(*a)))  # shift-click on a selected patch removes it
    nb.page.keyboard.up("Shift")
    assert _kernel(nb, "viewer.selected_patches", lambda v: len(v) == 1) == [ib]
    # a plain click replaces the selection
    nb.page.mouse.click(*_pixel(box, *_cell_centre(*a)))
    assert _kernel(nb, "viewer.selected_patches", lambda v: v != [ib]) == [ia]
    readout = nb.output_locator(2).locator('[data-testid="audiovis-readout"]')
    assert "1 selected" in readout.inner_text()  # the second view of the same widget follows


def test_ctrl_click_toggles_like_shift_click(nb, view):
    widget, canvas = view
    box = canvas.bounding_box()
    a, b = (2, 70), (9, 5)
    ia, ib = a[0] * N_TIME + a[1], b[0] * N_TIME + b[1]
    nb.page.mouse.click(*_pixel(box, *_cell_centre(*a)))
    assert _kernel(nb, "viewer.selected_patches", lambda v: v != []) == [ia]
    nb.page.keyboard.down("Control")
    try:
        nb.page.mouse.click(*_pixel(box, *_cell_centre(*b)))
        assert _kernel(nb, "viewer.selected_patches", lambda v: len(v) == 2) == sorted([ia, ib])
        nb.page.mouse.click(*_pixel(box, *_cell_centre(*a)))
        assert _kernel(nb, "viewer.selected_patches", lambda v: len(v) == 1) == [ib]
        nb.page.mouse.click(*_pixel(box, *_cell_centre(*b)))  # the last one off: empty
        assert _kernel(nb, "viewer.selected_patches", lambda v: v == []) == []
    finally:
        nb.page.keyboard.up("Control")


def test_heatmap_from_python_repaints_only_that_patch(nb, view):
    widget, canvas = view
    before = canvas_pixels(canvas)
    height, width = before.shape[:2]

    patch = 5 * N_TIME + 30
    cell = json.loads(nb.run_cell(f"print(json.dumps(grid.cell_bounds({patch})))"))
    draws = _draw_count(widget)
    nb.run_cell(f"h = np.full(grid.num_patches, np.nan); h[{patch}] = 1.0\nviewer.set_heatmap(h, opacity=0.8)")
    _wait_redrawn(nb, widget, draws)
    after = canvas_pixels(canvas)

    # the cell in canvas pixels (unzoomed: frames across the width, bins bottom-up)
    x0, x1 = cell[0] / N_FRAMES * width, cell[1] / N_FRAMES * width
    y0, y1 = height * (1 - cell[3] / N_BINS), height * (1 - cell[2] / N_BINS)
    changed = np.any(after != before, axis=2)
    ys, xs = np.mgrid[0:height, 0:width]
    inside = (xs >= np.ceil(x0) + 1) & (xs < np.floor(x1) - 1) & (ys >= np.ceil(y0) + 1) & (ys < np.floor(y1) - 1)
    near = (xs >= np.floor(x0) - 1) & (xs < np.ceil(x1) + 1) & (ys >= np.floor(y0) - 1) & (ys < np.ceil(y1) + 1)
    assert inside.sum() > 50
    assert changed[inside].all(), f"{(~changed[inside]).sum()} pixels of the patch's cell did not change"
    assert not changed[~near].any(), f"{changed[~near].sum()} pixels changed outside the patch's cell"

    nb.screenshot("viewer_interactions_heatmap_one_patch")
    # hiding the heatmap puts back exactly the original pixels
    draws = _draw_count(widget)
    nb.run_cell("viewer.set_heatmap(None)")
    _wait_redrawn(nb, widget, draws)
    assert np.array_equal(canvas_pixels(canvas), before)


_NUMBER_UNIT = re.compile(r"([0-9.]+) (s|Hz|kHz)")


def _displayed(token: str) -> tuple[float, float]:
    """A displayed number (in s or Hz) and half a unit of its last shown digit."""
    value, unit = _NUMBER_UNIT.fullmatch(token).groups()
    decimals = len(value.split(".")[1]) if "." in value else 0
    scale = 1000.0 if unit == "kHz" else 1.0
    return float(value) * scale, 0.5 * 10.0 ** -decimals * scale + 1e-9


def test_tooltip_names_patch_time_span_and_band(nb, view):
    widget, canvas = view
    tooltip = widget.locator('[data-testid="audiovis-tooltip"]')
    for row, col in [(4, 63), (0, 0), (11, 100)]:
        # measured each time: the cells run in between may scroll the notebook
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        x, y = _pixel(box, *_cell_centre(row, col))
        nb.page.mouse.move(x, y)
        tooltip.wait_for(state="visible", timeout=5000)
        frame = (x - box["x"]) / box["width"] * N_FRAMES
        bin_ = (1 - (y - box["y"]) / box["height"]) * N_BINS
        expected = json.loads(nb.run_cell(
            f"p = grid.patch_at({frame}, {bin_})\n"
            "print(json.dumps([p, grid.position(p), grid.bounds_hz_s(p, spec)]))"
        ))
        patch, (exp_row, exp_col), (t0, t1, f0, f1) = expected
        assert (exp_row, exp_col) == (row, col)
        try:
            nb.page.wait_for_function(
                "([el, p]) => el.textContent.includes(`patch ${p} `)", arg=[tooltip.element_handle(), patch],
                timeout=10000,
            )
        except Exception as exc:
            raise AssertionError(
                f"pointer at ({x:.1f}, {y:.1f}) in canvas {box} and {canvas.bounding_box()}: expected patch "
                f"{patch}, tooltip shows {tooltip.inner_text()!r}"
            ) from exc
        lines = tooltip.locator("div").all_inner_texts()
        assert lines[0] == f"patch {patch} (row {row}, col {col})"
        times = re.fullmatch(r"([0-9.]+)–([0-9.]+) s", lines[1])
        band = re.fullmatch(r"([0-9.]+ k?Hz)–([0-9.]+ k?Hz) \(mel band\)", lines[2])
        assert times and band, lines
        shown_t0, shown_t1 = _displayed(times.group(1) + " s"), _displayed(times.group(2) + " s")
        shown_f0, shown_f1 = _displayed(band.group(1)), _displayed(band.group(2))
        for (shown, tol), exact in [(shown_t0, t0), (shown_t1, t1), (shown_f0, f0), (shown_f1, f1)]:
            assert abs(shown - exact) <= tol, (lines, (t0, t1, f0, f1))
    nb.page.mouse.move(2, 2)
    widget.locator('[data-testid="audiovis-tooltip"]').wait_for(state="hidden", timeout=5000)


def test_double_click_resets_zoom_and_keeps_the_selection(nb, view):
    widget, canvas = view
    full = _kernel(nb, "viewer.full_time_range")
    draws = _draw_count(widget)
    nb.run_cell("viewer.time_range = (2.0, 3.5)\nviewer.select([7, 8])")
    _wait_redrawn(nb, widget, draws)
    assert "2.00–3.50 s" in widget.locator('[data-testid="audiovis-readout"]').inner_text()
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    nb.page.mouse.dblclick(box["x"] + 0.5 * box["width"], box["y"] + 0.5 * box["height"])
    got = _kernel(nb, "viewer.time_range", lambda v: v != [2.0, 3.5])
    assert got == pytest.approx(full, abs=1e-9)
    # the double-click's own clicks do not count as selecting the patch under the pointer
    assert _kernel(nb, "viewer.selected_patches") == [7, 8]
    assert "2 selected" in widget.locator('[data-testid="audiovis-readout"]').inner_text()
    nb.run_cell("viewer.clear_selection()")


def test_double_click_after_a_click_keeps_that_click(nb, view):
    """Click patch A, then at once double-click elsewhere: the selection stays [A] and the zoom resets.

    The double-click's own two clicks are undone, not the click before them (even within a second of it).
    """
    widget, canvas = view
    full = _kernel(nb, "viewer.full_time_range")
    draws = _draw_count(widget)
    nb.run_cell("viewer.time_range = (1.0, 6.12)")  # frames 100..612 with the AST front end's 10 ms hop
    _wait_redrawn(nb, widget, draws)
    f0, f1 = _kernel(nb, "[float(f) for f in spec.time_to_frame(np.array(viewer.time_range))]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def at(row: int, col: int) -> tuple[float, float]:
        frame, bin_ = _cell_centre(row, col)
        return box["x"] + (frame - f0) / (f1 - f0) * box["width"], box["y"] + box["height"] * (1 - bin_ / N_BINS)

    a, b = (3, 20), (8, 45)
    nb.page.mouse.click(*at(*a))
    nb.page.mouse.dblclick(*at(*b))
    got = _kernel(nb, "viewer.time_range", lambda v: abs(v[0] - full[0]) < 1e-9)
    assert got == pytest.approx(full, abs=1e-9)
    assert _kernel(nb, "viewer.selected_patches") == [a[0] * N_TIME + a[1]]
    readout = widget.locator('[data-testid="audiovis-readout"]')
    nb.page.wait_for_function("(el) => el.textContent.includes('1 selected')", arg=readout.element_handle())


def test_drag_pans_the_zoomed_view(nb, view):
    widget, canvas = view
    draws = _draw_count(widget)
    nb.run_cell("viewer.time_range = (2.0, 4.0)")
    _wait_redrawn(nb, widget, draws)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    y = box["y"] + 0.5 * box["height"]
    x0, x1 = box["x"] + 0.6 * box["width"], box["x"] + 0.35 * box["width"]
    nb.page.mouse.move(x0, y)
    nb.page.mouse.down()
    nb.page.mouse.move(x1, y, steps=8)
    nb.page.mouse.up()
    # the content follows the pointer: dragging a quarter of the width to the left shows 0.5 s later
    # (each move pans and is sent on: wait for the last one to reach the kernel)
    t0, t1 = _kernel(nb, "viewer.time_range", lambda v: abs(v[0] - 2.5) < 0.02)
    assert t1 - t0 == pytest.approx(2.0, abs=1e-6)
    assert _kernel(nb, "viewer.selected_patches") == []  # a drag is no click
    nb.page.wait_for_function(
        "([el, t]) => el.textContent.startsWith(t)",
        arg=[widget.locator('[data-testid="audiovis-readout"]').element_handle(), f"{t0:.2f}–{t1:.2f} s"],
    )


# CSS width of the canvas, of the box it fills, and its device-pixel width.
JS_WIDTHS = """
(root) => {
  const canvas = root.querySelector('[data-testid="spectrogram-canvas"]');
  return {css: parseFloat(canvas.style.width), main: canvas.parentElement.clientWidth, device: canvas.width,
          root: root.clientWidth, dpr: window.devicePixelRatio, draws: Number(root.dataset.drawCount)};
}
"""


def test_canvas_follows_the_container_width(nb, view):
    widget, canvas = view
    root = widget.element_handle()
    before = nb.evaluate(JS_WIDTHS, root)
    assert before["css"] == before["main"] and before["css"] == before["root"] - 64 - 132

    def resized(width_px: int | None) -> dict:
        """Set the output's width (None: back to the page's layout); wait until the canvas follows it."""
        nb.evaluate("([el, w]) => { el.parentElement.style.width = w; }", [root, f"{width_px}px" if width_px else ""])
        target = before["css"] if width_px is None else width_px - 64 - 132
        nb.page.wait_for_function(
            "([el, w]) => parseFloat(el.querySelector('[data-testid=\"spectrogram-canvas\"]').style.width) === w",
            arg=[root, target],
            timeout=10000,
        )
        return nb.evaluate(JS_WIDTHS, root)

    narrow = resized(520)
    assert narrow["css"] == 520 - 64 - 132 == narrow["main"]
    assert narrow["device"] == round(narrow["css"] * narrow["dpr"])
    _wait_redrawn(nb, widget, before["draws"])
    rgb = canvas_pixels(canvas, "RGB")
    assert rgb.shape[1] == narrow["device"] and rgb.astype(float).std() > 10  # repainted at the new size
    box = canvas.bounding_box()
    assert box["width"] == pytest.approx(narrow["css"], abs=0.5)
    # a click still lands on the right patch at the new scale
    nb.page.mouse.click(*_pixel(box, *_cell_centre(6, 50)))
    assert _kernel(nb, "viewer.selected_patches", lambda v: v != []) == [6 * N_TIME + 50]
    nb.screenshot("viewer_interactions_narrow")
    assert resized(None)["css"] == before["css"]

    # a smaller browser window narrows the notebook, and the canvas with it
    viewport = nb.page.viewport_size
    try:
        nb.page.set_viewport_size({"width": viewport["width"] - 240, "height": viewport["height"]})
        nb.page.wait_for_function(
            "([el, w]) => { const c = el.querySelector('[data-testid=\"spectrogram-canvas\"]');"
            " return parseFloat(c.style.width) < w && parseFloat(c.style.width) === c.parentElement.clientWidth; }",
            arg=[root, before["css"] - 100],
            timeout=10000,
        )
    finally:
        nb.page.set_viewport_size(viewport)
    nb.page.wait_for_function(
        "([el, w]) => parseFloat(el.querySelector('[data-testid=\"spectrogram-canvas\"]').style.width) === w",
        arg=[root, before["css"]],
        timeout=10000,
    )


def test_hover_outlines_the_full_footprint_of_an_overlapping_patch(nb, view):
    """AST patches are 16 x 16 on a stride of 10: the outline reaches 6 frames/bins into the next cells."""
    widget, canvas = view
    nb.run_cell("viewer.show_grid = False")
    canvas.scroll_into_view_if_needed()
    nb.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    before = canvas_pixels(canvas, "RGB").astype(int)
    height, width = before.shape[:2]
    box = canvas.bounding_box()
    row, col = 5, 30  # footprint frames [300, 316), bins [50, 66); stride cell frames [300, 310), bins [50, 60)
    patch = row * N_TIME + col
    draws = _draw_count(widget)
    nb.page.mouse.move(*_pixel(box, *_cell_centre(row, col)))
    nb.page.wait_for_function(
        "([el, p]) => el.textContent.includes(`patch ${p} `)",
        arg=[widget.locator('[data-testid="audiovis-tooltip"]').element_handle(), patch],
    )
    _wait_redrawn(nb, widget, draws)
    after = canvas_pixels(canvas, "RGB").astype(int)
    nb.screenshot("viewer_interactions_hover_footprint")

    def fx(frame: float) -> float:
        return frame / N_FRAMES * width

    def by(bin_: float) -> float:
        return height * (1 - bin_ / N_BINS)

    dpr = width / box["width"]
    changed = np.argwhere(np.any(after != before, axis=2))
    ys, xs = changed[:, 0], changed[:, 1]
    # the changed pixels span the footprint plus the outline's half width (2 CSS px), not just the cell
    assert fx(300) - 3 * dpr <= xs.min() <= fx(300), (xs.min(), fx(300))
    assert fx(316) - 1 <= xs.max() <= fx(316) + 3 * dpr, (xs.max(), fx(316), fx(310))
    assert by(66) - 3 * dpr <= ys.min() <= by(66) + 1, (ys.min(), by(66), by(60))
    assert by(50) - 1 <= ys.max() <= by(50) + 3 * dpr, (ys.max(), by(50))
    # the white outline (2 px over a 4 px dark one) runs along the footprint's right and top edges, which lie
    # in the neighbouring stride cells
    white = after.min(axis=2) > 230
    mid_y = slice(round(by(62)), round(by(54)))
    right = white[mid_y, int(fx(316)) - 2 : int(fx(316)) + 3].any(axis=1)
    assert right.all(), "the right edge of the footprint (frame 316) is not outlined"
    mid_x = slice(round(fx(303)), round(fx(313)))
    top = white[int(by(66)) - 2 : int(by(66)) + 3, mid_x].any(axis=0)
    assert top.all(), "the top edge of the footprint (bin 66) is not outlined"
    # an outline, not a fill: inside the footprint, above the cell and clear of the outline, nothing changes
    inner = (slice(round(by(66)) + 3 * round(dpr), round(by(60)) - 1), slice(round(fx(302)), round(fx(308))))
    assert after[inner].size >= 20 and np.array_equal(after[inner], before[inner])
    nb.page.mouse.move(2, 2)
    nb.run_cell("viewer.show_grid = True")


def test_clicking_the_time_axis_seeks(nb, view):
    widget, canvas = view
    axis = widget.locator('[data-testid="audiovis-time-axis"]')
    box = axis.bounding_box()
    for fraction in (0.25, 0.5):
        x = box["x"] + fraction * box["width"]
        nb.page.mouse.click(x, box["y"] + box["height"] / 2)
        shown = (x - box["x"]) / box["width"]
        expected = json.loads(nb.run_cell(f"print(json.dumps(float(spec.frame_to_time({shown} * {N_FRAMES}))))"))
        got = _kernel(nb, "viewer.playhead", lambda v: abs(v - expected) < 1e-3)
        assert got == pytest.approx(expected, abs=1e-3)
        assert f"playhead {expected:.2f} s" in widget.locator('[data-testid="audiovis-readout"]').inner_text()
    # past the end of the audio (6 s of sound in a 10.24 s input): the playhead stops at the end
    nb.page.mouse.click(box["x"] + 0.9 * box["width"], box["y"] + box["height"] / 2)
    assert _kernel(nb, "viewer.playhead", lambda v: v > 5.0) == pytest.approx(6.0, abs=1e-9)
    nb.run_cell("viewer.playhead = 0.0")


# Runs code in the kernel without waiting (no cell): the blocking code below holds the kernel, so the
# widget's messages queue behind it.
JS_RUN_IN_BACKGROUND = """
([path, code]) => {
  const kernel = __panel(path).sessionContext.session.kernel;
  const state = (window.__avBackground = {done: false});
  kernel.requestExecute({code, silent: true, store_history: false}).done.then(
    () => { state.done = true; }, () => { state.done = true; });
}
"""


def test_pause_while_the_audio_loads_cancels_the_start(nb, view):
    """Play then Pause before the audio arrived: nothing plays when it arrives (no second, unstoppable start)."""
    shown = nb.execute("viewer")  # a fresh view: its player has not loaded the audio yet
    widget = nb.wait_for_widget(shown.index, VIEWER)
    widget.scroll_into_view_if_needed()
    play = widget.locator('[data-testid="audiovis-play"]')
    root = widget.element_handle()
    audio_before = nb.evaluate("() => ({...window.__avAudio})")
    flag = Path(nb.frontend.server.root_dir) / f"release-{uuid.uuid4().hex}"
    # hold the kernel until the flag file exists, so the audio request cannot be answered in between
    nb.evaluate(JS_RUN_IN_BACKGROUND, [nb.path, (
        "import os as _os, time as _time\n"
        "_deadline = _time.monotonic() + 60\n"
        f"while not _os.path.exists({str(flag)!r}) and _time.monotonic() < _deadline:\n"
        "    _time.sleep(0.02)"
    )])
    try:
        nb.page.wait_for_function(
            "(p) => __panel(p).sessionContext.session.kernel.status === 'busy'", arg=nb.path, timeout=10000
        )
        play.click()
        nb.page.wait_for_function("(b) => b.dataset.state === 'playing'", arg=play.element_handle())
        assert play.inner_text() == "⏸ Pause"
        play.click()  # the audio is still on its way: this press must pause, not start a second playback
        nb.page.wait_for_function("(b) => b.dataset.state === 'paused'", arg=play.element_handle())
        assert play.inner_text() == "▶ Play"
        assert nb.evaluate("() => window.__avAudio.buffers") == audio_before["buffers"], "the audio arrived too early"
    finally:
        flag.touch()
    nb.page.wait_for_function("() => window.__avBackground.done", timeout=70000)
    # the audio arrives and is decoded into a buffer; then nothing may start
    nb.page.wait_for_function("(n) => window.__avAudio.buffers > n", arg=audio_before["buffers"], timeout=20000)
    nb.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert nb.evaluate("() => window.__avAudio.starts") == audio_before["starts"]
    assert play.get_attribute("data-state") == "paused"

    # with the audio loaded, play and pause work on the first press each
    play.click()
    nb.page.wait_for_function("(n) => window.__avAudio.starts === n + 1", arg=audio_before["starts"])
    assert play.get_attribute("data-state") == "playing"
    play.click()
    nb.page.wait_for_function("(b) => b.dataset.state === 'paused'", arg=play.element_handle())
    audio = nb.evaluate("() => window.__avAudio")
    assert audio["starts"] == audio_before["starts"] + 1 and audio["stops"] >= audio_before["stops"] + 1
    assert nb.evaluate("(el) => el.isConnected", root)
    nb.evaluate(  # dispose of the extra view: clear that cell's output
        "([p, i]) => __panel(p).content.widgets[i].model.outputs.clear()", [nb.path, shown.index]
    )
    nb.page.wait_for_function("(el) => !el.isConnected", arg=root)
    nb.run_cell("viewer.playhead = 0.0")
    assert nb.page_errors == []


def test_play_selection_plays_only_the_selection_span(nb, view):
    widget, canvas = view
    button = widget.locator('[data-testid="audiovis-play-selection"]')
    play = widget.locator('[data-testid="audiovis-play"]')
    # patches wholly past the audio's end (6 s of sound in a 10.24 s input): nothing to play
    nb.run_cell(f"viewer.select([{5 * N_TIME + 95}])")
    nb.page.wait_for_function("(b) => b.disabled", arg=button.element_handle())
    assert "beyond the end" in button.get_attribute("title")

    patches = [4 * N_TIME + 20, 6 * N_TIME + 35]  # frames [200, 216) and [350, 366): 2.0-3.66 s
    t0, t1 = _kernel(nb, (
        f"[min(grid.bounds_hz_s(p, spec)[0] for p in {patches}), max(grid.bounds_hz_s(p, spec)[1] for p in {patches})]"
    ))
    nb.run_cell(
        "played = []\n"
        "def record(change): played.append(change['new'])\n"
        "viewer.observe(record, 'playhead')\n"
        f"viewer.select({patches})"
    )
    nb.page.wait_for_function("(b) => !b.disabled", arg=button.element_handle())
    button.click()
    nb.page.wait_for_function("(b) => b.dataset.state === 'playing'", arg=play.element_handle())
    nb.page.wait_for_function("(b) => b.dataset.state === 'paused'", arg=play.element_handle(), timeout=30000)
    # the kernel saw the playhead move through the span and stop at its end
    played = _kernel(nb, "played", lambda v: bool(v) and abs(v[-1] - t1) < 1e-3)
    assert all(t0 - 1e-3 <= t <= t1 + 1e-3 for t in played), (t0, t1, played)
    assert played[-1] == pytest.approx(t1, abs=1e-3)
    assert len({round(t, 2) for t in played}) >= 3, played  # moving, not jumping to the end
    assert _kernel(nb, "viewer.playhead") == pytest.approx(t1, abs=1e-3)
    nb.run_cell("viewer.unobserve(record, 'playhead')\nviewer.clear_selection()\nviewer.playhead = 0.0")


def test_rerendering_an_output_cleans_the_old_view_up(nb, view):
    old = nb.output_locator(2).locator(VIEWER)
    old.scroll_into_view_if_needed()
    first = nb.evaluate("() => window.__avAudioContexts.length")  # other views' contexts stay as they are
    old.locator('[data-testid="audiovis-play"]').click()
    nb.page.wait_for_function(
        "() => window.__avAudioContexts.some((c) => c.state === 'running')", timeout=15000
    )
    assert _kernel(nb, "viewer.playhead", lambda v: v > 0.2, timeout=15) > 0.2
    root = old.element_handle()
    held = nb.evaluate(JS_HELD, root)
    assert held["listeners"] > 0 and held["observed"] > 0  # the instrumentation sees the live view
    contexts = nb.evaluate("() => window.__avAudioContexts.length")

    nb.rerun_cell(2)  # clears the output (disposing its view) and renders a fresh one
    fresh = nb.wait_for_widget(2, VIEWER)
    nb.page.wait_for_function("(el) => !el.isConnected", arg=root)
    held = nb.evaluate(JS_HELD, root)
    assert held["listeners"] == 0, f"{held['listeners']} listeners left on the removed view's nodes"
    assert held["observed"] == 0, "a ResizeObserver still watches the removed view"
    states = "([a, b]) => window.__avAudioContexts.slice(a, b).map((c) => c.state)"
    assert contexts == first + 1, "playing made one AudioContext"
    deadline = time.monotonic() + 5  # AudioContext.close() settles asynchronously
    while set(nb.evaluate(states, [first, contexts])) != {"closed"} and time.monotonic() < deadline:
        nb.page.wait_for_timeout(100)
    got = nb.evaluate(states, [first, contexts])
    assert set(got) == {"closed"}, f"AudioContext states: {got}"

    # nothing draws into the removed view any more: no playback frames, no model listeners
    frozen = held["drawCount"]
    nb.run_cell("viewer.heatmap_opacity = 0.3\nviewer.select([5, 6])\nviewer.time_range = (1.0, 2.0)")
    nb.page.wait_for_timeout(500)
    assert nb.evaluate(JS_HELD, root)["drawCount"] == frozen

    # the other view and the fresh one still work
    for widget in (nb.output_locator(1).locator(VIEWER), fresh):
        readout = widget.locator('[data-testid="audiovis-readout"]')
        nb.page.wait_for_function(
            "(el) => el.textContent.includes('1.00–2.00 s') && el.textContent.includes('2 selected')",
            arg=readout.element_handle(),
        )
    assert nb.page_errors == []
    nb.run_cell("viewer.heatmap_opacity = 0.6\nviewer.playhead = 0.0")
