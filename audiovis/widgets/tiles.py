"""Level of detail for long spectrograms, kernel side: a max-pooled overview and tiles on request.

The first payload is an overview of at most ``OVERVIEW_COLUMNS`` columns, each the maximum over
``frames_per_column`` frames, so a short loud event stays visible however far it is zoomed out. When
the browser zooms in it asks for tiles over custom messages: ``{"type": "tile", "id", "level",
"index"}``. Level ``l`` pools ``2**l`` frames per column (level 0 is full resolution); tile ``k`` holds
columns ``[k * tile_columns, (k + 1) * tile_columns)`` of that level as one binary buffer, coded like
the overview (uint8 codes over the same value range, or float32). The server keeps a view of the
spectrogram's values, never a copy, and computes tiles when asked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..checks import check_int
from ..rendering.codec import MAX_MESSAGE_BYTES, max_pool_frames, quantize_uint8

#: Most columns in the overview (the first payload of a long spectrogram).
OVERVIEW_COLUMNS = 4096
#: Columns per tile (fewer when a tile of many bins would pass the message cap).
TILE_COLUMNS = 1024
#: Largest binary buffer of one message: Jupyter's websocket limit is ~10 MB.


def overview_factor(num_bins: int, num_frames: int, itemsize: int, *, max_columns: int = OVERVIEW_COLUMNS,
                    max_bytes: int = MAX_MESSAGE_BYTES) -> int:
    """Frames per overview column: enough for ``<= max_columns`` columns within ``max_bytes``."""
    columns = max(1, min(max_columns, max_bytes // max(1, num_bins * itemsize)))
    return max(1, math.ceil(num_frames / columns))


class TileServer:
    """Answers tile requests for one spectrogram ``values[bins, frames]`` (float32, held by reference)."""

    def __init__(self, values: np.ndarray, value_range: tuple[float, float], *, precision: str = "uint8",
                 max_columns: int = OVERVIEW_COLUMNS, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        if values.ndim != 2:
            raise ValueError(f"TileServer: values must be [bins, frames], got shape {values.shape}")
        if precision not in ("uint8", "float32"):
            raise ValueError(f"TileServer: precision must be 'uint8' or 'float32', got {precision!r}")
        self.values = values if values.dtype == np.float32 else values.astype(np.float32)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.precision = precision
        self.itemsize = 1 if precision == "uint8" else 4
        num_bins, num_frames = values.shape
        self.frames_per_column = overview_factor(num_bins, num_frames, self.itemsize, max_columns=max_columns,
                                                 max_bytes=max_bytes)
        self.tile_columns = max(1, min(TILE_COLUMNS, max_bytes // (num_bins * self.itemsize)))
        # Levels pool 1, 2, 4, ... frames per column, below the overview's own pooling.
        self.levels = [1 << k for k in range(max(1, math.ceil(math.log2(self.frames_per_column))))]

    @property
    def num_bins(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[1])

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Values -> payload codes (uint8 over the shared value range) or float32."""
        if self.precision == "uint8":
            return quantize_uint8(values, self.value_range)[0]
        return np.ascontiguousarray(values, dtype=np.float32)

    def overview(self) -> np.ndarray:
        """``[bins, ceil(frames / frames_per_column)]`` payload, max-pooled in time."""
        return self.encode(max_pool_frames(self.values, self.frames_per_column))

    def spec(self) -> dict[str, Any]:
        """What the browser needs to ask for tiles (the ``_tiles`` trait)."""
        return {
            "n_bins": self.num_bins,
            "n_frames": self.num_frames,
            "tile_columns": self.tile_columns,
            "levels": list(self.levels),
            "dtype": self.precision,
            "value_range": list(self.value_range),
        }

    def num_tiles(self, level: int) -> int:
        columns = math.ceil(self.num_frames / self.levels[level])
        return math.ceil(columns / self.tile_columns)

    def tile(self, level: int, index: int) -> tuple[dict[str, Any], np.ndarray]:
        """Tile ``index`` of ``level``: its description and its payload ``[bins, columns]``."""
        pool = self.levels[level]
        first = index * self.tile_columns * pool
        last = min(self.num_frames, first + self.tile_columns * pool)
        payload = self.encode(max_pool_frames(self.values[:, first:last], pool))
        meta = {
            "level": level, "index": index, "start_frame": first, "frames_per_column": pool,
            "dtype": self.precision, "shape": list(payload.shape),
        }
        return meta, payload

    def handle(self, content: dict[str, Any]) -> tuple[dict[str, Any], list[memoryview]]:
        """Reply to one ``{"type": "tile", "level", "index"}`` request; ValueError names a bad field."""
        level = check_int(content.get("level"), "tile level", minimum=0, maximum=len(self.levels) - 1)
        index = check_int(content.get("index"), "tile index", minimum=0, maximum=self.num_tiles(level) - 1)
        meta, payload = self.tile(level, index)
        data = memoryview(payload.reshape(-1).view(np.uint8))
        if data.nbytes > MAX_MESSAGE_BYTES:  # cannot happen with tile_columns chosen above; checked anyway
            raise ValueError(f"tile ({level}, {index}) would be {data.nbytes} bytes, over the message limit")
        return meta, [data]


def tile_server_for(values: np.ndarray, precision: str = "uint8") -> TileServer | None:
    """A TileServer when ``values[bins, frames]`` is too long for one overview payload, else None."""
    num_bins, num_frames = values.shape
    itemsize = 1 if precision == "uint8" else 4
    if overview_factor(num_bins, num_frames, itemsize) == 1:
        return None
    finite = np.isfinite(values)
    lo = float(np.min(values, where=finite, initial=np.inf))
    hi = float(np.max(values, where=finite, initial=-np.inf))
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    return TileServer(values, (lo, hi if hi > lo else lo + 1.0), precision=precision)
