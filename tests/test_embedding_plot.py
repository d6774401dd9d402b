"""The embedding plot on its own: PCA against an exact SVD, the data source's geometry, colouring, selection bridge."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.projections import pca_2d
from audiovis.widgets.embedding_plot import EmbeddingPlot, palette


@pytest.fixture(scope="module")
def spec() -> av.Spectrogram:
    rng = np.random.default_rng(3)
    audio = av.load_audio((0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    return av.MelSpectrogram(sample_rate=16000, n_mels=64)(audio)


@pytest.fixture(scope="module")
def grid(spec) -> av.PatchGrid:
    return av.PatchGrid(input_shape=spec.shape, patch_size=(16, 16), stride=(10, 12))


def planar_cloud(n: int = 300, dim: int = 40, seed: int = 0) -> np.ndarray:
    """Points near a 2-D plane in ``dim`` dimensions, with distinct variances along the plane's axes."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    latent = rng.standard_normal((n, 2)) * [5.0, 2.0]
    return latent @ basis[:, :2].T + 0.05 * rng.standard_normal((n, dim)) + 3.0


def exact_pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, s[:2] ** 2 / np.sum(centred**2)


def test_pca_matches_exact_svd_up_to_sign():
    x = planar_cloud()
    coords, ratio = pca_2d(x)
    want, want_ratio = exact_pca(x)
    assert coords.shape == (300, 2) and coords.dtype == np.float32
    for k in range(2):
        sign = np.sign(np.dot(coords[:, k], want[:, k]))
        np.testing.assert_allclose(sign * coords[:, k], want[:, k], atol=1e-3 * np.abs(want[:, k]).max())
    np.testing.assert_allclose(ratio, want_ratio, rtol=1e-4)


def test_pca_on_unstructured_embeddings_keeps_most_variance():
    """Random (flat-spectrum) embeddings: the randomised solver still finds nearly the best plane."""
    x = np.random.default_rng(1).standard_normal((1212, 96)).astype(np.float32)
    coords, _ = pca_2d(x)
    _, exact_ratio = exact_pca(x.astype(np.float64))
    centred_total = np.sum((x - x.mean(0)) ** 2)
    captured = np.sum(coords.astype(np.float64) ** 2) / centred_total
    assert captured >= 0.97 * exact_ratio.sum()


def test_pca_is_deterministic_oriented_and_leaves_the_global_rng_alone():
    x = torch.from_numpy(planar_cloud(seed=5)).float()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a, _ = pca_2d(x)
    after = torch.rand(3)
    b, _ = pca_2d(x.numpy())
    np.testing.assert_array_equal(a, b)
    torch.testing.assert_close(before, after)
    # each axis is oriented so that its largest loading is positive: the projection of the data onto
    # that coordinate direction correlates positively with the plotted axis
    centred = x.numpy() - x.numpy().mean(0)
    loadings = np.linalg.lstsq(centred, a, rcond=None)[0]  # [dim, 2]
    for k in range(2):
        assert loadings[np.argmax(np.abs(loadings[:, k])), k] > 0


def test_pca_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        pca_2d(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        pca_2d(np.full((4, 3), np.nan))
    coords, ratio = pca_2d(np.arange(10.0)[:, None])  # one dimension: the second axis is flat
    assert np.all(coords[:, 1] == 0) and ratio[1] == 0


def test_source_geometry_is_the_grid(grid, spec):
    plot = EmbeddingPlot(grid, spec)
    data = plot.source.data
    n = grid.num_patches
    assert list(data["index"]) == list(range(n))
    for i in (0, n // 2, n - 1):
        box = grid.bounds_hz_s(i, spec)
        row, col = grid.position(i)
        assert (data["row"][i], data["col"][i]) == (row, col)
        assert data["t0"][i] == pytest.approx(box.time_start) and data["t1"][i] == pytest.approx(box.time_end)
        assert data["f0"][i] == pytest.approx(box.freq_start) and data["f1"][i] == pytest.approx(box.freq_end)
    hover = [t for t in plot.figure.tools if type(t).__name__ == "HoverTool"][0]
    assert [name for name, _ in hover.tooltips][:3] == ["patch", "time", "frequency"]
    tools = {type(t).__name__ for t in plot.figure.tools}
    assert {"TapTool", "BoxSelectTool", "LassoSelectTool"} <= tools


def test_colouring(grid, spec):
    plot = EmbeddingPlot(grid, spec, overlay_colormap="magma")
    data = plot.source.data
    np.testing.assert_allclose(data["c"], (data["t0"] + data["t1"]) / 2)
    assert plot.colorbar.title == "time (s)"
    plot.color_by("frequency")
    np.testing.assert_allclose(data["c"], np.sqrt(np.maximum(data["f0"], 1) * data["f1"]))
    assert type(plot.colorbar.color_mapper).__name__ == "LogColorMapper"
    plot.color_by("overlay")
    assert np.all(np.isnan(plot.source.data["c"])) and plot.colorbar.title == "no overlay"
    values = np.linspace(-1, 2, grid.num_patches)
    plot.set_overlay(values, label="rollout")
    np.testing.assert_array_equal(plot.source.data["c"], values)
    mapper = plot.colorbar.color_mapper
    assert (mapper.low, mapper.high, plot.colorbar.title) == (-1.0, 2.0, "rollout")
    assert tuple(mapper.palette) == palette("magma")
    r = plot.renderer
    for glyph in (r.glyph, r.selection_glyph, r.nonselection_glyph, r.muted_glyph):  # every state draws this mapping
        assert glyph.fill_color.transform is mapper
    with pytest.raises(ValueError, match="color_by"):
        plot.color_by("loudness")
    with pytest.raises(ValueError, match="one value per patch"):
        plot.set_overlay(np.zeros(3))


def test_palettes_are_the_viewers_tables():
    tables = json.loads((Path(av.__file__).parent / "rendering" / "colormaps.json").read_text())
    pal = palette("viridis")
    assert len(pal) == 256
    assert pal[0] == "#" + tables["viridis"][:6] and pal[-1] == "#" + tables["viridis"][-6:]
    with pytest.raises(ValueError, match="colormap"):
        palette("jet")


def test_set_embeddings_checks_and_caches(grid, spec):
    plot = EmbeddingPlot(grid, spec)
    emb = planar_cloud(grid.num_patches, 16)
    plot.set_embeddings(emb, layer=2)
    np.testing.assert_array_equal(plot.coordinates, pca_2d(emb)[0])
    assert "layer 2" in plot.figure.title.text and plot.figure.xaxis[0].axis_label.startswith("PC1 (")
    plot.set_embeddings(planar_cloud(grid.num_patches, 16, seed=9), layer=3)
    plot.set_embeddings(np.zeros((grid.num_patches, 16)), layer=2)  # cached: layer 2's picture comes back
    np.testing.assert_array_equal(plot.coordinates, pca_2d(emb)[0])
    with pytest.raises(ValueError, match="one row per patch"):
        plot.set_embeddings(np.zeros((3, 16)))


def test_selection_bridge(grid, spec, caplog):
    received = []
    plot = EmbeddingPlot(grid, spec, on_select=received.append)
    plot.select([5, 1, 5])
    assert plot.selected == [1, 5] and received == []  # Python-side changes are not reported back

    widget = plot.widget
    sel = plot.source.selected

    def browser(indices):
        widget._sync_model(widget, {"event": "jsevent", "kind": "ModelChanged", "model": {"id": sel.id}, "attr": "indices", "new": indices}, [])

    browser([7, 3])
    assert received == [[3, 7]]  # once, although jupyter_bokeh runs on_change callbacks twice per event
    browser([7, 3])
    assert received == [[3, 7]]
    with caplog.at_level(logging.WARNING):
        browser([2, grid.num_patches])
    assert received[-1] == [2] and str(grid.num_patches) in caplog.text

    def failing(_):
        raise RuntimeError("boom")

    plot.on_select = failing
    with caplog.at_level(logging.ERROR):
        browser([4])  # never raises into the comm handler
    assert "boom" in caplog.text
