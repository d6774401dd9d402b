"""Errors that point the right way, and inputs accepted the same way everywhere.

One patch-index check (``check_patches``) behind analyses, viewers and explorers: boolean masks (as
notebook 03 builds them) and numpy arrays work everywhere, and refusals are short. One class resolver
(``Analysis.class_index``) behind saliency and the explorer, suggesting close names. Attention heads say
what None means. compute_tradeoff refuses labels the model has no class for. ``to_png`` keeps every
colour bar's title on the canvas.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import traitlets

import audiovis as av
from audiovis.patches import check_patches
from audiovis.widgets.explorer import Explorer

from .frozen_models import SR, tiny_ast, tone

LABELS = ["Dog", "Cat", "Bird song", "Speech"]


@pytest.fixture(scope="module")
def analysis() -> av.Analysis:
    model = tiny_ast(seed=3, labels=LABELS)
    return model.analyze(av.load_audio(tone(700.0, noise=0.05), SR))


@pytest.fixture
def ex(analysis) -> Explorer:
    return Explorer(analysis)


def mask_of(analysis: av.Analysis) -> np.ndarray:
    """What notebook 03 does: the patches above the median of a map."""
    values = analysis.rollout()
    return values > np.median(values)


# ---- attention heads -------------------------------------------------------------------------------


def test_attention_head_names_none(analysis):
    h = analysis.num_heads
    with pytest.raises(IndexError, match=rf"head must be an integer in -{h}..{h - 1}, or None for every head .*mean.*got 'mean'"):
        analysis.attention(0, head="mean")
    with pytest.raises(IndexError, match=r"or None for the mean over heads; got 'mean'"):
        analysis.attention_from([1], 0, head="mean")
    with pytest.raises(IndexError, match=rf"-{h}..{h - 1}.*got {h}"):
        analysis.attention(0, head=h)
    # what the messages promise
    np.testing.assert_allclose(analysis.attention_from([1], 0), analysis.attention(0).mean(axis=0)[1 + 2, 2:], rtol=1e-6)


# ---- class names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("asked, suggested", [("dog", "'Dog'"), ("DOG", "'Dog'"), ("bird song", "'Bird song'"),
                                              ("Dgo", "'Dog'"), ("speach", "'Speech'")])
def test_class_names_suggest_the_close_ones(analysis, asked, suggested):
    with pytest.raises(KeyError, match=rf"no class named '{asked}' in this model's 4 labels; did you mean {suggested}\?"):
        analysis.saliency(asked)
    assert analysis.class_index(suggested.strip("'")) == LABELS.index(suggested.strip("'"))


def test_class_name_without_a_close_one(analysis):
    with pytest.raises(KeyError, match=r"no class named 'xylophone' in this model's 4 labels \(labels are case-sensitive"):
        analysis.class_index("xylophone")


def test_explorer_class_index_takes_names_like_explore(analysis, ex):
    ex.class_index = "Bird song"
    assert ex.class_index == 2 and ex._class_menu.value == 2
    ex.class_index = np.int64(1)  # e.g. probabilities.argmax()
    assert ex.class_index == 1 and type(ex.class_index) is int
    ex.class_index = "Bird song"
    assert Explorer(analysis, class_index="Speech").class_index == 3  # what explore(class_index=...) does
    with pytest.raises(traitlets.TraitError, match=r"Explorer.class_index: no class named 'cat'.*did you mean 'Cat'\?"):
        ex.class_index = "cat"
    with pytest.raises(traitlets.TraitError, match=r"Explorer.class_index: class index 4 outside 0..3"):
        ex.class_index = 4
    assert ex.class_index == 2


# ---- patch indices: one check, masks and arrays accepted alike --------------------------------------


def test_a_boolean_mask_is_its_indices_everywhere(analysis, ex):
    mask = mask_of(analysis)
    idx = np.flatnonzero(mask)
    assert 0 < idx.size < analysis.num_patches
    np.testing.assert_array_equal(analysis.similarity(mask), analysis.similarity(idx))
    np.testing.assert_array_equal(analysis.attention_from(mask, 1), analysis.attention_from(idx, 1))
    rows, cols = analysis.grid.grid_shape
    np.testing.assert_array_equal(analysis.similarity(mask.reshape(rows, cols)), analysis.similarity(idx))
    ex.select(mask)
    assert ex.selection == idx.tolist() and ex.viewer.selected_patches == idx.tolist()
    ex.clear_selection()
    ex.selection = mask
    assert ex.selection == idx.tolist()
    ex.viewer.select(mask)
    assert ex.viewer.selected_patches == idx.tolist()


def test_numpy_arrays_in_the_selection_traits(ex):
    viewer = ex.viewer
    viewer.selected_patches = np.array([7, 2, 7])
    assert viewer.selected_patches == [2, 7] and all(type(p) is int for p in viewer.selected_patches)
    assert ex.selection == [2, 7] or set(ex.selection) == {2, 7}
    ex.selection = np.array([9, 4, 9], dtype=np.int32)
    assert ex.selection == [9, 4] and viewer.selected_patches == [4, 9]
    viewer.masked_patches = np.arange(3)
    assert viewer.masked_patches == [0, 1, 2]
    with pytest.raises(traitlets.TraitError, match="selected_patches: patch indices must be integers, got 1.5"):
        viewer.selected_patches = np.array([1.5])


BAD = {
    "mask of the wrong length": (lambda n: np.ones(10, dtype=bool), r"boolean mask of patches needs one entry per patch \({n}\), got 10 entries"),
    "many out of range": (lambda n: np.arange(3 * n), r"patch( index)? {n} outside 0..{m} \({k} bad entries\)"),
    "many floats": (lambda n: np.full(5000, 1.5), r"patch indices must be integers, got 1.5 \(5000 bad entries\)"),
    "a bool among indices": (lambda n: [True, 3], r"patch indices must be integers, got a bool \(True\) among them"),
    "a string": (lambda n: "3", r"patch indices must be integers, got '3'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_refusals_are_short_and_the_same_everywhere(analysis, ex, case):
    n = analysis.num_patches
    make, pattern = BAD[case]
    value = make(n)
    match = pattern.format(n=n, m=n - 1, k=2 * n)
    calls = {
        "similarity": (lambda: analysis.similarity(value), (IndexError, TypeError)),
        "attention_from": (lambda: analysis.attention_from(value), (IndexError, TypeError)),
        "Explorer.select": (lambda: ex.select(value), (IndexError, TypeError)),
        "SpectrogramViewer.select": (lambda: ex.viewer.select(value), traitlets.TraitError),
        "Explorer.selection =": (lambda: setattr(ex, "selection", value), traitlets.TraitError),
        "selected_patches =": (lambda: setattr(ex.viewer, "selected_patches", value), traitlets.TraitError),
    }
    for name, (call, errors) in calls.items():
        with pytest.raises(errors, match=match) as err:
            call()
        assert len(str(err.value)) < 200, (name, str(err.value))  # never the whole array
    assert ex.selection == [] and ex.viewer.selected_patches == []


def test_an_all_false_mask_is_an_empty_selection(analysis, ex):
    nothing = np.zeros(analysis.num_patches, dtype=bool)
    with pytest.raises(ValueError, match=r"select at least one patch \(the boolean mask is all False\)"):
        analysis.similarity(nothing)
    ex.select([3])
    ex.select(nothing)
    assert ex.selection == [] and ex.viewer.selected_patches == []


def test_check_patches_keeps_order_and_duplicates():
    np.testing.assert_array_equal(check_patches([5, 1, 5], 10), [5, 1, 5])
    np.testing.assert_array_equal(check_patches(np.array([2.0, 3.0]), 10), [2, 3])
    np.testing.assert_array_equal(check_patches(7, 10), [7])
    with pytest.raises(IndexError, match=r"patch index 10 outside 0..9"):
        check_patches([10], 10)
    with pytest.raises(IndexError, match=r"patch index 1000...* outside 0..9"):
        check_patches([10 ** 400], 10)


# ---- compute_tradeoff labels -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tradeoff_setup():
    model = tiny_ast(seed=4)
    specs = [model.spectrogram(av.load_audio(tone(f, noise=0.02, seed=i), SR)) for i, f in enumerate([300.0, 900.0, 2000.0])]
    return model, specs


@pytest.mark.parametrize("labels, match", [
    (np.array([0, 7, 527]), r"labels \[7, 527\] are not classes of the model, which has 4 classes \(ids 0..3\)"),
    (np.array([-1, 0, 1]), r"labels \[-1\] are not classes of the model, which has 4 classes"),
    (np.eye(3, 527), r"labels are multi-hot rows of 527 classes, but the model has 4 classes"),
    (np.array(["dog", "LABEL_1", "LABEL_0"]), r"labels name classes the model does not have: \['dog'\] \(the model has 4 classes\)"),
])
def test_tradeoff_refuses_labels_outside_the_model(tradeoff_setup, labels, match):
    model, specs = tradeoff_setup
    with pytest.raises(ValueError, match=match):
        av.compute_tradeoff(model, specs, [0.5], labels=labels, progress=False)


def test_tradeoff_takes_class_names(tradeoff_setup):
    """Labels that are the full model's own top classes, given by name, score accuracy 1 (before: 0, silently)."""
    import torch

    model, specs = tradeoff_setup
    with torch.no_grad():
        top = model(torch.stack([s.values for s in specs])).argmax(-1).tolist()
    names = np.array([model.labels[i] for i in top])
    by_name = av.compute_tradeoff(model, specs, [0.5], labels=names, progress=False)
    assert by_name.row("full")["score"] == 1.0
    by_id = av.compute_tradeoff(model, specs, [0.5], labels=np.array(top), progress=False)
    assert by_name.row("energy", 0.5)["score"] == by_id.row("energy", 0.5)["score"]


# ---- to_png colour bars ------------------------------------------------------------------------------


def _png(viewer) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(viewer.to_png(width=300))).convert("RGB")).astype(int)


def _viewer(analysis, heatmap, label, vmin=None, vmax=None):
    viewer = av.SpectrogramViewer(analysis.spectrogram, grid=analysis.grid)
    if vmin is not None:
        viewer.vmin, viewer.vmax = vmin, vmax
    if heatmap is not None:
        viewer.set_heatmap(heatmap, label=label)
    return viewer


def test_png_overlay_title_is_whole_with_wide_ticks(analysis):
    """Two labels differ only where the overlay's title is drawn: that area must be on the canvas and as
    long as the longer title (before, ticks like "0.025" pushed it past the right edge)."""
    from PIL import Image, ImageDraw, ImageFont

    values = np.linspace(0.0, 0.025, analysis.num_patches)
    title = "attention from the selection"
    short, long_ = _png(_viewer(analysis, values, "x")), _png(_viewer(analysis, values, title))
    assert short.shape == long_.shape
    cols = np.flatnonzero(np.any(short != long_, axis=(0, 2)))
    rows = np.flatnonzero(np.any(short != long_, axis=(1, 2)))
    assert cols.size and rows.size, "the overlay title is not on the canvas"
    length = ImageDraw.Draw(Image.new("L", (1, 1))).textlength(title, font=ImageFont.load_default())
    assert rows[-1] - rows[0] + 1 >= length - 2, "the title is cut"
    assert cols[-1] < long_.shape[1] - 2, "the title touches the canvas edge"
    assert np.all(long_[:, -2:] == 255), "something is drawn on the canvas edge"


def test_png_colour_bars_do_not_overlap(analysis):
    """The spectrogram's colour bar (ticks -100000..100000) is drawn the same with and without an overlay bar
    beside it, and the overlay bar starts right of it."""
    values = np.linspace(-1234.5, 50000, analysis.num_patches)
    alone = _png(_viewer(analysis, None, "", -100000.0, 100000.0))
    both = _png(_viewer(analysis, values, "saliency", -100000.0, 100000.0))
    left = 64 + 300  # FREQ_AXIS_WIDTH + plot width
    ink = np.flatnonzero(np.any(alone[:, left:] != 255, axis=(0, 2)))
    first_right = left + ink[-1]
    np.testing.assert_array_equal(both[: alone.shape[0], left: first_right + 1], alone[:, left: first_right + 1])
    assert np.any(both[:, first_right + 1:] != 255), "the overlay bar is missing"
    assert np.all(both[:, -2:] == 255)
