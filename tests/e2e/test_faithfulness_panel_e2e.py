"""The explorer's faithfulness panel in a real JupyterLab + Chromium, on the demo model and a held-out clip:
the curves drawn (read back from the page's SVG and from its pixels) and the areas shown are the kernel's
``Analysis.faithfulness`` of the current overlay, and changing the overlay in the browser updates them."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

SETUP = """
import json
import numpy as np, torch
import audiovis as av
from audiovis.demo import EVAL_SEED
model = av.load_demo_model()
clip = av.datasets.SyntheticEvents(1, seed=EVAL_SEED, duration=model.window_seconds, classes=list(model.labels))[0]
ex = av.explore(clip.audio, model, overlay="relevance", class_index=clip.events[0].class_index)

def reference(method):
    f = ex.analysis.faithfulness(method, class_index=ex.class_index, steps=20)
    print(json.dumps(f.to_dict()))
"""

VIEWER = '[data-testid="audiovis-viewer"]'
PLOT = '[data-testid="audiovis-faithfulness-plot"]'
DELETION, INSERTION = (214, 96, 77), (67, 147, 195)  # the panel's #d6604d and #4393c3

# Every polyline of the plot as the browser parsed it, and the axes frame (the first rect).
JS_LINES = """
(svg) => {
  const frame = svg.querySelector('rect');
  return {
    frame: [frame.x.baseVal.value, frame.y.baseVal.value, frame.width.baseVal.value, frame.height.baseVal.value],
    size: [svg.getBoundingClientRect().width, svg.getBoundingClientRect().height],
    lines: Array.from(svg.querySelectorAll('polyline')).map((p) => ({
      stroke: p.getAttribute('stroke'),
      dashed: p.hasAttribute('stroke-dasharray'),
      points: Array.from(p.points).map((q) => [q.x, q.y]),
    })),
  };
}
"""


@pytest.fixture(scope="module")
def nb(lab_module):
    notebook = lab_module.open_notebook(cells=[SETUP, "ex"])
    notebook.run_all(timeout=600)
    notebook.wait_for_widget(1, VIEWER, timeout=120)
    return notebook


def _panel_text(nb) -> str:
    return nb.output_locator(1).locator(PLOT).locator("xpath=ancestor::div[1]").inner_text()


def _drawn(nb) -> dict[str, np.ndarray]:
    """The four curves as drawn: data coordinates (share of patches, probability) from the SVG's points."""
    svg = nb.output_locator(1).locator(PLOT)
    got = svg.evaluate(JS_LINES)
    fx, fy, fw, fh = got["frame"]
    assert got["size"][0] > 200 and got["size"][1] > 100, got["size"]
    curves = {}
    for line in got["lines"]:
        kind = {"#d6604d": "deletion", "#4393c3": "insertion"}[line["stroke"]]
        name = f"random_{kind}" if line["dashed"] else kind
        pts = np.array(line["points"])
        curves[name] = np.stack([(pts[:, 0] - fx) / fw, 1 - (pts[:, 1] - fy) / fh])
        curves[name + "_px"] = pts
    assert sorted(k for k in curves if not k.endswith("_px")) == ["deletion", "insertion", "random_deletion",
                                                                   "random_insertion"]
    return curves


def _check_against_kernel(nb, method: str) -> dict:
    ref = json.loads(nb.run_cell(f"reference({method!r})", timeout=300).strip().splitlines()[-1])
    drawn = _drawn(nb)
    for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
        x, y = drawn[name]
        np.testing.assert_allclose(x, ref["fractions"], atol=1e-3, err_msg=name)
        # points are written to 0.1 px on a 120 px high frame
        np.testing.assert_allclose(y, np.clip(ref[name], 0, 1), atol=1.5e-3, err_msg=f"{method} {name}")
    text = _panel_text(nb)
    for kind in ("deletion", "insertion"):
        match = re.search(rf"{kind} AUC ([0-9.]+) \(random ([0-9.]+)", text)
        assert match, text
        assert match.group(1) == f"{ref[f'{kind}_auc']:.3f}" and match.group(2) == f"{ref[f'random_{kind}_auc']:.3f}"
    return {"ref": ref, "drawn": drawn}


def _pixels_follow_the_curves(nb, drawn: dict) -> None:
    """In a screenshot of the plot, each solid curve's colour lies at its inner vertices (where no other
    line drawn over it passes within 4 px; the end points sit on the frame, half a butt cap)."""
    from PIL import Image

    svg = nb.output_locator(1).locator(PLOT)
    image = np.asarray(Image.open(io.BytesIO(svg.screenshot())).convert("RGB")).astype(int)
    checked = 0
    for name, colour, over in (("deletion", DELETION, "insertion_px"), ("insertion", INSERTION, None)):
        pts = drawn[name + "_px"]
        for k, (px, py) in enumerate(pts[1:-1], start=1):
            if over is not None and abs(drawn[over][k][1] - py) < 4:
                continue
            r, c = int(round(py)), int(round(px))
            patch = image[max(r - 1, 0): r + 2, max(c - 1, 0): c + 2]
            distance = np.abs(patch - np.array(colour)).sum(axis=-1).min()
            assert distance < 90, f"{name} vertex {k} at ({px:.1f}, {py:.1f}): nearest colour off by {distance}"
            checked += 1
    assert checked >= 20, checked


def test_the_panel_draws_the_current_overlay_against_random(nb):
    output = nb.output_locator(1)
    assert output.locator(PLOT).count() == 0  # nothing drawn before it is asked for
    output.get_by_role("button", name="Faithfulness", exact=True).click()
    output.locator(PLOT).wait_for(state="visible", timeout=300_000)
    assert "Faithfulness of Class relevance" in _panel_text(nb)
    got = _check_against_kernel(nb, "relevance")
    ref = got["ref"]
    # a faithful map on this clip: the drawn curves are not the random ones
    assert ref["deletion_auc"] < ref["random_deletion_auc"] - 0.1
    assert np.abs(got["drawn"]["deletion"][1] - got["drawn"]["random_deletion"][1]).max() > 0.2
    _pixels_follow_the_curves(nb, got["drawn"])
    nb.screenshot("faithfulness_panel_relevance")


def test_changing_the_overlay_updates_the_panel(nb):
    output = nb.output_locator(1)
    label = nb.page.locator("label", has_text=re.compile(r"^Overlay$"))
    overlay_menu = output.locator(".widget-dropdown").filter(has=label).locator("select")
    if output.locator(PLOT).count() == 0:  # this test alone: draw the relevance curves first
        output.get_by_role("button", name="Faithfulness", exact=True).click()
        output.locator(PLOT).wait_for(state="visible", timeout=300_000)
    before = _drawn(nb)
    # without "Follow the overlay" the old curves are withdrawn, not left standing for the new overlay
    overlay_menu.select_option(label="Attention rollout")
    output.get_by_text("overlay changed: press Faithfulness").wait_for(state="visible", timeout=120_000)
    assert output.locator(PLOT).count() == 0
    # following: ticking the box draws the new overlay's curves, and every later change redraws them
    output.locator(".widget-checkbox", has_text="Follow the overlay").locator("input").check()
    output.get_by_text("Faithfulness of Attention rollout").wait_for(state="visible", timeout=300_000)
    rollout = _check_against_kernel(nb, "rollout")
    assert np.abs(rollout["drawn"]["deletion"][1] - before["deletion"][1]).max() > 0.01
    overlay_menu.select_option(label="Class saliency")
    output.get_by_text("Faithfulness of Class saliency").wait_for(state="visible", timeout=300_000)
    saliency = _check_against_kernel(nb, "saliency")
    assert np.abs(saliency["drawn"]["insertion"][1] - rollout["drawn"]["insertion"][1]).max() > 0.01
    _pixels_follow_the_curves(nb, saliency["drawn"])
    # the random curves are the same orders throughout (one clip, one class)
    np.testing.assert_allclose(saliency["drawn"]["random_deletion"][1], before["random_deletion"][1], atol=1.5e-3)
    assert nb.page_errors == []
    nb.screenshot("faithfulness_panel_follows_saliency")
