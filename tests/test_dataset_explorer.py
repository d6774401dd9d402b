"""DatasetExplorer: the map's points, selection both ways, open, find_similar against store.search_patches,
probe colouring against a hand-run cross-validation, failed clips, and bad input."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import traitlets
import soundfile as sf

import audiovis as av
from audiovis.probe import LinearProbe, kfold_indices
from audiovis.store import StoreError, embed_dataset
from audiovis.projections import project
from audiovis.widgets.dataset_explorer import DatasetExplorer, explore_dataset

from .ci import skip_or_fail
from .frozen_models import SR, tiny_ast, tone

FREQS = [250.0, 300.0, 1500.0, 1800.0, 3000.0, 3500.0, 400.0, 2500.0]
LABELS = ["low", "low", "mid", "mid", "high", "high", "low", "high"]


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=1)


@pytest.fixture(scope="module")
def built(model, tmp_path_factory):
    """Eight labelled tones (one of 5 s: three windows) and one file that is not audio, with patches."""
    root = tmp_path_factory.mktemp("dx")
    paths = []
    for i, f in enumerate(FREQS):
        path = root / "clips" / f"tone{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(f, seconds=5.0 if i == 0 else 2.0, noise=0.01, seed=i), SR)
        paths.append(path)
    fake = root / "clips" / "fake.wav"
    fake.write_text("text renamed .wav")
    sources = pd.DataFrame({"source": [str(p) for p in paths] + [str(fake)], "label": LABELS + ["low"]})
    store = embed_dataset(sources, model, root / "store", layers=[0, -1], patches=True, progress=False)
    return store


@pytest.fixture
def dx(built, model):
    return explore_dataset(built, model)


def test_points_are_the_stored_vectors_projected_and_failed_clips_are_listed(dx, built):
    clips = built.clips
    bad = clips["error"].notna().to_numpy()
    assert bad.sum() == 1
    assert list(dx.points["clip_id"]) == list(clips["clip_id"][~bad])
    assert list(dx.failed["clip_id"]) == list(clips["clip_id"][bad])
    # PCA reference written here: centred rows onto the top two right singular vectors (up to sign)
    x = built.clip_embeddings(-1)[~bad].astype(np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    ref = x @ vt[:2].T
    got = dx.points[["x", "y"]].to_numpy()
    for j in range(2):
        assert np.allclose(np.abs(got[:, j]), np.abs(ref[:, j]), atol=1e-4)
    assert "1 failed clip(s) left off the map" in dx._counts.value
    assert "could not be decoded" in dx._failed_table.value
    with pytest.raises(ValueError, match="failed when the store was built"):
        dx.open(dx.failed["clip_id"][0])
    assert dx.explorer is None
    # correct/wrong from the stored top prediction against the label
    top = [t[0] for t in clips["top_labels"][~bad]]
    expected = ["correct" if p == lab else "wrong" for p, lab in zip(top, clips["label"][~bad])]
    assert list(dx.points["correct"]) == expected
    assert dx.color_by == "correct"


def test_projection_keeps_nan_rows_and_names_bad_methods():
    v = np.arange(12, dtype=np.float32).reshape(4, 3) ** 1.5
    v[2] = np.nan
    xy = project(v)
    assert np.isnan(xy[2]).all() and np.isfinite(xy[[0, 1, 3]]).all()
    with pytest.raises(ValueError, match="projection method must be one of"):
        project(v, "tsne")


@pytest.mark.parametrize("chunk_rows, nan_rows", [(2048, [7, 300]), (3, []), (3, [0, 599])])
def test_projection_of_many_rows_equals_the_svd_reference(monkeypatch, chunk_rows, nan_rows):
    """More rows than dimensions (the 100 k-clip case) go through the scatter matrix, summed a chunk of rows
    at a time (here one chunk, or 3-row chunks with the last one short): same axes as an SVD."""
    import audiovis.projections as projections

    monkeypatch.setattr(projections, "_SCATTER_ROWS", chunk_rows)
    rng = np.random.default_rng(3)
    v = (rng.standard_normal((600, 12)) @ rng.standard_normal((12, 12))).astype(np.float32) + 5.0
    v[nan_rows] = np.nan
    v.flags.writeable = False  # e.g. an Analysis's arrays: projected as they are, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xy = project(v)
    ok = np.isfinite(v).all(axis=1)
    x = v[ok].astype(np.float64) - v[ok].astype(np.float64).mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]  # largest loading > 0
    np.testing.assert_allclose(xy[ok], x @ axes.T, rtol=1e-4, atol=1e-4)
    assert np.isnan(xy[~ok]).all()


def _umap():
    try:
        import umap
    except ImportError:
        skip_or_fail("umap-learn is not installed; CI requires it (pip install 'audiovis[umap]')")
    return umap


def test_umap_projection_is_umap_learn_seeded_with_nan_rows_kept(monkeypatch):
    """projection='umap' is umap-learn's own layout (the same call made here), seeded, NaN rows left out."""
    umap = _umap()
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.standard_normal((30, 16)) + 8, rng.standard_normal((30, 16)) - 8]).astype(np.float32)
    v[5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # umap-learn warned that the seed overrode n_jobs
        xy = project(v, "umap", seed=2)
    ok = np.isfinite(v).all(axis=1)
    expected = umap.UMAP(n_components=2, random_state=2, n_neighbors=15, n_jobs=1).fit_transform(v[ok].astype(np.float64))
    np.testing.assert_allclose(xy[ok], expected, rtol=1e-6, atol=1e-6)
    assert np.isnan(xy[5]).all() and np.isfinite(xy[ok]).all()
    np.testing.assert_array_equal(project(v, "umap", seed=2), xy)  # the same picture every time
    with pytest.raises(ValueError, match="UMAP needs at least 4 clips with vectors, got 3; use projection='pca'"):
        project(v[:3], "umap")
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(ImportError, match=r"projection='umap' needs umap-learn: pip install 'audiovis\[umap\]'"):
        project(v, "umap")


def test_explore_dataset_with_umap(built, model):
    _umap()
    dx = explore_dataset(built, model, projection="umap")
    ok = built.clips["error"].isna().to_numpy()
    assert len(dx.points) == ok.sum() and np.isfinite(dx.points[["x", "y"]].to_numpy()).all()
    assert "UMAP" in dx._counts.value


def test_first_map_of_a_session_reads_while_importing_jscatter(dx, built):
    """In a fresh interpreter (jupyter-scatter not imported yet) the vectors are read on a worker thread
    while jupyter-scatter is imported: the map equals the one built here; without jupyter-scatter the
    error says what to install."""
    import json
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import json, sys
        import audiovis as av

        class NoJscatter:
            def find_spec(self, name, path=None, target=None):
                if name == "jscatter":
                    raise ImportError("No module named 'jscatter'")

        store = av.open_store({str(built.path)!r})
        sys.meta_path.insert(0, NoJscatter())
        try:
            av.explore_dataset(store)
        except ImportError as exc:
            missing = str(exc)
        sys.meta_path.pop(0)
        assert "jscatter" not in sys.modules
        dx = av.explore_dataset(store)
        print(json.dumps({{"missing": missing, "ids": dx.points["clip_id"].tolist(),
                          "xy": dx.points[["x", "y"]].to_numpy().tolist()}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pip install 'audiovis[datasets]'" in out["missing"]
    assert out["ids"] == dx.points["clip_id"].tolist()
    np.testing.assert_allclose(out["xy"], dx.points[["x", "y"]].to_numpy(), rtol=0, atol=1e-5)


def test_selection_is_two_way(dx):
    ids = list(dx.points["clip_id"])
    dx.selection = [ids[3], ids[1]]
    assert sorted(dx.scatter.widget.selection.tolist()) == [1, 3]
    assert ids[3] in dx._table.value and "2 selected clip(s)" in dx._table.value
    dx.scatter.widget.selection = np.array([0, 2, 4])  # what a lasso in the browser sends
    assert dx.selection == [ids[0], ids[2], ids[4]]
    dx.selection = []
    assert len(dx.scatter.widget.selection) == 0 and dx._table.value == ""
    with pytest.raises(Exception, match="not in the store"):
        dx.selection = ["no-such-clip"]
    dx.selection = [ids[2]]
    with pytest.raises(Exception, match=r"clip id\(s\) \[3\] are not in the store"):
        dx.selection = [ids[1], 3]  # a row number is no clip id
    assert dx.selection == [ids[2]] and dx.scatter.widget.selection.tolist() == [2]
    # ids picked from store.clips: a Series or an array of them, as well as a list
    dx.selection = dx.points["clip_id"][[4, 0]]
    assert dx.selection == [ids[4], ids[0]] and all(type(c) is str for c in dx.selection)
    dx.selection = np.array([ids[1]])
    assert dx.selection == [ids[1]] and dx.scatter.widget.selection.tolist() == [1]
    dx.selection = []


def test_selected_clips_table_lists_them_in_store_order(dx, built, monkeypatch):
    """The table under the map: the selected clips in the store's order whatever the selection's, with
    source, duration, label, top prediction and error, the first rows only and a count of the rest."""
    import html as html_module
    import re

    from audiovis.widgets import dataset_explorer as module

    clips = built.clips
    ids = list(dx.points["clip_id"])
    chosen = [ids[5], ids[0], ids[3]]
    dx.selection = chosen
    rows = re.findall(r"<tr>(.*?)</tr>", dx._table.value)
    header, cells = rows[0], [re.findall(r"<td>(.*?)</td>", r) for r in rows[1:]]
    assert re.findall(r"<th>(.*?)</th>", header) == ["clip_id", "source", "duration", "label", "prediction", "error"]
    expected = []
    for _, clip in clips[clips["clip_id"].isin(chosen)].iterrows():  # plain reference, in store order
        expected.append([clip["clip_id"], clip["source"], "%.2f" % clip["duration"], clip["label"],
                         clip["top_labels"][0], ""])
    assert [[html_module.unescape(c) for c in row] for row in cells] == expected
    assert "3 selected clip(s)" in dx._table.value and "more" not in dx._table.value
    monkeypatch.setattr(module, "_TABLE_ROWS", 2)
    dx.selection = chosen[::-1]
    assert len(re.findall(r"<tr>", dx._table.value)) == 3 and "... 1 more" in dx._table.value
    dx.selection = []


def test_select_with_box_or_lasso_sets_the_map_tool(dx):
    assert dx.select_with == "lasso" and dx.scatter.lasso()["type"] == "freeform"
    dx.select_with = "box"
    assert dx.scatter.lasso()["type"] == "rectangle" and dx._shape.value == "box"
    dx._shape.value = "lasso"  # the toggle in the page
    assert dx.select_with == "lasso" and dx.scatter.lasso()["type"] == "freeform"
    with pytest.raises(traitlets.TraitError, match="select_with.*'lasso', 'box'.*'circle'"):
        dx.select_with = "circle"
    assert dx.select_with == "lasso" and dx.scatter.lasso()["type"] == "freeform"


def test_color_options_and_bad_colour(dx):
    assert {"label", "prediction", "confidence", "correct", "duration"} <= set(dx.color_options)
    dx.color_by = "confidence"
    assert dx.scatter.color()["by"] == "confidence"
    with pytest.raises(Exception, match="color_by must be one of"):
        dx.color_by = "nope"


def test_open_shows_the_clip_explorer_of_its_source(dx, built, model):
    cid = dx.points["clip_id"][2]
    source = built.clips.set_index("clip_id").loc[cid, "source"]
    explorer = dx.open(cid)
    assert dx.explorer is explorer and explorer in dx._explorer_box.children
    np.testing.assert_allclose(explorer.analysis.patch_embeddings(-1), model.analyze(source).patch_embeddings(-1),
                               atol=1e-5)
    dx.scatter.widget.selection = np.array([4])  # a click on one point opens it
    assert dx.explorer is not explorer and dx._open_id == dx.points["clip_id"][4]
    with pytest.raises(KeyError, match="'nope' is not in the store"):
        dx.open("nope")
    with pytest.raises(TypeError, match="DatasetExplorer: clip_id must be a clip's id.*got int 4"):
        dx.open(4)  # a row of the table, not its id


def test_find_similar_equals_a_direct_search_and_opens_hits(dx, built):
    cid = dx.points["clip_id"][3]
    dx.open(cid)
    dx.explorer.select([5, 17, 40])
    hits = dx.find_similar(k=6)
    query = built.patch_embeddings(cid, -1)[[5, 17, 40]].astype(np.float32).mean(axis=0)
    pd.testing.assert_frame_equal(hits, built.search_patches(query, 6, -1))
    assert list(hits["score"]) == sorted(hits["score"], reverse=True)
    assert {"clip_id", "patch", "score", "time_start", "time_end", "freq_low", "freq_high"} <= set(hits.columns)
    assert len(dx._gallery.children) == 6
    first_card = dx._gallery.children[0]
    assert first_card.children[0].value[:8] == b"\x89PNG\r\n\x1a\n"
    assert dx.color_by == "similar"
    assert set(dx.points.loc[dx.points["similar"] == "hit", "clip_id"]) == set(hits["clip_id"])
    # clicking the last hit opens its clip with the hit patch selected and zoomed
    hit = hits.iloc[-1]
    dx._gallery.children[-1].children[-1].click()
    assert dx._open_id == hit["clip_id"] and list(dx.explorer.selection) == [int(hit["patch"])]
    t0, t1 = dx.explorer.viewer.time_range
    assert t0 <= hit["time_start"] and hit["time_end"] <= t1 and t1 - t0 < 0.75 * 2.0  # zoomed in from the 2 s window
    excluded = dx.find_similar(k=4, exclude_clip=True)
    assert hit["clip_id"] not in set(excluded["clip_id"])


def test_a_new_search_shows_its_hits_on_the_same_cards(dx, built, monkeypatch):
    """Cards are made once and updated: a second search creates no widget, and every card (caption,
    button, crop, click) now stands for the new search's hit; a shorter list shows fewer cards."""
    import re

    from ipywidgets.widgets import widget as widget_registry

    dx.open(dx.points["clip_id"][1])
    dx.explorer.select([2, 3])
    dx.find_similar(k=5)
    cards = list(dx._gallery.children)
    dx.open(dx.points["clip_id"][6])
    dx.explorer.select([30, 31, 32])
    made = set(widget_registry._instances)  # the opened clip's own explorer is new; the search must add nothing
    hits = dx.find_similar(k=4, exclude_clip=True)
    assert set(widget_registry._instances) == made
    assert list(dx._gallery.children) == cards[:4]
    for card, hit in zip(dx._gallery.children, hits.itertuples(index=False)):
        image, caption, button = card.children
        assert re.search(f'title="{re.escape(hit.clip_id)}" data-search="{dx._searches}"', caption.value)
        assert button.description == f"{hit.time_start:.2f} s · score {hit.score:.3f}"
        assert image.value == dx._crop_png(hit)  # the crop of this hit, not of the last search's
        for part in (image, button):  # which search they show, for the page (one class each)
            assert [c for c in part._dom_classes if "search" in c] == [f"audiovis-dx-search-{dx._searches}"]
    hit = hits.iloc[1]
    dx._gallery.children[1].children[-1].click()
    assert dx._open_id == hit["clip_id"] and list(dx.explorer.selection) == [int(hit["patch"])]
    # a search that fails while making its crops changes nothing: hits, gallery and marks stay the last ones
    shown = [(c.children[1].value, c.children[2].description) for c in dx._gallery.children]
    searches, last = dx._searches, dx.hits
    dx.explorer.select([40])

    def broken(hit, context=0.5):
        raise RuntimeError("no crop")

    monkeypatch.setattr(dx, "_crop_png", broken)
    with pytest.raises(RuntimeError, match="no crop"):
        dx.find_similar(k=4)
    assert dx._searches == searches and dx.hits is last
    assert [(c.children[1].value, c.children[2].description) for c in dx._gallery.children] == shown


def test_find_similar_button_searches_and_reports_errors_on_the_status_line(dx, built):
    dx.open(dx.points["clip_id"][2])
    assert dx._find in dx._explorer_box.children[0].children  # the button sits on the opened clip's title row
    dx._find.click()  # nothing selected yet: said on the status line, nothing raised
    assert "select one or more patches" in dx._status.value and dx.hits is None
    dx.explorer.select([5, 6])
    dx._other_clips.value = True
    dx._find.click()
    cid = dx.points["clip_id"][2]
    query = built.patch_embeddings(cid, -1)[[5, 6]].astype(np.float32).mean(axis=0)
    pd.testing.assert_frame_equal(dx.hits, built.search_patches(query, 12, -1, exclude_clip=cid))
    assert dx._status.value == "" and len(dx._gallery.children) == len(dx.hits)


def test_the_map_gets_one_update_per_change(dx):
    """jupyter-scatter's front end drops a points update that arrives while it draws the previous one, so a new
    colour column goes out once, and the dropdown's option reset is not taken for a choice."""
    sent = []
    send = dx.scatter.widget.send_state
    dx.scatter.widget.send_state = lambda key=None: (sent.append(key), send(key))
    dx.open(dx.points["clip_id"][1])
    dx.explorer.select([3])
    dx.find_similar(k=3)
    assert sent.count("points") == 1 and dx.color_by == "similar" and dx._color.value == "similar"
    sent.clear()
    dx._color.value = "confidence"  # the user's choice in the dropdown
    assert dx.color_by == "confidence" and sent.count("color") == 1
    lo, hi = dx.scatter.x()["scale"].vmin, dx.scatter.x()["scale"].vmax  # points at the extremes drawn whole
    xs = dx.points["x"]
    assert lo < xs.min() and hi > xs.max() and xs.min() - lo == pytest.approx(0.05 * (xs.max() - xs.min()))


def test_find_similar_needs_an_open_clip_and_a_selection(dx):
    with pytest.raises(ValueError, match="open a clip first"):
        dx.find_similar()
    dx.open(dx.points["clip_id"][1])
    with pytest.raises(ValueError, match="select one or more patches"):
        dx.find_similar()


def test_probe_colouring_is_out_of_fold(dx, built):
    said = []
    dx._status.observe(lambda change: said.append(change["new"]), names="value")
    table = dx.fit_probe(folds=3, epochs=50)
    assert dx.color_by == "probe_correct"
    bad = built.clips["error"].notna().to_numpy()
    X = built.clip_embeddings(-1)[~bad]
    labels = list(built.clips["label"][~bad])
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    pred = np.empty(len(y), object)
    for test in kfold_indices(y, len(y), 3, 0):
        train = np.setdiff1d(np.arange(len(y)), test)
        probe = LinearProbe(epochs=50).fit(X[train], y[train])
        pred[test] = [classes[c] for c in probe.predict(X[test])]
    assert list(table["probe_prediction"]) == list(pred)
    sizes = [len(y) - len(test) for test in kfold_indices(y, len(y), 3, 0)]
    assert said == [f"fitting the probe on layer {dx.layer}: fold {i + 1} of 3 ({n} clips)"
                    for i, n in enumerate(sizes)] + [""]  # progress on the status line, then cleared
    assert list(dx.points["probe_correct"]) == ["correct" if p == t else "wrong" for p, t in zip(pred, labels)]
    assert {"probe_prediction", "probe_confidence", "probe_correct"} <= set(dx.color_options)
    with pytest.raises(ValueError, match="no label column 'genre'"):
        dx.fit_probe(label="genre")


def test_patches_false_store_says_to_rebuild(model, built, tmp_path):
    sources = [s for s in built.clips["source"] if s.endswith(("tone1.wav", "tone2.wav"))]
    store = embed_dataset(sources, model, tmp_path / "nopatch", progress=False)
    dx = explore_dataset(store, model)
    dx.open(dx.points["clip_id"][0])
    dx.explorer.select([0])
    with pytest.raises(ValueError, match=r"built without patches; rebuild it with .*patches=True"):
        dx.find_similar()


def test_bad_input(model, built, tmp_path):
    with pytest.raises(StoreError, match="built with another model"):
        explore_dataset(built, tiny_ast(seed=2))
    with pytest.raises(TypeError, match="store must be an EmbeddingStore"):
        explore_dataset(str(built.path), model)
    store = embed_dataset([str(p) for p in built.clips["source"][:1]], model, tmp_path / "one", progress=False)
    store._clips = store.clips.iloc[:0]  # a store with no clips
    with pytest.raises(ValueError, match="holds no clips"):
        explore_dataset(store, model)
    no_model = explore_dataset(built)
    with pytest.raises(ValueError, match="pass it, explore_dataset\\(store, model\\)"):
        no_model.open(no_model.points["clip_id"][0])
    assert isinstance(av.explore_dataset(built, model), av.DatasetExplorer)
    assert isinstance(no_model, DatasetExplorer)
    for height in (-5, 0, 49, "420", 420.0, True):
        with pytest.raises(ValueError, match="height must be a whole number of pixels, at least 50"):
            explore_dataset(built, model, height=height)


def test_a_large_k_is_returned_whole_and_the_gallery_shows_the_best(dx, built, monkeypatch):
    """k above GALLERY_CARDS: every hit comes back and colours the map, but only the best get a card (and a
    crop), the status line says so."""
    import audiovis.widgets.dataset_explorer as module

    monkeypatch.setattr(module, "GALLERY_CARDS", 3)
    cropped = []
    crop = dx._crop_png
    monkeypatch.setattr(dx, "_crop_png", lambda hit, context=0.5: (cropped.append(hit), crop(hit, context))[1])
    cid = dx.points["clip_id"][4]
    dx.open(cid)
    dx.explorer.select([8, 9])
    hits = dx.find_similar(k=40)
    query = built.patch_embeddings(cid, -1)[[8, 9]].astype(np.float32).mean(axis=0)
    pd.testing.assert_frame_equal(hits, built.search_patches(query, 40, -1))
    assert len(hits) == 40 and len(dx._gallery.children) == 3 and len(cropped) == 3
    for card, hit in zip(dx._gallery.children, hits.itertuples(index=False)):
        assert card.children[2].description == f"{hit.time_start:.2f} s · score {hit.score:.3f}"
    assert dx._status.value == "showing the best 3 of 40 hits; all of them are in dx.hits"
    assert set(dx.points.loc[dx.points["similar"] == "hit", "clip_id"]) == set(hits["clip_id"])
    dx.explorer.select([8, 9])
    dx.find_similar(k=2)  # within the gallery: the note goes
    assert dx._status.value == ""


def test_clips_embedded_from_memory_open_from_sources(model, tmp_path):
    from audiovis.datasets import SyntheticEvents

    data = SyntheticEvents(3, seed=5, duration=2.0)
    store = embed_dataset(data, model, tmp_path / "mem", patches=True, progress=False)
    bare = explore_dataset(store, model)
    cid = bare.points["clip_id"][1]
    with pytest.raises(ValueError, match=r"pass the dataset it came from: explore_dataset\(store, model, sources=dataset\)"):
        bare.open(cid)
    dx = explore_dataset(store, model, sources=data)
    explorer = dx.open(cid)
    (ref,) = model.analyze_windows(data[1].audio, windows=[0])
    np.testing.assert_allclose(explorer.analysis.patch_embeddings(-1), ref.patch_embeddings(-1), atol=1e-5)
    np.testing.assert_allclose(explorer.analysis.patch_embeddings(-1).mean(axis=0), store.clip_embeddings(-1)[1],
                               atol=1e-3)


def _bright_row_hz(png: bytes, spec) -> tuple[float, float]:
    """The frequency (Hz) of the crop's brightest pixel row, and how far that row stands above the median row."""
    import io

    from PIL import Image

    rows = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64).mean(axis=1)  # top = highest bin
    y = int(np.argmax(rows))
    return float(spec.bin_to_hz((rows.size - y - 0.5) / rows.size * spec.num_bins)), rows[y] / np.median(rows)


@pytest.mark.parametrize("from_sources", [False, True])
def test_crops_show_the_hit_window_of_a_long_clip(model, tmp_path, monkeypatch, from_sources):
    """A clip of three model windows: faint noise, then a 2 kHz tone in the last window only. A hit's crop shows
    its own time: the tone for a hit in the last window, none in the first. The front end runs on the hit's
    stretch alone: a file is read from just before the hit, never whole."""
    import audiovis.audio as audio_module
    import audiovis.widgets.dataset_explorer as module
    from audiovis.audio import load_audio

    rng = np.random.default_rng(3)
    wav = (0.001 * rng.standard_normal(6 * SR)).astype(np.float32)
    wav[4 * SR:] += tone(2000.0, seconds=2.0, amp=0.3)
    path = tmp_path / "long.wav"
    sf.write(path, wav, SR)
    store = embed_dataset([str(path)], model, tmp_path / "long", patches=True, progress=False)
    starts = [float(v) for v in store.clips["window_starts"][0]]
    assert len(starts) == 3 and starts[0] == 0.0 and 3.9 < starts[2] <= 4.0  # the last window ends at the clip's end
    dx = explore_dataset(store, model, sources=[load_audio(str(path))] if from_sources else None)
    cid = store.clips["clip_id"][0]
    bounds = store.manifest.patch_bounds
    patch = 2 * model.grid.num_time + 9  # a patch in the middle of a window
    t0, t1, f0, f1 = bounds[patch]
    hit = lambda window, start: pd.Series(dict(clip_id=cid, window=window, patch=patch, score=1.0,  # noqa: E731
                                               time_start=start + t0, time_end=start + t1, freq_low=f0,
                                               freq_high=f1))
    reads = []
    real = audio_module.load_audio
    monkeypatch.setattr(audio_module, "load_audio", lambda *a, **k: (reads.append(k), real(*a, **k))[1])
    spec = model.spectrogram(load_audio(wav, SR))
    last = dx._crop_png(hit(2, starts[2]))
    hz, contrast = _bright_row_hz(last, spec)
    assert abs(hz - 2000.0) < 150 and contrast > 2.2, (hz, contrast)  # seen: 1980 Hz, 2.7
    first = dx._crop_png(hit(0, 0.0))
    assert _bright_row_hz(first, spec)[1] < 1.8  # faint noise only, no row stands out (seen: 1.45)
    if from_sources:
        assert reads == [] and list(dx._crop_audio) == [cid]  # cut from the clip given, kept for the next hit
        monkeypatch.setattr(module, "KEPT_CROP_AUDIO_BYTES", 0)
        dx._crop_png(hit(1, starts[1]))
        assert list(dx._crop_audio) == [cid]  # the last clip is always kept
    else:
        span = t1 - t0 + 2 * (0.5 + module._CROP_MARGIN)
        assert [r["offset"] for r in reads] == pytest.approx([starts[2] + t0 - 0.6, max(0.0, t0 - 0.6)])
        assert all(r["duration"] == pytest.approx(span) for r in reads)


def _columns_like(png: bytes, rgb: tuple[int, int, int], *, every_row: bool) -> np.ndarray:
    """Indices of the crop's pixel columns where every pixel (``every_row``) or any pixel is within 12 of ``rgb``."""
    import io

    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int64)
    near = (np.abs(pixels - np.array(rgb)) <= 12).all(axis=2)
    return np.flatnonzero(near.all(axis=0) if every_row else near.any(axis=0))


def test_crops_share_one_time_scale_and_mark_what_lies_outside_the_clip(model, tmp_path):
    """Every crop spans its hit plus half a second each side, so a gallery's cards share one time scale: a hit
    at the clip's very start or end is not stretched over its card. The part of the span outside the clip is
    drawn in one flat colour; a crop inside the clip has none of it."""
    _BOX_RGB, _OUTSIDE_RGB = (255, 200, 0), (52, 58, 94)

    path = tmp_path / "two_seconds.wav"
    sf.write(path, tone(1000.0, seconds=2.0, noise=0.01, seed=1), SR)
    store = embed_dataset([str(path)], model, tmp_path / "store", patches=True, progress=False)
    dx = explore_dataset(store, model)
    bounds, num_time = store.manifest.patch_bounds, model.grid.num_time
    cid, row = store.clips["clip_id"][0], 2

    def crop(column: int) -> tuple[bytes, float, float]:
        patch = row * num_time + column
        t0, t1, f0, f1 = (float(v) for v in bounds[patch])
        hit = pd.Series(dict(clip_id=cid, window=0, patch=patch, score=1.0, time_start=t0, time_end=t1,
                             freq_low=f0, freq_high=f1))
        return dx._crop_png(hit), t0, t1

    pixels_per_second = None
    for column, outside_left, outside_right in [(0, True, False), (num_time // 3, False, False),
                                                (num_time - 1, False, True)]:
        png, t0, t1 = crop(column)
        assert (t0 < 0.5, t1 + 0.5 > 2.0) == (outside_left, outside_right)  # the cases are what they claim
        scale = 180 / (t1 - t0 + 1.0)  # pixels a second, the same for every hit of one patch size
        pixels_per_second = pixels_per_second or scale
        assert scale == pytest.approx(pixels_per_second)
        box = _columns_like(png, _BOX_RGB, every_row=False)
        assert box.max() - box.min() == pytest.approx((t1 - t0) * scale, abs=3)  # not stretched at an edge
        assert (box.min() + box.max()) / 2 == pytest.approx(90, abs=3)  # the hit in the middle of its card
        outside = _columns_like(png, _OUTSIDE_RGB, every_row=True)
        left, right = outside[outside < 90], outside[outside >= 90]
        # the clip starts at 0 s and ends at 2 s: the span before and after it is the outside colour
        assert left.size == pytest.approx(max(0.0, 0.5 - t0) * scale, abs=3) if outside_left else left.size == 0
        assert right.size == pytest.approx(max(0.0, t1 + 0.5 - 2.0) * scale, abs=3) if outside_right \
            else right.size == 0


def test_read_ahead_of_patch_vectors_recovers_from_a_failed_read_and_drops_stale_ones(dx, built, monkeypatch):
    """``open`` reads the clip's stored patch vectors in the background: a read that failed is made again by the
    search (not its old error raised for good), and reads queued for clips no longer open are cancelled."""
    import threading

    from audiovis.widgets import dataset_explorer as module

    real = built.patch_embeddings
    gate, failing = threading.Event(), [True]

    def flaky(*args, **kwargs):
        gate.wait(10)
        if failing[0]:
            raise OSError("shard busy")
        return real(*args, **kwargs)

    monkeypatch.setattr(built, "patch_embeddings", flaky)
    ids = list(dx.points["clip_id"])
    dx.open(ids[1])  # its read waits on the gate: the reads queued behind it for ids[2], ids[3] never start
    queued = []
    for cid in ids[2:4]:
        dx.open(cid)
        queued.append(dx._stored[1])
    assert queued[0].cancelled() and not queued[1].cancelled()
    gate.set()
    dx.explorer.select([5, 6])
    with pytest.raises(OSError, match="shard busy"):
        dx.find_similar(k=3)
    failing[0] = False  # the shard is readable again: the next search reads again
    hits = dx.find_similar(k=3)
    query = real(ids[3], -1)[[5, 6]].astype(np.float32).mean(axis=0)
    pd.testing.assert_frame_equal(hits, built.search_patches(query, 3, -1))
    assert module._reader() is module._reader()  # one reading thread for every explorer


def test_opening_a_clip_reads_the_patch_index_ahead_once(model, built, tmp_path, monkeypatch):
    """``open`` also starts the store's patch index on the reading thread (not before: browsing the map alone
    does not load it); the search then uses it, and two threads asking at once build it once."""
    import shutil
    import threading

    from audiovis.store import open_store

    shutil.copytree(built.path, tmp_path / "store")
    store = open_store(tmp_path / "store")  # a fresh store object: no index kept yet
    made, entered, release = [], threading.Event(), threading.Event()
    real = store._new_patch_index

    def counted(*args, **kwargs):
        made.append(threading.current_thread().name)
        entered.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "_new_patch_index", counted)
    dx = explore_dataset(store, model)
    assert made == [] and store._indexes == {}  # the map alone reads no index
    ids = list(dx.points["clip_id"])
    dx.open(ids[2])
    dx.explorer.select([4, 7])
    assert entered.wait(10)  # the reading thread is building the index
    searching = threading.Thread(target=lambda: dx.find_similar(k=4), name="search")
    searching.start()  # asks for the index while the reading thread builds it: waits for that one
    searching.join(0.3)
    assert searching.is_alive()
    release.set()
    searching.join(20)
    assert not searching.is_alive()
    assert len(made) == 1 and made[0].startswith("audiovis-dataset-explorer")  # built once, on the reading thread
    assert dx._index_ahead.done() and dx._index_ahead.result() is store.patch_index(-1)
    query = store.patch_embeddings(ids[2], -1)[[4, 7]].astype(np.float32).mean(axis=0)
    pd.testing.assert_frame_equal(dx.hits, store.search_patches(query, 4, -1))
    dx.open(ids[3])  # a later clip reuses the index made ahead
    assert len(made) == 1


def test_table_lists_every_source_of_a_clip_id(model, tmp_path):
    """Two identical files are one clip id (a hash of the samples): selecting it lists both sources."""
    paths = []
    for i, f in enumerate([300.0, 300.0, 2000.0, 900.0]):
        path = tmp_path / f"t{i}.wav"
        sf.write(path, tone(f, seconds=2.0, noise=0.01, seed=0 if i < 2 else i), SR)
        paths.append(str(path))
    store = embed_dataset(paths, model, tmp_path / "store", progress=False)
    ids = list(store.clips["clip_id"])
    assert ids[0] == ids[1] and len(set(ids)) == 3
    dx = explore_dataset(store, model)
    dx.selection = [ids[0]]
    assert "2 selected clip(s)" in dx._table.value
    assert paths[0] in dx._table.value and paths[1] in dx._table.value and paths[2] not in dx._table.value
