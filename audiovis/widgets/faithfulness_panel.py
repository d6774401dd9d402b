"""The explorer's faithfulness panel: deletion / insertion curves of the current overlay against random
orders (``Analysis.faithfulness``), and a button selecting the overlay's top patches so the viewer's
"▶ patches" plays their sound.

The curves cost about ``2 * steps`` forward passes, so they are computed when asked (a button), and
marked stale when the overlay, class or selection changes; with "Follow the overlay" checked they are
recomputed on every such change instead (a second or so per change on the demo model, far more on AST-base).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable, Protocol

import ipywidgets as W
import numpy as np

from ..explain.faithfulness import DELETION_COLOUR, INSERTION_COLOUR
from ..overlays import MODES, USES_HEAD, USES_LAYER, USES_SELECTION

if TYPE_CHECKING:
    from ..analysis import Analysis
    from ..explain.faithfulness import Faithfulness


class OverlayHost(Protocol):
    """What the panel needs of the widget it sits in (the Explorer): its overlay, class and analysis."""

    overlay: str
    class_index: int
    analysis: "Analysis"

    @property
    def heatmap(self) -> np.ndarray | None: ...

    def select(self, patches: Any) -> None: ...

    def observe(self, handler: Callable[[dict], None], names: list[str]) -> None: ...

WIDTH, HEIGHT = 260, 150
PAD_LEFT, PAD_BOTTOM, PAD_TOP, PAD_RIGHT = 30, 22, 8, 8


def curves_svg(result: "Faithfulness") -> str:
    """A small SVG of the deletion and insertion curves (solid) and the random ones (dashed), AUCs in the legend."""
    w, h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def line(ys: np.ndarray, colour: str, dashed: bool) -> str:
        points = " ".join(f"{PAD_LEFT + x * w:.1f},{PAD_TOP + (1 - min(max(y, 0.0), 1.0)) * h:.1f}"
                          for x, y in zip(result.fractions, ys))
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>'

    axis = (f'<rect x="{PAD_LEFT}" y="{PAD_TOP}" width="{w}" height="{h}" fill="none" stroke="#999"/>'
            f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end">1</text>'
            f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + h}" text-anchor="end">0</text>'
            f'<text x="{PAD_LEFT + w / 2}" y="{HEIGHT - 6}" text-anchor="middle">share of patches removed / restored</text>')
    lines = (line(result.random_deletion, DELETION_COLOUR, True) + line(result.random_insertion, INSERTION_COLOUR, True)
             + line(result.deletion, DELETION_COLOUR, False) + line(result.insertion, INSERTION_COLOUR, False))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-size="9" '
            f'font-family="sans-serif" data-testid="audiovis-faithfulness-plot">{axis}{lines}</svg>')


def summary_html(result: "Faithfulness", method: str) -> str:
    """The plot and the four areas, the overlay's name escaped (it may hold a class name)."""
    d, i = result.deletion_auc, result.insertion_auc
    rd, ri = result.random_deletion_auc, result.random_insertion_auc
    return (
        f"<div style='font-size:11px'><b>Faithfulness</b> of {html.escape(method)} for "
        f"{html.escape(result.label)}<br>{curves_svg(result)}<br>"
        f"<span style='color:{DELETION_COLOUR}'>deletion AUC {d:.3f}</span> (random {rd:.3f}, lower is better)<br>"
        f"<span style='color:{INSERTION_COLOUR}'>insertion AUC {i:.3f}</span> (random {ri:.3f}, higher is better)<br>"
        "<span style='color:#777'>dashed: random orders</span></div>"
    )


class FaithfulnessPanel(W.VBox):
    """Beside the explorer's overlay controls: "Faithfulness" computes the curves of the current overlay
    for the current class; "Follow the overlay" recomputes them whenever the overlay changes (else they are
    marked stale); "Select top 10 %" selects the overlay's highest patches.

    Args:
        explorer: the widget whose overlay is followed (the Explorer).
        steps: steps of the curves (``Analysis.faithfulness``'s ``steps``).
        top: the fraction of patches "Select top" selects.
    """

    def __init__(self, explorer: OverlayHost, *, steps: int = 20, top: float = 0.1) -> None:
        self._explorer = explorer
        self.steps, self.top = steps, top
        self.result: "Faithfulness | None" = None
        self._compute = W.Button(description="Faithfulness", tooltip="Deletion / insertion curves of the overlay vs random",
                                 layout=W.Layout(width="120px"))
        self._select = W.Button(description=f"Select top {top:.0%}", tooltip="Select the overlay's top patches "
                                "(then ▶ patches in the viewer plays their sound)", layout=W.Layout(width="140px"))
        self._follow = W.Checkbox(value=False, description="Follow the overlay", indent=False,
                                  tooltip="Recompute the curves whenever the overlay, class, layer or head changes "
                                  "(about 2 x steps forward passes each time)", layout=W.Layout(width="150px"))
        self._output = W.HTML("")
        self._compute.on_click(lambda _: self.compute())
        self._select.on_click(lambda _: self.select_top())
        self._follow.observe(lambda change: self.compute() if change["new"] else None, names="value")
        explorer.observe(self._stale, names=["overlay", "class_index", "layer", "head", "selection"])
        super().__init__([W.HBox([self._compute, self._select, self._follow]), self._output])

    @property
    def follow(self) -> bool:
        """Whether the curves are recomputed on every change of the overlay (else marked stale)."""
        return bool(self._follow.value)

    @follow.setter
    def follow(self, value: bool) -> None:
        self._follow.value = bool(value)

    def _stale(self, change: dict) -> None:
        uses = {"selection": USES_SELECTION, "layer": USES_LAYER, "head": USES_HEAD}.get(change["name"])
        if uses is not None and self._explorer.overlay not in uses:
            return  # the map did not change (e.g. "Select top" itself); the class always matters
        if self.follow:
            self.compute()
        elif self.result is not None or self._output.value:
            self.result = None
            self._output.value = "<span style='font-size:11px;color:#777'>overlay changed: press Faithfulness</span>"

    def compute(self) -> "Faithfulness | None":
        """The curves of the current overlay for the explorer's class, shown in the panel."""
        ex = self._explorer
        values = ex.heatmap
        if values is None:
            self.result = None
            self._output.value = "<span style='font-size:11px'>Choose an overlay first.</span>"
            return None
        self._output.value = "<span style='font-size:11px'>Computing…</span>"
        try:
            result = ex.analysis.faithfulness(values, class_index=ex.class_index, steps=self.steps)
        except (ValueError, IndexError, RuntimeError) as exc:
            self.result = None
            self._output.value = f"<span style='font-size:11px'>Faithfulness unavailable: {html.escape(str(exc))}</span>"
            return None
        self.result = result
        self._output.value = summary_html(result, MODES.get(ex.overlay, ex.overlay))
        return result

    def select_top(self) -> None:
        """Select the current overlay's top ``top`` fraction of patches."""
        ex = self._explorer
        values = ex.heatmap
        if values is None:
            self._output.value = "<span style='font-size:11px'>Choose an overlay first.</span>"
            return
        ex.select(ex.analysis.top_patches(values, self.top))
