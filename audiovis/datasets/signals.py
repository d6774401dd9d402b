"""The sound-event classes and backgrounds of :class:`SyntheticEvents`, each a seeded float64 signal.

Every event generator draws its own parameters from ``rng`` and returns an :class:`EventSignal`: the
samples (any level; the dataset sets the level), the band its energy occupies (Hz, before the
analysis margin) and the drawn parameters. Only IEEE basic arithmetic and :mod:`.portable` functions are
used, and only ``rng.random`` / ``rng.integers`` draws, so the same ``rng`` state gives the same bits on
every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import portable as pm

_TWO_PI = 6.283185307179586
_INV_LN2 = 1.4426950408889634
_FADE_S = 0.005

# Band-limited noise is white noise smoothed by three cascaded moving averages of length L, then shifted to
# its centre frequency; 99.9 % of its power lies within +-0.662 * sr / L of the centre (power ~ sinc^6).
_BOXCARS = 3
_NOISE_HALF_BAND = 2.0 / 3.0


@dataclass(frozen=True)
class EventSignal:
    """One rendered event: samples, the band (Hz) holding its energy, and the drawn parameters."""

    samples: np.ndarray
    freq_low: float
    freq_high: float
    params: dict[str, float]


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(rng.random())


def _octaves(rng: np.random.Generator, low_hz: float, octaves: float) -> float:
    """Log-uniform draw from ``[low_hz, low_hz * 2**octaves]``."""
    return low_hz * float(pm.exp2(octaves * float(rng.random())))


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _fade(samples: np.ndarray, sr: int, fade_in: float = _FADE_S, fade_out: float = _FADE_S) -> np.ndarray:
    """Raised-cosine ramps at both ends, so events start and stop without a broadband click."""
    out = samples.copy()
    for seconds, sl in ((fade_in, slice(None)), (fade_out, slice(None, None, -1))):
        k = min(len(out) // 2, max(1, int(round(seconds * sr))))
        ramp = 0.5 - 0.5 * pm.cos(np.pi * (np.arange(k, dtype=np.float64) + 0.5) / k)
        view = out[sl]
        view[:k] *= ramp
    return out


def _num_samples(seconds: float, sr: int) -> int:
    return max(1, int(round(seconds * sr)))


def _band_noise(rng: np.random.Generator, n: int, sr: int, centre: float, half_band: float) -> tuple[np.ndarray, float]:
    """Noise with its power in ``centre +- half`` Hz; returns the samples and the exact ``half``."""
    length = max(1, int(round(_NOISE_HALF_BAND * sr / half_band)))
    pad = _BOXCARS * length
    x = rng.random(n + pad) * 2.0 - 1.0
    for _ in range(_BOXCARS):
        c = np.concatenate(([0.0], np.cumsum(x)))
        x = (c[length:] - c[:-length]) / length
    x = x[-n:]
    carrier = pm.cos(_TWO_PI * centre * _time(n, sr) + _TWO_PI * float(rng.random()))
    return x * carrier, _NOISE_HALF_BAND * sr / length


def tone(rng: np.random.Generator, sr: int) -> EventSignal:
    """A steady sine: one horizontal line."""
    freq = _octaves(rng, 250.0, 4.0)
    n = _num_samples(_uniform(rng, 0.3, 1.5), sr)
    phase = _TWO_PI * float(rng.random())
    x = pm.sin(_TWO_PI * freq * _time(n, sr) + phase)
    return EventSignal(_fade(x, sr), freq, freq, {"frequency": freq})


def harmonic(rng: np.random.Generator, sr: int) -> EventSignal:
    """A harmonic stack: fundamental plus 4-10 partials at integer multiples, amplitude 1/k."""
    f0 = _octaves(rng, 110.0, 2.5)
    count = int(rng.integers(4, 11))
    count = max(2, min(count, int(6000.0 // f0)))
    n = _num_samples(_uniform(rng, 0.3, 1.5), sr)
    t = _time(n, sr)
    x = np.zeros(n)
    for k in range(1, count + 1):
        x += pm.sin(_TWO_PI * k * f0 * t + _TWO_PI * float(rng.random())) / k
    return EventSignal(_fade(x, sr), f0, count * f0, {"fundamental": f0, "harmonics": float(count)})


def _chirp(rng: np.random.Generator, sr: int, upward: bool) -> EventSignal:
    low = _octaves(rng, 200.0, 2.0)
    octaves = _uniform(rng, 1.0, 3.0)
    high = low * float(pm.exp2(octaves))
    seconds = _uniform(rng, 0.3, 1.5)
    n = _num_samples(seconds, sr)
    t = _time(n, sr)
    start, rate = (low, octaves) if upward else (high, -octaves)
    # Exponential sweep: f(t) = start * 2**(rate * t / T); phase is its integral.
    ln_ratio = rate / _INV_LN2
    phase = _TWO_PI * start * seconds / ln_ratio * (pm.exp2(rate * t / seconds) - 1.0)
    x = pm.sin(phase + _TWO_PI * float(rng.random()))
    end = start * float(pm.exp2(rate * (n - 1) / sr / seconds))
    return EventSignal(_fade(x, sr), min(start, end), max(start, end), {"start": start, "end": end})


def up_chirp(rng: np.random.Generator, sr: int) -> EventSignal:
    """A sine sweeping up 1-3 octaves (exponentially): a rising line."""
    return _chirp(rng, sr, upward=True)


def down_chirp(rng: np.random.Generator, sr: int) -> EventSignal:
    """A sine sweeping down 1-3 octaves: a falling line."""
    return _chirp(rng, sr, upward=False)


def noise_burst(rng: np.random.Generator, sr: int) -> EventSignal:
    """Steady band-limited noise: a filled horizontal band."""
    centre = _octaves(rng, 600.0, 3.0)
    half = centre * _uniform(rng, 0.12, 0.3)
    n = _num_samples(_uniform(rng, 0.3, 1.5), sr)
    x, half = _band_noise(rng, n, sr, centre, half)
    return EventSignal(_fade(x, sr), centre - half, centre + half, {"centre": centre, "half_bandwidth": half})


def click_train(rng: np.random.Generator, sr: int) -> EventSignal:
    """Regular short Gabor clicks (6-20 per second): a row of short vertical strokes in one band."""
    centre = _octaves(rng, 1000.0, 2.2)
    rate = _uniform(rng, 6.0, 20.0)
    sigma_t = _uniform(rng, 0.0004, 0.0008)
    # Gaussian envelope exp(-t^2 / 2 sigma_t^2) <-> spectrum exp(-f^2 / 2 sigma_f^2); 2.5 sigma_f holds > 99.9 %.
    sigma_t = max(sigma_t, 3.0 / (_TWO_PI * centre))
    sigma_f = 1.0 / (_TWO_PI * sigma_t)
    span = 5.0 * sigma_t
    count = 1 + int((_uniform(rng, 0.4, 1.5) - 2 * span) * rate)
    seconds = 2 * span + (count - 1) / rate
    n = _num_samples(seconds, sr)
    x = np.zeros(n)
    half = int(np.ceil(span * sr))
    for j in range(count):
        centre_s = span + j / rate
        first = max(0, int(centre_s * sr) - half)
        last = min(n, int(centre_s * sr) + half + 1)
        dt = np.arange(first, last, dtype=np.float64) / sr - centre_s
        x[first:last] += pm.exp2(-(dt * dt) / (2.0 * sigma_t * sigma_t) * _INV_LN2) * pm.cos(_TWO_PI * centre * dt)
    band = 2.5 * sigma_f
    return EventSignal(x, centre - band, centre + band, {"centre": centre, "rate": rate, "click_sigma": sigma_t})


def tremolo(rng: np.random.Generator, sr: int) -> EventSignal:
    """A sine whose loudness swells and fades 4-8 times a second: a dashed horizontal line."""
    freq = _octaves(rng, 300.0, 3.5)
    rate = _uniform(rng, 4.0, 8.0)
    depth = _uniform(rng, 0.9, 1.0)
    n = _num_samples(_uniform(rng, 0.5, 1.5), sr)
    t = _time(n, sr)
    envelope = 1.0 - depth * (0.5 + 0.5 * pm.cos(_TWO_PI * rate * t))
    x = envelope * pm.sin(_TWO_PI * freq * t + _TWO_PI * float(rng.random()))
    return EventSignal(_fade(x, sr), freq - rate, freq + rate, {"frequency": freq, "rate": rate, "depth": depth})


def vibrato(rng: np.random.Generator, sr: int) -> EventSignal:
    """A sine whose pitch wobbles +-5-10 % 4-8 times a second: a wavy line."""
    freq = _octaves(rng, 500.0, 2.5)
    rate = _uniform(rng, 4.0, 8.0)
    depth = _uniform(rng, 0.05, 0.1)
    n = _num_samples(_uniform(rng, 0.5, 1.5), sr)
    t = _time(n, sr)
    # f(t) = freq * (1 + depth * sin(2 pi rate t)); Carson's rule bounds the band by the excursion plus the rate.
    phase = _TWO_PI * freq * t - freq * depth / rate * pm.cos(_TWO_PI * rate * t)
    x = pm.sin(phase + _TWO_PI * float(rng.random()))
    low, high = freq * (1.0 - depth) - rate, freq * (1.0 + depth) + rate
    return EventSignal(_fade(x, sr), low, high, {"frequency": freq, "rate": rate, "depth": depth})


def impact(rng: np.random.Generator, sr: int) -> EventSignal:
    """A short, wide-band noise hit with an exponential decay (knock, slam)."""
    centre = _octaves(rng, 800.0, 2.3)
    half = centre * _uniform(rng, 0.4, 0.75)
    tau = _uniform(rng, 0.015, 0.045)
    n = _num_samples(5.0 * tau, sr)
    x, half = _band_noise(rng, n, sr, centre, half)
    x = x * pm.exp2(-_time(n, sr) / tau * _INV_LN2)
    x = _fade(x, sr, fade_in=0.002)
    return EventSignal(x, centre - half, centre + half, {"centre": centre, "half_bandwidth": half, "decay": tau})


EventGenerator = Callable[[np.random.Generator, int], EventSignal]

EVENT_CLASSES: dict[str, EventGenerator] = {
    "tone": tone,
    "harmonic": harmonic,
    "up_chirp": up_chirp,
    "down_chirp": down_chirp,
    "noise_burst": noise_burst,
    "click_train": click_train,
    "tremolo": tremolo,
    "vibrato": vibrato,
    "impact": impact,
}

MAX_EVENT_SECONDS = 1.5


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x))


def white_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Flat-spectrum noise (uniform samples)."""
    return _unit_rms(rng.random(n) * 2.0 - 1.0)


def pink_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """1/f noise (Voss-McCartney: held random values, row k refreshed every 2**k samples)."""
    x = rng.random(n) * 2.0 - 1.0
    for k in range(1, 16):
        step = 1 << k
        held = np.repeat(rng.random(n // step + 2) * 2.0 - 1.0, step)
        offset = int(rng.integers(0, step))
        x = x + held[offset : offset + n]
    return _unit_rms(x - np.mean(x))


def brown_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """1/f^2 noise: integrated white noise, its drift below ~20 Hz removed by a moving average."""
    walk = np.cumsum(rng.random(n) * 2.0 - 1.0)
    length = max(1, sr // 20) | 1
    padded = np.concatenate((np.full(length // 2, walk[0]), walk, np.full(length // 2, walk[-1])))
    c = np.concatenate(([0.0], np.cumsum(padded)))
    trend = (c[length:] - c[:-length]) / length
    return _unit_rms(walk - trend)


def mains_hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """50 or 60 Hz mains hum with 8 harmonics and a faint noise floor."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = _time(n, sr)
    x = np.zeros(n)
    for k in range(1, 9):
        x += _uniform(rng, 0.2, 1.0) / k * pm.sin(_TWO_PI * k * f0 * t + _TWO_PI * float(rng.random()))
    return _unit_rms(_unit_rms(x) + 0.03 * white_noise(rng, n, sr))


BackgroundGenerator = Callable[[np.random.Generator, int, int], np.ndarray]

# name -> (generator, level range in dBFS RMS); "silence" is white noise far below any event.
BACKGROUNDS: dict[str, tuple[BackgroundGenerator, tuple[float, float]]] = {
    "white": (white_noise, (-60.0, -35.0)),
    "pink": (pink_noise, (-55.0, -30.0)),
    "brown": (brown_noise, (-50.0, -25.0)),
    "hum": (mains_hum, (-50.0, -28.0)),
    "silence": (white_noise, (-90.0, -70.0)),
}

EVENT_LEVEL_DB = (-32.0, -12.0)
