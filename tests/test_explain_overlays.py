"""Explorer overlays of relevance and integrated gradients: the values are the Analysis's maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.widgets import overlays
from audiovis.widgets.explorer import Explorer


@pytest.fixture(scope="module")
def analysis():
    torch.manual_seed(0)
    config = av.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                          max_length=200, num_labels=3, labels=["a", "b", "c"])
    model = av.ASTModel(config).eval()
    t = np.arange(32000) / 16000
    return model.analyze(av.load_audio((0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32), 16000))


@pytest.mark.parametrize("mode", ["relevance", "integrated_gradients"])
def test_overlay_is_the_class_map(analysis, mode):
    assert mode in overlays.MODES and mode in overlays.USES_CLASS
    got = overlays.compute(analysis, mode, class_index=1)
    np.testing.assert_array_equal(got.values, getattr(analysis, mode)(1))
    assert analysis.labels[1] in got.label
    ex = Explorer(analysis)
    ex.class_index = 2
    ex.overlay = mode
    np.testing.assert_array_equal(ex.heatmap, getattr(analysis, mode)(2))
    ex.class_index = 0
    np.testing.assert_array_equal(ex.heatmap, getattr(analysis, mode)(0))
