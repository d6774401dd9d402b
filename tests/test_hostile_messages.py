"""Hostile browser messages, fed to the widgets exactly as the comm delivers them.

State updates go through ``widget.set_state`` (what ``_handle_msg`` calls for ``method: update``) and
custom messages through ``widget._handle_custom_msg`` (``method: custom``); a few go through
``_handle_msg`` itself. For every message: nothing raises, an odd value is ignored or sanitised with a
logged warning, a request is answered with its id (``{"error": ...}`` naming the problem), and the
kernel state stays consistent (checked by :func:`assert_consistent` after every message).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.widgets.viewer import SpectrogramViewer

from .conftest import make_chirp

SR = 16000
NAN, INF = float("nan"), float("inf")


# ---- widgets under attack ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio() -> av.Audio:
    return av.Audio(torch.from_numpy(make_chirp(seconds=3.0))[None], SR)


@pytest.fixture(scope="module")
def spec(audio) -> av.Spectrogram:
    return av.KaldiFbank()(audio)


@pytest.fixture
def viewer(spec, audio) -> SpectrogramViewer:
    return SpectrogramViewer(spec, grid=av.PatchGrid(), audio=audio)


@pytest.fixture(scope="module")
def long_spec(spec) -> av.Spectrogram:
    """9000 frames of noise on the Kaldi axes: served in tiles, 2 levels (9 and 5 tiles)."""
    values = torch.from_numpy(np.random.default_rng(0).standard_normal((128, 9000)).astype(np.float32))
    times = spec.times[0] + np.arange(9000) * spec.hop_seconds
    return dataclasses.replace(spec, values=values, times=times, valid_frames=9000)


@pytest.fixture
def tiled(long_spec) -> SpectrogramViewer:
    viewer = SpectrogramViewer(long_spec, grid=av.PatchGrid(input_shape=(128, 9000)))
    assert viewer._tiles["levels"] == [1, 2]
    return viewer


class Replies(list):
    """Every message the widget sends back (content, buffers)."""


def capture(widget, monkeypatch) -> Replies:
    sent = Replies()
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append((content, buffers or [])))
    return sent


def assert_consistent(viewer: SpectrogramViewer, snapshot: dict) -> None:
    """The invariants the kernel side keeps, whatever the browser sent."""
    grid = viewer.grid
    n = 0 if grid is None else grid.num_patches
    sel = viewer.selected_patches
    assert sel == sorted(set(sel)) and all(type(p) is int and 0 <= p < n for p in sel), sel[:10]
    assert viewer.hovered_patch is None or (type(viewer.hovered_patch) is int and 0 <= viewer.hovered_patch < n)
    t0, t1 = viewer.time_range
    lo, hi = viewer.full_time_range
    assert math.isfinite(t0) and math.isfinite(t1) and lo <= t0 < t1 <= hi
    assert math.isfinite(viewer.playhead) and 0 <= viewer.playhead <= viewer._duration() + 1e-9
    for key, value in snapshot.items():  # kernel-owned state is untouched
        current = getattr(viewer, key)
        if isinstance(value, np.ndarray):
            assert current is value, key
        else:
            assert current == value, key


def kernel_owned(viewer: SpectrogramViewer) -> dict:
    keys = ["_spectrogram", "_meta", "_grid", "_audio_info", "_tiles", "masked_patches", "heatmap", "embeddings",
            "colormap", "vmin", "vmax", "height", "show_grid", "hover_mode"]
    if hasattr(viewer, "_windows"):
        keys += ["_windows", "_grid_offset", "window"]
    return {k: getattr(viewer, k) for k in keys}


# ---- state updates (method "update") -------------------------------------------------------------

HUGE = 10**400  # JSON carries integers of any size; Python's json parses them exactly

# (id, state from the browser, selected_patches afterwards given a prior selection [5, 7] (None: unchanged);
#  every other two-way trait keeps its value). Each ignored or dropped value is logged, except where noted.
STATE_CATALOGUE = [
    ("negative index", {"selected_patches": [-1, 3]}, [3]),
    ("out-of-range index", {"selected_patches": [1212, 4]}, [4]),
    ("huge int index", {"selected_patches": [HUGE, 9]}, [9]),
    ("NaN index", {"selected_patches": [NAN, 2]}, [2]),
    ("Inf index", {"selected_patches": [INF, -INF, 2]}, [2]),
    ("fractional index", {"selected_patches": [2.5, 3.0]}, [3]),
    ("bool index", {"selected_patches": [True, False, 6]}, [6]),
    ("string index", {"selected_patches": ["7", "x", 8]}, [8]),
    ("null / nested / dict index", {"selected_patches": [None, [1], {"i": 1}, 10]}, [10]),
    ("duplicates, unsorted", {"selected_patches": [9, 1, 9, 1, 0]}, [0, 1, 9]),
    ("1e6 indices", {"selected_patches": list(range(1_000_000))}, list(range(1212))),
    ("1e6 copies of one index", {"selected_patches": [11] * 1_000_000}, [11]),
    ("1e6 out-of-range indices", {"selected_patches": list(range(-1_000_000, 0))}, []),
    ("selection not a list (str)", {"selected_patches": "0,1,2"}, None),
    ("selection not a list (int)", {"selected_patches": 3}, None),
    ("selection not a list (dict)", {"selected_patches": {"0": 1}}, None),
    ("selection null", {"selected_patches": None}, None),
    ("hovered out of range", {"hovered_patch": 5000}, None),
    ("hovered negative", {"hovered_patch": -1}, None),
    ("hovered huge int", {"hovered_patch": HUGE}, None),
    ("hovered string", {"hovered_patch": "3"}, None),
    ("hovered float", {"hovered_patch": 2.5}, None),
    ("hovered NaN", {"hovered_patch": NAN}, None),
    ("hovered bool", {"hovered_patch": True}, None),
    ("hovered list", {"hovered_patch": [1]}, None),
    ("time_range NaN", {"time_range": [NAN, NAN]}, None),
    ("time_range reversed", {"time_range": [2.0, 1.0]}, None),
    ("time_range strings", {"time_range": ["0", "1"]}, None),
    ("time_range string", {"time_range": "12"}, None),
    ("time_range one number", {"time_range": [1.0]}, None),
    ("time_range three numbers", {"time_range": [0.0, 1.0, 2.0]}, None),
    ("time_range scalar", {"time_range": 7}, None),
    ("time_range null", {"time_range": None}, None),
    ("time_range huge ints", {"time_range": [-HUGE, HUGE]}, None),
    ("time_range outside the clip", {"time_range": [500.0, 600.0]}, None),
    ("time_range bools", {"time_range": [False, True]}, None),
    ("playhead NaN", {"playhead": NAN}, None),
    ("playhead Inf", {"playhead": INF}, None),
    ("playhead string", {"playhead": "1.5"}, None),
    ("playhead list", {"playhead": [1.0]}, None),
    ("playhead bool", {"playhead": True}, None),
    ("playhead huge int", {"playhead": HUGE}, None),
    ("kernel-owned _meta", {"_meta": {}}, None),
    ("kernel-owned _grid", {"_grid": {"grid_shape": [1, 1]}}, None),
    ("kernel-owned _spectrogram", {"_spectrogram": {"view": b"\x00", "dtype": "uint8", "shape": [1, 1]}}, None),
    ("kernel-owned _audio_info", {"_audio_info": None}, None),
    ("kernel-owned _tiles", {"_tiles": {"levels": [-1]}}, None),
    ("Py -> JS heatmap", {"heatmap": {"view": b"\x00" * 4, "dtype": "float32", "shape": [1]}}, None),
    ("Py -> JS masked_patches", {"masked_patches": [1, 2]}, None),
    ("Py -> JS vmin above vmax", {"vmin": 1e9}, None),
    ("Py -> JS colormap", {"colormap": "<script>"}, None),
    ("Py -> JS height", {"height": -5}, None),
    ("unknown key", {"no_such_trait": 1}, None),
    ("non-string key", {3: 4}, None),
    ("empty update", {}, None),
]


#: Values that are valid, only duplicated or unsorted: sorted without a warning.
QUIETLY_SANITISED = {"duplicates, unsorted", "1e6 copies of one index", "empty update"}


@pytest.mark.parametrize("name, state, expected", STATE_CATALOGUE, ids=[c[0] for c in STATE_CATALOGUE])
def test_hostile_state_update(viewer, caplog, monkeypatch, name, state, expected):
    """One catalogue entry: nothing raises, the state stays consistent, the oddity is logged."""
    viewer.select([5, 7])
    viewer.hovered_patch = 12
    viewer.time_range = (0.5, 2.0)
    viewer.playhead = 1.0
    before = {k: getattr(viewer, k) for k in ("selected_patches", "hovered_patch", "time_range", "playhead")}
    snapshot = kernel_owned(viewer)
    resent: list[str] = []
    monkeypatch.setattr(viewer, "send_state", lambda key=None: resent.append(key))
    caplog.set_level(logging.WARNING)
    viewer.set_state(state)
    assert viewer.selected_patches == (before["selected_patches"] if expected is None else expected)
    for key in ("hovered_patch", "time_range", "playhead"):
        assert getattr(viewer, key) == before[key], key
    assert_consistent(viewer, snapshot)
    if name not in QUIETLY_SANITISED:
        assert "from the browser" in caplog.text
    # A value rejected outright is sent back, so every view returns to the kernel's value.
    rejected = [k for k in state if isinstance(k, str) and k in viewer.keys and expected is None]
    assert resent == rejected


def test_sanitised_values_that_are_kept(viewer):
    viewer.set_state({"time_range": [-100, 1e9]})  # clamped to the clip
    assert viewer.time_range == viewer.full_time_range
    viewer.set_state({"time_range": [1, 2]})  # integers are seconds too
    assert viewer.time_range == (1.0, 2.0)
    viewer.set_state({"playhead": 1e9})
    assert viewer.playhead == pytest.approx(3.0)
    viewer.set_state({"playhead": -4})
    assert viewer.playhead == 0.0
    viewer.set_state({"selected_patches": [3.0, 1]})  # integer-valued floats are indices
    assert viewer.selected_patches == [1, 3]


def test_a_bad_key_does_not_block_the_good_keys_of_the_same_update(viewer):
    viewer.set_state({"_meta": {}, "selected_patches": [4, -1], "hovered_patch": "x", "time_range": [0.25, 1.0]})
    assert viewer.selected_patches == [4] and viewer.hovered_patch is None and viewer.time_range == (0.25, 1.0)
    assert viewer._meta["n_frames"] == 1024


def test_a_viewer_without_grid_drops_every_index(spec, caplog):
    plain = SpectrogramViewer(spec)
    caplog.set_level(logging.WARNING)
    plain.set_state({"selected_patches": [0, 1], "hovered_patch": 0})
    assert plain.selected_patches == [] and plain.hovered_patch is None
    assert "selected_patches" in caplog.text and "hovered_patch" in caplog.text


def test_a_state_update_that_is_not_a_dict(viewer, caplog):
    caplog.set_level(logging.WARNING)
    for junk in (None, [1, 2], "selected_patches"):
        viewer.set_state(junk)
    assert caplog.text.count("not a dict") == 3
    assert_consistent(viewer, kernel_owned(viewer))


def test_python_side_huge_index_is_a_trait_error(viewer):
    import traitlets

    with pytest.raises(traitlets.TraitError, match="outside 0..1211"):
        viewer.select([HUGE])
    with pytest.raises(traitlets.TraitError, match="outside 0..1211"):
        viewer.hovered_patch = HUGE
    assert viewer.hovered_patch is None and viewer.selected_patches == []


# ---- custom messages (method "custom") -----------------------------------------------------------

# (id, message, the text the error must contain); every one of them gets exactly one reply with its id.
REQUEST_CATALOGUE = [
    ("not a dict (list)", ["audio", 0], "integer id"),
    ("not a dict (str)", "audio", "integer id"),
    ("not a dict (null)", None, "integer id"),
    ("not a dict (number)", 3, "integer id"),
    ("missing id", {"type": "audio", "chunk": 0}, "integer id"),
    ("string id", {"type": "audio", "chunk": 0, "id": "1"}, "integer id"),
    ("float id", {"type": "audio", "chunk": 0, "id": 1.5}, "integer id"),
    ("bool id", {"type": "audio", "chunk": 0, "id": True}, "integer id"),
    ("null id", {"type": "audio", "chunk": 0, "id": None}, "integer id"),
    ("unknown type", {"type": "delete_everything", "id": 1}, "unknown request type 'delete_everything'"),
    ("missing type", {"id": 2}, "unknown request type None"),
    ("list type", {"type": ["audio"], "id": 3}, "unknown request type ['audio']"),
    ("audio chunk negative", {"type": "audio", "id": 4, "chunk": -1}, "audio chunk must be an integer in 0..0, got -1"),
    ("audio chunk out of range", {"type": "audio", "id": 5, "chunk": 1}, "got 1"),
    ("audio chunk huge", {"type": "audio", "id": 6, "chunk": HUGE}, "audio chunk must be an integer"),
    ("audio chunk string", {"type": "audio", "id": 7, "chunk": "0"}, "got '0'"),
    ("audio chunk float", {"type": "audio", "id": 8, "chunk": 0.0}, "got 0.0"),
    ("audio chunk NaN", {"type": "audio", "id": 9, "chunk": NAN}, "got nan"),
    ("audio chunk bool", {"type": "audio", "id": 10, "chunk": False}, "got False"),
    ("audio chunk missing", {"type": "audio", "id": 11}, "got None"),
    ("tile on a short spectrogram", {"type": "tile", "id": 12, "level": 0, "index": 0}, "no tiles"),
    # "▶ patches": the sound of the selected patches
    ("patch audio without patches", {"type": "patch_audio", "id": 13}, "non-empty list of patch indices, got 'None'"),
    ("patch audio of a number", {"type": "patch_audio", "id": 14, "patches": 5}, "got '5'"),
    ("patch audio of none", {"type": "patch_audio", "id": 15, "patches": []}, "got '[]'"),
    ("patch audio nested", {"type": "patch_audio", "id": 16, "patches": [[1]]}, "got '[[1]]'"),
    ("patch audio of a dict", {"type": "patch_audio", "id": 17, "patches": {"0": 1}}, "non-empty list"),
    ("patch audio past the grid", {"type": "patch_audio", "id": 18, "patches": [1212]}, "patch index 1212 outside 0..1211"),
    ("patch audio negative", {"type": "patch_audio", "id": 19, "patches": [-1]}, "patch index -1 outside 0..1211"),
    ("patch audio huge", {"type": "patch_audio", "id": 20, "patches": [HUGE]}, "outside 0..1211"),
    ("patch audio float", {"type": "patch_audio", "id": 21, "patches": [1.5]}, "patch indices must be integers, got 1.5"),
    ("patch audio NaN", {"type": "patch_audio", "id": 22, "patches": [NAN]}, "must be integers, got nan"),
    ("patch audio string", {"type": "patch_audio", "id": 23, "patches": ["3"]}, "must be integers, got '3'"),
    ("patch audio null", {"type": "patch_audio", "id": 24, "patches": [None]}, "must be integers, got None"),
    ("patch audio more than the grid", {"type": "patch_audio", "id": 25, "patches": list(range(2000))}, "non-empty list"),
]


@pytest.mark.parametrize("name, message, error", REQUEST_CATALOGUE, ids=[c[0] for c in REQUEST_CATALOGUE])
def test_hostile_request(viewer, monkeypatch, caplog, name, message, error):
    sent = capture(viewer, monkeypatch)
    snapshot = kernel_owned(viewer)
    caplog.set_level(logging.WARNING)
    viewer._handle_custom_msg(message, [memoryview(b"unexpected buffer")])
    (content, buffers), = sent
    assert set(content) == {"id", "error"} and buffers == []
    assert content["id"] == (message.get("id") if isinstance(message, dict) else None)
    assert error in content["error"], content["error"]
    assert "bad request from the browser" in caplog.text
    assert_consistent(viewer, snapshot)


def test_audio_request_on_a_viewer_without_audio(spec, monkeypatch):
    plain = SpectrogramViewer(spec)
    sent = capture(plain, monkeypatch)
    plain._handle_custom_msg({"type": "audio", "id": 1, "chunk": 0}, [])
    assert sent == [({"id": 1, "error": "this viewer has no audio"}, [])]


TILE_CATALOGUE = [
    ("negative level", {"level": -1, "index": 0}, "tile level must be an integer in 0..1, got -1"),
    ("level too high", {"level": 2, "index": 0}, "tile level must be an integer in 0..1, got 2"),
    ("string level", {"level": "0", "index": 0}, "got '0'"),
    ("float level", {"level": 0.0, "index": 0}, "got 0.0"),
    ("bool level", {"level": True, "index": 0}, "got True"),
    ("null level", {"level": None, "index": 0}, "got None"),
    ("missing level", {"index": 0}, "tile level"),
    ("negative index", {"level": 0, "index": -1}, "tile index must be an integer in 0..8, got -1"),
    ("huge index", {"level": 0, "index": 10**12}, "got 1000000000000"),
    ("huge int index", {"level": 1, "index": HUGE}, "tile index must be an integer in 0..4"),
    ("NaN index", {"level": 0, "index": NAN}, "got nan"),
    ("range instead of index", {"level": 0, "index": [0, 10**9]}, "got [0, 1000000000]"),
    ("missing index", {"level": 0}, "tile index"),
]


@pytest.mark.parametrize("name, fields, error", TILE_CATALOGUE, ids=[c[0] for c in TILE_CATALOGUE])
def test_malformed_tile_request(tiled, monkeypatch, name, fields, error):
    sent = capture(tiled, monkeypatch)
    snapshot = kernel_owned(tiled)
    tiled._handle_custom_msg({"type": "tile", "id": 77, **fields}, [])
    (content, buffers), = sent
    assert content == {"id": 77, "error": content["error"]} and buffers == []
    assert error in content["error"], content["error"]
    assert_consistent(tiled, snapshot)
    # ... and the next good request is still answered with its tile.
    tiled._handle_custom_msg({"type": "tile", "id": 78, "level": 0, "index": 5}, [])
    good, buffers = sent[-1]
    assert good["id"] == 78 and "error" not in good and good["start_frame"] == 5 * 1024
    assert buffers[0].nbytes == 128 * 1024


def test_through_the_comm_message_handler(viewer, monkeypatch, caplog):
    """``_handle_msg`` is what the comm calls; its own guard would only log, so nothing may reach it."""
    sent = capture(viewer, monkeypatch)
    caplog.set_level(logging.DEBUG)

    def msg(data: dict, buffers: list | None = None) -> dict:
        return {"content": {"data": data}, "buffers": buffers or []}

    viewer._handle_msg(msg({"method": "update", "state": {"selected_patches": [1, 99999, "x"]}, "buffer_paths": []}))
    viewer._handle_msg(msg({"method": "update", "state": {"_spectrogram": {"dtype": "uint8", "shape": [9, 9]}},
                            "buffer_paths": [["_spectrogram", "view"]]}, [memoryview(b"\x01\x02")]))
    viewer._handle_msg(msg({"method": "custom", "content": {"type": "tile", "id": 5, "level": "x"}}))
    viewer._handle_msg(msg({"method": "custom", "content": {"type": "audio", "id": 6, "chunk": 0}}))
    assert viewer.selected_patches == [1]
    assert viewer._spectrogram.shape == (128, 1024)
    assert [c["id"] for c, _ in sent] == [5, 6] and "error" in sent[0][0] and "error" not in sent[1][0]
    assert "Exception in widget method" not in caplog.text


# ---- LongViewer ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_viewer():
    """20 s of noise and a tone under a one-layer AST: two windows, served in tiles."""
    from audiovis.widgets import tiles, viewer as viewer_module
    from audiovis.widgets.longview import LongViewer

    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal(20 * SR)).astype(np.float32)
    x[11 * SR: 12 * SR] += (0.5 * np.sin(2 * np.pi * 1500 * np.arange(SR) / SR)).astype(np.float32)
    torch.manual_seed(0)
    config = av.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          num_labels=3, labels=["<b>bold</b>", "b", "c"])
    model = av.ASTModel(config).eval()
    with pytest.MonkeyPatch.context() as mp:  # a smaller overview than the default, so 20 s is tiled
        mp.setattr(viewer_module, "tile_server_for",
                   lambda values, precision="uint8": tiles.TileServer(values, (float(values.min()), float(values.max())),
                                                                      precision=precision, max_columns=512))
        lv = LongViewer(av.load_audio(x, SR), model)
    assert len(lv.windows) == 2 and lv._tiles is not None
    return lv


def test_long_viewer_hostile_state_and_requests(long_viewer, monkeypatch, caplog):
    lv = long_viewer
    sent = capture(lv, monkeypatch)
    caplog.set_level(logging.WARNING)
    lv.show_window(1)
    # the window rule: the last window ends at the recording's end (1998 frames), overlapping the first
    assert lv.window == 1 and lv._grid_offset == 974 == lv.spectrogram.num_frames - 1024
    lv.select([3])
    snapshot = kernel_owned(lv)
    for state in ({"window": 99}, {"window": None}, {"_grid_offset": -5}, {"_windows": []},
                  {"selected_patches": [HUGE, -1, 1211, 1212]}, {"hovered_patch": 1212},
                  {"time_range": [NAN, 1.0]}, {"time_range": "window 2"}):
        lv.set_state(state)
        snapshot["selected_patches"] = lv.selected_patches
        assert_consistent(lv, {k: v for k, v in snapshot.items()})
    assert lv.selected_patches == [1211] and lv.window == 1 and lv.analysis is not None
    for message in ({"type": "tile", "id": 1, "level": -1, "index": 0}, {"type": "tile", "id": 2, "level": 0, "index": 10**9},
                    {"type": "audio", "id": 3, "chunk": 99}, {"type": "window", "id": 4, "index": 0}, {"id": 5}):
        lv._handle_custom_msg(message, [])
    errors = [c["error"] for c, _ in sent]
    assert [c["id"] for c, _ in sent] == [1, 2, 3, 4, 5]
    assert "tile level" in errors[0] and "tile index" in errors[1] and "audio chunk" in errors[2]
    assert "unknown request type 'window'" in errors[3] and "integer id" not in errors[4]
    # A browser zoom out is a legitimate update: the grid goes, the selection with it.
    lv.set_state({"time_range": list(lv.full_time_range)})
    assert lv.window is None and lv._grid is None and lv.selected_patches == []
    lv.set_state({"selected_patches": [0, 1]})
    assert lv.selected_patches == []


def test_false_does_not_stand_in_for_patch_zero(viewer):
    """False == 0 in Python, so traitlets alone would keep a bool as the hovered patch."""
    viewer.hovered_patch = 0
    viewer.set_state({"hovered_patch": False})
    assert viewer.hovered_patch == 0 and type(viewer.hovered_patch) is int
    viewer.select([0])
    viewer.set_state({"selected_patches": [False, 0.0]})
    assert viewer.selected_patches == [0] and type(viewer.selected_patches[0]) is int


# ---- Explorer: the viewer's messages and the Bokeh selection bridge -------------------------------


@pytest.fixture(scope="module")
def explorer():
    from audiovis.widgets.explorer import Explorer

    torch.manual_seed(0)
    config = av.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          max_length=200, num_labels=3, multi_label=False)
    model = av.ASTModel(config).eval()
    clip = av.load_audio(make_chirp(seconds=2.0), SR)
    ex = Explorer(model.analyze(clip), audio=clip)
    ex.embedding_plot.widget.send = lambda *a, **k: None
    ex.viewer.send = lambda *a, **k: None
    return ex


def bokeh_event(ex, content) -> None:
    """A custom message to jupyter_bokeh's widget, as its comm delivers it."""
    widget = ex.embedding_plot.widget
    widget._handle_custom_msg(content, [])


def points(ex, indices) -> dict:
    selected = ex.embedding_plot.source.selected
    return {"event": "jsevent", "kind": "ModelChanged", "model": {"id": selected.id}, "attr": "indices", "new": indices}


def assert_explorer_consistent(ex, expected: list[int]) -> None:
    n = ex.analysis.grid.num_patches
    assert sorted(ex.selection) == expected and all(0 <= p < n for p in ex.selection)
    assert ex.viewer.selected_patches == expected
    assert ex.embedding_plot.selected == expected


def test_explorer_survives_hostile_plot_and_viewer_messages(explorer, caplog):
    ex = explorer
    n = ex.analysis.grid.num_patches
    caplog.set_level(logging.WARNING)
    ex.select([4, 2])
    bokeh_event(ex, points(ex, [3, "x", -1, 10**12, 2.5, None, True]))  # Bokeh's own validation refuses the lot
    assert_explorer_consistent(ex, [2, 4])
    bokeh_event(ex, points(ex, [5, 6, 10**12, -3]))  # valid ints: the bridge keeps those in range
    assert_explorer_consistent(ex, [5, 6])
    caplog.clear()
    bokeh_event(ex, points(ex, list(range(1_000_000))))
    assert_explorer_consistent(ex, list(range(n)))
    assert 1 <= caplog.text.count("ignoring") <= 2  # one per callback run (jupyter_bokeh runs it twice), not a million
    for junk in (points(ex, [float("nan")]), points(ex, [[1]]), points(ex, "junk"), {"event": "jsevent"},
                 {**points(ex, [1]), "model": {"id": "no-such-model"}}, "junk", None, {"event": "bogus"}):
        bokeh_event(ex, junk)
        assert_explorer_consistent(ex, list(range(n)))
    assert "malformed event from the embedding plot" in caplog.text
    ex.viewer.set_state({"selected_patches": [1, n, -1, "7"]})
    assert_explorer_consistent(ex, [1])
    ex.viewer._handle_custom_msg({"type": "tile", "id": 1, "level": -1}, [])
    assert_explorer_consistent(ex, [1])
