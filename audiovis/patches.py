"""PatchGrid: the one place where patch <-> token <-> bin/frame <-> Hz/second geometry is defined.

Coordinates: frequency bins ``[0, F)`` (bin 0 lowest) and time frames ``[0, T)``. Patch ``(row, col)``
covers bins ``[row * stride_f, row * stride_f + patch_f)`` and frames ``[col * stride_t, ... + patch_t)``.
Token order is AST's: frequency-major, ``index = row * num_time + col``, prefix tokens excluded.
With overlapping patches (stride < patch), the patch "at" a point is the one whose stride cell holds it:
cell ``(row, col)`` is ``[row * stride_f, (row + 1) * stride_f)`` (the last row/col reaches its patch's end).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import warnings
from collections.abc import Iterable

import numpy as np

from .checks import check_pair, is_int, is_number
from .errors import ConfigError, PatchIndexError

if TYPE_CHECKING:
    from .spectrogram import Spectrogram


class Box(NamedTuple):
    """A time-frequency rectangle, half-open: ``[time_start, time_end) x [freq_start, freq_end)``."""

    time_start: float
    time_end: float
    freq_start: float
    freq_end: float


def _integers(value, name: str) -> np.ndarray:
    """An int64 array of ``value``: integers or integer-valued floats (not bools), else IndexError."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"patch {name} must be an integer, got {value!r}")
    return arr.astype(np.int64)


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error messages never print a whole array."""
    try:
        text = repr(value.tolist() if isinstance(value, np.generic) else value)
    except Exception:  # e.g. an int past Python's digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _index_entries(arr: np.ndarray, num_patches: int, name: str = "patch index", context: str = "") -> np.ndarray:
    """``arr`` as int64 of the same shape, every entry an index in ``[0, num_patches)``.

    Integers and integer-valued floats are indices; bools, strings, NaN, 2.5 and None are not. Messages
    name the first bad entry and how many there are.
    """
    kind = arr.dtype.kind
    if kind in "iu":
        idx = arr
    elif kind == "f":
        ok = np.isfinite(arr) & (arr == np.round(arr))
        if not ok.all():
            bad = arr[~ok]
            raise PatchIndexError(f"{context}patch indices must be integers, got {_short(bad.flat[0])}" + _count(bad.size))
        if np.any(np.abs(arr) >= 2.0**63):
            idx = arr  # compared as floats below: out of range, never wrapped round by a cast
        else:
            idx = arr.astype(np.int64)
    elif kind == "O":  # Python ints past int64, or mixed entries
        flat = arr.ravel().tolist()
        bad_items = [v for v in flat if _integral(v) is None]
        if bad_items:
            raise PatchIndexError(f"{context}patch indices must be integers, got {_short(bad_items[0])}" + _count(len(bad_items)))
        ints = [_integral(v) for v in flat]
        out_of_range = [k for k in ints if not 0 <= k < num_patches]
        if out_of_range:
            raise IndexError(f"{context}{name} {_short(out_of_range[0])} outside 0..{num_patches - 1}" + _count(len(out_of_range)))
        return np.array(ints, dtype=np.int64).reshape(arr.shape)
    else:
        what = "a bool" if kind == "b" else _short(arr.flat[0]) if arr.size else repr(arr.dtype)
        raise PatchIndexError(f"{context}patch indices must be integers, got {what}" + ("" if kind == "b" else _count(arr.size)))
    outside = (idx < 0) | (idx >= num_patches)
    if outside.any():
        bad = idx[outside]
        raise IndexError(f"{context}{name} {_short(bad.flat[0])} outside 0..{num_patches - 1}" + _count(bad.size))
    return idx.astype(np.int64, copy=False)


def _count(n: int) -> str:
    return f" ({n} bad entries)" if n > 1 else ""


def _integral(value) -> int | None:
    """``value`` as an int when it is an integer or an integer-valued float (never a bool), else None.

    Ints are compared without a float conversion, so a huge JSON integer is just out of range.
    """
    if is_int(value):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_patches(
    patches, num_patches: int, *, allow_empty: bool = False, name: str = "patch index", context: str = ""
) -> np.ndarray:
    """The one check of patch indices: an int64 array ``[k]`` in the order given, each in ``[0, num_patches)``.

    ``patches`` is an index, a sequence or array of indices (integer-valued floats count, bools never),
    or a boolean mask with one entry per patch (``heatmap > 0.5``, flat or ``[rows, cols]``), which stands
    for the indices where it is True. Analyses, viewers and explorers all validate through here, so one
    input is accepted or refused the same way everywhere.

    Args:
        patches: the indices or the mask.
        num_patches: patches of the grid.
        allow_empty: whether no patch at all is fine (a selection) or an error (a reference patch set).
        name: how messages call one entry (``"patch index"``, ``"patch"``).
        context: what messages start with (e.g. ``"Explorer.selection: "``).

    Returns:
        The indices, int64, duplicates kept.

    Raises:
        PatchIndexError: an entry is not an integer, or a mask's length is not ``num_patches``.
        IndexError: an index outside ``[0, num_patches)``.
        ValueError: no patch, unless ``allow_empty``.
    """
    if isinstance(patches, (bool, np.bool_)):
        raise PatchIndexError(f"{context}patch indices must be integers, got a bool ({patches!r}); a boolean mask needs one entry per patch")
    if isinstance(patches, (str, bytes)):
        raise PatchIndexError(f"{context}patch indices must be integers, got {_short(patches)}")
    if patches is None:
        raise PatchIndexError(f"{context}patch indices must be integers, got None")
    if not isinstance(patches, np.ndarray) and not is_number(patches):
        try:
            patches = list(patches)
        except TypeError:
            raise PatchIndexError(f"{context}patch indices must be integers or a sequence of them, got {type(patches).__name__}") from None
        flags = [isinstance(v, (bool, np.bool_)) for v in patches]
        if any(flags) and not all(flags):
            first = patches[flags.index(True)]
            raise PatchIndexError(f"{context}patch indices must be integers, got a bool ({first!r}) among them")
    try:
        arr = np.asarray(patches)
    except (ValueError, TypeError):  # ragged nesting
        arr = np.asarray(list(patches), dtype=object)
    if arr.dtype.kind == "b":
        if arr.size != num_patches:
            raise PatchIndexError(
                f"{context}a boolean mask of patches needs one entry per patch ({num_patches}), got {arr.size} entries"
                f"{f' of shape {arr.shape}' if arr.ndim > 1 else ''}"
            )
        idx = np.flatnonzero(arr.ravel())
    else:
        idx = _index_entries(np.atleast_1d(arr).ravel(), num_patches, name, context)
    if idx.size == 0 and not allow_empty:
        raise ValueError(f"{context}select at least one patch" + (" (the boolean mask is all False)" if arr.dtype.kind == "b" else ""))
    return idx.astype(np.int64, copy=False)


def check_patch(index, num_patches: int, *, context: str = "") -> int:
    """One patch index, checked like an entry of :func:`check_patches`: an integer (or integer-valued float,
    never a bool or a sequence) in ``[0, num_patches)``.

    Args:
        index: the patch's token index.
        num_patches: patches of the grid.
        context: what messages start with (e.g. ``"DatasetExplorer.open: "``).

    Returns:
        The index as an int.

    Raises:
        PatchIndexError: ``index`` is not one integer.
        IndexError: an index outside ``[0, num_patches)``.
    """
    if isinstance(index, np.ndarray) and index.ndim == 0:
        index = index.item()
    if isinstance(index, (bool, np.bool_)) or (isinstance(index, Iterable) and not isinstance(index, (str, bytes))):
        raise PatchIndexError(f"{context}a patch index must be one integer, got {_short(index)}")
    return int(check_patches(index, num_patches, name="patch", context=context)[0])


def filter_patches(values: Iterable, num_patches: int) -> tuple[list[int], list]:
    """The browser's lenient rule for patch selections: keep the entries that are patch indices, drop the rest.

    An entry counts when :func:`check_patches` would accept it (an integer or integer-valued float, never a
    bool, in ``[0, num_patches)``). A selection sent by the browser is cleaned with this instead of refused,
    so the kernel never raises on a browser message; the caller logs what was dropped.

    Args:
        values: the entries sent.
        num_patches: patches of the grid.

    Returns:
        ``(kept, dropped)``: the kept indices, sorted and unique, and the dropped entries as sent.
    """
    kept: set[int] = set()
    dropped: list = []
    for value in values:
        k = _integral(value)
        if k is not None and 0 <= k < num_patches:
            kept.add(k)
        else:
            dropped.append(value)
    return sorted(kept), dropped


@dataclass(frozen=True)
class PatchGrid:
    """The patches a ViT cuts from a ``(freq_bins, frames)`` input; AST defaults give 12 x 101 = 1212.

    Args:
        input_shape: ``(freq_bins, frames)`` of the model input.
        patch_size: ``(freq, time)`` size of a patch in bins and frames (one int: square).
        stride: ``(freq, time)`` step between patches (one int: the same on both axes).
    """

    input_shape: tuple[int, int] = (128, 1024)
    patch_size: tuple[int, int] = (16, 16)
    stride: tuple[int, int] = (10, 10)

    def __post_init__(self) -> None:
        shape = check_pair(self.input_shape, "PatchGrid: input_shape", error=ConfigError)
        patch = check_pair(self.patch_size, "PatchGrid: patch_size", error=ConfigError)
        stride = check_pair(self.stride, "PatchGrid: stride", error=ConfigError)
        if patch[0] > shape[0] or patch[1] > shape[1]:
            raise ConfigError(f"PatchGrid: patch {patch} is larger than the input {shape} (freq bins, frames)")
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "patch_size", patch)
        object.__setattr__(self, "stride", stride)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` = ``(num_freq, num_time)`` patches."""
        return tuple((n - p) // s + 1 for n, p, s in zip(self.input_shape, self.patch_size, self.stride))  # type: ignore[return-value]

    @property
    def num_freq(self) -> int:
        """Rows of patches (along frequency)."""
        return self.grid_shape[0]

    @property
    def num_time(self) -> int:
        """Columns of patches (along time)."""
        return self.grid_shape[1]

    @property
    def n_freq(self) -> int:
        """Deprecated name of :attr:`num_freq`."""
        warnings.warn("PatchGrid.n_freq is deprecated; use PatchGrid.num_freq", DeprecationWarning, stacklevel=2)
        return self.num_freq

    @property
    def n_time(self) -> int:
        """Deprecated name of :attr:`num_time`."""
        warnings.warn("PatchGrid.n_time is deprecated; use PatchGrid.num_time", DeprecationWarning, stacklevel=2)
        return self.num_time

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid_shape
        return rows * cols

    def __len__(self) -> int:
        return self.num_patches

    def _check_index(self, index) -> np.ndarray:
        """``index`` (any shape) as int64 indices of this grid; the entry rules of :func:`check_patches`."""
        if isinstance(index, (str, bytes)) or index is None:
            raise PatchIndexError(f"patch indices must be integers, got {_short(index)}")
        return _index_entries(np.asarray(index), self.num_patches)

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
        row, col = np.divmod(idx, self.num_time)
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
        return row * self.num_time + col

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
        return [int(r * self.num_time + c) for r in rows for c in cols]

    def _overlapping(self, lo: float, hi: float, axis: int) -> range:
        """Grid positions on one axis whose span ``[k*s, k*s+p)`` overlaps ``[lo, hi)`` (a point if lo == hi)."""
        p, s, n = self.patch_size[axis], self.stride[axis], self.grid_shape[axis]
        if hi == lo:
            hi = lo + 1e-9
        first = max(0, int(np.floor((lo - p) / s)) + 1)
        last = min(n - 1, int(np.ceil(hi / s)) - 1)
        if last < n - 1 and (last + 1) * s < hi:  # hi / s rounded to a whole number (hi subnormal): one more
            last += 1
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
