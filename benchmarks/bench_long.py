"""Long recordings: a 1-hour spectrogram (128 mel bins, 10 ms hop = 360 k frames) in the kernel and in
a real JupyterLab + Chromium (Playwright, tests/e2e/harness.py).

Kernel: chunked vs one-shot front end (time, peak memory, each in a fresh process); what opening the
hour with the demo model costs (``LongViewer(audio, model)``: chunked spectrogram + 900 window labels)
and the memory that viewer holds, playback audio included. Browser: first paint after running the cell
that builds and shows the viewer, frame intervals (target: p95 within one 60 Hz refresh) and draw times
while panning both while the window labels are still being computed and after they are all in, tile
fetch time, and the browser's memory while panning across the whole hour at a 20 s zoom.
Smoke run: ``browser_rows(seconds=240, pan_steps=8, busy_steps=6)``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import print_rows, row

ROOT = Path(__file__).resolve().parent.parent
def hour_setup(seconds: int = 3600) -> str:
    """Kernel code making ``audio`` (``seconds`` of quiet noise, a 20 ms click every 7 s) and ``model`` (demo)."""
    return f"""
import numpy as np, torch
import audiovis as av
sr = 16000
rng = np.random.default_rng(0)
x = (0.003 * rng.standard_normal({seconds} * sr)).astype(np.float32)
for k in range(0, {seconds}, 7):  # a 20 ms click every 7 s
    x[k * sr + 1000: k * sr + 1320] += 0.5
audio = av.load_audio(x, sr)
del x
model = av.load_demo_model()
"""


HOUR_SETUP = hour_setup()

_FRONTEND_SCRIPT = """
import json, sys, threading, time, psutil
sys.path.insert(0, {root!r})
import torch
import audiovis as av
from audiovis.longform import chunked_spectrogram
path, mode = sys.argv[1], sys.argv[2]
fe = av.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=128)
fe(av.load_audio(torch.zeros(16000), 16000))  # warm-up: lazy imports and allocator pools are not the work
proc = psutil.Process()
before = proc.memory_info().rss
peak, done = [before], threading.Event()
def sample():  # the RSS high-water mark of this stage alone (ru_maxrss would include start-up)
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)
sampler = threading.Thread(target=sample)
sampler.start()
t = time.perf_counter()
spec = chunked_spectrogram(fe, path, chunk_seconds=60) if mode == "chunked" else fe(av.load_audio(path))
elapsed = time.perf_counter() - t
done.set()
sampler.join()
peak[0] = max(peak[0], proc.memory_info().rss)
print(json.dumps({{"seconds": elapsed, "extra_peak_mb": (peak[0] - before) / 2**20, "result_mb": spec.values.nbytes / 2**20}}))
"""

_MEMORY_SCRIPT = """
import gc, json, sys, time, psutil
sys.path.insert(0, {root!r})
{setup}
model.analyze(audio.segment(0, 4))  # warm-up: lazy imports and allocator pools are not the viewer's
gc.collect()
proc = psutil.Process()
before = proc.memory_info().rss
t = time.perf_counter()
viewer = av.LongViewer(audio, model)  # audio given: playback reads it
seconds = time.perf_counter() - t
viewer.wait_for_labels()
labels_seconds = time.perf_counter() - t
state = viewer.get_state()
del state
for level in range(len(viewer._tile_server.levels)):
    for index in range(0, viewer._tile_server.num_tiles(level), 7):
        viewer._tile_server.handle({{"level": level, "index": index}})
viewer.show_window(450)
viewer.analysis.rollout()
gc.collect()
held = proc.memory_info().rss - before
print(json.dumps({{"held_mb": held / 2**20, "spec_mb": viewer.spectrogram.values.nbytes / 2**20, "seconds": seconds,
                  "labels_seconds": labels_seconds, "windows": len(viewer.windows)}}))
"""


def _subprocess_json(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def kernel_rows() -> list[dict]:
    import numpy as np
    import soundfile as sf

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "hour.flac")
        rng = np.random.default_rng(0)
        with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
            for _ in range(60):
                f.write((0.05 * rng.standard_normal(16000 * 60)).astype(np.float32))
        script = _FRONTEND_SCRIPT.format(root=str(ROOT))
        chunked = _subprocess_json(script, path, "chunked")
        oneshot = _subprocess_json(script, path, "oneshot")
    rows.append(row("long", "1 h mel from FLAC, chunked (60 s chunks): time", chunked["seconds"], "s",
                    peer="one-shot", peer_value=oneshot["seconds"]))
    rows.append(row("long", "1 h mel, chunked: peak memory beyond the result", chunked["extra_peak_mb"] - chunked["result_mb"],
                    "MiB", peer="one-shot", peer_value=oneshot["extra_peak_mb"] - oneshot["result_mb"]))
    mem = _subprocess_json(_MEMORY_SCRIPT.format(root=str(ROOT), setup=HOUR_SETUP))
    rows.append(row("long", "LongViewer(1 h audio, demo model) ready to show (chunked spectrogram, tiles)",
                    mem["seconds"], "s"))
    rows.append(row("long", f"... and its {mem['windows']} window labels all in (background, batches of 16)",
                    mem["labels_seconds"], "s"))
    ratio = mem["held_mb"] / mem["spec_mb"]
    rows.append(row("long", "kernel memory held by that LongViewer (its spectrogram, tiles, labels, one window's "
                    "analysis; audio for playback) / spectrogram size", ratio, "x", target="<= 2x", met=ratio <= 2.0))
    return rows


_DRAW_WATCH_JS = """() => {
    window.__draws = []; window.__fetches = [];
    const v = document.querySelector('[data-testid="audiovis-viewer"]');
    new MutationObserver((records) => {
        for (const r of records) {
            if (r.attributeName === 'data-draw-ms') window.__draws.push(Number(v.dataset.drawMs));
            if (r.attributeName === 'data-tiles-received') window.__fetches.push(Number(v.dataset.tileFetchMs));
        }
    }).observe(v, {attributes: true});
}"""

#: p95 of the interval between animation frames while panning: one 60 Hz refresh (16.7 ms) plus 5 % jitter;
#: a missed refresh makes an interval of 33 ms.
FRAME_TARGET_MS = 17.5


def _pan(page, box, steps: int, on_step=None) -> tuple[list[float], list[float], list[float]]:
    """Drag one canvas width right-to-left ``steps`` times; returns draw times, frame intervals, tile fetch times."""
    page.evaluate("() => { window.__draws = []; window.__fetches = []; }")
    page.evaluate("""() => {  // frame intervals (display refresh: 16.7 ms) while the pan runs
        window.__frames = []; window.__panning = true;
        const tick = (t) => { window.__frames.push(t); if (window.__panning) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
    }""")
    y = box["y"] + box["height"] / 2
    for step in range(steps):
        page.mouse.move(box["x"] + box["width"] - 5, y)
        page.mouse.down()
        page.mouse.move(box["x"] + 5, y, steps=8)
        page.mouse.up()
        page.wait_for_timeout(30)
        if on_step is not None:
            on_step(step)
    page.evaluate("window.__panning = false")
    stamps = page.evaluate("window.__frames")
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]
    fetches = [f for f in page.evaluate("window.__fetches") if f == f]
    return page.evaluate("window.__draws"), intervals, fetches


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else float(values[0])


def _frame_rows(what: str, draws: list[float], intervals: list[float]) -> list[dict]:
    p95 = _p95(intervals)
    late = 100 * sum(i > 25.0 for i in intervals) / len(intervals)
    return [
        row("long", f"frame interval while panning{what}, p95 of {len(intervals)} (display refresh 16.7 ms)", p95, "ms",
            target=f"<= {FRAME_TARGET_MS} ms", met=p95 <= FRAME_TARGET_MS),
        row("long", f"frames late while panning{what} (interval > 25 ms, i.e. a refresh missed)", late, "%"),
        row("long", f"draw time (the draw body) while panning{what}, p95 of {len(draws)} draws", _p95(draws), "ms"),
        row("long", f"draw time while panning{what} (median)", statistics.median(draws), "ms"),
    ]


def browser_rows(seconds: int = 3600, pan_steps: int | None = None, busy_steps: int = 40) -> list[dict]:
    """Browser rows for a recording of ``seconds`` (pan_steps: drags of the final pan, default the whole recording)."""
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import Frontend, JupyterServer, launch_chromium

    viewer = '[data-testid="audiovis-viewer"]'
    hours = f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = launch_chromium(pw)
        server = JupyterServer.start("lab", Path(tmp))
        frontend = Frontend(server, browser, label="bench_long")
        try:
            nb = frontend.open_notebook(cells=[hour_setup(seconds)])
            nb.run_all(timeout=900)
            page = nb.page
            # First paint: browser clock from just before the cell that builds and shows the viewer is run
            # (LongViewer(...): chunked spectrogram, tiles, label thread started; then its display) to its first draw.
            page.evaluate("""() => {
                window.__firstPaint = null;
                new MutationObserver((_, obs) => {
                    const v = document.querySelector('[data-testid="audiovis-viewer"]');
                    if (v && v.dataset.drawCount) { window.__firstPaint = Date.now(); obs.disconnect(); }
                }).observe(document.body, {subtree: true, childList: true, attributes: true});
            }""")
            t0 = page.evaluate("Date.now()")
            nb.execute("viewer = av.LongViewer(audio, model, height=300)\nviewer", timeout=300)
            page.wait_for_function("() => window.__firstPaint !== null", timeout=30000)
            first_paint = (page.evaluate("window.__firstPaint") - t0) / 1000
            rows.append(row("long", f"{hours} recording: first paint after running the cell that builds and shows the "
                            "LongViewer (construct + display)", first_paint, "s", target="<= 1 s", met=first_paint <= 1.0))

            widget = nb.output_locator(-1).locator(viewer)
            canvas = widget.locator('[data-testid="spectrogram-canvas"]')
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            page.evaluate(_DRAW_WATCH_JS)

            # Pan while the label thread still runs in the kernel (what a user does right after the cell).
            nb.execute("viewer.time_range = (0.0, 20.48)")
            page.wait_for_timeout(300)
            busy_before = nb.run_cell("viewer.labels_done").strip().endswith("False")
            draws, intervals, _ = _pan(page, box, busy_steps)
            busy_after = nb.run_cell("viewer.labels_done").strip().endswith("False")
            if busy_before and busy_after:
                rows += _frame_rows(", window labels still being computed", draws, intervals)
            else:
                rows += _frame_rows(", window labels finished during this pan" if busy_before
                                    else " (labels were already in: not measured during labels)", draws, intervals)

            nb.execute("viewer.wait_for_labels()", timeout=900)
            nb.execute(f"viewer.time_range = ({seconds / 2:.1f}, {seconds / 2 + 20.48:.2f})")
            page.wait_for_function(f"() => Number(document.querySelector('{viewer}').dataset.tilesReceived ?? 0) >= 2",
                                   timeout=30000)
            cdp = page.context.new_cdp_session(page)

            def heap_mb() -> float:
                cdp.send("HeapProfiler.collectGarbage")
                return cdp.send("Runtime.getHeapUsage")["usedSize"] / 2**20

            def tile_mb() -> float:
                return float(widget.get_attribute("data-tile-bytes") or 0) / 2**20

            # Pan with the mouse once every label is in: one canvas width per step, across the whole recording.
            nb.execute("viewer.time_range = (0.0, 20.48)")
            page.wait_for_timeout(500)
            heaps, caches = [], []
            steps = pan_steps or int(seconds / 20.48)

            def measure(step: int) -> None:
                if step in (steps // 4, steps // 2, steps - 1):
                    page.wait_for_timeout(300)
                    heaps.append(heap_mb())
                    caches.append(tile_mb())

            draws, intervals, fetches = _pan(page, box, steps, measure)
            rows += _frame_rows(", labels all in", draws, intervals)
            if fetches:
                fetch_p95 = _p95(fetches)
                rows.append(row("long", f"tile fetch, request to reply (p95 of {len(fetches)})", fetch_p95, "ms",
                                target="<= 150 ms", met=fetch_p95 <= 150.0))
                rows.append(row("long", "tile fetch (median)", statistics.median(fetches), "ms"))
            growth = heaps[-1] - heaps[0]
            rows.append(row("long", f"JS heap growth, 1/4 of the pan -> the whole {hours} (after GC)", growth, "MiB",
                            target="<= 16 MiB", met=growth <= 16.0))
            rows.append(row("long", f"JS heap at the end of the pan (1/4: {heaps[0]:.1f}, 1/2: {heaps[1]:.1f})",
                            heaps[-1], "MiB"))
            rows.append(row("long", "tile cache at the end of the pan (bound 48 MiB)", caches[-1], "MiB",
                            target="<= 48 MiB", met=max(caches) <= 48.0))
        finally:
            frontend.close()
            server.stop()
            browser.close()
    return rows


def run() -> list[dict]:
    return kernel_rows() + browser_rows()


if __name__ == "__main__":
    print_rows(run())
