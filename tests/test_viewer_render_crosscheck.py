"""The spectrogram image drawn by to_png (Python) and by the browser (js/src/render.ts) on shared cases.

tests/fixtures/render_cases.json holds small payloads, views and the RGBA pixels Python paints;
js/test/render.test.ts paints the same payloads with paintSpectrogram and must get the same bytes.
Regenerate with ``python -m tests.test_viewer_render_crosscheck``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np

from audiovis.rendering.colormaps import color_index, colormap_table
from audiovis.rendering.png import paint_spectrogram
from audiovis.rendering.codec import dequantize_uint8, max_pool_frames, quantize_uint8

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "render_cases.json"

# (name, n_bins, n_frames, frames_per_column, valid_frames, f0, f1, width, height, colormap)
CASES = [
    ("zoomed-out", 40, 300, 1, 260, 0.0, 300.0, 37, 13, "magma"),        # several frames and bins per pixel
    ("zoomed-in", 40, 300, 1, 260, 250.5, 270.25, 64, 90, "viridis"),   # pixels narrower than a frame, padding edge
    ("pooled", 24, 1000, 7, 1000, 13.0, 900.0, 50, 24, "gray"),          # a max-pooled long recording
]


def build_cases() -> dict:
    rng = np.random.default_rng(7)
    out = []
    for name, n_bins, n_frames, fpc, valid, f0, f1, width, height, cmap in CASES:
        values = rng.normal(-40, 15, size=(n_bins, n_frames)).astype(np.float32)
        codes, value_range = quantize_uint8(max_pool_frames(values, fpc))
        meta = dict(n_bins=n_bins, n_frames=n_frames, frames_per_column=fpc, valid_frames=valid)
        lo, hi = value_range
        vmin, vmax = lo + 0.1 * (hi - lo), hi - 0.05 * (hi - lo)
        decoded = (lo + codes.astype(np.float64) * ((hi - lo) / 255)).astype(np.float32)
        rgba = paint_spectrogram(decoded, meta, f0, f1, width, height, cmap, vmin, vmax)
        out.append(dict(name=name, **meta, value_range=list(value_range), codes=base64.b64encode(codes.tobytes()).decode(),
                        shape=list(codes.shape), f0=f0, f1=f1, width=width, height=height, colormap=cmap,
                        vmin=vmin, vmax=vmax, rgba=base64.b64encode(rgba.tobytes()).decode()))
    return {"cases": out}


def test_fixture_matches_python_renderer():
    assert FIXTURE.exists(), f"{FIXTURE} missing: run `python -m tests.test_viewer_render_crosscheck`"
    assert json.loads(FIXTURE.read_text()) == json.loads(json.dumps(build_cases()))


def test_python_renderer_against_direct_computation():
    """Independent check of paint_spectrogram: one frame per pixel column and one bin per row is a plain lookup."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(16, 30)).astype(np.float32)
    meta = dict(n_bins=16, n_frames=30, frames_per_column=1, valid_frames=20)
    rgba = paint_spectrogram(values, meta, 0.0, 30.0, 30, 16, "viridis", -1.0, 1.0)
    table = colormap_table("viridis")
    idx = np.clip(np.floor((values.astype(np.float64) + 1.0) / 2.0 * 255 + 0.5), 0, 255).astype(int)
    expected = table[idx[::-1]]  # row 0 of the image is the highest bin
    np.testing.assert_array_equal(rgba[:, :20, :3], expected[:, :20])
    np.testing.assert_array_equal(rgba[:, 20:, :3], (expected[:, 20:] * 0.35).astype(np.uint8))
    assert (rgba[..., 3] == 255).all()


def test_max_pooled_columns_keep_short_events():
    values = np.zeros((2, 10), dtype=np.float32)
    values[1, 7] = 5.0
    pooled = max_pool_frames(values, 4)
    assert pooled.shape == (2, 3)
    np.testing.assert_array_equal(pooled[1], [0, 5, 0])


def test_quantisation_error_is_half_a_step():
    values = np.linspace(-80, 0, 1001, dtype=np.float32)
    codes, (lo, hi) = quantize_uint8(values)
    assert (lo, hi) == (-80.0, 0.0)
    err = np.abs(dequantize_uint8(codes, (lo, hi)) - values)
    assert err.max() <= (hi - lo) / 510 + 1e-5
    assert color_index(np.array([np.nan]), 0, 1)[0] == -1


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(build_cases(), separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)", file=sys.stderr)
