"""SpectrogramViewer state without a browser: payloads, traits, validation, messages and to_png."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
import torch
import traitlets

import audiovis as av
from audiovis.errors import ConfigError
from audiovis.rendering.codec import dequantize_uint8
from audiovis.widgets.serializers import array_from_json
from audiovis.widgets.viewer import AUDIO_CHUNK_SAMPLES, SpectrogramViewer

from .conftest import make_chirp

SR = 16000


@pytest.fixture(scope="module")
def audio() -> av.Audio:
    return av.Audio(torch.from_numpy(make_chirp(seconds=3.0))[None], SR)


@pytest.fixture(scope="module")
def ast_spec(audio) -> av.Spectrogram:
    return av.KaldiFbank()(audio)


@pytest.fixture
def viewer(ast_spec, audio) -> SpectrogramViewer:
    return SpectrogramViewer(ast_spec, grid=av.PatchGrid(), audio=audio)


def _state_json_size(state: dict) -> int:
    return len(json.dumps(state, default=lambda v: v.tolist() if isinstance(v, np.ndarray) else str(v)))


def test_state_holds_a_buffer_not_a_list_and_is_10x_smaller_than_json(ast_spec):
    viewer = SpectrogramViewer(ast_spec, grid=av.PatchGrid())
    assert ast_spec.shape == (128, 1024)
    state = viewer.get_state()
    payload = state["_spectrogram"]
    assert isinstance(payload["view"], memoryview)
    assert payload["dtype"] == "uint8" and payload["shape"] == [128, 1024]
    binary = sum(v["view"].nbytes for v in state.values() if isinstance(v, dict) and "view" in v)
    rest = {k: v for k, v in state.items() if not (isinstance(v, dict) and "view" in v)}
    binary += len(json.dumps(rest))
    as_json = len(json.dumps(ast_spec.numpy().tolist()))
    assert binary * 10 <= as_json, (binary, as_json)


def test_payload_decodes_to_the_values_within_half_a_step(ast_spec):
    viewer = SpectrogramViewer(ast_spec)
    state = viewer.get_state()
    codes = array_from_json({**state["_spectrogram"], "view": bytes(state["_spectrogram"]["view"])})
    lo, hi = state["_meta"]["value_range"]
    err = np.abs(dequantize_uint8(codes, (lo, hi)) - ast_spec.numpy())
    assert err.max() <= (hi - lo) / 510 + 1e-5


def test_float32_precision_is_exact(ast_spec):
    viewer = SpectrogramViewer(ast_spec, precision="float32")
    np.testing.assert_array_equal(viewer._spectrogram, ast_spec.numpy())


def test_meta_describes_axes(ast_spec):
    meta = SpectrogramViewer(ast_spec).get_state()["_meta"]
    assert meta["n_bins"] == 128 and meta["n_frames"] == 1024 and meta["frames_per_column"] == 1
    assert meta["frequency_edges"] == pytest.approx(list(ast_spec.frequency_edges))
    assert meta["valid_frames"] == ast_spec.valid_frames < 1024  # 3 s of a 10.24 s input: padding follows
    assert meta["scale"] == "mel" and meta["units"] == "normalized-fbank"


def test_default_value_range_db_spans_80_db(audio):
    spec = av.MelSpectrogram(top_db=None)(audio)
    viewer = SpectrogramViewer(spec)
    assert viewer.vmax == pytest.approx(float(spec.numpy().max()))
    assert viewer.vmax - viewer.vmin == pytest.approx(80.0)
    normalised = SpectrogramViewer(av.KaldiFbank()(audio))
    valid = av.KaldiFbank()(audio).numpy()[:, : normalised.spectrogram.valid_frames]
    assert (normalised.vmin, normalised.vmax) == pytest.approx((valid.min(), valid.max()))


def test_long_recording_is_pooled_under_the_message_limit(monkeypatch, ast_spec):
    import audiovis.widgets.viewer as viewer_module

    monkeypatch.setattr(viewer_module, "MAX_MESSAGE_BYTES", 40_000)
    viewer = SpectrogramViewer(ast_spec)
    fpc = viewer._meta["frames_per_column"]
    assert fpc == 4 and viewer._spectrogram.shape == (128, 256)
    assert viewer._spectrogram.nbytes <= 40_000
    # a pooled column holds the max of its frames
    lo, hi = viewer._meta["value_range"]
    pooled = dequantize_uint8(viewer._spectrogram, (lo, hi))
    np.testing.assert_allclose(pooled[:, 3], ast_spec.numpy()[:, 12:16].max(axis=1), atol=(hi - lo) / 510 + 1e-5)


def test_grid_must_fit_the_spectrogram(ast_spec):
    with pytest.raises(ConfigError, match=r"input_shape \(128, 512\).*\(128, 1024\)"):
        SpectrogramViewer(ast_spec, grid=av.PatchGrid(input_shape=(128, 512)))
    with pytest.raises(TypeError, match="Spectrogram"):
        SpectrogramViewer(np.zeros((128, 1024)))
    with pytest.raises(ConfigError, match="precision"):
        SpectrogramViewer(ast_spec, precision="int8")


def test_select_and_clear(viewer):
    viewer.select([5, 3, 5])
    assert viewer.selected_patches == [3, 5]
    viewer.select(467)
    assert viewer.selected_patches == [467]
    viewer.clear_selection()
    assert viewer.selected_patches == []


@pytest.mark.parametrize("bad, message", [([1212], "outside 0..1211"), ([-1], "outside"), ([1.5], "integers"), (["a"], "integers")])
def test_python_side_selection_errors(viewer, bad, message):
    with pytest.raises(traitlets.TraitError, match=message):
        viewer.select(bad)
    assert viewer.selected_patches == []


def test_no_grid_means_no_patch_features(ast_spec):
    viewer = SpectrogramViewer(ast_spec)
    assert viewer.get_state()["_grid"] is None
    with pytest.raises(traitlets.TraitError, match="no patch grid"):
        viewer.select([1])
    with pytest.raises(traitlets.TraitError, match="no patch grid"):
        viewer.set_heatmap(np.zeros(1212))


def test_trait_validation(viewer):
    with pytest.raises(traitlets.TraitError):
        viewer.colormap = "jet"
    for name in ("magma", "viridis", "inferno", "gray"):
        viewer.colormap = name
    with pytest.raises(traitlets.TraitError):
        viewer.heatmap_opacity = 1.5
    with pytest.raises(traitlets.TraitError, match="vmin >= vmax"):
        viewer.vmin = viewer.vmax + 1
    with viewer.hold_trait_notifications():
        viewer.vmin, viewer.vmax = 10.0, 20.0
    assert (viewer.vmin, viewer.vmax) == (10.0, 20.0)
    with pytest.raises(traitlets.TraitError, match="finite"):
        viewer.vmax = float("nan")
    with pytest.raises(traitlets.TraitError, match="start < end"):
        viewer.time_range = (2.0, 1.0)
    viewer.time_range = (-5.0, 1.0)
    assert viewer.time_range == pytest.approx((viewer.full_time_range[0], 1.0))
    with pytest.raises(traitlets.TraitError, match="playhead"):
        viewer.playhead = -1.0
    viewer.playhead = 1.25
    with pytest.raises(traitlets.TraitError, match="outside"):
        viewer.hovered_patch = 5000


def test_set_heatmap(viewer):
    values = np.arange(1212, dtype=np.float64).reshape(12, 101)
    viewer.set_heatmap(values, colormap="inferno", opacity=0.3, vmin=0, vmax=100, label="attention")
    assert viewer.heatmap.dtype == np.float32 and viewer.heatmap.shape == (1212,)
    np.testing.assert_array_equal(viewer.heatmap, values.ravel())
    assert (viewer.heatmap_colormap, viewer.heatmap_opacity, viewer.heatmap_range, viewer.heatmap_label) == ("inferno", 0.3, (0.0, 100.0), "attention")
    assert viewer.get_state()["heatmap"]["dtype"] == "float32"
    viewer.set_heatmap(torch.ones(1212))
    assert viewer.heatmap_range is None
    viewer.set_heatmap(None)
    assert viewer.heatmap is None and viewer.get_state()["heatmap"] is None
    with pytest.raises(traitlets.TraitError, match="1212 values"):
        viewer.set_heatmap(np.zeros(100))


def test_embeddings_go_as_float16(viewer):
    emb = np.random.default_rng(0).normal(size=(1212, 8))
    viewer.set_embeddings(emb)
    state = viewer.get_state()
    assert state["embeddings"]["dtype"] == "float16" and state["embeddings"]["shape"] == [1212, 8]
    assert viewer.hover_mode == "similarity"
    with pytest.raises(traitlets.TraitError, match=r"\(1212, dim\)"):
        viewer.set_embeddings(np.zeros((10, 8)))


def test_browser_values_outside_the_grid_are_ignored_with_a_warning(viewer, caplog):
    caplog.set_level(logging.WARNING, logger="audiovis.widgets.viewer")
    viewer.set_state({"selected_patches": [3, 99999, -2, "x", 4]})
    assert viewer.selected_patches == [3, 4]
    assert "99999" in caplog.text
    caplog.clear()
    viewer.set_state({"hovered_patch": 5000})
    assert viewer.hovered_patch is None
    assert "hovered_patch" in caplog.text
    viewer.set_state({"hovered_patch": 17, "selected_patches": "nonsense"})
    assert viewer.hovered_patch == 17 and viewer.selected_patches == [3, 4]
    viewer.set_state({"time_range": [1.0, 2.0], "playhead": 1e9})
    assert viewer.time_range == (1.0, 2.0)
    assert viewer.playhead == pytest.approx(3.0)


def _capture_sends(viewer, monkeypatch) -> list:
    sent = []
    monkeypatch.setattr(viewer, "send", lambda content, buffers=None: sent.append((content, buffers)))
    return sent


def test_audio_is_served_as_int16_chunks(viewer, audio, monkeypatch):
    sent = _capture_sends(viewer, monkeypatch)
    info = viewer._audio_info
    assert info == {"sample_rate": SR, "num_samples": audio.num_samples, "duration": pytest.approx(3.0),
                    "start": 0.0, "dtype": "int16", "chunks": 1}
    viewer._on_message(viewer, {"type": "audio", "id": 7, "chunk": 0}, [])
    (content, buffers), = sent
    assert content["id"] == 7 and content["dtype"] == "int16" and "error" not in content
    pcm = np.frombuffer(bytes(buffers[0]), dtype="<i2") / 32767
    np.testing.assert_allclose(pcm, audio.waveform[0].numpy(), atol=1 / 32767)


def test_long_audio_comes_in_several_chunks(ast_spec, monkeypatch):
    n = AUDIO_CHUNK_SAMPLES * 2 + 5
    loud = av.Audio(torch.full((1, n), 2.0), SR)  # peak above 1: sent as float32 so nothing clips
    viewer = SpectrogramViewer(ast_spec, audio=loud)
    sent = _capture_sends(viewer, monkeypatch)
    assert viewer._audio_info["chunks"] == 3 and viewer._audio_info["dtype"] == "float32"
    viewer._on_message(viewer, {"type": "audio", "id": 1, "chunk": 2}, [])
    content, buffers = sent[0]
    assert content["shape"] == [5]
    np.testing.assert_array_equal(np.frombuffer(bytes(buffers[0]), dtype="<f4"), 2.0)


@pytest.mark.parametrize(
    "message, error",
    [
        ({"type": "audio", "id": 1, "chunk": 9}, "chunk"),
        ({"type": "audio", "id": 2, "chunk": "0"}, "chunk"),
        ({"type": "nope", "id": 3}, "unknown request"),
        ({"type": "audio"}, "integer id"),
        ("garbage", "integer id"),
    ],
)
def test_odd_requests_get_an_error_answer(viewer, monkeypatch, message, error):
    sent = _capture_sends(viewer, monkeypatch)
    viewer._on_message(viewer, message, [])
    (content, _), = sent
    assert error in content["error"]
    assert content["id"] == (message.get("id") if isinstance(message, dict) else None)


def test_to_png_colour_bar_label_runs_upwards_beside_its_ticks():
    from PIL import Image, ImageDraw, ImageFont

    from audiovis.rendering.png import _colorbar

    def drawn(label: str) -> np.ndarray:
        canvas = Image.new("RGB", (200, 300), (255, 255, 255))
        _colorbar(canvas, ImageDraw.Draw(canvas), ImageFont.load_default(), 20, 10, 260, "magma", -80.0, 0.0, label)
        return np.asarray(canvas).astype(int)

    ticks_only = drawn("")
    changed = np.argwhere(np.any(drawn("normalised log-mel") != ticks_only, axis=2))
    rows, cols = changed[:, 0], changed[:, 1]
    tick_ink = np.argwhere(np.all(ticks_only < 80, axis=2))
    assert cols.min() > tick_ink[:, 1].max(), "the label sits right of the widest tick label"
    assert rows.min() >= 10 and rows.max() < 270, "within the bar's height, not under the plot"
    assert rows.max() - rows.min() > 4 * (cols.max() - cols.min()), "one line of text running upwards"


def test_to_png_draws_the_current_view(viewer, tmp_path):
    from PIL import Image

    from audiovis.rendering.colormaps import colormap_table

    path = tmp_path / "view.png"
    data = viewer.to_png(path, width=400)
    assert path.read_bytes() == data
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert image.shape[1] == 64 + 400 + 132 and image.shape[0] >= viewer.height
    plot = image[4 : 4 + viewer.height, 64 : 64 + 400]
    assert plot.std() > 10  # a painted spectrogram, not a blank frame

    # selecting patches adds the selection colour inside their stride cells
    viewer.show_grid = False
    before = np.asarray(Image.open(io.BytesIO(viewer.to_png(width=400))).convert("RGB")).astype(int)
    viewer.select([4 * 101 + 63])
    after = np.asarray(Image.open(io.BytesIO(viewer.to_png(width=400))).convert("RGB")).astype(int)
    changed = np.argwhere(np.any(before != after, axis=2))
    x = (changed[:, 1] - 64) / 400 * 1024  # frames
    y = 128 - (changed[:, 0] - 4) / viewer.height * 128  # bins
    assert changed.size and x.min() >= 629 and x.max() <= 641 and y.min() >= 39 and y.max() <= 51

    # zooming in changes the time axis: the view covers 1 s
    viewer.time_range = (1.0, 2.0)
    zoomed = viewer.to_png(width=400)
    assert zoomed != data
    # ... and shows exactly frames 1-2 s: each pixel the colour of the frame and bin under its centre,
    # from the spectrogram's own values (the payload's 8-bit codes may move a colour by one step)
    spec = viewer.spectrogram
    table = colormap_table(viewer.colormap).astype(int)
    index_of = {tuple(rgb): i for i, rgb in enumerate(table)}
    assert len(index_of) == 256  # every colour names one level
    shown = np.asarray(Image.open(io.BytesIO(zoomed)).convert("RGB")).astype(int)[4 : 4 + viewer.height, 64 : 64 + 400]
    f0, f1 = spec.time_to_frame(np.array([1.0, 2.0]))
    frames = np.floor(f0 + (np.arange(400) + 0.5) * (f1 - f0) / 400).astype(int)
    bins = np.floor((viewer.height - 1 - np.arange(viewer.height) + 0.5) * spec.num_bins / viewer.height).astype(int)
    values = spec.numpy()[bins][:, frames].astype(np.float64)
    expected = np.clip(np.floor((values - viewer.vmin) / (viewer.vmax - viewer.vmin) * 255 + 0.5), 0, 255)
    got = np.array([[index_of.get(tuple(px), -99) for px in row] for row in shown])
    assert np.abs(got - expected).max() <= 1
    assert set(frames) == set(range(int(f0), int(np.ceil(f1))))  # 1 s of 10 ms frames, the end ones in part
    with pytest.raises(ValueError, match="width"):
        viewer.to_png(width=3)


def test_to_png_greys_out_masked_patches(viewer):
    """Pruned patches (``masked_patches``) are drawn greyed: their stride cell blends 75 % towards grey."""
    from PIL import Image

    def plot() -> np.ndarray:
        image = np.asarray(Image.open(io.BytesIO(viewer.to_png(width=1024))).convert("RGB")).astype(float)
        return image[4 : 4 + viewer.height, 64 : 64 + 1024]

    viewer.show_grid = False
    before = plot()
    patch = 4 * 101 + 20  # row 4, col 20: stride cell frames [200, 210), bins [40, 50) - inside the chirp's 3 s
    viewer.masked_patches = [patch]
    after = plot()
    scale_y = viewer.height / 128
    x0, x1 = 200, 210  # 1 px per frame
    y0, y1 = round(viewer.height - 50 * scale_y), round(viewer.height - 40 * scale_y)
    inside = (slice(y0 + 1, y1 - 1), slice(x0 + 1, x1 - 1))
    cell_before, cell_after = before[inside], after[inside]
    assert cell_before.size > 100

    # every pixel of the cell is the spectrogram colour blended 75 % towards grey (110, 110, 110)
    np.testing.assert_allclose(cell_after, 0.25 * cell_before + 0.75 * 110, atol=2.0)
    saturation = lambda px: px.max(axis=-1) - px.min(axis=-1)  # noqa: E731
    assert saturation(cell_before).mean() > 40, "the test patch should sit on coloured spectrogram pixels"
    assert saturation(cell_after).max() <= 0.3 * saturation(cell_before).max() + 1
    # and nothing else changes
    changed = np.any(after != before, axis=2)
    near = np.zeros_like(changed)
    near[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = True
    assert changed[inside].all() and not changed[~near].any()


def test_a_time_range_from_the_browser_is_not_sent_back(viewer):
    """During a drag the browser sends a window per pointer move: the kernel must only echo it (which the
    front end ignores while newer values are pending), never send it back as an update, which would
    revert the view to an older window mid-drag."""
    sent = []
    viewer._send = lambda msg, buffers=None: sent.append(msg)
    viewer.set_state({"time_range": [0.5, 1.5]})
    assert viewer.time_range == (0.5, 1.5)
    assert "update" not in [m["method"] for m in sent if "time_range" in m.get("state", {})]
