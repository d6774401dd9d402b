"""sin, cos and 2**x built from IEEE-754 basic operations only, so synthetic sound is bit-identical everywhere.

numpy's own transcendental functions may take SIMD or libm paths that differ in the last bit between
machines; ``+ - * /``, ``floor`` and ``ldexp`` are exact or correctly rounded on every IEEE platform.
Accuracy is within a few units in the last place of float64 (tests compare with numpy).
"""

from __future__ import annotations

import numpy as np

# pi/2 split Cody-Waite style: _PIO2_HI has trailing zero bits, so k * _PIO2_HI is exact for |k| < 2**20.
_PIO2_HI = 1.5707963267341256e00
_PIO2_LO = 6.0771005065061922e-11
_TWO_OVER_PI = 0.63661977236758134308
_LN2 = 0.69314718055994530942

# Taylor coefficients; on |r| <= pi/4 the first omitted term is below 1e-16.
_SIN = [1.0 / f for f in (1.0, -6.0, 120.0, -5040.0, 362880.0, -39916800.0, 6227020800.0, -1307674368000.0)]
_COS = [1.0 / f for f in (1.0, -2.0, 24.0, -720.0, 40320.0, -3628800.0, 479001600.0, -87178291200.0, 20922789888000.0)]
_EXP = [1.0 / f for f in (1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, 39916800, 479001600, 6227020800)]

_MAX_PHASE = 2.0**20 * _PIO2_HI


def _poly(coeffs: list[float], x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * x + c
    return out


def _reduce(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.size and not np.all(np.abs(x) < _MAX_PHASE):
        raise ValueError(f"phase must be finite and below {_MAX_PHASE:.3g} rad in magnitude")
    k = np.floor(x * _TWO_OVER_PI + 0.5)
    r = (x - k * _PIO2_HI) - k * _PIO2_LO
    return r, k.astype(np.int64) & 3


def _sin_cos_reduced(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r2 = r * r
    return r * _poly(_SIN, r2), _poly(_COS, r2)


def sin(x: np.ndarray | float) -> np.ndarray:
    """``sin(x)`` for ``|x| < 1.6e6`` rad (about 70 s of a 4 kHz phase), float64."""
    r, quadrant = _reduce(x)
    s, c = _sin_cos_reduced(r)
    return np.select([quadrant == 0, quadrant == 1, quadrant == 2], [s, c, -s], -c)


def cos(x: np.ndarray | float) -> np.ndarray:
    """``cos(x)`` for ``|x| < 1.6e6`` rad, float64."""
    r, quadrant = _reduce(x)
    s, c = _sin_cos_reduced(r)
    return np.select([quadrant == 0, quadrant == 1, quadrant == 2], [c, -s, -c], s)


def exp2(x: np.ndarray | float) -> np.ndarray:
    """``2 ** x`` (float64); values below about 2**-1074 flush to 0."""
    x = np.asarray(x, dtype=np.float64)
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError("exp2 needs finite exponents")
    x = np.clip(x, -1100.0, 1000.0)
    n = np.floor(x + 0.5)
    frac = (x - n) * _LN2
    return np.ldexp(_poly(_EXP, frac), n.astype(np.int64))


def db_to_amplitude(db: np.ndarray | float) -> np.ndarray:
    """``10 ** (db / 20)``."""
    return exp2(np.asarray(db, dtype=np.float64) * (3.321928094887362 / 20.0))
