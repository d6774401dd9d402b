"""audiovis.checks: the one set of number and index checks, and callers that agree through it."""

from __future__ import annotations

import math

import numpy as np
import pytest

import audiovis as av
from audiovis.checks import check_index, check_int, check_number, check_pair, check_rate, is_int, is_number
from audiovis.errors import ConfigError


@pytest.mark.parametrize("value,expected", [
    (3, True), (-2, True), (np.int64(3), True), (np.uint8(0), True), (10**30, True),
    (True, False), (np.bool_(True), False), (3.0, False), (np.float32(3), False), ("3", False), (None, False),
])
def test_is_int(value, expected):
    assert is_int(value) is expected


@pytest.mark.parametrize("value,expected", [
    (3, True), (2.5, True), (np.float32(2.5), True), (np.int16(-1), True), (math.nan, True), (math.inf, True),
    (False, False), (np.bool_(False), False), ("2.5", False), (None, False), (1 + 2j, False), ([1], False),
])
def test_is_number(value, expected):
    assert is_number(value) is expected


def test_check_int_returns_a_python_int_and_names_the_bounds():
    out = check_int(np.int64(7), "batch_size", minimum=1)
    assert out == 7 and type(out) is int
    cases = [
        (dict(minimum=1), 0, "batch_size must be a positive integer, got 0"),
        (dict(minimum=0), -1, "batch_size must be an integer >= 0, got -1"),
        (dict(maximum=4), 5, "batch_size must be an integer <= 4, got 5"),
        (dict(minimum=0, maximum=4), 5, "batch_size must be an integer in 0..4, got 5"),
        (dict(), True, "batch_size must be an integer, got True"),
        (dict(minimum=1), 2.0, "batch_size must be a positive integer, got 2.0"),
        (dict(minimum=1, what="a count of clips"), "3", "batch_size must be a count of clips, got '3'"),
    ]
    for kwargs, value, message in cases:
        with pytest.raises(ValueError) as err:
            check_int(value, "batch_size", **kwargs)
        assert str(err.value) == message
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        check_int(None, "n", minimum=1, error=ConfigError)
    assert check_int(10**30, "n", minimum=1) == 10**30  # huge ints are compared, never cast to a float


def test_check_number_bounds_open_and_closed():
    assert check_number(np.float32(0.5), "r", low=0, high=1) == 0.5
    assert check_number(1, "r", low=0, high=1, low_open=True) == 1.0
    assert check_number(0, "r", low=0, high=1, high_open=True) == 0.0
    cases = [
        (dict(low=0, high=1, low_open=True), 0, "r must be a number in (0, 1], got 0"),
        (dict(low=0, high=1, high_open=True), 1.0, "r must be a number in [0, 1), got 1.0"),
        (dict(low=0, low_open=True), -0.5, "r must be a positive number, got -0.5"),
        (dict(low=0), -0.5, "r must be a finite number >= 0, got -0.5"),
        (dict(low=2.5, low_open=True), 2.5, "r must be a finite number > 2.5, got 2.5"),
        (dict(high=3), 4, "r must be a finite number <= 3, got 4"),
        (dict(), math.nan, "r must be a finite number, got nan"),
        (dict(), math.inf, "r must be a finite number, got inf"),
        (dict(), True, "r must be a finite number, got True"),
        (dict(), "1", "r must be a finite number, got '1'"),
        (dict(low=0, what="a positive number of seconds"), -1, "r must be a positive number of seconds, got -1"),
    ]
    for kwargs, value, message in cases:
        with pytest.raises(ValueError) as err:
            check_number(value, "r", **kwargs)
        assert str(err.value) == message


def test_check_pair_and_check_index_and_check_rate():
    assert check_pair(16, "stride") == (16, 16)
    assert check_pair((np.int64(10), 12), "stride") == (10, 12)
    assert check_pair(np.array([3, 4]), "stride") == (3, 4)
    for bad in (0, -1, 16.0, (16,), (16, 16, 16), "16", "ab", (16, True), (16, 0), None, {"a": 1}):
        with pytest.raises(ConfigError, match=r"stride must be a positive integer or a \(frequency, time\) pair"):
            check_pair(bad, "stride", error=ConfigError)
    assert check_index(np.int32(2), 3, "window") == 2
    for bad in (3, -1, 1.0, True, "0", None):
        with pytest.raises(IndexError) as err:
            check_index(bad, 3, "window", context=" of clip 'a'")
        assert str(err.value) == f"window {bad!r} outside 0..2 of clip 'a'"
    assert check_rate(16000.0, "clip.wav") == 16000 and type(check_rate(np.int32(8000), "x")) is int
    for bad, words in ((0, "positive whole number of Hz"), (16000.5, "positive whole number of Hz"),
                       (math.nan, "positive whole number of Hz"), (True, "positive number"), ("16k", "positive number")):
        with pytest.raises(ValueError, match=f"clip.wav: sample_rate must be a {words}, got"):
            check_rate(bad, "clip.wav")


def test_callers_share_the_rule_numpy_integers_count_bools_never():
    """The same value is accepted or refused alike wherever a count is asked for."""
    grid = av.PatchGrid(input_shape=(np.int64(32), 40), patch_size=np.int32(16), stride=(np.int64(8), 10))
    assert grid.input_shape == (32, 40) and type(grid.patch_size[0]) is int
    assert av.KaldiFbank(num_mel_bins=np.int64(64)).num_mel_bins == 64
    config = av.ASTConfig(hidden_size=np.int64(32), num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    assert type(config.hidden_size) is int  # stored as a Python int, so the config stays JSON-able
    probe = av.LinearProbe(hidden=np.int64(4), epochs=np.int64(2), lr=np.float32(0.1))
    assert (probe.hidden, probe.epochs) == (4, 2) and type(probe.epochs) is int
    refusals = [
        lambda: av.PatchGrid(input_shape=(32, True)),
        lambda: av.KaldiFbank(num_mel_bins=True),
        lambda: av.ASTConfig(num_hidden_layers=True),
        lambda: av.LinearProbe(epochs=True),
        lambda: av.LinearProbe(lr=True),
        lambda: av.LinearProbe(weight_decay=True),
        lambda: av.ASTConfig(hidden_dropout_prob=False),
    ]
    for make in refusals:
        with pytest.raises(ValueError):
            make()
