"""Axis ticks as the browser draws them (js/src/axes.ts): round seconds, round Hz on mel scales."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spectrogram import Spectrogram


def nice_step(span: float, max_ticks: int) -> float:
    raw = span / max(1, max_ticks)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def linear_ticks(lo: float, hi: float, max_ticks: int) -> tuple[list[float], float]:
    if not hi > lo:
        return [lo], 1.0
    step = nice_step(hi - lo, max_ticks)
    k = math.ceil(lo / step - 1e-9)
    out = []
    while k * step <= hi + step * 1e-9:
        out.append(float(f"{k * step:.12g}"))
        k += 1
    return out, step


def format_hz(hz: float) -> str:
    return f"{float(f'{hz / 1000:.3g}'):g} kHz" if abs(hz) >= 1000 else f"{round(hz)} Hz"


def frequency_ticks(spec: "Spectrogram", height: int, min_gap: int = 28) -> list[float]:
    """axes.ts frequencyTicks: mel scales get round Hz values at least min_gap px apart, bottom-up."""
    lo, hi = float(spec.frequency_edges[0]), float(spec.frequency_edges[-1])
    if spec.scale == "linear":
        return linear_ticks(lo, hi, max(2, height // min_gap))[0]
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
