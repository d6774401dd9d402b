"""numpy <-> ``{view, dtype, shape}`` binary trait payloads (the uint8 codes themselves: rendering/codec.py).

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
