"""The one binary serializer: numpy <-> {view, dtype, shape}, round trips and bad payloads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiovis.rendering.codec import quantize_uint8
from audiovis.widgets.serializers import array_from_json, array_to_json


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float16", "float32", "float64"])
def test_round_trip(dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    payload = array_to_json(arr)
    assert isinstance(payload["view"], memoryview)
    assert payload["dtype"] == dtype and payload["shape"] == [2, 3, 4]
    assert payload["view"].nbytes == arr.nbytes
    back = array_from_json({**payload, "view": bytes(payload["view"])})
    np.testing.assert_array_equal(back, arr)
    assert back.dtype == arr.dtype


def test_non_contiguous_and_big_endian_inputs_are_sent_little_endian_c_order():
    arr = np.arange(12, dtype=">f4").reshape(3, 4).T  # big-endian and transposed
    payload = array_to_json(arr)
    raw = np.frombuffer(bytes(payload["view"]), dtype="<f4").reshape(payload["shape"])
    np.testing.assert_array_equal(raw, arr)


def test_none_passes_through():
    assert array_to_json(None) is None and array_from_json(None) is None


def test_from_json_accepts_a_slice_of_a_larger_buffer():
    """The kernel may hand over a memoryview into a bigger message buffer."""
    big = bytearray(b"\xff" * 3 + np.array([1.5, -2.0], dtype="<f4").tobytes() + b"\xff")
    back = array_from_json({"view": memoryview(big)[3:11], "dtype": "float32", "shape": [2]})
    np.testing.assert_array_equal(back, [1.5, -2.0])


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"view": b"\x00" * 7, "dtype": "float32", "shape": [2]}, "needs 8"),
        ({"view": b"", "dtype": "complex64", "shape": [0]}, "unsupported dtype"),
        ({"view": b"", "dtype": "uint8"}, "view, dtype and shape"),
        ([1, 2, 3], "dict"),
    ],
)
def test_bad_payloads_are_named(payload, message):
    with pytest.raises(ValueError, match=message):
        array_from_json(payload)


def test_unsupported_array_dtype():
    with pytest.raises(ValueError, match="cannot send"):
        array_to_json(np.zeros(3, dtype=np.complex64))


def test_quantised_payload_is_10x_smaller_than_json():
    values = np.random.default_rng(0).normal(size=(128, 1024)).astype(np.float32)
    codes, _ = quantize_uint8(values)
    as_json = json.dumps(values.tolist())
    assert array_to_json(codes)["view"].nbytes * 10 <= len(as_json)
