"""Level of detail, kernel side: the max-pooled overview and the tile request/response protocol."""

from __future__ import annotations

import numpy as np
import pytest

import audiovis as av
from audiovis.rendering.codec import dequantize_uint8
from audiovis.widgets.tiles import MAX_MESSAGE_BYTES, OVERVIEW_COLUMNS, TileServer, overview_factor


def _click_recording(minutes: float, click_at: float, sr: int = 16000) -> np.ndarray:
    """Quiet noise with one 20 ms click (a 3 kHz burst) at ``click_at`` seconds."""
    rng = np.random.default_rng(3)
    x = (1e-3 * rng.standard_normal(int(minutes * 60 * sr))).astype(np.float32)
    start, n = int(click_at * sr), int(0.020 * sr)
    x[start: start + n] += (0.8 * np.sin(2 * np.pi * 3000 * np.arange(n) / sr)).astype(np.float32)
    return x


def test_overview_max_pooling_keeps_a_20ms_click_visible():
    sr, click_at = 16000, 377.0
    spec = av.MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=160, n_mels=128)(
        av.load_audio(_click_recording(10, click_at), sr))
    values = spec.numpy()
    lo, hi = float(values.min()), float(values.max())
    server = TileServer(values, (lo, hi))
    fpc = server.frames_per_column
    overview = server.overview()
    assert overview.shape == (128, -(-spec.num_frames // fpc)) and overview.shape[1] <= OVERVIEW_COLUMNS
    assert fpc >= 10  # the click covers ~2 of the frames each column stands for

    column = int(spec.time_to_frame(click_at + 0.010)) // fpc
    band = int(spec.hz_to_bin(3000.0))
    shown = dequantize_uint8(overview, (lo, hi))[band, column]
    background = float(np.median(values[band]))
    # Reference: the maximum over the column's frames, taken directly from the spectrogram.
    expected = values[band, column * fpc:(column + 1) * fpc].max()
    assert abs(shown - expected) <= (hi - lo) / 510 + 1e-4
    assert shown > background + 40.0
    # Averaging the same frames would have sunk the click by several dB (what max-pooling avoids).
    power = 10 ** (values[band, column * fpc:(column + 1) * fpc] / 10)
    assert 10 * np.log10(power.mean()) < expected - 6.0


def test_overview_size_fits_columns_and_message_cap():
    assert overview_factor(128, 360_000, 1) == 88  # 1 h at 10 ms: 4091 columns
    assert overview_factor(128, 4096, 1) == 1
    factor = overview_factor(4097, 100_000, 4)
    assert -(-100_000 // factor) * 4097 * 4 <= MAX_MESSAGE_BYTES


@pytest.fixture
def server() -> TileServer:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(16, 20_000)).astype(np.float32)
    return TileServer(values, (float(values.min()), float(values.max())), precision="float32")


def test_tile_levels_pool_the_right_frames(server):
    values = server.values
    assert server.frames_per_column == 5 and server.levels == [1, 2, 4]
    for level, pool in enumerate(server.levels):
        n_tiles = server.num_tiles(level)
        assert n_tiles == -(-(-(-20_000 // pool)) // server.tile_columns)
        for index in (0, n_tiles - 1):
            meta, buffers = server.handle({"type": "tile", "level": level, "index": index})
            tile = np.frombuffer(buffers[0], dtype="<f4").reshape(meta["shape"])
            first = index * server.tile_columns * pool
            assert meta["start_frame"] == first and meta["frames_per_column"] == pool
            for c in (0, tile.shape[1] - 1):
                frames = values[:, first + c * pool: first + (c + 1) * pool]
                np.testing.assert_array_equal(tile[:, c], frames.max(axis=1))
            assert tile.shape == (16, min(server.tile_columns, -(-(20_000 - first) // pool)))


def test_uint8_tiles_share_the_overview_code_range():
    values = np.linspace(-80, 0, 64 * 9000, dtype=np.float32).reshape(64, 9000)
    server = TileServer(values, (-80.0, 0.0))
    meta, buffers = server.handle({"type": "tile", "level": 0, "index": 8})
    codes = np.frombuffer(buffers[0], dtype=np.uint8).reshape(meta["shape"])
    start = meta["start_frame"]
    decoded = dequantize_uint8(codes, (-80.0, 0.0))
    np.testing.assert_allclose(decoded, values[:, start:start + codes.shape[1]], atol=80 / 510 + 1e-4)


@pytest.mark.parametrize(
    "content, field",
    [
        ({"type": "tile", "level": 3, "index": 0}, "level"),
        ({"type": "tile", "level": -1, "index": 0}, "level"),
        ({"type": "tile", "level": 0, "index": 20}, "index"),
        ({"type": "tile", "level": 0, "index": "2"}, "index"),
        ({"type": "tile", "level": True, "index": 0}, "level"),
        ({"type": "tile", "level": 0}, "index"),
        ({"type": "tile", "level": 0, "index": 1.5}, "index"),
    ],
)
def test_bad_requests_raise_value_errors_naming_the_field(server, content, field):
    with pytest.raises(ValueError, match=f"tile {field} must be an integer"):
        server.handle(content)


def test_no_message_over_the_cap_even_with_many_bins():
    values = np.zeros((4097, 3000), dtype=np.float32)
    server = TileServer(values, (0.0, 1.0), precision="float32")
    assert server.overview().nbytes <= MAX_MESSAGE_BYTES
    for level in range(len(server.levels)):
        _, buffers = server.handle({"level": level, "index": server.num_tiles(level) - 1})
        assert buffers[0].nbytes <= MAX_MESSAGE_BYTES
    assert server.tile_columns * 4097 * 4 <= MAX_MESSAGE_BYTES


def test_server_holds_a_view_not_a_copy():
    values = np.zeros((8, 50_000), dtype=np.float32)
    server = TileServer(values, (0.0, 1.0))
    assert np.shares_memory(server.values, values)


# ---- through the viewer: what a browser sees --------------------------------------------------


@pytest.fixture(scope="module")
def long_viewer():
    from audiovis.widgets.viewer import SpectrogramViewer

    sr = 16000
    spec = av.MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=160)(av.load_audio(_click_recording(2, 61.0), sr))
    viewer = SpectrogramViewer(spec)
    sent: list[tuple[dict, list]] = []
    viewer.send = lambda content, buffers=None: sent.append((content, buffers or []))  # capture replies
    return viewer, spec, sent


def test_viewer_sends_the_overview_first_and_describes_the_tiles(long_viewer):
    viewer, spec, _ = long_viewer
    state = viewer.get_state()
    assert spec.num_frames == 12_001
    assert viewer._meta["frames_per_column"] == 3 and viewer._spectrogram.shape == (128, 4001)
    assert isinstance(state["_spectrogram"]["view"], memoryview)
    tiles = viewer._tiles
    assert tiles["levels"] == [1, 2] and tiles["n_frames"] == 12_001 and tiles["dtype"] == "uint8"
    assert tiles["value_range"] == viewer._meta["value_range"]
    lo, hi = tiles["value_range"]
    values = spec.numpy()
    assert (lo, hi) == pytest.approx((values.min(), values.max()))


def test_viewer_answers_every_tile_request_by_id(long_viewer):
    viewer, spec, sent = long_viewer
    sent.clear()
    viewer._on_message(viewer, {"type": "tile", "id": 41, "level": 0, "index": 5}, [])
    viewer._on_message(viewer, {"type": "tile", "id": 42, "level": 0, "index": 999}, [])
    viewer._on_message(viewer, {"type": "tiles?", "id": 43}, [])
    viewer._on_message(viewer, {"type": "tile", "level": 0, "index": 1}, [])
    viewer._on_message(viewer, ["not", "a", "dict"], [])
    assert [c.get("id") for c, _ in sent] == [41, 42, 43, None, None]
    ok, buffers = sent[0]
    assert "error" not in ok and ok["start_frame"] == 5 * 1024 and ok["shape"] == [128, 1024]
    codes = np.frombuffer(buffers[0], dtype=np.uint8).reshape(ok["shape"])
    lo, hi = viewer._tiles["value_range"]
    np.testing.assert_allclose(dequantize_uint8(codes, (lo, hi)), spec.numpy()[:, 5120:6144], atol=(hi - lo) / 510 + 1e-4)
    assert "index must be an integer in 0..11" in sent[1][0]["error"]
    assert "unknown request type 'tiles?'" in sent[2][0]["error"]
    assert all("error" in c for c, _ in sent[3:])


def test_short_spectrograms_have_no_tiles():
    from audiovis.widgets.viewer import SpectrogramViewer

    spec = av.KaldiFbank()(av.load_audio(_click_recording(0.1, 1.0), 16000))
    viewer = SpectrogramViewer(spec)
    viewer.send = lambda *a, **k: None
    assert viewer._tiles is None and viewer._meta["frames_per_column"] == 1
