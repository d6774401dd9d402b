"""A spectrogram view as plain data: what the browser canvas shows, without the widget that shows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .codec import dequantize_uint8, finite_range

if TYPE_CHECKING:
    from ..patches import PatchGrid
    from ..spectrogram import Spectrogram


@dataclass(frozen=True)
class View:
    """Everything a drawing of the view needs.

    ``payload`` and ``meta`` are exactly what the browser received (uint8 codes or float32 columns, and the
    metadata with ``n_bins``, ``n_frames`` (their wire names), ``frames_per_column``, ``value_range``, ``valid_frames``);
    ``grid_offset`` shifts the patch grid by that many frames (a long recording's current window);
    ``playhead`` is None when no playhead is drawn.
    """

    spectrogram: "Spectrogram"
    payload: np.ndarray
    meta: dict[str, Any]
    time_range: tuple[float, float]
    height: int
    colormap: str
    vmin: float
    vmax: float
    grid: "PatchGrid | None" = None
    grid_offset: int = 0
    show_grid: bool = True
    heatmap: np.ndarray | None = None
    heatmap_range: tuple[float, float] | None = None
    heatmap_colormap: str = "magma"
    heatmap_opacity: float = 0.6
    heatmap_label: str = ""
    masked_patches: tuple[int, ...] = ()
    selected_patches: tuple[int, ...] = ()
    playhead: float | None = None

    def decoded_columns(self) -> np.ndarray:
        """Payload values as the browser decodes them (float32 ``[num_bins, columns]``)."""
        payload = np.asarray(self.payload)
        if payload.dtype == np.uint8:
            return dequantize_uint8(payload, tuple(self.meta["value_range"]))
        return payload.astype(np.float32)

    def overlay_range(self) -> tuple[float, float]:
        """The heatmap's colour range: the one given, else its finite range (a constant map centred)."""
        if self.heatmap_range is not None:
            return float(self.heatmap_range[0]), float(self.heatmap_range[1])
        return finite_range(np.asarray(self.heatmap, dtype=np.float32), constant="around")
