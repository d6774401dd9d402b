"""The colormap tables shared with the browser (colormaps.json, also read by js/src/colormaps.ts).

Index rounding follows the browser: ``round((v - vmin) / (vmax - vmin) * 255)``, clamped, -1 for non-finite.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

TABLES = Path(__file__).resolve().parent / "colormaps.json"
COLORMAPS: tuple[str, ...] = tuple(k for k in json.loads(TABLES.read_text()) if not k.startswith("_"))


@lru_cache(maxsize=None)
def colormap_table(name: str) -> np.ndarray:
    """``[256, 3]`` uint8 RGB table of a colormap (read-only)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose from {COLORMAPS}")
    table = np.frombuffer(bytes.fromhex(json.loads(TABLES.read_text())[name]), dtype=np.uint8).reshape(256, 3)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=None)
def hex_palette(name: str) -> tuple[str, ...]:
    """The 256 colours of a colormap as ``#rrggbb`` strings (Bokeh palettes)."""
    return tuple(f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colormap_table(name))


def color_index(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """``round((v - vmin) / (vmax - vmin) * 255)`` clipped to 0..255 (JS Math.round); -1 for non-finite."""
    v = np.asarray(values, dtype=np.float64)
    span = vmax - vmin
    t = (v - vmin) / span if span > 0 else np.full_like(v, 0.5)
    idx = np.clip(np.floor(t * 255 + 0.5), 0, 255)
    return np.where(np.isfinite(v), idx, -1).astype(np.int16)
