"""numpy <-> ``{view, dtype, shape}`` binary trait payloads, and the uint8 quantisation of spectrograms.

Every array trait of the widgets goes through :data:`array_serialization`, so arrays travel as one
binary buffer (little-endian, C order) and never as JSON lists; js/src/codecs.ts is the other end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: dtypes the front end can decode (js/src/codecs.ts).
SUPPORTED_DTYPES = ("uint8", "int16", "int32", "float16", "float32", "float64")


def array_to_json(value: Any, widget: Any = None) -> dict | None:
    """An array (or None) -> ``{"view": memoryview, "dtype": str, "shape": list}`` for the widget protocol."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.name not in SUPPORTED_DTYPES:
        raise ValueError(f"cannot send a {arr.dtype} array to the browser; use one of {SUPPORTED_DTYPES}")
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return {"view": memoryview(arr.reshape(-1).view(np.uint8)), "dtype": arr.dtype.name, "shape": list(arr.shape)}


def array_from_json(value: Any, widget: Any = None) -> np.ndarray | None:
    """``{view, dtype, shape}`` (bytes, memoryview or buffer) -> a read-only numpy array, or None."""
    if value is None:
        return None
    if not isinstance(value, dict) or not {"view", "dtype", "shape"} <= set(value):
        raise ValueError(f"binary array payload must be a dict with view, dtype and shape, got {type(value).__name__}")
    dtype = str(value["dtype"])
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"binary array payload has unsupported dtype {dtype!r}")
    shape = tuple(int(n) for n in value["shape"])
    if any(n < 0 for n in shape):
        raise ValueError(f"binary array payload has a negative dimension in shape {shape}")
    buf = memoryview(value["view"]).cast("B")
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if buf.nbytes != expected:
        raise ValueError(f"binary array payload holds {buf.nbytes} bytes; shape {shape} of {dtype} needs {expected}")
    return np.frombuffer(buf, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


array_serialization = {"to_json": array_to_json, "from_json": array_from_json}


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of the finite values (``(0, 1)`` if there are none); a constant array gets a unit span."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def quantize_uint8(values: np.ndarray, value_range: tuple[float, float] | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Codes ``round((v - lo) / (hi - lo) * 255)`` clipped to 0..255, and ``(lo, hi)``; NaN -> code 0.

    The error is at most ``(hi - lo) / 510``: 0.16 dB over an 80 dB range.
    """
    lo, hi = finite_range(values) if value_range is None else (float(value_range[0]), float(value_range[1]))
    scaled = (np.asarray(values, dtype=np.float64) - lo) * (255.0 / (hi - lo))
    codes = np.clip(np.nan_to_num(np.rint(scaled), nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)
    return codes, (lo, hi)


def dequantize_uint8(codes: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`quantize_uint8` (what the browser computes): ``lo + code * (hi - lo) / 255`` as float32."""
    lo, hi = value_range
    return (lo + codes.astype(np.float32) * np.float32((hi - lo) / 255)).astype(np.float32)


def max_pool_frames(values: np.ndarray, factor: int) -> np.ndarray:
    """``[F, T]`` -> ``[F, ceil(T / factor)]``: each column the maximum over ``factor`` consecutive frames."""
    if factor <= 1:
        return values
    starts = np.arange(0, values.shape[1], factor)
    return np.maximum.reduceat(values, starts, axis=1)
