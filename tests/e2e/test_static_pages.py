"""Saved pages (viewer.save_html / explorer.save_html) in Chromium with the network cut off.

Each page is opened from a file with every non-file request aborted and recorded: the page must paint,
select, hover and play from what it holds, and must never try the network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.rendering.png import render_spectrogram

from .static_page import offline_page
from .viewer_page import CANVAS, VIEWER, canvas_pixels

pytestmark = pytest.mark.e2e

SR = 16000
N_TIME = 101  # grid columns of a 1024-frame input at stride 10


def chirp_viewer(**kwargs) -> av.SpectrogramViewer:
    t = np.arange(6 * SR) / SR
    wav = 0.4 * np.sin(2 * np.pi * (200 * t + 400 * t**2)) + 0.2 * np.sin(2 * np.pi * 3000 * t) * (t % 1 < 0.3)
    audio = av.Audio(torch.tensor(wav, dtype=torch.float32)[None], SR)
    spec = av.KaldiFbank()(audio)
    grid = av.PatchGrid(input_shape=(128, 1024), patch_size=(16, 16), stride=(10, 10))
    return av.SpectrogramViewer(spec, grid=grid, audio=audio, height=320, **kwargs)


def patch_centre(box: dict, row: int, col: int) -> tuple[float, float]:
    """Page pixel of the centre of patch (row, col)'s stride cell in the unzoomed canvas."""
    frame = col * 10 + 8
    bin_ = row * 10 + 8
    return box["x"] + frame / 1024 * box["width"], box["y"] + box["height"] * (1 - bin_ / 128)


def _draw_count(page) -> int:
    return int(page.evaluate(f"() => Number(document.querySelector('{VIEWER}').dataset.drawCount ?? 0)"))


def _wait_drawn(page, count: int) -> None:
    page.wait_for_function(
        f"(n) => Number(document.querySelector('{VIEWER}')?.dataset.drawCount ?? 0) >= n", arg=count, timeout=15000
    )


def test_saved_viewer_paints_selects_hovers_and_plays(browser, tmp_path):
    viewer = chirp_viewer()
    viewer.show_grid = False
    embeddings = np.random.default_rng(0).normal(size=(viewer.grid.num_patches, 24)).astype(np.float32)
    viewer.set_embeddings(embeddings)
    path = tmp_path / "viewer.html"
    report = viewer.save_html(path)
    assert report.size_bytes == path.stat().st_size < 1_000_000

    with offline_page(browser) as op:
        op.open(path)
        page = op.page
        _wait_drawn(page, 1)
        canvas = page.locator(CANVAS)
        page.mouse.move(2, 2)
        page.wait_for_timeout(200)
        width = int(canvas.evaluate("(c) => c.width"))
        height = int(canvas.evaluate("(c) => c.height"))
        before = canvas_pixels(canvas)
        # painted from the saved state exactly as Python renders the same viewer
        expected = render_spectrogram(viewer._view(), width, height)
        assert before.shape == expected.shape and before[..., :3].std() > 20
        mismatch = np.any(before != expected, axis=2)
        # the overlay's dashed line at the end of the real signal is not part of Python's image
        edge = viewer.spectrogram.valid_frames / viewer.spectrogram.num_frames * width
        mismatch[:, max(0, int(edge) - 2) : int(edge) + 3] = False
        assert mismatch.mean() == 0.0, f"{mismatch.sum()} pixels differ from Python's rendering"

        # a click at a patch centre draws its selection (the cell is filled, the readout counts it)
        box = canvas.bounding_box()
        x, y = patch_centre(box, 4, 30)
        page.mouse.click(x, y)
        readout = page.locator('[data-testid="audiovis-readout"]')
        page.wait_for_function("() => document.querySelector('[data-testid=\"audiovis-readout\"]').textContent.includes('1 selected')")
        page.mouse.move(2, 2)  # pointer away: the hover similarity goes, the selection stays
        page.wait_for_timeout(300)
        after = canvas_pixels(canvas)
        sx, sy = int((x - box["x"]) * width / box["width"]), int((y - box["y"]) * height / box["height"])
        assert np.any(after[sy - 2 : sy + 3, sx - 2 : sx + 3] != before[sy - 2 : sy + 3, sx - 2 : sx + 3])
        far = (slice(10, 40), slice(10, 40))  # far from the selected cell: unchanged
        assert np.array_equal(after[far], before[far])
        assert "1 selected" in readout.inner_text()

        # hover similarity is computed in the page and changes the overlay with the hovered patch
        xa, ya = patch_centre(box, 2, 10)
        page.mouse.move(xa, ya)
        page.wait_for_function(f"() => document.querySelector('{VIEWER}').audiovisSimilarity?.index === {2 * N_TIME + 10}")
        values = np.array(page.evaluate(f"() => Array.from(document.querySelector('{VIEWER}').audiovisSimilarity.values)"))
        half = embeddings.astype(np.float16).astype(np.float64)
        unit = half / np.linalg.norm(half, axis=1, keepdims=True)
        np.testing.assert_allclose(values, unit @ unit[2 * N_TIME + 10], atol=1e-4)
        page.wait_for_timeout(200)
        hover_a = canvas_pixels(canvas)
        xb, yb = patch_centre(box, 9, 80)
        page.mouse.move(xb, yb)
        page.wait_for_function(f"() => document.querySelector('{VIEWER}').audiovisSimilarity?.index === {9 * N_TIME + 80}")
        page.wait_for_timeout(200)
        hover_b = canvas_pixels(canvas)
        assert np.any(hover_a[far] != before[far]), "the similarity overlay covers the canvas"
        assert np.mean(np.any(hover_a != hover_b, axis=2)) > 0.2, "another hovered patch, another overlay"

        # play: the page's audio is decoded and a Web Audio source starts; the playhead moves
        page.locator('[data-testid="audiovis-play"]').click()
        page.wait_for_function("() => window.__avAudio.starts >= 1 && window.__avAudioContexts.some((c) => c.state === 'running')", timeout=15000)
        page.wait_for_function("() => /playhead (0\\.[3-9]|[1-9])/.test(document.querySelector('[data-testid=\"audiovis-readout\"]').textContent)", timeout=15000)
        page.locator('[data-testid="audiovis-play"]').click()  # pause
        # the selection plays too
        page.locator('[data-testid="audiovis-play-selection"]').click()
        page.wait_for_function("() => window.__avAudio.starts >= 2", timeout=15000)
        # "▶ patches": the page computes the sound of the selected patch as the kernel would
        from audiovis.explain.patch_audio import frame_boxes, region_audio

        pcm = (np.round(viewer._pcm * 32767) / 32767).astype(np.float32)  # the page's FLAC holds 16-bit samples

        def patch_sound(row: int) -> np.ndarray:
            boxes = frame_boxes(viewer.grid, viewer.spectrogram, [row * N_TIME + 30])
            return region_audio(pcm, SR, 0.0, boxes, SR)[0]

        row = max(range(12), key=lambda r: float(np.abs(patch_sound(r)).max()))  # the chirp's patch at 3 s
        expected = patch_sound(row)
        page.mouse.click(*patch_centre(box, row, 30))
        page.wait_for_function("() => document.querySelector('[data-testid=\"audiovis-readout\"]').textContent.includes('1 selected')")
        starts = int(page.evaluate("() => window.__avAudio.starts"))
        page.locator('[data-testid="audiovis-play-patches"]').click()
        page.wait_for_function(f"() => window.__avAudio.starts > {starts}", timeout=15000)
        played = page.evaluate("() => window.__avAudio.last")
        got = np.asarray(played["samples"], dtype=np.float32)
        assert played["rate"] == SR and abs(len(got) - len(expected)) <= 1
        n = min(len(got), len(expected))
        np.testing.assert_allclose(got[:n], expected[:n], atol=2e-3)
        assert np.abs(expected).max() > 0.05  # a patch on the chirp: there is sound to compare
        op.screenshot("static_viewer_page")
        assert not op.errors, op.errors
        assert op.blocked == [], f"the page tried the network: {op.blocked}"


def test_saved_page_needs_nothing_but_itself(browser, tmp_path):
    """The page holds its loader (the bundle of the version that saved it), styles and data: moved
    elsewhere it works and requests no file besides itself (every request is recorded)."""
    viewer = chirp_viewer()
    path = tmp_path / "v.html"
    viewer.save_html(path)
    text = path.read_text()
    assert "<script src" not in text and "<link" not in text
    moved = tmp_path / "elsewhere" / "copy.html"
    moved.parent.mkdir()
    moved.write_text(text)
    path.unlink()
    with offline_page(browser) as op:
        requests: list[str] = []
        op.page.on("request", lambda r: requests.append(r.url))
        op.open(moved)
        _wait_drawn(op.page, 1)
        assert requests == [moved.as_uri()]
        assert not op.errors and not op.blocked


JS_SOURCE_SELECTED = """
() => {
  for (const doc of window.Bokeh.documents) {
    const source = doc.get_model_by_name("audiovis-embedding-points");
    if (source) return [...source.selected.indices].sort((a, b) => a - b);
  }
  return null;
}
"""


def ten_second_audio() -> av.Audio:
    from audiovis.datasets.synthetic import SyntheticEvents

    clips = SyntheticEvents(3, seed=1)
    wav = np.concatenate([clips[i].waveform.numpy()[0] for i in range(3)])[: 10 * SR]
    return av.Audio(torch.tensor(wav)[None], SR)


def test_saved_explorer_links_views_and_switches_overlays(browser, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 10 s is longer than the demo model's window: window 0 is shown
        ex = av.explore(ten_second_audio())
    path = tmp_path / "explorer.html"
    report = ex.save_html(path)
    assert path.stat().st_size == report.size_bytes <= 3_000_000, str(report)
    analysis = ex.analysis
    n_time = analysis.grid.grid_shape[1]

    with offline_page(browser, height=1000) as op:
        op.open(path)
        page = op.page
        page.wait_for_function(JS_SOURCE_SELECTED, timeout=20000)
        _wait_drawn(page, 1)
        canvas = page.locator(CANVAS)
        box = canvas.bounding_box()
        n_frames = analysis.spectrogram.num_frames

        def centre(row: int, col: int) -> tuple[float, float]:
            return box["x"] + (col * 10 + 8) / n_frames * box["width"], box["y"] + box["height"] * (1 - (row * 10 + 8) / 128)

        # the top labels panel shows the model's predictions
        panel = page.locator('[data-testid="audiovis-predictions"]').inner_text()
        for name, p in analysis.top_labels(3):
            assert name in panel and f"{p:.3f}" in panel

        # viewer -> plot: a click selects the patch in both
        page.mouse.click(*centre(3, 12))
        page.wait_for_function(f"() => JSON.stringify(({JS_SOURCE_SELECTED})()) === '[{3 * n_time + 12}]'", timeout=5000)
        assert "1 patch selected" in page.locator('[data-testid="audiovis-status"]').inner_text()

        # plot -> viewer: points selected in Bokeh select the patches in the viewer
        page.evaluate("""() => {
          for (const doc of window.Bokeh.documents) {
            const s = doc.get_model_by_name("audiovis-embedding-points");
            if (s) s.selected.indices = [5, 6, 40];
          }
        }""")
        page.wait_for_function("() => document.querySelector('[data-testid=\"audiovis-readout\"]').textContent.includes('3 selected')", timeout=5000)
        assert "3 patches selected" in page.locator('[data-testid="audiovis-status"]').inner_text()

        # switching overlays: rollout is drawn over the spectrogram and differs from CLS attention
        page.mouse.move(2, 2)
        page.wait_for_timeout(300)
        plain = canvas_pixels(canvas)

        def choose(testid: str, value: str) -> np.ndarray:
            count = _draw_count(page)
            page.select_option(f'[data-testid="{testid}"]', value)
            _wait_drawn(page, count + 1)
            page.wait_for_timeout(100)
            return canvas_pixels(canvas)

        rollout = choose("audiovis-overlay-menu", "rollout")
        assert np.mean(np.any(rollout != plain, axis=2)) > 0.3
        choose("audiovis-overlay-menu", "cls")
        cls1 = choose("audiovis-layer-menu", "1")
        cls2 = choose("audiovis-layer-menu", "2")
        assert np.mean(np.any(cls2 != cls1, axis=2)) > 0.1, "another layer, another CLS attention map"
        saliency = choose("audiovis-overlay-menu", "saliency")
        assert np.mean(np.any(saliency != rollout, axis=2)) > 0.1
        relevance = choose("audiovis-overlay-menu", "relevance")
        assert np.mean(np.any(relevance != saliency, axis=2)) > 0.1
        second = str(analysis.class_index(analysis.top_labels(2)[1][0]))
        assert np.mean(np.any(choose("audiovis-class-menu", second) != relevance, axis=2)) > 0.05, "another class"
        choose("audiovis-layer-menu", "1")

        # similarity: hovering a patch gives Analysis.similarity of that patch in this layer (float16 embeddings)
        page.select_option('[data-testid="audiovis-overlay-menu"]', "similarity")
        target = 5 * n_time + 20
        page.mouse.move(*centre(5, 20))
        page.wait_for_function(f"() => document.querySelector('{VIEWER}').audiovisSimilarity?.index === {target}")
        values = np.array(page.evaluate(f"() => Array.from(document.querySelector('{VIEWER}').audiovisSimilarity.values)"))
        np.testing.assert_allclose(values, analysis.similarity([target], layer=1), atol=5e-3)
        op.screenshot("static_explorer_page")
        assert not op.errors, op.errors
        assert op.blocked == [], f"the page tried the network: {op.blocked}"


@pytest.mark.slow
def test_ten_minute_viewer_page_is_small_and_zooms_to_saved_tiles(browser, tmp_path):
    from audiovis.datasets.synthetic import SyntheticEvents

    clips = SyntheticEvents(15, seed=2)
    minute = np.concatenate([clips[i].waveform.numpy()[0] for i in range(15)])  # 60 s of sound events
    wav = np.concatenate([minute * (0.5 + 0.05 * k) for k in range(10)])  # 10 min
    audio = av.Audio(torch.tensor(wav, dtype=torch.float32)[None], SR)
    spec = av.KaldiFbank(target_frames=None)(audio)
    viewer = av.SpectrogramViewer(spec, audio=audio)
    assert viewer._tiles is not None  # long enough for level of detail
    path = tmp_path / "ten_minutes.html"
    report = viewer.save_html(path)
    assert path.stat().st_size == report.size_bytes <= 10_000_000, str(report)
    assert report.parts["audio"] > 0 and report.parts["spectrogram frames"] > 0

    with offline_page(browser) as op:
        op.open(path, timeout=60000)
        page = op.page
        _wait_drawn(page, 1)
        canvas = page.locator(CANVAS)
        assert canvas_pixels(canvas)[..., :3].std() > 10
        # zoomed in, the page answers the viewer's tile requests from its own frames
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        for _ in range(12):
            page.mouse.wheel(0, -400)
            page.wait_for_timeout(50)
        page.wait_for_function(f"() => Number(document.querySelector('{VIEWER}').dataset.tilesReceived ?? 0) > 0", timeout=20000)
        # the Ogg/Vorbis audio decodes in the browser and plays
        page.locator('[data-testid="audiovis-play"]').click()
        page.wait_for_function("() => window.__avAudio.starts >= 1", timeout=30000)
        op.screenshot("static_ten_minute_page")
        assert not op.errors, op.errors
        assert op.blocked == [], op.blocked
