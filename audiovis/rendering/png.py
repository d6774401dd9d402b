"""A PNG of a :class:`View` drawn in Python (numpy + Pillow): what ``SpectrogramViewer.to_png`` writes.

The spectrogram image follows the browser's rules exactly (js/src/render.ts: same payload values,
same pixel -> frame/bin sampling, same colormap tables and index rounding, same padding dimming), so
the plot area matches the canvas pixel for pixel; the overlay uses the same colours and cells.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..checks import check_int
from .axes import format_hz, frequency_ticks, linear_ticks
from .colormaps import color_index, colormap_table
from .view import View

#: how the colour bar names the spectrogram's units (the browser's names, the browser's UNIT_LABELS)
UNIT_LABELS = {"dB": "dB", "normalized-fbank": "normalised log-mel", "power": "power", "magnitude": "magnitude"}
FREQ_AXIS_WIDTH = 64
TIME_AXIS_HEIGHT = 26
COLORBAR_WIDTH = 132
BACKGROUND = (255, 255, 255)
INK = (34, 34, 34)


def pixel_frames(f0: float, f1: float, width: int, x: int) -> tuple[int, int]:
    """render.ts pixelFrames: the frame under the pixel centre, or every frame a pixel spans (max-pooled)."""
    fpp = (f1 - f0) / width
    if fpp <= 1:
        k = math.floor(f0 + (x + 0.5) * fpp)
        return k, k + 1
    a = f0 + x * fpp
    return math.floor(a), max(math.floor(a) + 1, math.ceil(a + fpp))


def pixel_bins(num_bins: int, height: int, y: int) -> tuple[int, int]:
    """render.ts pixelBins (y = 0 is the top row)."""
    bpp = num_bins / height
    from_bottom = height - 1 - y
    if bpp <= 1:
        k = min(num_bins - 1, math.floor((from_bottom + 0.5) * bpp))
        return k, k + 1
    a = from_bottom * bpp
    return math.floor(a), min(num_bins, max(math.floor(a) + 1, math.ceil(a + bpp)))


def render_spectrogram(view: View, width: int, height: int) -> np.ndarray:
    """``[height, width, 4]`` RGBA of the spectrogram in the view's time_range."""
    f0, f1 = _clamp_range(*(float(v) for v in view.spectrogram.time_to_frame(np.asarray(view.time_range))), view.meta["n_frames"])
    return paint_spectrogram(view.decoded_columns(), view.meta, f0, f1, width, height, view.colormap, view.vmin, view.vmax)


def paint_spectrogram(cols: np.ndarray, meta: dict, f0: float, f1: float, width: int, height: int,
                      colormap: str, vmin: float, vmax: float) -> np.ndarray:
    """render.ts paintSpectrogram: colormapped columns of frames [f0, f1), padding frames dimmed."""
    num_bins, num_frames, fpc = meta["n_bins"], meta["n_frames"], meta["frames_per_column"]
    num_columns = cols.shape[1]
    table = colormap_table(colormap).astype(np.uint8)
    dim = (table * 0.35).astype(np.uint8)
    rows = [pixel_bins(num_bins, height, y) for y in range(height)]
    out = np.zeros((height, width, 4), dtype=np.uint8)
    for x in range(width):
        a, b = pixel_frames(f0, f1, width, x)
        if a >= num_frames or b <= 0:
            continue
        c0 = min(math.floor(max(0, a) / fpc), num_columns - 1)
        c1 = max(math.ceil(min(num_frames, b) / fpc), c0 + 1)
        column = cols[:, c0:c1].max(axis=1)
        values = np.array([column[r0:r1].max() for r0, r1 in rows], dtype=np.float32)
        idx = color_index(values, vmin, vmax)
        centre = f0 + (x + 0.5) / width * (f1 - f0)
        lut = dim if centre >= meta["valid_frames"] else table
        ok = idx >= 0
        out[ok, x, :3] = lut[idx[ok]]
        out[ok, x, 3] = 255
    return out


def _clamp_range(f0: float, f1: float, num_frames: int, min_span: float = 8) -> tuple[float, float]:
    """geometry.ts clampRange."""
    span = min(max(f1 - f0, min(min_span, num_frames)), num_frames)
    start = min(max(f0, 0.0), num_frames - span)
    return start, start + span


def render_plot(view: View, width: int, height: int):
    """The plot area as a Pillow RGB image: spectrogram plus heatmap, masks, grid, selection and playhead."""
    from PIL import Image, ImageDraw

    spec_img = render_spectrogram(view, width, height)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    image.alpha_composite(Image.fromarray(spec_img, "RGBA"))
    spec = view.spectrogram
    f0, f1 = _clamp_range(*(float(v) for v in spec.time_to_frame(np.asarray(view.time_range))), spec.num_frames)
    num_bins = spec.num_bins

    offset = view.grid_offset

    def fx(frame: float) -> float:
        return (frame - f0) / (f1 - f0) * width

    def gx(grid_frame: float) -> float:
        return fx(grid_frame + offset)

    def by(b: float) -> float:
        return height - b / num_bins * height

    def cell_rect(box) -> tuple[float, float, float, float]:
        return gx(box.time_start), by(box.freq_end), gx(box.time_end), by(box.freq_start)

    def layer(fill_cells: list[tuple[tuple, tuple[int, int, int, int]]], outline: tuple[int, int, int, int] | None = None) -> None:
        over = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(over)
        for rect, color in fill_cells:
            x0, y0, x1, y1 = rect
            draw.rectangle([round(x0), round(y0), round(x1) - 1, round(y1) - 1], fill=color, outline=outline)
        image.alpha_composite(over)

    grid = view.grid
    if grid is not None:
        indices = range(grid.num_patches)
        if view.heatmap is not None:
            values = np.asarray(view.heatmap, dtype=np.float32)
            lo, hi = view.overlay_range()
            idx = color_index(values, lo, hi)
            table = colormap_table(view.heatmap_colormap)
            alpha = round(view.heatmap_opacity * 255)
            layer([(cell_rect(grid.cell_bounds(i)), (*(int(c) for c in table[idx[i]]), alpha)) for i in indices if idx[i] >= 0])
        if view.masked_patches:
            layer([(cell_rect(grid.cell_bounds(i)), (110, 110, 110, 191)) for i in view.masked_patches])
        if view.show_grid:
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
        if view.selected_patches:
            layer([(cell_rect(grid.cell_bounds(i)), (0, 220, 255, 89)) for i in view.selected_patches], outline=(0, 230, 255, 242))
    draw = ImageDraw.Draw(image)
    valid = spec.valid_frames
    if valid < spec.num_frames and 0 <= fx(valid) <= width:
        x = round(fx(valid))
        for y in range(0, height, 8):
            draw.line([(x, y), (x, min(height, y + 4))], fill=(255, 255, 255, 153))
    if view.playhead is not None:
        x = fx(float(spec.time_to_frame(view.playhead)))
        if 0 <= x <= width:
            draw.line([(x, 0), (x, height)], fill=(57, 255, 122, 255), width=2)
    return image.convert("RGB")


def render_png(view: View, *, width: int = 800) -> bytes:
    """PNG bytes: plot area ``width`` x ``view.height`` px with axes (s, Hz) and a colorbar with units."""
    from PIL import Image, ImageDraw, ImageFont

    width = check_int(width, "to_png: width", minimum=50, what="an integer of at least 50 px")
    height = view.height
    plot = render_plot(view, width, height)
    font = ImageFont.load_default()
    spec = view.spectrogram
    # colour bars: the spectrogram's, then the overlay's; each placed after the previous one's tick labels
    # and title, and the canvas widened to hold them (wide ticks such as "0.025" or "-100000" included)
    units = UNIT_LABELS.get(spec.units, spec.units)
    bars = [(view.colormap, view.vmin, view.vmax, units)]
    if view.heatmap is not None and view.grid is not None:
        lo, hi = view.overlay_range()
        bars.append((view.heatmap_colormap, lo, hi, view.heatmap_label or "heatmap"))
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
    t0, t1 = view.time_range
    max_ticks = max(2, width // 80)
    ticks, step = linear_ticks(t0, t1, max_ticks)
    decimals = max(0, min(4, -math.floor(math.log10(step) + 1e-9)))
    for t in ticks:
        x = FREQ_AXIS_WIDTH + (t - t0) / (t1 - t0) * width
        draw.line([(x, height + 4), (x, height + 9)], fill=INK)
        label = f"{t:.{decimals}f} s"
        w = draw.textlength(label, font=font)
        draw.text((min(max(FREQ_AXIS_WIDTH, x - w / 2), FREQ_AXIS_WIDTH + width - w), height + 11), label, fill=INK, font=font)
    # frequency axis
    for hz in frequency_ticks(spec, height):
        y = 4 + height - float(spec.hz_to_bin(hz)) / spec.num_bins * height
        draw.line([(FREQ_AXIS_WIDTH - 5, y), (FREQ_AXIS_WIDTH - 1, y)], fill=INK)  # outside the plot
        label = format_hz(hz)
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
    ticks, step = linear_ticks(lo, hi, max(2, bar_height // 40))
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


