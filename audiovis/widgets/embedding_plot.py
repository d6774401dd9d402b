"""The linked embedding plot: patch embeddings projected to 2-D by PCA, drawn with Bokeh.

``EmbeddingPlot`` owns the Bokeh figure, its data source and the bridge between Bokeh's point
selection (tap, box, lasso in the browser) and a Python callback taking patch indices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ..patches import PatchGrid, filter_patches
from ..projections import pca_2d
from ..rendering.codec import finite_range
from ..rendering.colormaps import COLORMAPS, hex_palette

if TYPE_CHECKING:
    from bokeh.plotting import figure as Figure
    from jupyter_bokeh import BokehModel

    from ..spectrogram import Spectrogram

log = logging.getLogger(__name__)

ColorBy = Literal["time", "frequency", "overlay"]
COLOR_BY: tuple[str, ...] = ("time", "frequency", "overlay")


SELECTED_LINE = "#00c8e6"  # the viewer's selection colour
AXIS_COLORMAP = "viridis"  # colouring by time or frequency
SOURCE_NAME = "audiovis-embedding-points"  # how the browser side (and the e2e tests) find the points


def palette(name: str) -> tuple[str, ...]:
    """The 256 colours of one of the viewer's colormaps, as Bokeh hex strings (same table as the canvas)."""
    if name not in COLORMAPS:
        raise ValueError(f"colormap must be one of {sorted(COLORMAPS)}, got {name!r}")
    return hex_palette(name)


class EmbeddingPlot:
    """A Bokeh scatter of one layer's patch embeddings with selection synced to Python.

    ``on_select`` is called with the patch indices (sorted) whenever the browser changes the point
    selection; :meth:`select` changes it from Python without calling ``on_select`` back.
    """

    def __init__(
        self,
        grid: PatchGrid,
        spectrogram: "Spectrogram",
        *,
        on_select: Callable[[list[int]], None] | None = None,
        width: int = 460,
        height: int = 380,
        overlay_colormap: str = "inferno",
    ) -> None:
        from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LogColorMapper
        from bokeh.plotting import figure

        self.grid = grid
        self.on_select = on_select
        self._widget: BokehModel | None = None
        self._pushing = False
        self._projections: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._known: list[int] = []  # the selection as last delivered or set, to drop repeated events
        self._color_by: ColorBy = "time"
        self._overlay: np.ndarray | None = None
        self._overlay_label = "overlay"
        self._overlay_colormap = overlay_colormap

        n = grid.num_patches
        index = np.arange(n)
        rows, cols = grid.position(index)
        box = grid.bounds(index)
        t0, t1 = spectrogram.frame_to_time(np.asarray(box.time_start)), spectrogram.frame_to_time(np.asarray(box.time_end))
        f0, f1 = spectrogram.bin_to_hz(np.asarray(box.freq_start)), spectrogram.bin_to_hz(np.asarray(box.freq_end))
        self._time = ((t0 + t1) / 2).astype(np.float64)
        self._freq = np.sqrt(np.maximum(f0, 1.0) * np.maximum(f1, 1.0))  # geometric band centre
        self.source = ColumnDataSource(
            name=SOURCE_NAME,
            data={
                "x": np.zeros(n, np.float32),
                "y": np.zeros(n, np.float32),
                "index": index,
                "row": rows,
                "col": cols,
                "t0": np.asarray(t0, np.float64),
                "t1": np.asarray(t1, np.float64),
                "f0": np.asarray(f0, np.float64),
                "f1": np.asarray(f1, np.float64),
                "c": self._time.copy(),
            },
        )
        freq_low = float(max(self._freq.min(), 1.0))
        self._log = LogColorMapper(
            palette=palette(AXIS_COLORMAP), low=freq_low, high=float(max(self._freq.max(), freq_low * 1.01))
        )
        fig = figure(
            width=width,
            height=height,
            tools="tap,box_select,lasso_select,pan,wheel_zoom,reset,save",
            active_drag="box_select",
            active_scroll=None,  # the notebook keeps the mouse wheel; pick the tool to zoom
            toolbar_location="above",
            title="Patch embeddings (PCA)",
            output_backend="canvas",
        )
        fig.toolbar.logo = None
        fig.title.text_font_size = "12px"
        fig.xaxis.axis_label_text_font_style = fig.yaxis.axis_label_text_font_style = "normal"
        fig.grid.grid_line_alpha = 0.35
        self.renderer = fig.scatter(
            "x",
            "y",
            source=self.source,
            size=6,
            fill_color={"field": "c", "transform": self._log},  # replaced by _apply_colors below
            fill_alpha=0.9,
            line_color=None,
            selection_fill_alpha=1.0,
            selection_line_color=SELECTED_LINE,
            selection_line_width=1.5,
            nonselection_fill_alpha=0.3,
            nonselection_line_color=None,
        )
        fig.add_tools(
            HoverTool(
                renderers=[self.renderer],
                tooltips=[
                    ("patch", "@index (row @row, col @col)"),
                    ("time", "@t0{0.000} – @t1{0.000} s"),
                    ("frequency", "@f0{0,0} – @f1{0,0} Hz"),
                    ("colour value", "@c{%.4g}"),
                ],
                formatters={"@c": "printf"},
            )
        )
        self.colorbar = ColorBar(color_mapper=self._log, width=10, title="time (s)", title_text_font_size="11px",
                                 title_text_font_style="normal")
        fig.add_layout(self.colorbar, "right")
        self.figure: Figure = fig
        self.source.selected.on_change("indices", self._on_indices)
        self._apply_colors()

    # -- Python -> plot ---------------------------------------------------------------------------

    @property
    def widget(self) -> "BokehModel":
        """The jupyter_bokeh widget showing the figure (created on first use)."""
        if self._widget is None:
            self._widget = _guarded_bokeh_model()(self.figure)
        return self._widget

    def refresh_widget(self) -> None:
        """Re-send the whole figure to the widget's front end (views made from then on start up to date).

        jupyter_bokeh sends changes as patches to views that exist; a view created later renders from
        the bundle made when the widget was, so a fresh bundle is made before each new display.
        """
        if self._widget is not None:
            self._widget.update_from_model(self.figure)

    def set_embeddings(self, embeddings: torch.Tensor | np.ndarray, *, layer: int | None = None) -> None:
        """Re-project to the PCA plane of these ``[num_patches, dim]`` embeddings (one data update).

        With ``layer`` given, the projection is kept and reused when that layer is shown again.
        """
        n = self.grid.num_patches
        if tuple(np.shape(embeddings))[:1] != (n,):
            raise ValueError(f"embeddings must have one row per patch ({n}), got shape {tuple(np.shape(embeddings))}")
        cached = self._projections.get(layer) if layer is not None else None
        if cached is None:
            cached = pca_2d(embeddings)
            if layer is not None:
                self._projections[layer] = cached
        coords, ratio = cached
        self.source.data.update(x=coords[:, 0], y=coords[:, 1])
        self.figure.xaxis.axis_label = f"PC1 ({100 * ratio[0]:.0f}% of variance)"
        self.figure.yaxis.axis_label = f"PC2 ({100 * ratio[1]:.0f}% of variance)"
        self.figure.title.text = "Patch embeddings (PCA)" + ("" if layer is None else f", layer {layer}")

    @property
    def coordinates(self) -> np.ndarray:
        """The plotted points ``[num_patches, 2]``."""
        return np.stack([np.asarray(self.source.data["x"]), np.asarray(self.source.data["y"])], axis=1)

    def color_by(self, mode: ColorBy) -> None:
        """Colour points by patch centre time, by band centre frequency or by the current overlay."""
        if mode not in COLOR_BY:
            raise ValueError(f"color_by must be one of {COLOR_BY}, got {mode!r}")
        self._color_by = mode
        self._apply_colors()

    def set_overlay(self, values: np.ndarray | None, *, label: str = "overlay", colormap: str | None = None) -> None:
        """The per-patch values used when colouring by overlay (None: no overlay, points grey)."""
        if values is not None:
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if values.shape != (self.grid.num_patches,):
                raise ValueError(f"overlay must hold one value per patch ({self.grid.num_patches}), got {values.shape}")
        self._overlay = values
        self._overlay_label = label
        if colormap is not None:
            palette(colormap)  # validates the name
            self._overlay_colormap = colormap
        if self._color_by == "overlay":
            self._apply_colors()

    def _apply_colors(self) -> None:
        from bokeh.models import LinearColorMapper

        mode = self._color_by
        if mode == "frequency":
            mapper, values, title = self._log, self._freq, "frequency (Hz)"
        else:
            if mode == "time":
                values, title, name = self._time, "time (s)", AXIS_COLORMAP
            elif self._overlay is None:
                values, title, name = np.full(self.grid.num_patches, np.nan), "no overlay", AXIS_COLORMAP
            else:
                values, title, name = self._overlay, self._overlay_label, self._overlay_colormap
            lo, hi = finite_range(values, constant="around")  # as the viewer colours the same overlay
            # A new mapper rather than new limits on the old one: a colour bar whose mapper range changes
            # in place keeps tick labels formatted for the old range in the browser.
            mapper = LinearColorMapper(palette=palette(name), low=lo, high=hi, nan_color="#bbbbbb")
        r = self.renderer
        for glyph in (r.glyph, r.selection_glyph, r.nonselection_glyph, r.hover_glyph, r.muted_glyph):
            if glyph is not None and glyph != "auto":  # each state's glyph holds its own copy of fill_color
                glyph.fill_color = {"field": "c", "transform": mapper}
        self.colorbar.update(color_mapper=mapper, title=title)
        self.source.data["c"] = np.asarray(values, dtype=np.float64)

    def select(self, patches: Sequence[int]) -> None:
        """Highlight these patches' points; ``on_select`` is not called for this change."""
        indices = sorted({int(p) for p in patches})
        self._known = indices
        if indices == sorted(self.source.selected.indices):
            return
        self._pushing = True
        try:
            self.source.selected.indices = indices
        finally:
            self._pushing = False

    @property
    def selected(self) -> list[int]:
        """The selected points' patch indices, sorted."""
        return sorted(int(i) for i in self.source.selected.indices)

    # -- plot -> Python ---------------------------------------------------------------------------

    def _on_indices(self, attr: str, old: list[int], new: list[int]) -> None:
        if self._pushing or self.on_select is None:
            return
        n = self.grid.num_patches
        clean, dropped = filter_patches(new, n)  # the browser's lenient rule (audiovis/patches.py)
        if dropped:  # one warning per event, however many points the browser sent
            log.warning("audiovis: ignoring %d selected points outside 0..%d: %r", len(dropped), n - 1, dropped[:10])
        if clean == self._known:  # jupyter_bokeh reports one browser change to on_change callbacks twice
            return
        self._known = clean
        try:
            self.on_select(clean)
        except Exception:  # a browser event must never raise into the kernel's comm handler
            log.exception("audiovis: handling a selection from the embedding plot failed")


def _guarded_bokeh_model() -> type:
    """jupyter_bokeh's BokehModel whose browser-event handler logs a malformed event instead of raising."""
    global _GUARDED
    if _GUARDED is None:
        from jupyter_bokeh import BokehModel

        class GuardedBokehModel(BokehModel):
            def _sync_model(self, widget: Any, content: Any, buffers: Any) -> None:
                try:
                    super()._sync_model(widget, content, buffers)
                except Exception as exc:  # the kernel must never raise because of a browser message
                    log.warning("audiovis: ignoring a malformed event from the embedding plot: %s", exc)

        _GUARDED = GuardedBokehModel
    return _GUARDED


_GUARDED: type | None = None
