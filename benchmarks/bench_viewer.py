"""SpectrogramViewer: payload bytes vs a JSON encoding, and browser draw time per frame (Chromium).

The draw time is measured inside the page with performance.now() around the viewer's draw (the
``data-draw-ms`` attribute the viewer sets), on a page that loads the built bundle with a stand-in
model holding the same state the kernel would send.
"""

from __future__ import annotations

import base64
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from .common import STANDALONE_VIEWER_JS, print_rows, row


_MEASURE_JS = """
async ([kind, n]) => {
  const root = document.querySelector('[data-testid="audiovis-viewer"]');
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  await frame();
  const [t0, t1] = window.__model.get('time_range');
  const times = [];
  for (let i = 0; i < n; i++) {
    if (kind === 'zoom') {
      const span = (t1 - t0) * (0.3 + 0.7 * ((i % 5) / 5));
      const start = t0 + ((t1 - t0 - span) * (i % 7)) / 7;
      window.__model.set('time_range', [start, start + span]);
    } else {
      window.__model.set('hovered_patch', i % 2 ? 100 + i : null);
    }
    await frame();
    times.push(Number(root.dataset.drawMs));
  }
  return times;
}
"""


def _state(viewer) -> tuple[dict, dict]:
    """The widget state as the browser receives it: JSON fields and base64 of the binary buffers."""
    state, buffers = {}, {}
    for key, value in viewer.get_state().items():
        if key.startswith("_esm") or key.startswith("_css") or key.startswith("_anywidget") or key.startswith("_model") or key.startswith("_view"):
            continue
        if isinstance(value, dict) and "view" in value:
            buffers[key] = base64.b64encode(bytes(value["view"])).decode()
            state[key] = {"dtype": value["dtype"], "shape": value["shape"]}
        else:
            state[key] = value
    return state, buffers


def _payload_rows(name: str, viewer, values: np.ndarray) -> list[dict]:
    state = viewer.get_state()
    binary = sum(v["view"].nbytes for v in state.values() if isinstance(v, dict) and "view" in v)
    rest = len(json.dumps({k: v for k, v in state.items() if not (isinstance(v, dict) and "view" in v)}))
    as_json = len(json.dumps(values.tolist()))
    total = binary + rest
    return [row("viewer", f"initial state bytes, {name}", total, "B", peer="JSON list of float32 values", peer_value=as_json,
                target="<= 1/10 of JSON", met=total * 10 <= as_json)]


def _browser_rows(viewers: dict) -> list[dict]:
    from playwright.sync_api import sync_playwright

    static = Path(__file__).resolve().parents[1] / "audiovis" / "static"
    bundle, css = (static / "viewer.js").read_text(), (static / "viewer.css").read_text()
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        for name, viewer in viewers.items():
            page = browser.new_page(viewport={"width": 1300, "height": 700}, device_scale_factor=1)
            state, buffers = _state(viewer)
            page.evaluate(STANDALONE_VIEWER_JS, [bundle, css, state, buffers, 1000])
            for kind, label in (("zoom", "full redraw (zoom)"), ("hover", "overlay redraw (hover)")):
                times = page.evaluate(_MEASURE_JS, [kind, 40])[5:]
                rows.append(row("viewer", f"draw ms per frame, {label}, {name}, 904 px wide", statistics.median(times), "ms",
                                target="< 16.7 ms (60 fps)", met=statistics.median(times) < 16.7))
            page.close()
        browser.close()
    return rows


def run() -> list[dict]:
    import audiovis as av

    sr = 16000
    rng = np.random.default_rng(0)
    ten_s = av.Audio(torch.from_numpy((0.1 * rng.standard_normal(10 * sr)).astype(np.float32))[None], sr)
    ast_spec = av.KaldiFbank()(ten_s)
    ast_viewer = av.SpectrogramViewer(ast_spec, grid=av.PatchGrid())
    ten_min = av.Audio(torch.from_numpy((0.1 * rng.standard_normal(600 * sr)).astype(np.float32))[None], sr)
    mel_spec = av.MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=160, n_mels=128)(ten_min)
    mel_viewer = av.SpectrogramViewer(mel_spec)
    rows = _payload_rows("10 s AST fbank 128x1024", ast_viewer, ast_spec.numpy())
    rows += _payload_rows(f"10 min mel 128x{mel_spec.num_frames}", mel_viewer, mel_spec.numpy())
    # The stand-in page answers no tile requests: the long recording is drawn from its max-pooled overview.
    rows += _browser_rows({"AST 128x1024 + grid": ast_viewer, f"10 min mel 128x{mel_spec.num_frames} (overview)": mel_viewer})
    return rows


if __name__ == "__main__":
    print_rows(run())
