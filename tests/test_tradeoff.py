"""compute_tradeoff: every row checked against direct runs of the full, pruned and re-strided models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.datasets import SyntheticEvents
from audiovis.models.pruning import convert_stride, forward_pruned
from audiovis.probe import mean_average_precision
from audiovis.tradeoff import Tradeoff

from .frozen_models import SR, tiny_ast, tone


@pytest.fixture(scope="module")
def setup():
    model = tiny_ast(seed=4)
    freqs = [300.0, 800.0, 1800.0, 4000.0, 600.0, 2500.0]
    specs = [model.spectrogram(av.load_audio(tone(f, noise=0.02, seed=i), SR)) for i, f in enumerate(freqs)]
    labels = np.array([0, 1, 2, 3, 1, 2])
    return model, specs, labels


def test_rows_match_direct_runs(setup):
    model, specs, labels = setup
    result = av.compute_tradeoff(model, specs, [1.0, 0.5, 0.3], keep_by=["energy", "attention"], strides=[16],
                                 labels=labels, batch_size=4, progress=False)
    assert isinstance(result, Tradeoff) and result.score_name == "accuracy"
    assert [(r["method"], r["keep_ratio"]) for r in result.rows] == [
        ("full", 1.0), ("energy", 0.5), ("energy", 0.3), ("attention", 0.5), ("attention", 0.3),
        ("stride 16", 48 / 95),
    ]
    x = torch.stack([s.values for s in specs])
    with torch.no_grad():
        top_full = model(x).argmax(-1).numpy()
        full = result.row("full")
        assert full["speedup"] == 1.0 and full["agreement"] == 1.0 and full["tokens"] == 95
        assert full["score"] == pytest.approx(np.mean(top_full == labels))
        for method in ("energy", "attention"):
            for ratio in (0.5, 0.3):
                row = result.row(method, ratio)
                top = forward_pruned(model, x, keep_ratio=ratio, keep_by=method).logits.argmax(-1).numpy()
                assert row["tokens"] == round(ratio * 95)
                assert row["agreement"] == pytest.approx(np.mean(top == top_full))
                assert row["score"] == pytest.approx(np.mean(top == labels))
        coarse = result.row("stride 16")
        assert coarse["tokens"] == 48
        assert coarse["agreement"] == pytest.approx(np.mean(convert_stride(model, 16)(x).argmax(-1).numpy() == top_full))
    for r in result.rows:
        assert r["time_ms"] > 0 and np.isfinite(r["speedup"]) and r["speedup"] > 0


def test_table_and_figure(setup):
    model, specs, labels = setup
    result = av.compute_tradeoff(model, specs, [0.5], labels=labels, progress=False)
    lines = result.to_markdown().splitlines()
    assert lines[0].startswith("| method |") and "accuracy" in lines[0] and len(lines) == 4
    from bokeh.plotting import figure

    assert isinstance(result.figure, figure)
    unlabelled = av.compute_tradeoff(model, specs, [0.5], progress=False)
    assert unlabelled.score_name is None and "score" not in unlabelled.rows[0]
    assert "accuracy" not in unlabelled.to_markdown()


def test_dataset_labels_give_map():
    model = tiny_ast(seed=4, num_mel_bins=128, max_length=400, num_labels=9, multi_label=True)
    data = SyntheticEvents(5, seed=2)
    result = av.compute_tradeoff(model, data, [0.5], progress=False)
    assert result.score_name == "mAP"
    truth = np.stack([data[i].labels.numpy() for i in range(5)])
    x = torch.stack([model.spectrogram(data[i].audio).values for i in range(5)])
    with torch.no_grad():
        expected = mean_average_precision(truth, model(x).numpy())
    assert result.row("full")["score"] == pytest.approx(expected)


def test_bad_arguments(setup):
    model, specs, labels = setup
    with pytest.raises(ValueError, match="keep_ratio"):
        av.compute_tradeoff(model, specs, [0.0], progress=False)
    with pytest.raises(ValueError, match="keep_by"):
        av.compute_tradeoff(model, specs, [0.5], keep_by="volume", progress=False)
    with pytest.raises(ValueError, match="at least one clip"):
        av.compute_tradeoff(model, [], [0.5], progress=False)
    with pytest.raises(ValueError, match="5 labels for 6 clips"):
        av.compute_tradeoff(model, specs, [0.5], labels=labels[:5], progress=False)
    with pytest.raises(ValueError, match="repeats"):
        av.compute_tradeoff(model, specs, [0.5], repeats=0, progress=False)
