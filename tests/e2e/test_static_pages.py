"""Saved pages (viewer.save_html / explorer.save_html) in Chromium with the network cut off.

Each page is opened from a file with every non-file request aborted and recorded: the page must paint,
select, hover and play from what it holds, and must never try the network.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.widgets.png import render_spectrogram

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
        expected = render_spectrogram(viewer, width, height)
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
        op.screenshot("static_viewer_page")
        assert not op.errors, op.errors
        assert op.blocked == [], f"the page tried the network: {op.blocked}"


def test_saved_page_keeps_working_without_the_package_bundle(browser, tmp_path, monkeypatch):
    """The page holds its own loader and styles: deleting nothing of the install can break it, and it
    reads no file besides itself (every request is recorded)."""
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
