"""Explorer overlays of relevance and integrated gradients: the values are the Analysis's maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis import overlays
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


def test_faithfulness_panel_plots_the_current_overlay(analysis):
    ex = Explorer(analysis)
    panel = ex.faithfulness_panel
    assert panel.compute() is None and "Choose an overlay" in panel._output.value
    ex.class_index = 1
    ex.overlay = "relevance"
    result = panel.compute()
    expected = analysis.faithfulness(analysis.relevance(1), class_index=1, steps=20)
    np.testing.assert_allclose(result.deletion, expected.deletion)
    np.testing.assert_allclose(result.random_insertion, expected.random_insertion)
    text = panel._output.value
    assert "audiovis-faithfulness-plot" in text and f"{result.deletion_auc:.3f}" in text
    assert text.count("<polyline") == 4
    panel.select_top()
    np.testing.assert_array_equal(sorted(ex.selection), sorted(analysis.top_patches(analysis.relevance(1), 0.1)))
    assert panel.result is result  # selecting does not change a relevance map
    ex.overlay = "rollout"
    assert panel.result is None and "press Faithfulness" in panel._output.value


def test_faithfulness_panel_follows_the_overlay_when_asked(analysis):
    ex = Explorer(analysis)
    panel = ex.faithfulness_panel
    ex.overlay = "rollout"
    panel.follow = True  # ticking the box draws the current overlay at once
    assert panel.result is not None and panel.result.class_index == ex.class_index
    np.testing.assert_allclose(panel.result.deletion, analysis.faithfulness("rollout", class_index=ex.class_index).deletion)
    ex.class_index, ex.overlay = 2, "saliency"
    expected = analysis.faithfulness(analysis.saliency(2), class_index=2)
    assert panel.result.class_index == 2
    np.testing.assert_allclose(panel.result.insertion, expected.insertion)
    assert "Class saliency" in panel._output.value and f"{expected.insertion_auc:.3f}" in panel._output.value
    shown = panel.result
    ex.layer = 0  # saliency does not depend on the layer: nothing recomputed
    assert panel.result is shown
    ex.overlay = "none"
    assert panel.result is None and "Choose an overlay" in panel._output.value
    panel.follow = False
    ex.overlay = "relevance"
    assert panel.result is None and "press Faithfulness" in panel._output.value  # not recomputed


def test_faithfulness_panel_escapes_names():
    from audiovis.widgets.faithfulness_panel import summary_html

    class Fake:
        label = "<img src=x onerror=alert(1)>"
        fractions = np.linspace(0, 1, 3)
        deletion = insertion = random_deletion = random_insertion = np.array([1.0, 0.5, 0.0])
        deletion_auc = insertion_auc = random_deletion_auc = random_insertion_auc = 0.5

    text = summary_html(Fake(), "<b>x</b>")
    assert "<img" not in text and "&lt;img" in text and "&lt;b&gt;x" in text
