"""How spectrogram values travel to the browser: the finite range, uint8 codes, time pooling, the size limit.

One home for each rule: the browser decodes with the arithmetic of :func:`dequantize_uint8`
(js/src/codecs.ts ``toFloat32``; cross-checked through tests/fixtures/uint8_cases.json).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: Largest binary message to the browser (Jupyter's websocket stops at ~10 MB): payloads and tiles stay below.
MAX_MESSAGE_BYTES = 8_000_000


def finite_range(values: np.ndarray, *, constant: Literal["above", "around"] = "above") -> tuple[float, float]:
    """``(min, max)`` of the finite values, ``(0, 1)`` if there are none.

    Args:
        values: any array.
        constant: how a constant array gets a unit span: ``"above"`` gives ``(v, v + 1)`` (the spectrogram's
            colour range), ``"around"`` gives ``(v - 0.5, v + 0.5)`` (an overlay's range, as the browser does).

    Returns:
        ``(lo, hi)`` with ``lo < hi``.
    """
    arr = np.asarray(values)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi > lo:
        return lo, hi
    return (lo - 0.5, hi + 0.5) if constant == "around" else (lo, lo + 1.0)


def quantize_uint8(values: np.ndarray, value_range: tuple[float, float] | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Codes ``round((v - lo) / (hi - lo) * 255)`` clipped to 0..255, and ``(lo, hi)``; NaN -> code 0.

    The error is at most ``(hi - lo) / 510``: 0.16 dB over an 80 dB range.
    """
    lo, hi = finite_range(values) if value_range is None else (float(value_range[0]), float(value_range[1]))
    scaled = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    codes = np.clip(np.nan_to_num(np.rint(scaled), nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)
    return codes, (lo, hi)


def dequantize_uint8(codes: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """The values the browser shows for uint8 codes: ``lo + code * ((hi - lo) / 255)`` in double precision
    (JavaScript numbers), stored as float32 (the browser's Float32Array)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    return (lo + np.asarray(codes).astype(np.float64) * ((hi - lo) / 255)).astype(np.float32)


def max_pool_frames(values: np.ndarray, factor: int) -> np.ndarray:
    """``[F, T]`` -> ``[F, ceil(T / factor)]``: each column the maximum over ``factor`` consecutive frames."""
    if factor <= 1:
        return values
    starts = np.arange(0, values.shape[1], factor)
    return np.maximum.reduceat(values, starts, axis=1)
