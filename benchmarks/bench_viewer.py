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
async ([kind, n, patches]) => {
  const root = document.querySelector('[data-testid="audiovis-viewer"]');
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  // the hover run starts from the whole recording in view, as the zoom run found it
  window.__fullRange ??= window.__model.get('time_range');
  if (kind === 'hover') window.__model.set('time_range', window.__fullRange);
  await frame();
  const [t0, t1] = window.__model.get('time_range');
  const times = [];
  const drawsBefore = Number(root.dataset.drawCount ?? 0);
  for (let i = 0; i < n; i++) {
    if (kind === 'zoom') {
      const span = (t1 - t0) * (0.3 + 0.7 * ((i % 5) / 5));
      const start = t0 + ((t1 - t0 - span) * (i % 7)) / 7;
      window.__model.set('time_range', [start, start + span]);
    } else {
      window.__model.set('hovered_patch', i % 2 ? patches[i % patches.length] : null);
    }
    await frame();
    times.push(Number(root.dataset.drawMs));
  }
  const draws = Number(root.dataset.drawCount ?? 0) - drawsBefore;
  // did a hover draw its footprint? the canvas with a patch hovered must differ from the one without
  let hoverVisible = null;
  if (kind === 'hover') {
    const canvas = root.querySelector('[data-testid="spectrogram-canvas"]');
    const pixels = () => canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    window.__model.set('hovered_patch', null); await frame();
    const without = pixels();
    window.__model.set('hovered_patch', patches[0]); await frame();
    const withHover = pixels();
    let changed = 0;
    for (let i = 0; i < without.length; i += 4) if (without[i] !== withHover[i] || without[i + 1] !== withHover[i + 1]) changed++;
    hoverVisible = changed;
    window.__model.set('hovered_patch', null); await frame();
  }
  return {times, draws, hoverVisible};
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


def _overview_columns(viewer, values: np.ndarray) -> np.ndarray:
    """The columns the payload carries, from the float32 values: every ``frames_per_column`` frames max-pooled
    (all frames when the recording fits), so the JSON peer encodes the same view the binary payload does."""
    fpc = int(viewer._meta["frames_per_column"])
    if fpc == 1:
        return values
    return np.maximum.reduceat(values, np.arange(0, values.shape[1], fpc), axis=1)


def _payload_rows(name: str, viewer, values: np.ndarray) -> list[dict]:
    state = viewer.get_state()
    binary = sum(v["view"].nbytes for v in state.values() if isinstance(v, dict) and "view" in v)
    rest = len(json.dumps({k: v for k, v in state.items() if not (isinstance(v, dict) and "view" in v)}))
    columns = _overview_columns(viewer, values.astype(np.float32))
    shape = list(state["_spectrogram"]["shape"])
    if list(columns.shape) != shape:
        raise AssertionError(f"JSON peer has shape {list(columns.shape)}, the payload {shape}: not like with like")
    as_json = len(json.dumps(columns.tolist()))
    total = binary + rest
    what = "all" if columns.shape[1] == values.shape[1] else "the same max-pooled overview's"
    return [row("viewer", f"initial state bytes, {name} (payload {shape[0]}x{shape[1]})", total, "B",
                peer=f"JSON list of {what} {shape[1]} columns (float32)", peer_value=as_json,
                target="<= 1/10 of JSON", met=total * 10 <= as_json)]


def _hover_patches(grid) -> list[int]:
    """Patches spread over the whole grid (rows and columns), to hover in turn."""
    if grid is None:
        raise AssertionError("the hover benchmark needs a viewer with a patch grid (hover draws nothing without one)")
    rows, cols = grid.grid_shape
    return [int((k % rows) * cols + (k * 7919) % cols) for k in range(16)]


def _browser_rows(viewers: dict, frames: int = 40) -> list[dict]:
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
            patches = _hover_patches(viewer.grid)
            for kind, label in (("zoom", "full redraw (zoom)"), ("hover", "overlay redraw (hover)")):
                got = page.evaluate(_MEASURE_JS, [kind, frames, patches])
                if got["draws"] < frames:
                    raise AssertionError(f"{name}, {kind}: {got['draws']} draws for {frames} changes")
                if kind == "hover" and not got["hoverVisible"]:
                    raise AssertionError(f"{name}: hovering patch {patches[0]} drew nothing")
                times = got["times"][min(5, frames - 1):]
                rows.append(row("viewer", f"draw ms per frame, {label}, {name}, 904 px wide", statistics.median(times), "ms",
                                target="< 16.7 ms (60 fps)", met=statistics.median(times) < 16.7))
            page.close()
        browser.close()
    return rows


def run(*, minutes: float = 10.0, frames: int = 40) -> list[dict]:
    """Payload sizes and browser draw times; ``minutes`` (the long recording) and ``frames`` shrink a smoke run."""
    import audiovis as av

    sr = 16000
    rng = np.random.default_rng(0)
    ten_s = av.Audio(torch.from_numpy((0.1 * rng.standard_normal(10 * sr)).astype(np.float32))[None], sr)
    ast_spec = av.KaldiFbank()(ten_s)
    ast_viewer = av.SpectrogramViewer(ast_spec, grid=av.PatchGrid())
    ten_min = av.Audio(torch.from_numpy((0.1 * rng.standard_normal(int(minutes * 60 * sr))).astype(np.float32))[None], sr)
    mel_spec = av.MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=160, n_mels=128)(ten_min)
    mel_grid = av.PatchGrid(input_shape=tuple(mel_spec.shape), patch_size=(16, 16), stride=(10, 10))
    mel_viewer = av.SpectrogramViewer(mel_spec, grid=mel_grid)
    rows = _payload_rows("10 s AST fbank 128x1024", ast_viewer, ast_spec.numpy())
    rows += _payload_rows(f"{minutes:g} min mel 128x{mel_spec.num_frames}", mel_viewer, mel_spec.numpy())
    # The stand-in page answers no tile requests: the long recording is drawn from its max-pooled overview.
    rows += _browser_rows({"AST 128x1024 + grid": ast_viewer,
                           f"{minutes:g} min mel 128x{mel_spec.num_frames} + grid (overview)": mel_viewer}, frames)
    return rows


if __name__ == "__main__":
    print_rows(run())
