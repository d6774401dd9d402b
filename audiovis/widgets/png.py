"""SpectrogramViewer.to_png: the viewer's current view drawn in Python (numpy + Pillow).

The spectrogram image follows the browser's rules exactly (js/src/render.ts: same payload values,
same pixel -> frame/bin sampling, same colormap tables and index rounding, same padding dimming), so
the plot area matches the canvas pixel for pixel; the overlay uses the same colours and cells.
"""

from __future__ import annotations

import io
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .serializers import finite_range

if TYPE_CHECKING:
    from .viewer import SpectrogramViewer

_TABLES = Path(__file__).resolve().parent / "colormaps.json"
COLORMAPS: tuple[str, ...] = tuple(k for k in json.loads(_TABLES.read_text()) if not k.startswith("_"))

#: how the colour bar names the spectrogram's units (the browser's names, js/src/viewer.ts UNIT_LABELS)
UNIT_LABELS = {"dB": "dB", "normalized-fbank": "normalised log-mel", "power": "power", "magnitude": "magnitude"}
FREQ_AXIS_WIDTH = 64
TIME_AXIS_HEIGHT = 26
COLORBAR_WIDTH = 132
BACKGROUND = (255, 255, 255)
INK = (34, 34, 34)


@lru_cache(maxsize=None)
def colormap_table(name: str) -> np.ndarray:
    """``[256, 3]`` uint8 RGB table of a colormap (the file js/src/colormaps.ts also reads)."""
    tables = json.loads(_TABLES.read_text())
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose from {COLORMAPS}")
    table = np.frombuffer(bytes.fromhex(tables[name]), dtype=np.uint8).reshape(256, 3)
    table.setflags(write=False)
    return table


def color_index(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """``round((v - vmin) / (vmax - vmin) * 255)`` clipped to 0..255 (JS Math.round); -1 for non-finite."""
    v = np.asarray(values, dtype=np.float64)
    span = vmax - vmin
    t = (v - vmin) / span if span > 0 else np.full_like(v, 0.5)
    idx = np.clip(np.floor(t * 255 + 0.5), 0, 255)
    return np.where(np.isfinite(v), idx, -1).astype(np.int16)


def _decoded_columns(viewer: SpectrogramViewer) -> np.ndarray:
    """Payload values as the browser decodes them: ``lo + code * ((hi - lo) / 255)`` in float64, stored float32."""
    payload = np.asarray(viewer._spectrogram)
    if payload.dtype == np.uint8:
        lo, hi = viewer._meta["value_range"]
        return (lo + payload.astype(np.float64) * ((hi - lo) / 255)).astype(np.float32)
    return payload.astype(np.float32)


def pixel_frames(f0: float, f1: float, width: int, x: int) -> tuple[int, int]:
    """render.ts pixelFrames: the frame under the pixel centre, or every frame a pixel spans (max-pooled)."""
    fpp = (f1 - f0) / width
    if fpp <= 1:
        k = math.floor(f0 + (x + 0.5) * fpp)
        return k, k + 1
    a = f0 + x * fpp
    return math.floor(a), max(math.floor(a) + 1, math.ceil(a + fpp))


def pixel_bins(n_bins: int, height: int, y: int) -> tuple[int, int]:
    """render.ts pixelBins (y = 0 is the top row)."""
    bpp = n_bins / height
    from_bottom = height - 1 - y
    if bpp <= 1:
        k = min(n_bins - 1, math.floor((from_bottom + 0.5) * bpp))
        return k, k + 1
    a = from_bottom * bpp
    return math.floor(a), min(n_bins, max(math.floor(a) + 1, math.ceil(a + bpp)))


def render_spectrogram(viewer: SpectrogramViewer, width: int, height: int) -> np.ndarray:
    """``[height, width, 4]`` RGBA of the spectrogram in the viewer's time_range."""
    f0, f1 = _clamp_window(*(float(v) for v in viewer.spectrogram.time_to_frame(np.asarray(viewer.time_range))), viewer._meta["n_frames"])
    return paint_spectrogram(_decoded_columns(viewer), viewer._meta, f0, f1, width, height, viewer.colormap, viewer.vmin, viewer.vmax)


def paint_spectrogram(cols: np.ndarray, meta: dict, f0: float, f1: float, width: int, height: int,
                      colormap: str, vmin: float, vmax: float) -> np.ndarray:
    """render.ts paintSpectrogram: colormapped columns of frames [f0, f1), padding frames dimmed."""
    n_bins, n_frames, fpc = meta["n_bins"], meta["n_frames"], meta["frames_per_column"]
    n_cols = cols.shape[1]
    table = colormap_table(colormap).astype(np.uint8)
    dim = (table * 0.35).astype(np.uint8)
    rows = [pixel_bins(n_bins, height, y) for y in range(height)]
    out = np.zeros((height, width, 4), dtype=np.uint8)
    for x in range(width):
        a, b = pixel_frames(f0, f1, width, x)
        if a >= n_frames or b <= 0:
            continue
        c0 = min(math.floor(max(0, a) / fpc), n_cols - 1)
        c1 = max(math.ceil(min(n_frames, b) / fpc), c0 + 1)
        column = cols[:, c0:c1].max(axis=1)
        values = np.array([column[r0:r1].max() for r0, r1 in rows], dtype=np.float32)
        idx = color_index(values, vmin, vmax)
        centre = f0 + (x + 0.5) / width * (f1 - f0)
        lut = dim if centre >= meta["valid_frames"] else table
        ok = idx >= 0
        out[ok, x, :3] = lut[idx[ok]]
        out[ok, x, 3] = 255
    return out


def _clamp_window(f0: float, f1: float, n_frames: int, min_span: float = 8) -> tuple[float, float]:
    """geometry.ts clampWindow."""
    span = min(max(f1 - f0, min(min_span, n_frames)), n_frames)
    start = min(max(f0, 0.0), n_frames - span)
    return start, start + span


def _heatmap_range(viewer: SpectrogramViewer, values: np.ndarray) -> tuple[float, float]:
    if viewer.heatmap_range is not None:
        return tuple(viewer.heatmap_range)  # type: ignore[return-value]
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def render_plot(viewer: SpectrogramViewer, width: int, height: int):
    """The plot area as a Pillow RGB image: spectrogram plus heatmap, masks, grid, selection and playhead."""
    from PIL import Image, ImageDraw

    spec_img = render_spectrogram(viewer, width, height)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    image.alpha_composite(Image.fromarray(spec_img, "RGBA"))
    spec = viewer.spectrogram
    f0, f1 = _clamp_window(*(float(v) for v in spec.time_to_frame(np.asarray(viewer.time_range))), spec.num_frames)
    n_bins = spec.num_bins

    # A LongViewer shows its model's grid at a window's frame offset (the browser shifts its view by it).
    offset = int(getattr(viewer, "_grid_offset", 0) or 0)

    def fx(frame: float) -> float:
        return (frame - f0) / (f1 - f0) * width

    def gx(grid_frame: float) -> float:
        return fx(grid_frame + offset)

    def by(b: float) -> float:
        return height - b / n_bins * height

    def cell_rect(box) -> tuple[float, float, float, float]:
        return gx(box.time_start), by(box.freq_end), gx(box.time_end), by(box.freq_start)

    def layer(fill_cells: list[tuple[tuple, tuple[int, int, int, int]]], outline: tuple[int, int, int, int] | None = None) -> None:
        over = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(over)
        for rect, color in fill_cells:
            x0, y0, x1, y1 = rect
            draw.rectangle([round(x0), round(y0), round(x1) - 1, round(y1) - 1], fill=color, outline=outline)
        image.alpha_composite(over)

    grid = viewer.grid
    if grid is not None:
        indices = range(grid.num_patches)
        if viewer.heatmap is not None:
            values = np.asarray(viewer.heatmap, dtype=np.float32)
            lo, hi = _heatmap_range(viewer, values)
            idx = color_index(values, lo, hi)
            table = colormap_table(viewer.heatmap_colormap)
            alpha = round(viewer.heatmap_opacity * 255)
            layer([(cell_rect(grid.cell_bounds(i)), (*(int(c) for c in table[idx[i]]), alpha)) for i in indices if idx[i] >= 0])
        if viewer.masked_patches:
            layer([(cell_rect(grid.cell_bounds(i)), (110, 110, 110, 191)) for i in viewer.masked_patches])
        if viewer.show_grid:
            over = Image.new("RGBA", (width, height), (0, 0, 0, 0))
            draw = ImageDraw.Draw(over)
            (sf, st), (pf, pt) = grid.stride, grid.patch_size
            rows, cols = grid.grid_shape
            t_end, f_end = (cols - 1) * st + pt, (rows - 1) * sf + pf
            color = (255, 255, 255, 71)
            if st / (f1 - f0) * width >= 3:
                for c in range(cols + 1):
                    x = round(gx(t_end if c == cols else c * st))
                    if 0 <= x < width:
                        draw.line([(x, by(f_end)), (x, height)], fill=color)
            for r in range(rows + 1):
                y = round(by(f_end if r == rows else r * sf)) - 1
                draw.line([(max(0, gx(0)), y), (min(width, gx(t_end)), y)], fill=color)
            image.alpha_composite(over)
        if viewer.selected_patches:
            layer([(cell_rect(grid.cell_bounds(i)), (0, 220, 255, 89)) for i in viewer.selected_patches], outline=(0, 230, 255, 242))
    draw = ImageDraw.Draw(image)
    valid = spec.valid_frames
    if valid < spec.num_frames and 0 <= fx(valid) <= width:
        x = round(fx(valid))
        for y in range(0, height, 8):
            draw.line([(x, y), (x, min(height, y + 4))], fill=(255, 255, 255, 153))
    if viewer._audio_info is not None and viewer.playhead > viewer._audio_start:
        x = fx(float(spec.time_to_frame(viewer.playhead)))
        if 0 <= x <= width:
            draw.line([(x, 0), (x, height)], fill=(57, 255, 122, 255), width=2)
    return image.convert("RGB")


def _nice_step(span: float, max_ticks: int) -> float:
    raw = span / max(1, max_ticks)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _linear_ticks(lo: float, hi: float, max_ticks: int) -> tuple[list[float], float]:
    if not hi > lo:
        return [lo], 1.0
    step = _nice_step(hi - lo, max_ticks)
    k = math.ceil(lo / step - 1e-9)
    out = []
    while k * step <= hi + step * 1e-9:
        out.append(float(f"{k * step:.12g}"))
        k += 1
    return out, step


def _format_hz(hz: float) -> str:
    return f"{float(f'{hz / 1000:.3g}'):g} kHz" if abs(hz) >= 1000 else f"{round(hz)} Hz"


def _frequency_ticks(viewer: SpectrogramViewer, height: int, min_gap: int = 28) -> list[float]:
    """geometry.ts frequencyTicks: mel scales get round Hz values at least min_gap px apart, bottom-up."""
    spec = viewer.spectrogram
    lo, hi = float(spec.frequency_edges[0]), float(spec.frequency_edges[-1])
    if spec.scale == "linear":
        return _linear_ticks(lo, hi, max(2, height // min_gap))[0]
    out, last_y = [], math.inf
    for p in range(1, 6):
        for m in (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9):
            hz = m * 10**p
            if not lo <= hz <= hi:
                continue
            y = height - float(spec.hz_to_bin(hz)) / spec.num_bins * height
            if last_y - y >= min_gap:
                out.append(hz)
                last_y = y
    return out


def render_png(viewer: SpectrogramViewer, *, width: int = 800) -> bytes:
    """PNG bytes: plot area ``width`` x ``viewer.height`` px with axes (s, Hz) and a colorbar with units."""
    from PIL import Image, ImageDraw, ImageFont

    if isinstance(width, bool) or not isinstance(width, int) or width < 50:
        raise ValueError(f"to_png: width must be an integer of at least 50 px, got {width!r}")
    height = viewer.height
    plot = render_plot(viewer, width, height)
    font = ImageFont.load_default()
    spec = viewer.spectrogram
    # colour bars: the spectrogram's, then the overlay's; each placed after the previous one's tick labels
    # and title, and the canvas widened to hold them (wide ticks such as "0.025" or "-100000" included)
    units = UNIT_LABELS.get(spec.units, spec.units)
    bars = [(viewer.colormap, viewer.vmin, viewer.vmax, units)]
    if viewer.heatmap is not None and viewer.grid is not None:
        lo, hi = _heatmap_range(viewer, np.asarray(viewer.heatmap, dtype=np.float32))
        bars.append((viewer.heatmap_colormap, lo, hi, viewer.heatmap_label or "heatmap"))
    bar_height = height - 12
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lefts, right = [], 18
    for i, (_, lo, hi, _) in enumerate(bars):
        x = right if i == 0 else max(84, right + 10)
        lefts.append(x)
        right = x + _colorbar_width(measure, font, bar_height, lo, hi)
    extra = max(COLORBAR_WIDTH, right + 6)
    canvas = Image.new("RGB", (FREQ_AXIS_WIDTH + width + extra, height + TIME_AXIS_HEIGHT + 8), BACKGROUND)
    canvas.paste(plot, (FREQ_AXIS_WIDTH, 4))
    draw = ImageDraw.Draw(canvas)
    # time axis
    t0, t1 = viewer.time_range
    max_ticks = max(2, width // 80)
    ticks, step = _linear_ticks(t0, t1, max_ticks)
    decimals = max(0, min(4, -math.floor(math.log10(step) + 1e-9)))
    for t in ticks:
        x = FREQ_AXIS_WIDTH + (t - t0) / (t1 - t0) * width
        draw.line([(x, height + 4), (x, height + 9)], fill=INK)
        label = f"{t:.{decimals}f} s"
        w = draw.textlength(label, font=font)
        draw.text((min(max(FREQ_AXIS_WIDTH, x - w / 2), FREQ_AXIS_WIDTH + width - w), height + 11), label, fill=INK, font=font)
    # frequency axis
    for hz in _frequency_ticks(viewer, height):
        y = 4 + height - float(spec.hz_to_bin(hz)) / spec.num_bins * height
        draw.line([(FREQ_AXIS_WIDTH - 5, y), (FREQ_AXIS_WIDTH - 1, y)], fill=INK)  # outside the plot
        label = _format_hz(hz)
        w = draw.textlength(label, font=font)
        draw.text((FREQ_AXIS_WIDTH - 7 - w, min(max(4, y - 6), height - 8)), label, fill=INK, font=font)
    # colorbar(s)
    left = FREQ_AXIS_WIDTH + width
    for x, (colormap, lo, hi, label) in zip(lefts, bars):
        _colorbar(canvas, draw, font, left + x, 10, bar_height, colormap, lo, hi, label)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def _colorbar_ticks(lo: float, hi: float, bar_height: int) -> tuple[list[float], int]:
    """A colour bar's tick values and the decimals they are written with."""
    ticks, step = _linear_ticks(lo, hi, max(2, bar_height // 40))
    return ticks, max(0, min(3, -math.floor(math.log10(step) + 1e-9)))


#: A colour bar's parts left to right: the bar, its tick marks up to the labels, the gap before the title,
#: the rotated title (one line of the default font).
_BAR, _TICK_GAP, _TITLE_GAP, _TITLE = 12, 5, 2, 12


def _colorbar_width(draw, font, bar_height: int, lo: float, hi: float) -> int:
    """Pixels from a colour bar's left edge to the right edge of its rotated title."""
    ticks, decimals = _colorbar_ticks(lo, hi, bar_height)
    widest = max((draw.textlength(f"{t:.{decimals}f}", font=font) for t in ticks), default=0.0)
    return int(math.ceil(_BAR + _TICK_GAP + widest + _TITLE_GAP + _TITLE))


def _colorbar(canvas, draw, font, x: int, top: int, bar_height: int, colormap: str, lo: float, hi: float, label: str) -> None:
    """A vertical colour bar at ``x`` with ticks, and its label written upwards beside them (as in the browser)."""
    from PIL import Image, ImageDraw

    table = colormap_table(colormap)
    for y in range(bar_height):
        k = round((1 - y / max(1, bar_height - 1)) * 255)
        draw.line([(x, top + y), (x + 11, top + y)], fill=tuple(int(c) for c in table[k]))
    ticks, decimals = _colorbar_ticks(lo, hi, bar_height)
    for t in ticks:
        y = top + (1 - (t - lo) / ((hi - lo) or 1)) * (bar_height - 1)
        draw.line([(x + 12, y), (x + 15, y)], fill=INK)
        draw.text((x + 17, y - 6), f"{t:.{decimals}f}", fill=INK, font=font)
    text = label if draw.textlength(label, font=font) <= bar_height else label[: max(1, bar_height // 6 - 1)] + "…"
    widest = max((draw.textlength(f"{t:.{decimals}f}", font=font) for t in ticks), default=0.0)
    strip = Image.new("L", (int(draw.textlength(text, font=font)) + 2, 12), 0)
    ImageDraw.Draw(strip).text((1, 0), text, fill=255, font=font)
    strip = strip.rotate(90, expand=True)
    at = (int(x + 19 + widest), int(top + max(0, (bar_height - strip.height) / 2)))
    canvas.paste(Image.new("RGB", strip.size, INK), at, strip)


__all__ = ["COLORMAPS", "colormap_table", "color_index", "render_png", "render_plot", "render_spectrogram", "finite_range"]
