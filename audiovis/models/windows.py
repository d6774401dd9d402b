"""The one window rule: where the model windows over a long input start.

Every place that cuts a recording into model windows (``model.analyze``, ``model.window_starts``, the
Explorer's ``window=``, LongViewer's label strip) asks :func:`window_starts`, so they agree window for
window. The rule works in any unit (seconds, samples, frames):

- input that fits one window gives one window, starting at 0;
- otherwise windows start every ``step`` while they end inside the input, and one more window ends at the
  input's end (overlapping the one before) unless the last regular window already does. No window is
  ever mostly padding: sliding-window inference's usual rule.

``grid`` (e.g. one frame hop) puts that last start on the grid, rounded down, so its frames are the
input's own frames; it then ends less than one grid step before the input's end.
"""

from __future__ import annotations

import math
from typing import TypeVar

Number = TypeVar("Number", int, float)


def window_starts(length: Number, window: Number, step: Number, *, grid: Number | None = None) -> list[Number]:
    """Starts of the windows of size ``window`` covering an input of size ``length``.

    Args:
        length: the input's size (seconds, samples or valid frames).
        window: one window's size, in the same unit.
        step: distance between the starts of consecutive windows (``window`` for no overlap).
        grid: when given, the last (end-aligned) window starts on a multiple of ``grid``, rounded down.

    Returns:
        The starts in increasing order: ``[0]`` when ``length <= window``; otherwise ``0, step, 2 * step, ...``
        while a window fits, then one ending at ``length`` (on ``grid``) when the regular ones stop short.
        Integers in, integers out.
    """
    if not step > 0 or not window > 0:
        raise ValueError(f"window_starts: window and step must be positive, got window={window!r}, step={step!r}")
    tol = 1e-9 * max(1.0, abs(float(length)))  # seconds that differ in the last bits are equal
    if length <= window + tol:
        return [0 * step]
    starts = [0 * step]
    k = 1
    while k * step + window <= length + tol:
        starts.append(k * step)
        k += 1
    last = length - window
    if grid is not None:
        cells = math.floor(last / grid + 1e-6)  # 148.49999 cells of float seconds are 148
        last = cells * grid if not isinstance(grid, int) else int(cells) * grid
    if last > starts[-1] + tol:
        starts.append(last)
    return starts
