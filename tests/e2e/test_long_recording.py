"""A 1-hour recording in a real JupyterLab + Chromium: overview first, tiles when zoomed, the window's grid.

The recording is quiet noise with one 0.2 s burst at 3 kHz; a LongViewer runs a small random AST on
every 10.24 s window. Zoomed to the window holding the burst, the tiles draw it at full resolution
(the overview would smear it over 0.88 s), the window's grid appears, and a click selects the patch
under the pointer in that window's token order.
"""

from __future__ import annotations


import pytest

from .viewer_page import CANVAS, VIEWER, canvas_pixels

pytestmark = pytest.mark.e2e

BURST_AT, BURST_LEN = 1805.30, 0.20
WINDOW = 176  # frames [180224, 181248): 1802.2 s .. 1812.5 s, holds the burst

SETUP = f"""
import numpy as np, torch
import audiovis as av
from audiovis.widgets.longview import LongViewer
sr = 16000
rng = np.random.default_rng(0)
x = (0.003 * rng.standard_normal(3600 * sr)).astype(np.float32)
t = np.arange(int({BURST_LEN} * sr)) / sr
x[int({BURST_AT} * sr): int({BURST_AT} * sr) + t.size] += (0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
audio = av.load_audio(x, sr)
torch.manual_seed(0)
model = av.ASTModel(av.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 num_labels=3, labels=["hum", "burst", "noise"])).eval()
lv = LongViewer(audio, model, audio=None, height=256)
spec = lv.spectrogram
"""




def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def test_one_hour_opens_zooms_to_a_window_and_selects_there(lab):
    nb = lab.open_notebook(cells=[SETUP, "lv"])
    nb.run_all(timeout=600)
    widget = nb.wait_for_widget(1, VIEWER, timeout=60)
    canvas = widget.locator(CANVAS)
    canvas.scroll_into_view_if_needed()
    nb.page.wait_for_function(f"() => Number(document.querySelector('{VIEWER}')?.dataset.drawCount ?? 0) >= 1")

    # Overview first: one payload of at most 4096 columns; no tile asked for at full zoom-out.
    n_frames, columns, fpc, n_windows = _floats(nb.run_cell(
        "print(spec.num_frames, lv._spectrogram.shape[1], lv._meta['frames_per_column'], len(lv.windows))"))
    assert n_frames == 360_000 - 2 and columns <= 4096 and fpc == 88 and n_windows == 352
    assert widget.get_attribute("data-tiles-received") is None
    assert widget.locator('[data-testid="audiovis-window-strip"]').is_visible()
    assert nb.run_cell("print(lv.window, lv._grid)").split() == ["None", "None"]

    nb.run_cell(f"lv.show_window({WINDOW})")
    assert nb.poll_cell("print(lv.window)", lambda out: out.strip() == str(WINDOW)).strip() == str(WINDOW)
    nb.page.wait_for_function(f"() => Number(document.querySelector('{VIEWER}')?.dataset.tilesReceived ?? 0) >= 1",
                              timeout=15000)
    nb.page.wait_for_timeout(300)  # let the last tile's repaint land

    box = canvas.bounding_box()
    f0, f1 = _floats(nb.run_cell("print(*spec.time_to_frame(np.array(lv.time_range)))"))
    offset = WINDOW * 1024
    assert nb.run_cell("print(lv._grid_offset)").strip() == str(offset)

    def to_px(frame: float, bin_: float) -> tuple[float, float]:
        return (frame - f0) / (f1 - f0) * box["width"], box["height"] * (1 - bin_ / 128)

    # Full resolution: the burst is bright, 0.15 s after it (same overview column) is dark again.
    band = float(nb.run_cell("print(float(spec.hz_to_bin(3000.0)))"))
    burst_mid, after = _floats(nb.run_cell(
        f"print(*spec.time_to_frame(np.array([{BURST_AT + BURST_LEN / 2}, {BURST_AT + BURST_LEN + 0.15}])))"))
    assert int(burst_mid) // 88 == int(after) // 88
    rgb = canvas_pixels(canvas, "RGB").astype(float)
    (xb, y), (xa, _) = to_px(burst_mid, band), to_px(after, band)
    bright, dark = rgb[int(y), int(xb)].sum(), rgb[int(y), int(xa)].sum()
    assert bright > dark + 150, (bright, dark)

    # The window's grid: hover and click at the centre of the stride cell of patch (row 4, col 50).
    row, col = 4, 50
    x, y = to_px(offset + col * 10 + 5, row * 10 + 5)
    nb.page.mouse.move(box["x"] + x, box["y"] + y)
    tooltip = widget.locator('[data-testid="audiovis-tooltip"]')
    tooltip.wait_for(state="visible", timeout=5000)
    index = row * 101 + col
    assert f"patch {index} (row {row}, col {col})" in tooltip.inner_text()
    nb.page.mouse.click(box["x"] + x, box["y"] + y)
    out = nb.poll_cell("print(lv.selected_patches)", lambda text: text.strip() != "[]")
    assert out.strip() == f"[{index}]"
    # The patch's time span is inside the window, in seconds of the recording.
    t0, t1, w0, w1 = _floats(nb.run_cell(
        f"b = lv.grid.bounds({index}); print(*spec.frame_to_time([b.time_start + {offset}, b.time_end + {offset}]),"
        f" lv.windows[{WINDOW}].start_seconds, lv.windows[{WINDOW}].end_seconds)"))
    assert w0 <= t0 < t1 <= w1
    nb.screenshot("long_recording_window_selected")

    # Zoomed out again: no window under view, no grid, selection cleared.
    nb.run_cell("lv.time_range = lv.full_time_range")
    assert nb.run_cell("print(lv.window, lv._grid, lv.selected_patches)").split() == ["None", "None", "[]"]
