"""The one set of number and index checks: what counts as an integer, a number, a count, a range, an index.

Every argument check in audiovis goes through these, so one value is accepted or refused the same way
everywhere:

- an integer is a Python or numpy integer, never a bool (``True`` is not 1 here) and never a float;
- a number is a real Python or numpy number, never a bool; the checks below also require it finite.

Each check raises the error type its caller names (``ValueError`` unless told otherwise; see the table in
docs/ARCHITECTURE.md, "Errors and checks") with the message ``"<name> must be <what>, got <value!r>"``, or
``"<name> <value!r> outside 0..<size - 1>"`` for an index. This module sits beside ``errors.py`` at the
bottom of the package: it imports nothing from audiovis but the errors, so every layer may use it.
Patch indices have their own check, :func:`audiovis.patches.check_patches`, which knows the grid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_index", "check_int", "check_number", "check_pair", "check_rate", "is_int", "is_number"]


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer: a Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number: a Python or numpy int or float, not a bool (NaN and inf count)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _bound(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer in {minimum}..{maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def check_int(
    value: Any,
    name: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: type[Exception] = ValueError,
    what: str | None = None,
) -> int:
    """``value`` as an int, checked: an integer (not a bool) in ``[minimum, maximum]``.

    Args:
        value: the value to check.
        name: how the message names it (``"batch_size"``, ``"ASTConfig.hidden_size"``).
        minimum: the smallest value allowed (None: no lower bound).
        maximum: the largest value allowed (None: no upper bound).
        error: the exception type raised.
        what: the message's description of a good value, in place of the one made from the bounds
            (``"a positive integer"``, ``"an integer in 0..9"``).

    Returns:
        ``int(value)``.

    Raises:
        error: ``"<name> must be <what>, got <value!r>"``.
    """
    if not is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise error(f"{name} must be {what or _int_range(minimum, maximum)}, got {value!r}")
    return int(value)


def _number_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a number in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    if low == 0 and low_open:
        return "a positive number"
    if low is not None:
        return f"a finite number {'>' if low_open else '>='} {_bound(low)}"
    if high is not None:
        return f"a finite number {'<' if high_open else '<='} {_bound(high)}"
    return "a finite number"


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    error: type[Exception] = ValueError,
    what: str | None = None,
) -> float:
    """``value`` as a float, checked: a finite real number (not a bool) between ``low`` and ``high``.

    Args:
        value: the value to check.
        name: how the message names it (``"keep_ratio"``, ``"hop"``).
        low: the lower bound (None: none).
        high: the upper bound (None: none).
        low_open: whether ``low`` itself is refused (``(0, 1]`` has ``low_open=True``).
        high_open: whether ``high`` itself is refused (``[0, 1)`` has ``high_open=True``).
        error: the exception type raised.
        what: the message's description of a good value, in place of the one made from the bounds
            (``"a positive number of seconds"``).

    Returns:
        ``float(value)``.

    Raises:
        error: ``"<name> must be <what>, got <value!r>"``.
    """
    ok = is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise error(f"{name} must be {what or _number_range(low, high, low_open, high_open)}, got {value!r}")
    return float(value)


def check_pair(value: Any, name: str, *, error: type[Exception] = ValueError) -> tuple[int, int]:
    """``value`` as a ``(frequency, time)`` pair of positive ints; one positive integer stands for both.

    Args:
        value: an integer or a pair of them (a patch size, a stride, an input shape).
        name: how the message names it (``"PatchGrid: stride"``).
        error: the exception type raised.

    Returns:
        The pair of ints.

    Raises:
        error: ``"<name> must be a positive integer or a (frequency, time) pair of positive integers, got ..."``.
    """
    pair = (value, value) if is_int(value) else value
    try:
        a, b = pair
    except (TypeError, ValueError):
        a = b = None
    if isinstance(value, (str, bytes)) or not (is_int(a) and is_int(b) and a >= 1 and b >= 1):
        raise error(f"{name} must be a positive integer or a (frequency, time) pair of positive integers, "
                    f"got {value!r}")
    return int(a), int(b)


def check_index(value: Any, size: int, name: str, *, error: type[Exception] = IndexError, context: str = "") -> int:
    """``value`` as an int, checked: an integer (not a bool) in ``[0, size)`` that picks one of ``size`` things.

    Args:
        value: the index.
        size: how many things there are to pick from.
        name: how the message names the index (``"window"``, ``"class index"``).
        error: the exception type raised.
        context: what the message ends with (``" of clip 'a'"``).

    Returns:
        ``int(value)``.

    Raises:
        error: ``"<name> <value!r> outside 0..<size - 1><context>"``.
    """
    if not is_int(value) or not 0 <= value < size:
        raise error(f"{name} {value!r} outside 0..{size - 1}{context}")
    return int(value)


def check_rate(sample_rate: Any, owner: str, error: type[Exception] = ValueError) -> int:
    """``sample_rate`` as an int, checked: a positive whole number of Hz (``16000`` or ``16000.0``).

    Shared by ``load_audio``, ``Audio`` and the front ends, each naming its own error type.

    Args:
        sample_rate: the rate to check.
        owner: what the message starts with (the input or the call: ``"clip.wav"``, ``"Audio"``).
        error: the exception type raised.

    Returns:
        ``int(sample_rate)``.

    Raises:
        error: ``"<owner>: sample_rate must be a positive ..., got <sample_rate!r>"``.
    """
    if not is_number(sample_rate):
        raise error(f"{owner}: sample_rate must be a positive number, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate <= 0 or int(sample_rate) != sample_rate:
        raise error(f"{owner}: sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)
