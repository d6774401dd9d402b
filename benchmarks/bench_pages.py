"""Saved pages (viewer.save_html, explorer.save_html): page size against the targets, save time, and
time from opening the file in Chromium (network cut off) to the first drawn spectrogram.

Peers: the same viewer page with lossless FLAC audio (what the size would be without Ogg/Vorbis), and
the level-0 codes stored raw (what the frames would be without the filter and deflate).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .common import print_rows, row


def _events_audio(seconds: float, seed: int = 2):
    import audiovis as av
    from audiovis.datasets.synthetic import SyntheticEvents

    n = max(1, int(np.ceil(min(seconds, 60.0) / 4.0)))
    clips = SyntheticEvents(n, seed=seed)
    block = np.concatenate([clips[i].waveform.numpy()[0] for i in range(n)])
    reps = int(np.ceil(seconds * 16000 / len(block)))
    wav = np.concatenate([block * (0.5 + 0.05 * (k % 10)) for k in range(reps)])[: int(seconds * 16000)]
    return av.Audio(torch.tensor(wav, dtype=torch.float32)[None], 16000)


def _first_draw_ms(path: Path) -> float | None:
    """Milliseconds from navigation start to the viewer's first draw, in Chromium with the network cut off."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort())
        page.add_init_script("""
          new MutationObserver(() => {
            const v = document.querySelector('[data-testid="audiovis-viewer"]');
            if (v && v.dataset.drawCount && !window.__firstDraw) window.__firstDraw = performance.now();
          }).observe(document, {subtree: true, attributes: true, childList: true});
        """)
        page.goto(path.resolve().as_uri())
        page.wait_for_function("() => window.__firstDraw", timeout=120000)
        ms = float(page.evaluate("() => window.__firstDraw"))
        browser.close()
    return ms


def run(*, minutes: float = 10.0, browser: bool = True) -> list[dict]:
    import audiovis as av

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio = _events_audio(minutes * 60)
        spec = av.KaldiFbank(target_frames=None)(audio)
        viewer = av.SpectrogramViewer(spec, audio=audio)
        start = time.perf_counter()
        report = viewer.save_html(folder / "viewer.html")
        save_s = time.perf_counter() - start
        flac = viewer.save_html(folder / "viewer_flac.html", audio_format="flac")
        label = f"{minutes:g} min viewer"
        target = 10_000_000 if minutes >= 10 else None
        rows.append(row("pages", f"{label} page size", report.size_bytes / 1e6, "MB", peer="same page, FLAC audio",
                        peer_value=flac.size_bytes / 1e6, target="<= 10 MB at 10 min" if target else None,
                        met=report.size_bytes <= target if target else None))
        if viewer._tile_server is not None:
            raw = viewer._tile_server.num_bins * viewer._tile_server.num_frames * 4 / 3  # base64 of raw codes
            rows.append(row("pages", f"{label} spectrogram frames in the page", report.parts["spectrogram frames"] / 1e6,
                            "MB", peer="raw uint8 codes, base64", peer_value=raw / 1e6))
        rows.append(row("pages", f"{label} save_html time", save_s, "s"))
        if browser:
            ms = _first_draw_ms(report.path)
            if ms is not None:
                rows.append(row("pages", f"{label} page: open -> first draw", ms, "ms"))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ex = av.explore(_events_audio(10.0, seed=1))
        start = time.perf_counter()
        report = ex.save_html(folder / "explorer.html")
        save_s = time.perf_counter() - start
        rows.append(row("pages", "10 s explorer page size (demo model)", report.size_bytes / 1e6, "MB",
                        target="<= 3 MB", met=report.size_bytes <= 3_000_000))
        rows.append(row("pages", "10 s explorer save_html time (overlays, saliency, relevance)", save_s, "s"))
        if browser:
            ms = _first_draw_ms(report.path)
            if ms is not None:
                rows.append(row("pages", "10 s explorer page: open -> first draw", ms, "ms"))
    return rows


if __name__ == "__main__":
    import sys

    print_rows(run(minutes=float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
