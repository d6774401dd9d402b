"""Dataset explorer in a real JupyterLab + Chromium, driven with real mouse events on the map.

Eight SyntheticEvents clips embedded with the demo model; every point gets a colour of its own, so a point is
found in a screenshot of the map by its colour and named by the kernel's colour table (the tests never read
the projected coordinates). Checked:

- the map paints every point whole (none cut by the map's edge), and ``dx.open`` from the kernel shows the
  clip's viewer below the map;
- a click (mouse down and up without moving) at the most isolated point's pixels opens that clip: the
  kernel's ``dx.selection`` is that clip, ``dx.explorer``'s analysis is that clip's (its mean patch vector is
  the stored clip vector) and its viewer is painted;
- the map's lasso tool (jupyter-scatter binds no key to the lasso; its toolbar button, then a drag) around
  the points on one side of the widest gap selects exactly those clips in the kernel, and the selected-clips
  table in the page lists them; with "box" chosen in the page, a drag over that side's rectangle does too;
  the lasso's selection leaves the page within the mouse-up's own task (not after the map's next frame);
- "Find similar" clicked in the page (with "other clips only" ticked in the page) draws the gallery: one card
  per hit in score order, its image loaded and not blank, its clip id, time and score shown whole; the hits'
  clips turn to the hit colour on the map;
- clicking a hit card opens that clip with the hit patch selected and the view zoomed around it, in the
  kernel (clip id, selection, time range) and in the painted viewer (its readout).
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

# Eight colours far apart in RGB (sum of absolute differences > 150 between any two).
PALETTE = ["#e6194b", "#3cb44b", "#0082c8", "#f58230", "#911eb4", "#46f0f0", "#f032e6", "#808000"]

SETUP = f"""
import json, tempfile
from pathlib import Path
import numpy as np, pandas as pd
import audiovis as av
from audiovis.datasets import SyntheticEvents
model = av.load_demo_model()
data = SyntheticEvents(8, seed=3)
store = av.embed_dataset(data, model, Path(tempfile.mkdtemp(dir=".")) / "store", patches=True, progress=False)  # in the lab root
dx = av.explore_dataset(store, model, sources=data, height=300)
dx.scatter.size(default=14)
dx.scatter.legend(False);
# one colour per point: row i of dx.points is PALETTE[i]
PALETTE = {PALETTE!r}
dx.points['key'] = pd.Categorical(dx.points['clip_id'], categories=list(dx.points['clip_id']))
def paint_by_clip():
    dx.scatter.color(by='key', map=dict(zip(dx.points['clip_id'], PALETTE)))
paint_by_clip()
"""

VIEWER = '[data-testid="audiovis-viewer"]'
RGB = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in PALETTE])


def _painted_points(png: bytes) -> tuple[np.ndarray, int]:
    """(row, col) of strongly coloured pixels (the points: the background is white, axes and text grey), and
    the image width in device pixels."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    return np.argwhere(saturation > 60), rgb.shape[1]


def _blobs(png: bytes) -> dict[int, tuple[float, float, int]]:
    """Palette index -> (x, y) centre in image pixels and pixel count of the points painted in that colour
    (pixels within 40 of a palette colour, sum of absolute RGB differences; edges blended with white drop out)."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    distance = np.abs(rgb[:, :, None, :] - RGB[None, None]).sum(axis=3)
    nearest, close = distance.argmin(axis=2), distance.min(axis=2) < 40
    out = {}
    for j in range(len(PALETTE)):
        ys, xs = np.nonzero(close & (nearest == j))
        if len(xs):
            out[j] = (float(xs.mean()), float(ys.mean()), len(xs))
    return out


def _map(nb):
    """The map's canvas (jupyter-scatter's first canvas in the explorer's output), scrolled into view."""
    canvas = nb.output_locator(1).locator("canvas").first
    canvas.scroll_into_view_if_needed()
    return canvas


def _clip_ids(nb) -> list[str]:
    return json.loads(nb.run_cell("print(json.dumps(list(dx.points['clip_id'])))"))


def _settled_blobs(nb) -> dict[int, tuple[float, float, int]]:
    """Every point's blob once the map shows all eight unselected (nothing hovered, nothing selected)."""
    nb.run_cell("dx.selection = []\npaint_by_clip()")
    canvas = _map(nb)
    nb.page.mouse.move(2, 2)  # no hover highlight
    blobs: dict = {}
    for _ in range(40):  # WebGL draws after the first frames; a deselection redraws
        nb.page.wait_for_timeout(250)
        blobs = _blobs(canvas.screenshot())
        if len(blobs) == len(PALETTE) and min(n for *_, n in blobs.values()) > 60:
            break
    assert len(blobs) == len(PALETTE), f"the map shows {len(blobs)} of {len(PALETTE)} points: {blobs}"
    return blobs


def _kernel(nb, expression: str, until) -> object:
    return json.loads(nb.poll_cell(f"print(json.dumps({expression}))", lambda out: until(json.loads(out)), timeout=60))


def _wait_viewer_painted(nb, clip_id: str):
    """The viewer under the opened clip's title, once its title names ``clip_id`` and it has drawn."""
    box = nb.output_locator(1).locator(".audiovis-dx-clip")
    nb.page.wait_for_function(
        "([el, cid]) => el.querySelector('b')?.textContent === cid && "
        f"Number(el.querySelector('{VIEWER}')?.dataset.drawCount || 0) >= 1",
        arg=[box.element_handle(), clip_id], timeout=60000)
    return box.locator(VIEWER)


@pytest.fixture(scope="module")
def nb(lab_module):
    notebook = lab_module.open_notebook(cells=[SETUP, "dx"])
    notebook.run_all()
    notebook.wait_for_widget(1, "canvas", timeout=60)
    return notebook


def test_map_paints_every_point_whole_and_open_shows_the_clip_viewer(nb):
    canvas = _map(nb)
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100
    points, width = np.zeros((0, 2)), 1
    for _ in range(40):  # WebGL draws after the first frames
        points, width = _painted_points(canvas.screenshot())
        if len(points) > 20:
            break
        nb.page.wait_for_timeout(250)
    nb.screenshot("dataset-explorer-map")
    assert len(points) > 20, "the map drew no coloured points"
    # the points at the extremes of the projection are drawn whole, not cut by the map's edge
    counts = [n for *_, n in _settled_blobs(nb).values()]
    assert min(counts) > 0.8 * max(counts), f"pixels per point: {counts}"
    out = nb.run_cell("print(type(dx.open(dx.points['clip_id'][2])).__name__)")
    assert out.strip() == "Explorer"
    _wait_viewer_painted(nb, _clip_ids(nb)[2])
    nb.screenshot("dataset-explorer-opened")


def test_clicking_a_point_opens_that_clip(nb):
    ids = _clip_ids(nb)
    blobs = _settled_blobs(nb)
    centres = {j: np.array(b[:2]) for j, b in blobs.items()}
    # the point farthest from its nearest neighbour: a click there can only mean that point
    isolation = {j: min(np.linalg.norm(c - o) for k, o in centres.items() if k != j) for j, c in centres.items()}
    target = max(isolation, key=isolation.get)
    assert isolation[target] > 20, f"no isolated point on the map: {isolation}"
    clip_id = ids[target]
    before = nb.run_cell("print(id(dx.explorer))").strip()
    box = _map(nb).bounding_box()
    x, y = box["x"] + centres[target][0], box["y"] + centres[target][1]
    nb.page.mouse.move(x, y)
    nb.page.wait_for_timeout(100)
    nb.page.mouse.down()  # no movement between down and up: a click, not a drag
    nb.page.mouse.up()
    assert _kernel(nb, "dx.selection", lambda v: v != []) == [clip_id]
    _kernel(nb, "dx.explorer is not None and str(id(dx.explorer)) != " + repr(before), bool)
    # the explorer is that clip's: its patch tokens' mean at the map's layer is the clip's stored vector
    check = ("row = list(store.clips['clip_id']).index(dx._open_id)\n"
             "print(json.dumps([dx._open_id, float(np.abs(dx.explorer.analysis.patch_embeddings(dx.layer).mean(0)"
             " - store.clip_embeddings(dx.layer)[row]).max())]))")
    opened, error = json.loads(nb.run_cell(check))
    assert opened == clip_id and error < 1e-3
    _wait_viewer_painted(nb, clip_id)
    nb.screenshot("dataset-explorer-click-opened")


def _split(centres: dict[int, np.ndarray]) -> tuple[int, float, list[int]]:
    """The widest gap between the points along x or y that leaves at least two points on each side:
    (axis, coordinate of the gap's middle, palette indices on the low side)."""
    best = (0.0, 0, 0.0, [])
    for axis in (0, 1):
        order = sorted(centres, key=lambda j: centres[j][axis])
        for i in range(2, len(order) - 1):
            lo, hi = centres[order[i - 1]][axis], centres[order[i]][axis]
            if hi - lo > best[0]:
                best = (hi - lo, axis, (lo + hi) / 2, order[:i])
    gap, axis, middle, low = best
    assert gap > 40, f"no gap between groups of points wider than 40 px: {centres}"
    return axis, middle, low


# Whether the map's selection message leaves the page within the mouse-up's own task: a timer set first thing in
# that task (capture phase on window) runs after the task and before any timer set later in it.
_JS_WATCH_SELECTION_SEND = """
() => {
  const w = window.__selectionSend = {inUp: false, inUpTask: null};
  window.addEventListener('mouseup', () => { w.inUp = true; setTimeout(() => { w.inUp = false; }, 0); },
                          {capture: true, once: true});
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const text = typeof data === 'string' ? data : new TextDecoder().decode(new Uint8Array(data));
    if (w.inUpTask === null && text.includes('"selection"')) w.inUpTask = w.inUp;
    return send.call(this, data);
  };
  w.restore = () => { WebSocket.prototype.send = send; };
}
"""


def test_lasso_selects_exactly_the_points_inside(nb):
    ids = _clip_ids(nb)
    blobs = _settled_blobs(nb)
    axis, middle, low = _split({j: np.array(b[:2]) for j, b in blobs.items()})
    expected = sorted(ids[j] for j in low)
    box = _map(nb).bounding_box()
    w, h = box["width"], box["height"]
    # the map's lasso tool (jupyter-scatter maps no key to the lasso), then a drag along three sides of the low
    # side's rectangle: the polygon closes along the gap; it ends away from its start, so the release is no click
    if axis == 0:
        path = [(middle, 4), (4, 4), (4, h - 4), (middle, h - 4)]
    else:
        path = [(4, middle), (4, 4), (w - 4, 4), (w - 4, middle)]
    page = nb.page
    toolbar = nb.output_locator(1)
    toolbar.locator('[title="Activate lasso selection"]').first.click()
    page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        for t in np.linspace(0, 1, 12)[1:]:  # lasso points are taken at most every 8 ms
            page.mouse.move(box["x"] + x0 + t * (x1 - x0), box["y"] + y0 + t * (y1 - y0))
            page.wait_for_timeout(20)
    nb.evaluate(_JS_WATCH_SELECTION_SEND)
    page.mouse.up()
    toolbar.locator('[title="Activate pan & zoom"]').first.click()
    assert sorted(_kernel(nb, "dx.selection", lambda v: v != [])) == expected
    # the selection went to the kernel from the mouse-up itself, not from a timer the map's next frame (75-100 ms
    # in software WebGL) runs before
    sent = nb.evaluate("() => { const w = window.__selectionSend; w.restore(); return w.inUpTask; }")
    assert sent is True, f"the selection message left the page {'after' if sent is False else 'never within'} the mouse-up's task"
    # the selected-clips table in the page lists exactly those clips
    table = nb.output_locator(1).locator(".audiovis-dx-selection")
    page.wait_for_function(
        "([el, n]) => el.querySelectorAll('tr').length === n + 1", arg=[table.element_handle(), len(expected)],
        timeout=20000)
    listed = [row.locator("td").first.inner_text() for row in table.locator("tr").all()[1:]]
    assert sorted(listed) == expected
    assert f"{len(expected)} selected clip(s)" in table.inner_text()
    nb.screenshot("dataset-explorer-lasso")


def test_box_selects_exactly_the_points_inside(nb):
    ids = _clip_ids(nb)
    blobs = _settled_blobs(nb)
    axis, middle, low = _split({j: np.array(b[:2]) for j, b in blobs.items()})
    expected = sorted(ids[j] for j in low)
    page, output = nb.page, nb.output_locator(1)
    output.locator(".audiovis-dx-select-with button", has_text="box").click()  # the toggle in the page
    assert _kernel(nb, "dx.select_with", lambda v: v == "box") == "box"
    box = _map(nb).bounding_box()
    w, h = box["width"], box["height"]
    # a drag from one corner of the low side's rectangle to the other, along the gap
    start, end = ((4, 4), (middle, h - 4)) if axis == 0 else ((4, 4), (w - 4, middle))
    output.locator('[title="Activate lasso selection"]').first.click()
    page.mouse.move(box["x"] + start[0], box["y"] + start[1])
    page.mouse.down()
    for t in np.linspace(0, 1, 16)[1:]:
        page.mouse.move(box["x"] + start[0] + t * (end[0] - start[0]), box["y"] + start[1] + t * (end[1] - start[1]))
        page.wait_for_timeout(20)
    page.mouse.up()
    output.locator('[title="Activate pan & zoom"]').first.click()
    try:
        assert sorted(_kernel(nb, "dx.selection", lambda v: v != [])) == expected
    finally:
        nb.run_cell("dx.select_with = 'lasso'")
    nb.screenshot("dataset-explorer-box")


def _find_in_page(nb, clip_index: int, patches: list[int]) -> tuple[str, list[dict]]:
    """Open clip ``clip_index`` (kernel), select ``patches`` in its explorer (kernel), then tick "other clips
    only" and press "Find similar" in the page; returns the clip id and the kernel's hits once the gallery
    shows one loaded image per hit."""
    clip_id = _clip_ids(nb)[clip_index]
    nb.run_cell(f"dx.open(dx.points['clip_id'][{clip_index}]).select({patches})\nn_before = len(dx._gallery.children)")
    _wait_viewer_painted(nb, clip_id)
    output = nb.output_locator(1)
    checkbox = output.locator(".audiovis-dx-other-clips input[type=checkbox]")
    if not checkbox.is_checked():
        checkbox.click()
    _kernel(nb, "dx._other_clips.value", bool)
    nb.run_cell("dx.hits = None")
    output.locator("button.audiovis-dx-find", has_text="Find similar").click()
    hits = _kernel(nb, "None if dx.hits is None else dx.hits.to_dict('records')", lambda v: v is not None)
    search = _kernel(nb, "dx._searches", int)
    gallery = output.locator(".audiovis-dx-gallery")
    # cards are reused from search to search: wait until each names this search's hit, its image loaded
    nb.page.wait_for_function(
        """([el, ids, search]) => {
            const cards = [...el.querySelectorAll('.audiovis-dx-card')];
            return cards.length === ids.length && cards.every((c, i) => {
                const clip = c.querySelector('.audiovis-dx-card-clip');
                const img = c.querySelector('img');
                const mark = 'audiovis-dx-search-' + search;
                return clip && clip.title === ids[i] && clip.dataset.search === String(search)
                    && c.querySelector('button')?.classList.contains(mark)
                    && img && img.classList.contains(mark) && img.complete && img.naturalWidth > 0;
            });
        }""", arg=[gallery.element_handle(), [h["clip_id"] for h in hits], search], timeout=30000)
    return clip_id, hits


# Mean and spread of an <img>'s pixels as drawn by the browser (a blank or broken image has no spread).
JS_IMAGE_STATS = """
(img) => {
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let lo = 255, hi = 0;
  for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }
  return {width: c.width, height: c.height, spread: hi - lo};
}
"""


def _pixel(png: bytes, x: float, y: float) -> np.ndarray:
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return rgb[int(round(y)) - 1: int(round(y)) + 2, int(round(x)) - 1: int(round(x)) + 2].reshape(-1, 3).mean(axis=0)


HIT, OTHER = np.array([0xFF, 0x7F, 0x0E]), np.array([0xCC, 0xCC, 0xCC])  # the map's colours for "similar"


def test_find_similar_button_draws_the_gallery(nb):
    ids = _clip_ids(nb)
    blobs = _settled_blobs(nb)
    clip_id, hits = _find_in_page(nb, 1, [3, 4, 5])
    assert len(hits) == 12
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert clip_id not in {h["clip_id"] for h in hits}, "the ticked 'other clips only' did not reach the search"
    cards = nb.output_locator(1).locator(".audiovis-dx-gallery .audiovis-dx-card").all()
    assert len(cards) == len(hits)
    for card, hit in zip(cards, hits):  # in score order, each naming its hit
        clip = card.locator(".audiovis-dx-card-clip")
        assert clip.inner_text() == hit["clip_id"] and clip.get_attribute("title") == hit["clip_id"]
        button = card.get_by_role("button")
        match = re.fullmatch(r"([0-9.]+) s · score ([0-9.]+)", button.inner_text().strip())
        assert match, button.inner_text()
        assert float(match.group(1)) == pytest.approx(hit["time_start"], abs=0.006)
        assert float(match.group(2)) == pytest.approx(hit["score"], abs=0.0006)
        # time and score are shown whole, not cut off by the card's width
        assert nb.evaluate("(b) => b.scrollWidth <= b.clientWidth", button.element_handle()), button.inner_text()
        stats = nb.evaluate(JS_IMAGE_STATS, card.locator("img").element_handle())
        assert stats["width"] == 180 and stats["height"] == 90 and stats["spread"] > 50, stats
    # and the hits' clips stand out on the map: each point's centre (found before by its own colour) now
    # painted in the hit colour or the other one
    hit_ids = {h["clip_id"] for h in hits}
    canvas = _map(nb)
    nb.page.mouse.move(2, 2)
    wanted = {j: (HIT if ids[j] in hit_ids else OTHER) for j in blobs}
    for _ in range(40):
        png = canvas.screenshot()
        off = {j: _pixel(png, *blobs[j][:2]).round().tolist() for j in blobs
               if np.abs(_pixel(png, *blobs[j][:2]) - wanted[j]).sum() > 40}
        if not off:
            break
        nb.page.wait_for_timeout(250)
    assert not off, f"points not painted as hit/other: {off}"
    nb.screenshot("dataset-explorer-gallery")


def test_clicking_a_hit_opens_that_clip_zoomed_to_the_patch(nb):
    clip_id, hits = _find_in_page(nb, 4, [100, 101])
    choice = 2
    hit = hits[choice]
    assert hit["clip_id"] != clip_id
    card = nb.output_locator(1).locator(".audiovis-dx-gallery .audiovis-dx-card").nth(choice)
    card.get_by_role("button").click()
    opened = _kernel(nb, "dx._open_id", lambda v: v == hit["clip_id"])
    assert opened == hit["clip_id"]
    selection, (t0, t1), full = json.loads(nb.run_cell(
        "print(json.dumps([list(dx.explorer.selection), list(dx.explorer.viewer.time_range), "
        "list(dx.explorer.viewer.full_time_range)]))"))
    assert selection == [hit["patch"]]
    assert t0 <= hit["time_start"] < hit["time_end"] <= t1
    assert t1 - t0 < 0.5 * (full[1] - full[0]), "the view is not zoomed in"
    # the painted viewer shows that range with one patch selected
    viewer = _wait_viewer_painted(nb, hit["clip_id"])
    readout = viewer.locator('[data-testid="audiovis-readout"]')
    nb.page.wait_for_function("(el) => el.textContent.includes('1 selected')", arg=readout.element_handle(),
                              timeout=20000)
    shown = re.match(r"([0-9.]+)–([0-9.]+) s", readout.inner_text())
    assert shown, readout.inner_text()
    assert float(shown.group(1)) == pytest.approx(t0, abs=0.02)
    assert float(shown.group(2)) == pytest.approx(t1, abs=0.02)
    nb.screenshot("dataset-explorer-hit-opened")
    assert nb.page_errors == []
