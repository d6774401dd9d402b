"""The uint8 spectrogram codec, shared with js/test/uint8.test.ts.

tests/fixtures/uint8_cases.json holds value ranges, codes and the float32 values
:func:`audiovis.rendering.codec.dequantize_uint8` gives for them; it is generated here
(``python -m tests.test_uint8_crosscheck``). This test fails if the Python decode changes, vitest fails if
the browser's decode (js/src/codecs.ts ``toFloat32``) disagrees with it by a single float32 step, so the
PNG drawn in Python and the canvas decode every code to the same number.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audiovis.rendering.codec import dequantize_uint8, quantize_uint8

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "uint8_cases.json"

RANGES = [(-80.0, 0.0), (-1.2345678, 3.3333333), (1e4, 1e4 + 1 / 3), (-100.5, -20.25), (0.0, 1.0), (-3e5, 7e5)]


def build_cases() -> list[dict]:
    codes = list(range(256))
    return [{"range": [lo, hi], "codes": codes,
             "values": [float(v) for v in dequantize_uint8(np.array(codes, dtype=np.uint8), (lo, hi))]}
            for lo, hi in RANGES]


def test_fixture_matches_python_decode():
    stored = json.loads(FIXTURE.read_text())
    assert [c["range"] for c in stored] == [list(r) for r in RANGES]
    for case in stored:
        got = dequantize_uint8(np.array(case["codes"], dtype=np.uint8), tuple(case["range"]))
        np.testing.assert_array_equal(got, np.array(case["values"], dtype=np.float32))


def test_decode_is_double_precision_arithmetic_rounded_once():
    # reference written plainly: each code in Python floats (IEEE doubles, as JavaScript), then one float32 rounding
    for lo, hi in RANGES:
        step = (hi - lo) / 255
        expected = np.array([np.float32(lo + k * step) for k in range(256)], dtype=np.float32)
        np.testing.assert_array_equal(dequantize_uint8(np.arange(256, dtype=np.uint8), (lo, hi)), expected)
    # and the ranges tell the two arithmetics apart (else the browser check would prove nothing): single
    # precision throughout gives other float32 values for many codes of the usual -80..0 dB range
    lo, hi = RANGES[0]
    single = (np.float32(lo) + np.arange(256, dtype=np.float32) * np.float32((hi - lo) / 255)).astype(np.float32)
    assert (single != dequantize_uint8(np.arange(256, dtype=np.uint8), (lo, hi))).sum() > 50


def test_round_trip_error_is_at_most_half_a_step():
    rng = np.random.default_rng(0)
    values = rng.uniform(-80, 0, size=(64, 300)).astype(np.float32)
    codes, (lo, hi) = quantize_uint8(values)
    err = np.abs(dequantize_uint8(codes, (lo, hi)) - values)
    assert err.max() <= (hi - lo) / 510 + 1e-5


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(build_cases(), separators=(",", ":")) + "\n")
