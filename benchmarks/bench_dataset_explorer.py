"""Dataset explorer: the kernel side (explore_dataset on a demo-model store, selection round trip, open a clip,
find similar; the map's cost at 100 k clips) and what a user waits for in a real JupyterLab + Chromium.

    .venv/bin/python -m benchmarks.bench_dataset_explorer            # full sizes (a quiet machine)
    .venv/bin/python -m benchmarks.bench_dataset_explorer --small    # smoke run: tiny sizes, same code paths

Browser rows (tests/e2e harness): two demo-model stores grown from four real SyntheticEvents clips (their rows
repeated under new clip ids; each clip opens from its seed clip's audio): a map store of 100 k clips (clip
vectors in 12 clustered groups) and a search store of 2137 clips whose 1 M patch vectors are clustered random
vectors (the IVF index built once and kept in the store, as after a first search). Each time runs from the
user's action to the result: from running the cell (or from the mouse-up on the map or the button, measured in
the page) until the map has coloured pixels, the viewer has drawn, every gallery image has loaded, or, for the
lasso, until the kernel's ``dx.selection`` changed (kernel clock ``time.time()`` against the page's
``Date.now()``: one machine, one clock). Pan and zoom: each map frame's work (from the frame's start to the end
of jupyter-scatter's copy of the WebGL image into the map's canvas) and the interval between animation frames.
Headless Chromium draws WebGL in software (SwiftShader), so frame figures are a CPU's, not a GPU's.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import JS_APPEND_CELL, print_rows, row


def _timed(fn, repeats: int = 3) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def store_rows(small: bool, tmp: Path) -> list[dict]:
    import audiovis as av
    from audiovis.datasets import SyntheticEvents

    demo = av.load_demo_model()
    n = 8 if small else 96
    data = SyntheticEvents(n, seed=11)
    paths = []
    import soundfile as sf

    for i in range(n):  # files, so clips can be opened from their source
        clip = data[i]
        path = tmp / f"clip{i}.wav"
        sf.write(path, clip.audio.waveform.numpy().T, clip.audio.sample_rate)
        paths.append(str(path))
    store = av.embed_dataset(paths, demo, tmp / "store", patches=True, progress=False)
    rows = []
    t = _timed(lambda: av.explore_dataset(store, demo), 1 if small else 3)
    rows.append(row("dataset_explorer", f"explore_dataset, {n} clips (kernel)", t * 1e3, "ms"))
    dx = av.explore_dataset(store, demo)
    ids = np.arange(len(dx.points) // 2)

    def select():
        dx.scatter.widget.selection = ids
        dx.scatter.widget.selection = np.zeros(0, np.int64)

    rows.append(row("dataset_explorer", "map selection -> dx.selection + table (kernel, x2)", _timed(select) * 1e3, "ms"))
    cid = dx.points["clip_id"][0]
    rows.append(row("dataset_explorer", "dx.open(clip) -> Explorer built (kernel)", _timed(lambda: dx.open(cid)) * 1e3,
                    "ms"))  # the target (<= 1.5 s painted) is the browser row
    dx.explorer.select([3, 4, 5])
    t = _timed(lambda: dx.find_similar(k=12))
    rows.append(row("dataset_explorer", f"find_similar k=12 over {n} clips' patches + gallery (kernel)", t * 1e3, "ms"))
    return rows


def map_rows(small: bool) -> list[dict]:
    import pandas as pd

    from audiovis.projections import project
    from audiovis.widgets.dataset_explorer import _jscatter

    n, dim = (2_000, 64) if small else (100_000, 768)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    t = time.perf_counter()
    xy = project(vectors)
    pca = time.perf_counter() - t
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "clip_id": [f"c{i}" for i in range(n)],
                          "label": pd.Categorical(rng.integers(0, 10, n).astype(str))})
    t = time.perf_counter()
    scatter = _jscatter().Scatter(data=frame, x="x", y="y", color_by="label", legend=True, tooltip=True)
    widget = scatter.widget
    build = time.perf_counter() - t
    t = time.perf_counter()
    widget.selection = np.arange(n // 10)
    select = time.perf_counter() - t
    return [
        row("dataset_explorer", f"PCA projection, {n} x {dim}", pca, "s"),
        row("dataset_explorer", f"jupyter-scatter widget, {n} points (kernel)", build, "s"),
        row("dataset_explorer", f"set map selection, {n // 10} of {n} points (kernel)", select * 1e3, "ms"),
    ]


# -- stores for the browser rows ---------------------------------------------------------------------

SEED_CLIPS, SEED, GROUPS = 4, 21, 12


def synthetic_store(path: Path, num_clips: int, *, patches: bool, seed: int = 0):
    """A demo-model store of ``num_clips`` clips grown from ``SEED_CLIPS`` real SyntheticEvents clips (seed
    ``SEED``): clip ``synthetic<i:08d>`` repeats seed clip ``i % SEED_CLIPS``'s row (windows, predictions) with
    a clip vector drawn around one of ``GROUPS`` centres (its ``label``) and, with ``patches``, clustered random
    patch vectors (float16, as stored); shards of 256 clips, like ``embed_dataset``'s.

    Args:
        path: an empty folder for the store.
        num_clips: clips in the store.
        patches: store patch vectors (the search store) or not (the map store).
        seed: the random vectors' seed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    import audiovis as av
    from audiovis.datasets import SyntheticEvents
    from audiovis.store import embed_dataset, open_store
    from audiovis.store.runs import write_index
    from audiovis.store.shards import shard_name

    rng = np.random.default_rng(seed)
    first = embed_dataset(SyntheticEvents(SEED_CLIPS, seed=SEED), av.load_demo_model(), path, patches=patches,
                          progress=False)
    layer, dim, per_clip = first.manifest.resolve_layer(-1), first.manifest.dim, len(first.manifest.patch_bounds)
    (shard,) = sorted((path / "shards").glob("part-*.parquet"))
    table = pq.read_table(shard)
    shard.unlink()
    names = table.schema.names
    clip_centres = 3.0 * rng.standard_normal((GROUPS, dim)).astype(np.float32)
    patch_centres = rng.standard_normal((2000, dim)).astype(np.float32)
    ids, labels = [], []
    for start in range(0, num_clips, 256):
        n = min(256, num_clips - start)
        part = table.take(np.arange(start, start + n) % SEED_CLIPS)
        block = [f"synthetic{start + i:08d}" for i in range(n)]
        group = rng.integers(0, GROUPS, n)
        vectors = clip_centres[group] + rng.standard_normal((n, dim), dtype=np.float32)
        fixed = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)
        part = part.set_column(names.index("clip_id"), "clip_id", pa.array(block))
        for name in (f"mean_{layer}", f"cls_{layer}"):
            part = part.set_column(names.index(name), name, fixed)
        if patches:
            found = patch_centres[rng.integers(0, len(patch_centres), n * per_clip)]
            found += 0.35 * rng.standard_normal(found.shape, dtype=np.float32)
            inner = pa.FixedSizeListArray.from_arrays(pa.array(found.astype(np.float16).ravel()), dim)
            column = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * per_clip), inner)
            part = part.set_column(names.index(f"patches_{layer}"), f"patches_{layer}", column)
        pq.write_table(part, path / "shards" / shard_name(block), compression="zstd")
        ids += block
        labels += [f"group{g}" for g in group]
    write_index(path, [{"position": i, "clip_id": c, "source": f"synthetic clip {i}", "label": g}
                       for i, (c, g) in enumerate(zip(ids, labels))])
    return open_store(path)


# -- in the page -------------------------------------------------------------------------------------

# Insert a code cell and run it; resolve with ms until a canvas in its output shows coloured pixels (a
# point: background white, axes grey) -- checked on every animation frame.
_JS_RUN_UNTIL_MAP = """
([path, source]) => new Promise((resolve, reject) => {
""" + JS_APPEND_CELL + """  const coloured = (canvas) => {
    if (canvas.width < 200 || canvas.height < 100) return false;
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < d.length; i += 28) {
      if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60 && d[i + 3] > 200) return true;
    }
    return false;
  };
  const timer = setTimeout(() => reject(new Error('no map painted after: ' + source)), 180000);
  const t0 = performance.now();
  const tick = () => {
    const cell = notebook.widgets[index];
    const canvas = cell && cell.node.querySelector('.jp-OutputArea canvas');
    if (canvas && coloured(canvas)) { clearTimeout(timer); resolve(performance.now() - t0); return; }
    requestAnimationFrame(tick);
  };
  app.commands.execute('notebook:run-cell');
  requestAnimationFrame(tick);
})
"""

# Per animation frame: its start (rAF time); per draw of the map: the time from the frame's start to the end
# of the copy of the WebGL image into the map's 2-D canvas (jupyter-scatter draws inside the frame), and the
# copy's own time (it waits for the WebGL drawing to finish).
_JS_FRAMES = """
(canvas) => {
  const ctx = canvas.getContext('2d');
  const log = window.__mapLog = {frames: [], draws: [], copies: [], running: true};
  if (!ctx.__timed) {
    const copy = ctx.drawImage;
    ctx.drawImage = function (...args) {
      const start = performance.now();
      const out = copy.apply(this, args);
      const end = performance.now();
      if (window.__mapLog) {
        window.__mapLog.draws.push(end - document.timeline.currentTime);
        window.__mapLog.copies.push(end - start);
      }
      return out;
    };
    ctx.__timed = true;
  }
  const tick = (t) => { log.frames.push(t); if (log.running) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}
"""

# ms from the click's mouse-up until the newest viewer under the opened clip's title has drawn.
_JS_WATCH_OPEN = """
(output) => {
  const box = output.querySelector('.audiovis-dx-clip');
  const before = box.querySelector('[data-testid="audiovis-viewer"]');
  const watch = window.__openWatch = {up: null, shown: null};
  window.addEventListener('mouseup', () => { if (watch.up === null) watch.up = performance.now(); },
                          {capture: true, once: true});
  const observer = new MutationObserver(() => {
    const viewer = box.querySelector('[data-testid="audiovis-viewer"]');
    if (watch.up !== null && viewer && viewer !== before && Number(viewer.dataset.drawCount || 0) >= 1) {
      watch.shown = performance.now() - watch.up;
      observer.disconnect();
    }
  });
  observer.observe(box, {subtree: true, childList: true, attributes: true});
}
"""

# ms from the click's mouse-up until the gallery holds n cards showing the new search (cards are reused from
# search to search: their captions' data-search changed, their images carry that search's class) whose
# images have all loaded.
_JS_WATCH_GALLERY = """
([output, n]) => {
  const gallery = output.querySelector('.audiovis-dx-gallery');
  const searchOf = (c) => c.querySelector('.audiovis-dx-card-clip')?.dataset.search;
  const old = new Set([...gallery.querySelectorAll('.audiovis-dx-card')].map(searchOf));
  const watch = window.__galleryWatch = {up: null, shown: null};
  window.addEventListener('mouseup', () => { if (watch.up === null) watch.up = performance.now(); },
                          {capture: true, once: true});
  const check = () => {
    const cards = [...gallery.querySelectorAll('.audiovis-dx-card')];
    const imgs = cards.map((c) => c.querySelector('img'));
    if (watch.up !== null && watch.shown === null && cards.length === n
        && cards.every((c) => searchOf(c) !== undefined && !old.has(searchOf(c)))
        && imgs.every((img, i) => img && img.classList.contains('audiovis-dx-search-' + searchOf(cards[i]))
                                 && img.complete && img.naturalWidth > 0)) {
      watch.shown = performance.now() - watch.up;
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(gallery, {subtree: true, childList: true, attributes: true, characterData: true});
  gallery.addEventListener('load', check, true);
}
"""

# Date.now() of the lasso's mouse-up, of the first message to the kernel after it (the selection), and
# of the moment the selected-clips table changed afterwards.
_JS_WATCH_LASSO = """
(output) => {
  const table = output.querySelector('.audiovis-dx-selection');
  const watch = window.__lassoWatch = {up: null, sent: null, table: null};
  window.addEventListener('mouseup', () => { if (watch.up === null) watch.up = Date.now(); },
                          {capture: true, once: true});
  if (!WebSocket.prototype.__timed) {
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      const w = window.__lassoWatch;
      if (w && w.up !== null && w.sent === null) w.sent = Date.now();
      return send.call(this, data);
    };
    WebSocket.prototype.__timed = true;
  }
  const observer = new MutationObserver(() => {
    if (watch.up !== null && table.textContent.includes('selected clip')) {
      watch.table = Date.now();
      observer.disconnect();
    }
  });
  observer.observe(table, {subtree: true, childList: true, characterData: true});
}
"""


def _browser_setup(map_path: Path, search_path: Path) -> str:
    return f"""
import json, time
import numpy as np
import audiovis as av
from audiovis.datasets import SyntheticEvents
model = av.load_demo_model()
data = SyntheticEvents({SEED_CLIPS}, seed={SEED})
def source(clip_id):  # synthetic<i> repeats seed clip i % {SEED_CLIPS}
    return data[int(clip_id[-8:]) % {SEED_CLIPS}]
map_store = av.open_store({str(map_path)!r})
search_store = av.open_store({str(search_path)!r})
selections = []
def log_selection(dx):
    dx.observe(lambda change: selections.append([time.time() * 1000, len(change['new'])]), 'selection')
"""


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _frames(nb, canvas, gesture) -> tuple[list[float], list[float], list[float]]:
    """(map draw times, their copies' times, animation frame intervals), in ms, while ``gesture()`` runs."""
    nb.evaluate(_JS_FRAMES, canvas.element_handle())
    gesture()
    nb.page.wait_for_timeout(300)
    log = nb.evaluate("() => { const log = window.__mapLog; log.running = false; window.__mapLog = null; return log; }")
    return log["draws"], log["copies"], list(np.diff(log["frames"]))


def _lasso(page, box, fx0: float, fx1: float, fy0: float, fy1: float) -> None:
    """Drag a lasso along three sides of a rectangle (fractions of the map); the polygon closes by itself."""
    corners = [(fx1, fy0), (fx0, fy0), (fx0, fy1), (fx1, fy1)]
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in corners]
    page.mouse.move(*points[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for t in np.linspace(0, 1, 10)[1:]:
            page.mouse.move(x0 + t * (x1 - x0), y0 + t * (y1 - y0))
            page.wait_for_timeout(15)  # jupyter-scatter takes a lasso point at most every 8 ms
    page.mouse.up()


def _box(canvas) -> dict:
    """The map canvas's box in the page, measured now (clicking a toolbar button may scroll the page)."""
    canvas.scroll_into_view_if_needed()
    return canvas.bounding_box()


def _lasso_rows(nb, out, canvas, label: str, name: str, width: float, height: float) -> list[dict]:
    """Five lassos of ``width`` x ``height`` (fractions of the map) stepping across it: mouse-up -> the kernel's
    ``dx.selection`` changed, -> the selection message left the page, -> the selected-clips table redrawn.

    Args:
        nb: the notebook.
        out: the output holding the map.
        canvas: the map's canvas.
        label: the map's size for the row names.
        name: the lassos' name for the row names.
        width: each lasso's width, a fraction of the map's.
        height: each lasso's height, a fraction of the map's.
    """
    kernel, sent, table, counts = [], [], [], []
    for i in range(5):
        nb.run_cell("dx.selection = []\nselections.clear()")
        nb.evaluate(_JS_WATCH_LASSO, out.element_handle())
        x0 = 0.2 + 0.08 * i
        _lasso(nb.page, _box(canvas), x0, x0 + width, 0.5 - height / 2, 0.5 + height / 2)
        try:
            logged = json.loads(nb.poll_cell("print(json.dumps(selections))", lambda t: json.loads(t) != [],
                                             timeout=20))
        except AssertionError:  # an empty patch of the map: nothing selected, nothing changed in the kernel
            counts.append(0)
            continue
        watch = nb.evaluate("() => window.__lassoWatch")
        kernel.append(logged[0][0] - watch["up"])
        counts.append(logged[0][1])
        if watch["sent"] is not None:
            sent.append(watch["sent"] - watch["up"])
        nb.page.wait_for_function("() => window.__lassoWatch.table !== null", timeout=30000)
        table.append(nb.evaluate("() => window.__lassoWatch.table - window.__lassoWatch.up"))
    return [
        row("dataset_explorer", f"browser: {name} lasso on the {label}-clip map -> dx.selection in the kernel "
            f"(mouse-up to the kernel's change; median of {len(kernel)}, {min(counts)}-{max(counts)} clips "
            f"selected; of which {_median(sent):.0f} ms in the page until its first message to the kernel left)",
            _median(kernel), "ms", target="<= 200 ms", met=_median(kernel) <= 200),
        row("dataset_explorer", f"browser: {name} lasso -> the selected-clips table drawn in the page "
            f"(median of {len(table)})", _median(table), "ms"),
    ]


def _coloured_pixels(png: bytes) -> np.ndarray:
    """(x, y) of the map's point pixels (saturated colour) in a canvas screenshot."""
    import io

    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return np.argwhere(rgb.max(axis=2) - rgb.min(axis=2) > 60)[:, ::-1]


def _map_rows(nb, num_clips: int) -> list[dict]:
    label = f"{num_clips // 1000} k" if num_clips >= 1000 else str(num_clips)
    build = "dx = av.explore_dataset(map_store, model, sources=source, height=420)\nlog_selection(dx)\ndx"
    cold = float(nb.evaluate(_JS_RUN_UNTIL_MAP, [nb.path, build]))
    warm = []
    for _ in range(2):
        nb.run_cell("del dx; import gc; gc.collect()")
        warm.append(float(nb.evaluate(_JS_RUN_UNTIL_MAP, [nb.path, build])))
    shown = [float(nb.evaluate(_JS_RUN_UNTIL_MAP, [nb.path, "dx"])) for _ in range(3)]
    rows = [
        row("dataset_explorer", f"browser: map of {label} clips, first paint after running the cell that builds and "
            "shows it (first in the session: imports jupyter-scatter, loads its bundle)", cold / 1000, "s",
            target="<= 2 s", met=cold <= 2000),
        row("dataset_explorer", f"browser: map of {label} clips, first paint after running that cell again "
            "(explore_dataset + display, median of 2)", _median(warm) / 1000, "s", target="<= 2 s",
            met=_median(warm) <= 2000),
        row("dataset_explorer", f"browser: map of {label} clips, first paint after running a cell that shows a built "
            "explorer (`dx`, median of 3)", _median(shown) / 1000, "s", target="<= 2 s", met=_median(shown) <= 2000),
    ]
    out = nb.output_locator(-1)  # the last `dx`: every later gesture works on this view
    canvas = out.locator("canvas").first
    box = _box(canvas)
    nb.page.wait_for_timeout(500)
    page = nb.page
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def pan() -> None:
        for dx_ in (-300, 300, -300):
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx + dx_, cy + dx_ / 6, steps=60)
            page.mouse.up()

    def zoom() -> None:
        page.mouse.move(cx, cy)
        for delta in [-60] * 25 + [60] * 25:
            page.mouse.wheel(0, delta)
            page.wait_for_timeout(10)

    for name, gesture in (("panning (3 drags)", pan), ("zooming (50 wheel steps)", zoom)):
        draws, copies, intervals = _frames(nb, canvas, gesture)
        rows.append(row("dataset_explorer", f"browser: {label}-clip map, work per frame while {name}, p95 of "
                        f"{len(draws)} draws (median {_median(draws):.1f} ms, of which the WebGL finish + copy "
                        f"{_median(copies):.1f} ms)", _p95(draws), "ms",
                        target="<= 16 ms", met=_p95(draws) <= 16))
        late = 100 * sum(i > 25 for i in intervals) / max(1, len(intervals))
        rows.append(row("dataset_explorer", f"browser: {label}-clip map, animation frame interval while {name}, p95 "
                        f"(display refresh 16.7 ms; {late:.0f}% of frames late, > 25 ms)", _p95(intervals), "ms",
                        target="<= 17.5 ms", met=_p95(intervals) <= 17.5))
    out.locator('[title="Reset View"]').first.click()  # back to the whole map
    page.wait_for_timeout(500)

    # Lasso -> dx.selection in the kernel: five wide rectangles (a fifth of the map's width, 20-35 k clips) and
    # five narrow ones (a few thousand clips) across the map
    out.locator('[title="Activate lasso selection"]').first.click()
    for name, width, height in (("wide", 0.2, 0.6), ("narrow", 0.06, 0.25)):
        rows += _lasso_rows(nb, out, canvas, label, name, width, height)
    out.locator('[title="Activate pan & zoom"]').first.click()

    # Click a point -> that clip's explorer painted below the map: the first open of the session (imports
    # Bokeh in the kernel, loads BokehJS in the page), then three more
    nb.run_cell("dx.selection = []")
    page.mouse.move(2, 2)
    page.wait_for_timeout(300)
    pixels = _coloured_pixels(canvas.screenshot())
    rng = np.random.default_rng(0)
    opened = []
    for _ in range(4):
        nb.run_cell("dx.selection = []")
        x, y = (float(v) for v in pixels[rng.integers(len(pixels))])
        box = _box(canvas)
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(100)
        nb.evaluate(_JS_WATCH_OPEN, out.element_handle())
        page.mouse.down()  # no movement between down and up: a click
        page.mouse.up()
        page.wait_for_function("() => window.__openWatch.shown !== null", timeout=120000)
        opened.append(nb.evaluate("() => window.__openWatch.shown"))
    rows.append(row("dataset_explorer", f"browser: click a point of the {label}-clip map -> that clip's explorer "
                    "painted below it, first open of the session (imports Bokeh)", opened[0] / 1000, "s"))
    rows.append(row("dataset_explorer", f"browser: click a point of the {label}-clip map -> that clip's explorer "
                    f"painted below it, demo model (median of {len(opened) - 1})", _median(opened[1:]) / 1000, "s",
                    target="<= 1.5 s", met=_median(opened[1:]) <= 1500))
    return rows


def _search_rows(nb, num_vectors: int, num_patches: int) -> list[dict]:
    label = f"{num_vectors / 1e6:.2g} M" if num_vectors >= 1e6 else f"{num_vectors // 1000} k"
    nb.run_cell("del dx; import gc; gc.collect()")
    nb.execute("dxs = av.explore_dataset(search_store, model, sources=source, height=200)\ndxs", timeout=300)
    out = nb.output_locator(-1)
    times = []
    rng = np.random.default_rng(1)
    for k in range(4):
        patches = sorted(rng.choice(num_patches, 3, replace=False).tolist())
        nb.run_cell(f"dxs.open(dxs.points['clip_id'][{17 * k + 3}]).select({patches})", timeout=120)
        nb.page.wait_for_function(
            "(o) => Number(o.querySelector('.audiovis-dx-clip [data-testid=\"audiovis-viewer\"]')?.dataset.drawCount "
            "|| 0) >= 1", arg=out.element_handle(), timeout=60000)
        nb.page.wait_for_timeout(500)
        nb.evaluate(_JS_WATCH_GALLERY, [out.element_handle(), 12])
        out.locator("button.audiovis-dx-find", has_text="Find similar").click()
        nb.page.wait_for_function("() => window.__galleryWatch.shown !== null", timeout=180000)
        times.append(nb.evaluate("() => window.__galleryWatch.shown"))
    status = nb.run_cell("print(dxs._status.value)").strip()
    if status:
        raise RuntimeError(f"find similar reported: {status}")
    return [
        row("dataset_explorer", f"browser: Find similar over {label} patch vectors -> gallery of 12 drawn, first "
            "search of the session (reads the IVF index kept in the store)", times[0], "ms"),
        row("dataset_explorer", f"browser: Find similar over {label} patch vectors -> gallery of 12 drawn "
            f"(click to every image loaded; median of {len(times) - 1})", _median(times[1:]), "ms",
            target="<= 500 ms", met=_median(times[1:]) <= 500),
    ]


def browser_rows(small: bool, tmp: Path) -> list[dict]:
    """The browser rows: map first paint, pan/zoom frames, lasso -> kernel, click -> explorer, find -> gallery."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import Frontend, JupyterServer, launch_chromium

    num_map, num_search = (3_000, 64) if small else (100_000, 2137)
    map_store = synthetic_store(tmp / "map", num_map, patches=False)
    search_store = synthetic_store(tmp / "search", num_search, patches=True, seed=1)
    num_patches = len(search_store.manifest.patch_bounds)
    num_vectors = len(search_store.clips) * num_patches
    search_store.search_patches(search_store.patch_embeddings(search_store.clips["clip_id"][0])[0], 1)  # index kept
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        server = JupyterServer.start("lab", tmp / "lab")
        frontend = Frontend(server, browser, label="bench_dataset_explorer")
        try:
            nb = frontend.open_notebook(cells=[_browser_setup(map_store.path, search_store.path)])
            nb.run_all()
            return _map_rows(nb, num_map) + _search_rows(nb, num_vectors, num_patches)
        finally:
            frontend.close()
            server.stop()
            browser.close()


def run(small: bool = False) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-dx-"))
    try:
        return store_rows(small, tmp) + map_rows(small) + browser_rows(small, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print_rows(run(small="--small" in sys.argv))
