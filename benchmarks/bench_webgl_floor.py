"""What this browser's WebGL costs per frame, with no map of ours: the floor under the dataset map's pan/zoom.

The dataset map (``bench_dataset_explorer``) is drawn by jupyter-scatter, whose renderer is regl-scatterplot.
This area draws 1 k, 10 k and 100 k points with that renderer alone (the version inside jupyter-scatter
1.0.1, ``benchmarks/webgl_floor``: no Jupyter, no widget, 900 x 420 canvas, points of 3 px in ten coloured
clusters) in the same Chromium with the same flags as every browser test, and pans it with the map
benchmark's gesture (three 60-step drags). Chromium runs here with ``--disable-gpu``: WebGL is drawn by
SwiftShader on the CPU. The rows are the animation-frame interval while panning (p95, and the share of frames
later than 25 ms) and the time per mouse move (Playwright waits until the page has taken each move). No target:
the figures show what any WebGL drawing costs on this machine, next to the map's own (16 ms is the target there).
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from .common import row

HERE = Path(__file__).parent / "webgl_floor"
WORK = Path(__file__).parent / "_work" / "webgl_floor"
SIZES = (1_000, 10_000, 100_000)
ROUNDS = 2


def _build() -> Path:
    """The probe page built into ``benchmarks/_work/webgl_floor`` (installing its two npm packages if needed)."""
    if not (HERE / "node_modules" / "regl-scatterplot").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(HERE / "node_modules" / ".bin" / "esbuild"), "page.js", "--bundle", "--format=esm",
                    f"--outfile={WORK / 'bundle.js'}", "--log-level=warning"], cwd=HERE, check=True)
    shutil.copy(HERE / "index.html", WORK / "index.html")
    return WORK


def _pan(page) -> tuple[list[float], float]:
    """(animation-frame intervals in ms, ms per mouse move) over the map benchmark's three drags."""
    cx, cy, moves = 450, 210, 0
    page.evaluate("window.frameTimes = []")
    start = time.perf_counter()
    for dx in (-300, 300, -300):
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + dx, cy + dx / 6, steps=60)
        page.mouse.up()
        moves += 61
    per_move = (time.perf_counter() - start) * 1000 / moves
    return list(np.diff(page.evaluate("window.frameTimes"))), per_move


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


def run() -> list[dict]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.harness import launch_chromium

    root = _build()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    results: dict[int, list[tuple[list[float], float]]] = {n: [] for n in SIZES}
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                for _ in range(ROUNDS):  # sizes alternate within each round
                    for n in SIZES:
                        page = browser.new_page(viewport={"width": 1000, "height": 600})
                        page.goto(f"{url}?n={n}")
                        page.wait_for_function("window.ready === true", timeout=60_000)
                        page.wait_for_timeout(500)
                        results[n].append(_pan(page))
                        page.close()
            finally:
                browser.close()
    finally:
        server.shutdown()
    rows = []
    for n in SIZES:
        intervals = [i for r in results[n] for i in r[0]]
        late = 100 * float(np.mean(np.asarray(intervals) > 25))
        label = f"{n // 1000} k"
        rows.append(row("webgl_floor", f"regl-scatterplot alone, {label} points, panning (3 drags x {ROUNDS}): "
                        f"animation frame interval, p95 ({late:.0f}% of frames later than 25 ms)",
                        float(np.percentile(intervals, 95)), "ms"))
        rows.append(row("webgl_floor", f"regl-scatterplot alone, {label} points, panning: time per mouse move "
                        f"(median of {ROUNDS})", float(np.median([r[1] for r in results[n]])), "ms"))
    return rows
