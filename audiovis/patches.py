"""PatchGrid: the one place where patch <-> token <-> bin/frame <-> Hz/second geometry is defined.

Coordinates: frequency bins ``[0, F)`` (bin 0 lowest) and time frames ``[0, T)``. Patch ``(row, col)``
covers bins ``[row * stride_f, row * stride_f + patch_f)`` and frames ``[col * stride_t, ... + patch_t)``.
Token order is AST's: frequency-major, ``index = row * n_time + col``, prefix tokens excluded.
With overlapping patches (stride < patch), the patch "at" a point is the one whose stride cell holds it:
cell ``(row, col)`` is ``[row * stride_f, (row + 1) * stride_f)`` (the last row/col reaches its patch's end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .spectrogram import Spectrogram


class Box(NamedTuple):
    """A time-frequency rectangle, half-open: ``[time_start, time_end) x [freq_start, freq_end)``."""

    time_start: float
    time_end: float
    freq_start: float
    freq_end: float


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ConfigError(f"PatchGrid: {name} must be an int or a (freq, time) pair, got {value!r}") from None
    for v in (a, b):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ConfigError(f"PatchGrid: {name} must hold positive integers, got {value!r}")
    return int(a), int(b)


def _integers(value, name: str) -> np.ndarray:
    """An int64 array of ``value``: integers or integer-valued floats (not bools), else IndexError."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"patch {name} must be an integer, got {value!r}")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class PatchGrid:
    """The patches a ViT cuts from a ``(freq_bins, frames)`` input; AST defaults give 12 x 101 = 1212."""

    input_shape: tuple[int, int] = (128, 1024)
    patch_size: tuple[int, int] = (16, 16)
    stride: tuple[int, int] = (10, 10)

    def __post_init__(self) -> None:
        shape = _pair(self.input_shape, "input_shape")
        patch = _pair(self.patch_size, "patch_size")
        stride = _pair(self.stride, "stride")
        if patch[0] > shape[0] or patch[1] > shape[1]:
            raise ConfigError(f"PatchGrid: patch {patch} is larger than the input {shape} (freq bins, frames)")
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "patch_size", patch)
        object.__setattr__(self, "stride", stride)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` = ``(n_freq, n_time)`` patches."""
        return tuple((n - p) // s + 1 for n, p, s in zip(self.input_shape, self.patch_size, self.stride))  # type: ignore[return-value]

    @property
    def n_freq(self) -> int:
        return self.grid_shape[0]

    @property
    def n_time(self) -> int:
        return self.grid_shape[1]

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid_shape
        return rows * cols

    def __len__(self) -> int:
        return self.num_patches

    def _check_index(self, index) -> np.ndarray:
        idx = np.asarray(index)
        if idx.dtype.kind not in "iu":
            if idx.dtype.kind == "f" and np.all(np.isfinite(idx)) and np.all(idx == np.round(idx)):
                idx = idx.astype(np.int64)
            else:
                raise IndexError(f"patch index must be an integer, got {index!r}")
        if np.any((idx < 0) | (idx >= self.num_patches)):
            raise IndexError(f"patch index {index!r} outside 0..{self.num_patches - 1}")
        return idx.astype(np.int64)

    def index(self, row, col):
        """Token index of patch ``(row, col)`` (arrays broadcast)."""
        r, c = _integers(row, "row"), _integers(col, "col")
        rows, cols = self.grid_shape
        if np.any((r < 0) | (r >= rows) | (c < 0) | (c >= cols)):
            raise IndexError(f"patch (row {row!r}, col {col!r}) outside the {rows} x {cols} grid")
        out = r * cols + c
        return int(out) if out.ndim == 0 else out

    def position(self, index):
        """``(row, col)`` of a token index (arrays give two arrays)."""
        idx = self._check_index(index)
        row, col = np.divmod(idx, self.n_time)
        if idx.ndim == 0:
            return int(row), int(col)
        return row, col

    def bounds(self, index) -> Box:
        """The patch's full footprint in frames and bins (half-open)."""
        row, col = self.position(index)
        (pf, pt), (sf, st) = self.patch_size, self.stride
        return Box(col * st, col * st + pt, row * sf, row * sf + pf)

    def cell_bounds(self, index) -> Box:
        """The patch's stride cell (what a click inside selects), in frames and bins.

        The cell is ``[k * stride, k * stride + min(stride, patch))`` per axis; the last row/column
        reaches the end of its patch. Cells tile the covered area without overlap.
        """
        row, col = self.position(index)
        (pf, pt), (sf, st) = self.patch_size, self.stride
        rows, cols = self.grid_shape
        t_end = col * st + (pt if col == cols - 1 else min(st, pt))
        f_end = row * sf + (pf if row == rows - 1 else min(sf, pf))
        return Box(col * st, t_end, row * sf, f_end)

    def bounds_hz_s(self, index, spectrogram: "Spectrogram") -> Box:
        """The patch's footprint in seconds and Hz on ``spectrogram``'s axes."""
        self._check_spectrogram(spectrogram)
        b = self.bounds(index)
        t0, t1 = spectrogram.frame_to_time([b.time_start, b.time_end])
        f0, f1 = spectrogram.bin_to_hz([b.freq_start, b.freq_end])
        return Box(float(t0), float(t1), float(f0), float(f1))

    def patch_at(self, frame: float, bin: float) -> int | None:
        """The patch whose stride cell holds point ``(frame, bin)``, or None outside every cell."""
        if not (np.isfinite(frame) and np.isfinite(bin)):
            return None
        row = self._cell_on_axis(float(bin), axis=0)
        col = self._cell_on_axis(float(frame), axis=1)
        if row is None or col is None:
            return None
        return row * self.n_time + col

    def _cell_on_axis(self, x: float, axis: int) -> int | None:
        p, s, n = self.patch_size[axis], self.stride[axis], self.grid_shape[axis]
        if x < 0 or x >= (n - 1) * s + p:
            return None
        k = min(int(x // s), n - 1)
        return k if x < k * s + (p if k == n - 1 else min(s, p)) else None

    def patches_in(self, box: Box | tuple[float, float, float, float], spectrogram: "Spectrogram | None" = None) -> list[int]:
        """Every patch whose footprint overlaps ``box`` = (time_start, time_end, freq_start, freq_end).

        The box is in frames and bins, or in seconds and Hz when ``spectrogram`` is given.
        Returned in token order.
        """
        t0, t1, f0, f1 = (float(v) for v in box)
        if spectrogram is not None:
            self._check_spectrogram(spectrogram)
            t0, t1 = (float(v) for v in spectrogram.time_to_frame([t0, t1]))
            f0, f1 = (float(v) for v in spectrogram.hz_to_bin([f0, f1]))
        t0, t1 = min(t0, t1), max(t0, t1)
        f0, f1 = min(f0, f1), max(f0, f1)
        rows = self._overlapping(f0, f1, axis=0)
        cols = self._overlapping(t0, t1, axis=1)
        return [int(r * self.n_time + c) for r in rows for c in cols]

    def _overlapping(self, lo: float, hi: float, axis: int) -> range:
        """Grid positions on one axis whose span ``[k*s, k*s+p)`` overlaps ``[lo, hi)`` (a point if lo == hi)."""
        p, s, n = self.patch_size[axis], self.stride[axis], self.grid_shape[axis]
        if hi == lo:
            hi = lo + 1e-9
        first = max(0, int(np.floor((lo - p) / s)) + 1)
        last = min(n - 1, int(np.ceil(hi / s)) - 1)
        return range(first, last + 1) if last >= first else range(0)

    def uncovered(self) -> tuple[np.ndarray, np.ndarray]:
        """``(bins, frames)`` that no patch covers (AST: mel bins 126-127 and frames 1016-1023).

        With stride > patch size the gaps between patches are uncovered too.
        """
        return self._uncovered_on_axis(0), self._uncovered_on_axis(1)

    def _uncovered_on_axis(self, axis: int) -> np.ndarray:
        p, s, n = self.patch_size[axis], self.stride[axis], self.grid_shape[axis]
        pos = np.arange(self.input_shape[axis])
        offset = pos - np.minimum(pos // s, n - 1) * s
        return pos[offset >= p]

    def to_dict(self) -> dict:
        """Plain-JSON description (the viewer's and the TS geometry's view of the grid)."""
        return {
            "input_shape": list(self.input_shape),
            "patch_size": list(self.patch_size),
            "stride": list(self.stride),
            "grid_shape": list(self.grid_shape),
        }

    def _check_spectrogram(self, spectrogram: "Spectrogram") -> None:
        if tuple(spectrogram.shape) != tuple(self.input_shape):
            raise ValueError(
                f"spectrogram shape {tuple(spectrogram.shape)} does not match the grid's input {self.input_shape}"
            )
