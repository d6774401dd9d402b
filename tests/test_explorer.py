"""Explorer wiring without a browser: selection sync (viewer, Bokeh, Python), overlays, layers/heads, echo counts.

Browser-side changes are simulated the way the front ends deliver them: the viewer's ``set_state`` and
jupyter_bokeh's ``jsevent`` messages. Also holds the Python side of js/test/similarity.test.ts's fixture.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections import Counter
from pathlib import Path

import ipywidgets as W
import numpy as np
import pytest
import torch
import traitlets

import audiovis as av
from audiovis import overlays
from audiovis.projections import pca_2d
from audiovis.widgets.embedding_plot import palette
from audiovis.widgets.explorer import Explorer, explore

LABELS = ["tone", "chirp", "<img src=x onerror=alert(1)>", "click train", "hum", "speech"]


# ---- a tiny random AST, analysed once per module ----


@pytest.fixture(scope="module")
def model() -> av.ASTModel:
    torch.manual_seed(0)
    config = av.ASTConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, max_length=200,
        num_labels=len(LABELS), labels=LABELS, multi_label=False,
    )
    return av.ASTModel(config).eval()


@pytest.fixture(scope="module")
def clip() -> av.Audio:
    t = np.arange(32000) / 16000
    rng = np.random.default_rng(0)
    wav = 0.3 * np.sin(2 * np.pi * (300 + 900 * t) * t) + 0.02 * rng.standard_normal(t.size)
    return av.load_audio(wav.astype(np.float32), 16000)


@pytest.fixture(scope="module")
def analysis(model, clip) -> av.Analysis:
    return model.analyze(clip)


@pytest.fixture
def ex(analysis, clip) -> Explorer:
    return Explorer(analysis, audio=clip)


def browser_selects_points(ex: Explorer, indices: list) -> None:
    """What jupyter_bokeh's front end sends when a tap/box/lasso changes the selection."""
    widget = ex.embedding_plot.widget
    selected = ex.embedding_plot.source.selected
    content = {"event": "jsevent", "kind": "ModelChanged", "model": {"id": selected.id}, "attr": "indices", "new": indices}
    widget._sync_model(widget, content, [])


class Changes:
    """Counts trait changes and Bokeh property changes on the views."""

    def __init__(self, ex: Explorer) -> None:
        self.counts: Counter[str] = Counter()
        for name in ("selected_patches", "heatmap", "embeddings", "hover_mode"):
            ex.viewer.observe(lambda c, n=name: self.counts.update([f"viewer.{n}"]), name)
        ex.observe(lambda c: self.counts.update(["explorer.selection"]), "selection")
        self.sent: list = []
        ex.embedding_plot.widget.send = self._send

    def _send(self, content: dict, buffers: list | None = None) -> None:
        """jupyter_bokeh sends each document patch as header, metadata, content (then buffers)."""
        self.sent.append(content)
        payload = content.get("payload")
        if isinstance(payload, str) and payload.startswith("{"):
            message = json.loads(payload)
            if message.get("msgtype") == "PATCH-DOC":
                self.counts["plot.patches"] += 1
            for event in message.get("events", []):
                self.counts[f"plot.{event.get('attr', event.get('kind'))}"] += 1

    def __getitem__(self, key: str) -> int:
        return self.counts[key]


# ---- selection ----


def test_viewer_selection_gives_selected_embeddings(ex, analysis):
    ex.viewer.selected_patches = [40, 3, 17]  # the viewer keeps its selection sorted
    assert ex.selection == [3, 17, 40]
    np.testing.assert_array_equal(ex.selected_embeddings, analysis.patch_embeddings(ex.layer)[[3, 17, 40]])
    ex.layer = 0
    # layer 0's patch tokens are the first block's output after the prefix tokens (Hugging Face hidden_states[1])
    prefix = analysis.num_prefix_tokens
    np.testing.assert_array_equal(ex.selected_embeddings, analysis.hidden_states[1, prefix:][[3, 17, 40]])
    assert ex.selected_embeddings.shape == (3, analysis.dim)


def test_selected_embeddings_follow_selection_order(ex, analysis):
    ex.selection = [50, 7, 50, 21]
    assert ex.selection == [50, 7, 21]
    np.testing.assert_array_equal(ex.selected_embeddings, analysis.patch_embeddings(-1)[[50, 7, 21]])
    ex.selection = []
    assert ex.selected_embeddings.shape == (0, analysis.dim)


def test_python_selection_reaches_viewer_and_plot(ex):
    seen = Changes(ex)
    ex.selection = [12, 5]
    assert ex.viewer.selected_patches == [5, 12]
    assert sorted(ex.embedding_plot.source.selected.indices) == [5, 12]
    assert seen["viewer.selected_patches"] == 1
    assert seen["plot.indices"] == 1  # one document patch tells the browser to highlight the points
    assert seen["plot.patches"] == 1
    assert seen["explorer.selection"] == 1


def test_bokeh_selection_selects_patches(ex):
    seen = Changes(ex)
    browser_selects_points(ex, [9, 2, 30])
    assert ex.selection == [2, 9, 30]
    assert ex.viewer.selected_patches == [2, 9, 30]
    assert seen["explorer.selection"] == 1
    assert seen["viewer.selected_patches"] == 1
    assert seen.sent == []  # nothing is echoed back to the browser that made the change


def test_viewer_click_highlights_points(ex):
    seen = Changes(ex)
    ex.viewer.set_state({"selected_patches": [8, 4]})  # as the browser sends a click / shift-click
    assert ex.selection == [4, 8]
    assert ex.embedding_plot.selected == [4, 8]
    a, b = (ex.analysis.grid.bounds_hz_s(i, ex.analysis.spectrogram) for i in (4, 8))
    span = f"{a.time_start:.2f}–{b.time_end:.2f} s, {a.freq_start:,.0f}–{b.freq_end:,.0f} Hz"
    assert ex._status.value == f"2 patches selected: {span}"
    assert seen["viewer.selected_patches"] == 1
    assert seen["explorer.selection"] == 1
    assert seen["plot.indices"] == 1


@pytest.mark.parametrize("origin", ["viewer", "plot", "python"])
def test_no_echo_loops(ex, origin):
    ex.overlay = "similarity"
    seen = Changes(ex)
    for round_, patches in enumerate([[1, 2], [2, 3, 4], [2, 3, 4], []], start=1):
        if origin == "viewer":
            ex.viewer.set_state({"selected_patches": patches})
        elif origin == "plot":
            browser_selects_points(ex, patches)
        else:
            ex.selection = patches
        # the third round repeats the second: nothing may change
        expected = min(round_, 2) + (round_ == 4)
        assert seen["explorer.selection"] == expected
        assert seen["viewer.selected_patches"] == expected
        assert seen["viewer.heatmap"] == expected  # similarity follows the selection, once per change
        # the plot's highlight goes to the browser once per change, and never back to a plot that made it
        assert seen["plot.indices"] == (0 if origin == "plot" else expected)


def test_odd_points_from_the_browser_are_ignored(ex, caplog):
    with caplog.at_level(logging.WARNING):
        browser_selects_points(ex, [3, 99999, -1])
    assert ex.selection == [3]
    assert "99999" in caplog.text


def test_select_takes_numpy_indices(ex, analysis):
    ex.select(np.array([9, 4, 9]))
    assert ex.selection == [9, 4] and ex.viewer.selected_patches == [4, 9]
    ex.select(np.int64(7))
    assert ex.selection == [7]
    with pytest.raises(TypeError, match="integers"):
        ex.select([1.5])


def test_bad_selection_from_python_raises(ex):
    n = ex.analysis.grid.num_patches
    with pytest.raises(traitlets.TraitError, match=f"patch {n} outside 0..{n - 1}"):
        ex.selection = [n]
    assert ex.selection == []


# ---- overlays ----


def test_overlay_modes_equal_analysis(ex, analysis):
    ex.selection = [20, 21, 60]
    layer = analysis.num_layers - 1
    expected = {
        "similarity": analysis.similarity([20, 21, 60], layer=layer),
        "attention": analysis.attention_from([20, 21, 60], layer=layer),
        "cls": analysis.attention(layer)[:, :2, 2:].mean(axis=(0, 1)),  # AST: cls + distillation rows
        "rollout": analysis.rollout(),
        "saliency": analysis.saliency(int(np.argmax(analysis.probabilities))),
    }
    ex.color_by = "overlay"
    for mode, want in expected.items():
        ex.overlay = mode
        np.testing.assert_allclose(ex.heatmap, want, rtol=1e-6, atol=1e-7, err_msg=mode)
        np.testing.assert_allclose(ex.viewer.heatmap, want, rtol=1e-6, atol=1e-7, err_msg=mode)
        np.testing.assert_allclose(ex.embedding_plot.source.data["c"], want, rtol=1e-6, atol=1e-7, err_msg=mode)
    ex.overlay = "none"
    assert ex.viewer.heatmap is None and ex.heatmap is None


def test_overlay_takes_the_menu_names_and_names_a_bad_one(ex):
    for name, key in (("Attention rollout", "rollout"), ("integrated gradients", "integrated_gradients"),
                      ("CLS attention", "cls"), ("  class  SALIENCY ", "saliency"), ("none", "none")):
        ex.overlay = name
        assert ex.overlay == key and ex._overlay_menu.value == key
    ex.overlay = "saliency"
    for bad in ("rolout", "", None, 3, "merged tokens!"):
        with pytest.raises(traitlets.TraitError, match="overlay must be one of 'none' \\(None\\), 'similarity'"):
            ex.overlay = bad
        assert ex.overlay == "saliency"  # the old mode stays
    with pytest.raises(traitlets.TraitError, match="'merged' \\(Merged tokens\\); got 'rolout'"):
        explore(ex.analysis, overlay="rolout")


def test_similarity_overlay_is_cosine_to_the_mean(ex, analysis):
    ex.overlay = "similarity"
    ex.selection = [5, 6]
    emb = analysis.patch_embeddings(-1).astype(np.float64)
    query = emb[[5, 6]].mean(axis=0)
    cosine = emb @ query / (np.linalg.norm(emb, axis=1) * np.linalg.norm(query))
    np.testing.assert_allclose(ex.heatmap, cosine, atol=1e-5)


def test_selection_modes_show_nothing_without_a_selection(ex):
    for mode in ("similarity", "attention"):
        ex.overlay = mode
        assert ex.heatmap is None and ex.viewer.heatmap is None
        assert "select patches" in ex._status.value


def test_saliency_class_defaults_to_top_prediction_and_switches(ex, analysis):
    top = int(np.argmax(analysis.probabilities))
    assert ex.class_index == top
    assert ex._class_menu.value == top
    ex.overlay = "saliency"
    other = (top + 1) % len(LABELS)
    ex._class_menu.value = other  # as the browser changes the menu
    assert ex.class_index == other
    np.testing.assert_allclose(ex.heatmap, analysis.saliency(other), rtol=1e-6)
    assert LABELS[other] in ex.viewer.heatmap_label


def test_layer_switch_reprojects_and_recomputes(ex, analysis):
    ex.overlay = "similarity"
    ex.selection = [10]
    seen = Changes(ex)
    ex._layer_slider.value = 0  # as the browser moves the slider
    assert ex.layer == 0
    coords, _ = pca_2d(analysis.patch_embeddings(0))
    np.testing.assert_array_equal(ex.embedding_plot.coordinates, coords)
    np.testing.assert_allclose(ex.heatmap, analysis.similarity([10], layer=0), rtol=1e-6)
    np.testing.assert_array_equal(ex.viewer.embeddings, analysis.patch_embeddings(0).astype(np.float16))
    assert "layer 0" in ex.plot.title.text
    assert seen["plot.data"] == 1  # the new points (x, y) travel in one column update
    assert seen["viewer.heatmap"] == 1 and seen["viewer.embeddings"] == 1
    ex.layer = -1
    assert ex.layer == analysis.num_layers - 1 == ex._layer_slider.value
    np.testing.assert_array_equal(ex.embedding_plot.coordinates, pca_2d(analysis.patch_embeddings(-1))[0])
    with pytest.raises(traitlets.TraitError, match="layer"):
        ex.layer = analysis.num_layers


def test_head_switch(ex, analysis):
    ex.selection = [33]
    ex.overlay = "attention"
    ex._head_menu.value = 2
    assert ex.head == 2
    np.testing.assert_allclose(ex.heatmap, analysis.attention(-1, head=2)[2 + 33, 2:], rtol=1e-6)
    ex.overlay = "cls"
    np.testing.assert_allclose(ex.heatmap, analysis.attention(-1, head=2)[:2, 2:].mean(axis=0), rtol=1e-6)
    ex._head_menu.value = -1  # "mean"
    assert ex.head is None
    np.testing.assert_allclose(ex.heatmap, analysis.attention(-1)[:, :2, 2:].mean(axis=(0, 1)), rtol=1e-6)
    ex.head = -1  # Python-style negative index: the last head
    assert ex.head == analysis.num_heads - 1 and ex._head_menu.value == analysis.num_heads - 1


def test_controls_that_do_not_apply_are_disabled(ex):
    ex.overlay = "rollout"
    assert ex._head_menu.disabled and ex._class_menu.disabled
    ex.overlay = "cls"
    assert not ex._head_menu.disabled and ex._class_menu.disabled
    ex.overlay = "saliency"
    assert ex._head_menu.disabled and not ex._class_menu.disabled


def test_colormap_and_opacity_controls_drive_the_viewer(ex):
    ex._colormap_menu.value = "viridis"
    ex._heatmap_colormap_menu.value = "magma"
    ex._opacity_slider.value = 0.3
    assert (ex.viewer.colormap, ex.viewer.heatmap_colormap, ex.viewer.heatmap_opacity) == ("viridis", "magma", 0.3)
    ex.overlay = "rollout"
    ex.color_by = "overlay"
    assert ex.embedding_plot.renderer.glyph.fill_color.transform.palette == palette("magma")  # the plot follows


def test_hover_similarity_embeddings_travel_once_per_layer(ex, analysis):
    assert ex.viewer.embeddings is None and ex.viewer.hover_mode == "none"
    seen = Changes(ex)
    ex.overlay = "similarity"
    assert ex.viewer.hover_mode == "similarity"
    assert ex.viewer.embeddings.dtype == np.float16
    np.testing.assert_array_equal(ex.viewer.embeddings, analysis.patch_embeddings(-1).astype(np.float16))
    state = ex.viewer.get_state(["embeddings"])["embeddings"]
    assert isinstance(state["view"], memoryview) and state["dtype"] == "float16"
    ex.overlay = "rollout"
    ex.overlay = "similarity"
    ex.selection = [4]
    assert seen["viewer.embeddings"] == 1
    assert ex.viewer.hover_mode == "similarity"


def test_analyze_runs_once(model, clip, monkeypatch):
    calls = []
    original = type(model).analyze

    def counting(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "analyze", counting)
    ex = explore(clip, model)
    for mode in overlays.MODES:
        ex.overlay = mode
        ex.selection = [1, 2]
        ex.layer = 0
        ex.layer = -1
    assert len(calls) == 1


# ---- panels and construction ----


def test_top_labels_panel(ex, analysis):
    rows = ex._predictions.children[1:]
    top = analysis.top_labels(5)
    assert len(rows) == 5
    for row, (name, p) in zip(rows, top):
        label, bar, value = row.children
        assert isinstance(label, W.Label)  # text, never HTML
        assert label.value == name
        assert bar.value == pytest.approx(p)
        assert value.value == f"{p:.3f}"


def test_explore_takes_paths_arrays_and_analyses(model, clip, wav_file, analysis):
    path = wav_file(clip.numpy()[0], 16000)
    from_path = explore(path, model)
    np.testing.assert_allclose(from_path.analysis.logits, analysis.logits, atol=1e-5)
    assert from_path.viewer._audio_info["sample_rate"] == 16000
    from_array = explore(clip.numpy()[0], model, sample_rate=16000, overlay="rollout", layer=0, top_k=3)
    assert from_array.overlay == "rollout" and from_array.layer == 0 and len(from_array._predictions.children) == 4
    reused = explore(analysis, overlay="cls")
    assert reused.analysis is analysis and reused.viewer._audio_info is None
    with pytest.raises(TypeError, match="unknown option"):
        explore(clip, model, colour_map="gray")


def test_explore_without_a_model_uses_the_demo_model():
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo import EVAL_SEED, load_demo_model

    demo = load_demo_model()
    clip = SyntheticEvents(1, seed=EVAL_SEED, duration=demo.window_seconds, classes=list(demo.labels))[0]
    ex = explore(clip.audio)
    assert ex.analysis._model is demo
    assert ex.analysis.labels == list(demo.labels) and ex.viewer.grid == demo.grid
    shown = [row.children[0].value for row in ex._predictions.children[1:]]
    assert shown == [name for name, _ in ex.analysis.top_labels(5)] and set(shown) <= set(demo.labels)
    np.testing.assert_allclose(ex.analysis.logits, demo.analyze(clip.audio).logits, atol=1e-6)


def test_explore_long_audio_shows_one_window(model, clip):
    long = av.load_audio(np.tile(clip.numpy()[0], 3)[: int(4.5 * 16000)], 16000)  # 4.5 s, a 2 s model window
    span = model.window_seconds
    with pytest.warns(UserWarning, match=r"window 0 of 3.*window=i.*audio\.segment\(start, end\).*LongViewer"):
        first = explore(long, model)
    alone = model.analyze(long.segment(0, span + 0.015))
    np.testing.assert_allclose(first.analysis.logits, alone.logits, atol=1e-5)
    assert first.analysis.offset == 0.0 and first.viewer.spectrogram.num_frames == model.input_shape[1]
    second = explore(long, model, window=1)
    assert second.analysis.offset == pytest.approx(span)
    np.testing.assert_allclose(second.analysis.logits, model.analyze(long.segment(span, 2 * span + 0.015)).logits, atol=1e-5)
    assert second.analysis.spectrogram.times[0] == pytest.approx(span + 0.0125)  # the recording's clock
    with pytest.raises(IndexError, match=r"window 3 outside 0\.\.2"):
        explore(long, model, window=3)
    with pytest.raises(TypeError, match="window"):
        explore(first.analysis, window=0)


def test_explore_passes_reduced_compute_options_to_analyze(model, clip):
    """explore(audio, model, merge_ratio=...) is the merged analysis, shown with its merged-token groups;
    pruning likewise, and for a window of long audio; with a ready Analysis the options are refused."""
    merged = explore(clip, model, merge_ratio=0.5)
    reference = model.analyze(clip, merge_ratio=0.5)
    np.testing.assert_allclose(merged.analysis.logits, reference.logits, atol=1e-6)
    np.testing.assert_array_equal(merged.analysis.merge_groups(-1), reference.merge_groups(-1))
    assert merged.overlay == "merged" and len(np.unique(reference.merge_groups(-1))) < reference.num_patches
    pruned = explore(clip, model, keep_ratio=0.5, keep_by="attention", overlay="rollout")
    np.testing.assert_array_equal(pruned.analysis.kept_patches,
                                  model.analyze(clip, keep_ratio=0.5, keep_by="attention").kept_patches)
    assert pruned.overlay == "rollout"
    long = av.load_audio(np.tile(clip.numpy()[0], 3)[: int(4.5 * 16000)], 16000)
    second = explore(long, model, window=1, merge_ratio=0.5)
    np.testing.assert_allclose(second.analysis.logits,
                               model.analyze_windows(long, windows=[1], merge_ratio=0.5)[0].logits, atol=1e-6)
    with pytest.raises(TypeError, match=r"explore\(\): merge_ratio set how audio is analysed; this Analysis is "
                                        r"already computed: pass it to model.analyze"):
        explore(reference, merge_ratio=0.5)
    with pytest.raises(ValueError, match="merge_ratio"):
        explore(clip, model, merge_ratio=1.5)


def test_explorer_is_a_displayable_widget(ex):
    assert isinstance(ex, W.VBox)
    assert ex.viewer in ex.children
    assert any(ex.embedding_plot.widget in getattr(c, "children", ()) for c in ex.children)
    assert ex.viewer.grid == ex.analysis.grid
    assert ex.viewer.spectrogram is ex.analysis.spectrogram


def test_each_display_loads_bokehjs_and_starts_from_the_current_plot(ex, analysis, monkeypatch):
    from bokeh.document import Document

    from audiovis.widgets import explorer as explorer_module

    loads = []
    monkeypatch.setattr(explorer_module, "load_bokehjs", lambda: loads.append(1))
    ex.layer = 0  # changed after the Bokeh widget was made
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and loads == [1]
    (doc_json,) = ex.embedding_plot.widget.render_bundle["docs_json"].values()
    source = Document.from_json(doc_json).get_model_by_name("audiovis-embedding-points")
    np.testing.assert_array_equal(source.data["x"], pca_2d(analysis.patch_embeddings(0))[0][:, 0])


def test_pruned_patches_are_masked(model, clip):
    pruned = model.analyze(clip, keep_ratio=0.5)
    ex = Explorer(pruned)
    assert len(pruned.pruned_patches) > 0
    assert ex.viewer.masked_patches == pruned.pruned_patches.tolist()
    assert f"({len(pruned.pruned_patches)} pruned)" in ex.children[0].value
    unpruned = Explorer(model.analyze(clip))
    assert unpruned.viewer.masked_patches == [] and "pruned" not in unpruned.children[0].value


def test_an_overlay_that_cannot_be_computed_is_reported_not_raised(ex, monkeypatch, caplog):
    def unsupported(*args, **kwargs):
        raise av.ConfigError("block 0 uses FusedAttention; attention maps need timm's standard Attention layer")

    monkeypatch.setattr(ex.analysis, "attention_from", unsupported)
    ex.selection = [3]
    with caplog.at_level(logging.WARNING):
        ex._overlay_menu.value = "attention"  # as the browser changes the menu
    assert ex.heatmap is None and ex.viewer.heatmap is None
    assert "unavailable" in ex._status.value and "FusedAttention" in ex._status.value
    assert "FusedAttention" in caplog.text


def test_model_from_pretrained(model, clip, tmp_path):
    model.save_pretrained(tmp_path / "tiny-ast")
    loaded = av.ASTModel.from_pretrained(tmp_path / "tiny-ast")
    ex = explore(clip, loaded, overlay="rollout")
    np.testing.assert_allclose(ex.heatmap, model.analyze(clip).rollout(), rtol=1e-5, atol=1e-8)
    assert [r.children[0].value for r in ex._predictions.children[1:]] == [n for n, _ in ex.analysis.top_labels(5)]


def test_vit_model(clip):
    torch.manual_seed(1)
    vit = av.ViTModel(
        "vit_tiny_patch16_224", input_shape=(128, 160), stride=(16, 10), num_classes=4, depth=2,
        labels=["a", "b", "c", "d"],
    ).eval()
    ex = explore(clip.segment(0, 1.5), vit, overlay="cls")
    a = ex.analysis
    prefix = a.num_prefix_tokens
    np.testing.assert_allclose(ex.heatmap, a.attention(-1)[:, :prefix, prefix:].mean(axis=(0, 1)), rtol=1e-6)
    ex.selection = [0, a.grid.num_patches - 1]
    ex.overlay = "attention"
    np.testing.assert_allclose(ex.heatmap, a.attention_from([0, a.grid.num_patches - 1], layer=-1), rtol=1e-6)


# ---- the shared fixture of js/test/similarity.test.ts ----

SIMILARITY_FIXTURE = Path(__file__).resolve().parents[1] / "js" / "test" / "fixtures" / "similarity.json"
SIMILARITY_QUERIES = ([0], [5], [3, 17, 30], [39, 0], [7])  # row 7 is all zeros


def similarity_fixture() -> dict:
    """Float16 embeddings (rows of very different norms, one all-zero row) and torch's cosine similarities."""
    rng = np.random.default_rng(20240611)
    values = rng.standard_normal((40, 50)) * np.exp(rng.standard_normal((40, 1)))
    values[7] = 0.0
    half = values.astype("<f2")
    exact = torch.from_numpy(half.astype(np.float64))
    cases = []
    for patches in SIMILARITY_QUERIES:
        query = exact[list(patches)].mean(dim=0, keepdim=True)
        expected = torch.nn.functional.cosine_similarity(exact, query, dim=1)
        cases.append({"patches": list(patches), "expected": expected.tolist()})
    return {
        "description": "float16 [n, dim] embeddings; expected = cosine similarity of each row to the mean of "
        "`patches` (torch, float64). Written by tests/test_explorer.py (AUDIOVIS_WRITE_FIXTURES=1).",
        "shape": list(half.shape),
        "float16_base64": base64.b64encode(half.tobytes()).decode("ascii"),
        "rounded": half.astype(np.float64).ravel().tolist(),
        "cases": cases,
    }


def test_similarity_fixture_is_the_python_reference():
    fresh = similarity_fixture()
    if os.environ.get("AUDIOVIS_WRITE_FIXTURES") == "1":
        SIMILARITY_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        SIMILARITY_FIXTURE.write_text(json.dumps(fresh, indent=1) + "\n")
    stored = json.loads(SIMILARITY_FIXTURE.read_text())
    assert stored["shape"] == fresh["shape"]
    assert stored["float16_base64"] == fresh["float16_base64"]
    np.testing.assert_array_equal(stored["rounded"], fresh["rounded"])
    assert [c["patches"] for c in stored["cases"]] == [c["patches"] for c in fresh["cases"]]
    for got, want in zip(stored["cases"], fresh["cases"]):
        np.testing.assert_allclose(got["expected"], want["expected"], rtol=0, atol=1e-12)


def test_similarity_fixture_rule_is_analysis_similarity(analysis):
    """The fixture's rule (cosine to the mean of the query rows) is the one Analysis.similarity applies."""
    emb = torch.from_numpy(analysis.patch_embeddings(-1).astype(np.float64))
    for patches in ([0], [3, 17, 30]):
        query = emb[patches].mean(dim=0, keepdim=True)
        expected = torch.nn.functional.cosine_similarity(emb, query, dim=1).numpy()
        np.testing.assert_allclose(analysis.similarity(patches), expected, atol=1e-6)
