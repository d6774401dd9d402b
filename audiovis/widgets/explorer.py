"""Explorer: the spectrogram viewer, the predictions, model overlays and a linked embedding plot in one widget.

``explore(audio, model)`` runs the model once and wires the views together. A selection made anywhere
(a click in the viewer, tap/box/lasso in the Bokeh plot, ``explorer.selection = [...]`` in Python)
reaches every other view exactly once: one guard flag stops the echo of a change back to its source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import numpy as np
import traitlets

from ..analysis import UNTRAINED_HEAD_NOTE, Analysis, top_labels_of
from ..audio import Audio, load_audio
from ..demo import resolve_model
from ..checks import check_int
from ..errors import AudiovisError
from ..patches import check_patches
from ..rendering.colormaps import COLORMAPS
from ..spectrogram import Spectrogram, load_source
from ..windows import model_window_starts
from .. import overlays
from .embedding_plot import COLOR_BY, EmbeddingPlot
from .viewer import PatchIndices, SpectrogramViewer

if TYPE_CHECKING:
    from bokeh.plotting import figure as Figure

    from ..models.base import SpectrogramModelMixin

log = logging.getLogger(__name__)

_MEAN_HEAD = -1  # the head menu's value for "mean over heads" (a Dropdown cannot hold None)
_WIDE = {"description_width": "initial"}
#: overlays that take seconds on a large model: the status line says so while they are computed
_SLOW_MODES = frozenset({"rollout", "saliency", "relevance", "integrated_gradients"})


class _OverlayMode(traitlets.Enum):
    """An overlay mode: a key of ``overlays.MODES``, or the menu's name for it (``"merged tokens"``), kept as the key."""

    def validate(self, obj: Any, value: Any) -> Any:
        key = overlays.mode_key(value)
        if key in overlays.MODES:
            return key
        names = ", ".join(f"{k!r} ({label})" for k, label in overlays.MODES.items())
        raise traitlets.TraitError(f"overlay must be one of {names}; got {value!r}")


class Explorer(W.VBox):
    """Viewer + controls + top-k predictions + linked Bokeh embedding plot for one :class:`Analysis`.

    ``selection`` (token indices) is two-way with the viewer's ``selected_patches`` and the plot's
    selected points; ``overlay``, ``layer``, ``head`` (None = mean of heads), ``class_index`` (for
    saliency) and ``color_by`` mirror the controls and can be set from Python.

    Args:
        analysis: the window's :class:`~audiovis.Analysis`.
        audio: the sound, for playback (None: no playback).
        overlay: the heatmap shown first, a key of ``overlays.MODES``.
        layer: the layer of embeddings, similarity and attention (negative counts from the end).
        head: an attention head, or None for the mean over heads.
        class_index: the class the saliency overlay explains (index or name; None: the top class).
        colormap: the spectrogram's colour scale.
        heatmap_colormap: the overlay's colour scale.
        opacity: the overlay's opacity in [0, 1].
        color_by: what colours the embedding plot's points: ``"time"``, ``"frequency"`` or ``"overlay"``.
        top_k: predictions listed.
        height: the viewer's height in pixels.
        plot_size: the embedding plot's ``(width, height)`` in pixels.
    """

    selection = PatchIndices(help="Selected patches (token indices) in selection order; a numpy array or boolean mask too.")
    overlay = _OverlayMode(tuple(overlays.MODES), default_value="none",
                           help="Overlay mode: a key of overlays.MODES, or what the menu shows for it.")
    layer = traitlets.Int(0, help="Transformer layer of embeddings, similarity and attention (0-based).")
    head = traitlets.Int(None, allow_none=True, help="Attention head, or None for the mean over heads.")
    class_index = traitlets.Union(
        [traitlets.Int(), traitlets.Instance(np.integer), traitlets.Unicode()], default_value=0,
        help="Class explained by the saliency overlay: an index or a name; stored as its index.",
    )
    color_by = traitlets.Enum(COLOR_BY, default_value="time", help="What colours the embedding plot's points.")

    def __init__(
        self,
        analysis: Analysis,
        *,
        audio: Audio | None = None,
        overlay: str = "none",
        layer: int = -1,
        head: int | None = None,
        class_index: int | str | None = None,
        colormap: str = "gray",
        heatmap_colormap: str = "inferno",
        opacity: float = 0.65,
        color_by: str = "time",
        top_k: int = 5,
        height: int = 300,
        plot_size: tuple[int, int] = (470, 360),
    ) -> None:
        if not isinstance(analysis, Analysis):
            raise TypeError(f"Explorer: analysis must be an audiovis Analysis, got {type(analysis).__name__}")
        top_k = check_int(top_k, "Explorer: top_k", minimum=1)
        self.analysis = analysis
        self._syncing = False
        self._ready = False
        self._embeddings_layer: int | None = None
        self._current = overlays.Overlay(None, "")

        spec = analysis.spectrogram
        if audio is not None:
            audio = _window_audio(audio, spec)
        self.viewer = SpectrogramViewer(spec, grid=analysis.grid, audio=audio, colormap=colormap, height=height)
        self.viewer.heatmap_colormap = heatmap_colormap
        self.viewer.heatmap_opacity = opacity
        pruned = analysis.pruned_patches
        self.viewer.masked_patches = pruned.tolist()  # token pruning: the patches the model dropped
        self._plot = EmbeddingPlot(
            analysis.grid, spec, on_select=self._on_plot_select, width=plot_size[0], height=plot_size[1],
            overlay_colormap=heatmap_colormap,
        )

        self._build_controls(colormap, heatmap_colormap, opacity)
        self._predictions = self._build_predictions(top_k)
        #: the predictions list's classes: their saliency maps are computed together (one batched pass)
        self._top_classes = [int(i) for i in np.argsort(-analysis.probabilities, kind="stable")[:top_k]]
        self._saliency_shown = False  # the first saliency map is computed alone: the quickest first answer
        self._status = W.Label(layout=W.Layout(margin="2px 0 0 0"))
        rows, cols = analysis.grid.grid_shape
        header = W.Label(
            f"{analysis.num_layers} layers × {analysis.num_heads} heads · {rows} × {cols} = "
            f"{analysis.grid.num_patches} patches{f' ({len(pruned)} pruned)' if len(pruned) else ''} · "
            f"window {spec.duration:.2f} s from {analysis.offset:.2f} s",
            style={"font_weight": "bold"},
        )
        self.viewer.observe(self._on_viewer_selection, "selected_patches")
        self.viewer.observe(self._on_heatmap_colormap, "heatmap_colormap")
        with self.hold_trait_notifications():
            self.layer = layer
            self.head = head
            self.class_index = analysis.class_index(class_index)
            self.overlay = overlay
            self.color_by = color_by
        self._link_controls()
        self._ready = True
        self._show_layer()
        self._plot.color_by(self.color_by)
        self._on_mode_change()

        # The Bokeh widget is made last: its first render carries the plot's state at that moment.
        #: the line above the predictions saying the head is untrained (None for a trained head): random weights
        #: give confident-looking scores, so the panel says so where they are shown
        self.head_note: W.Label | None = None
        if not analysis.head_trained:
            self.head_note = W.Label(
                "Untrained head (random weights): these labels and scores mean nothing",
                tooltip=UNTRAINED_HEAD_NOTE, style={"text_color": "#b00020", "font_weight": "bold"},
            )
        side = W.VBox([*filter(None, [self.head_note]), self._predictions, self._status],
                      layout=W.Layout(margin="0 0 0 16px", flex="1 1 260px"))
        super().__init__(
            [
                header,
                self._controls_box,
                self.viewer,
                W.HBox([self._plot.widget, side], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
            ],
            layout=W.Layout(width="100%"),
        )
        self.add_class("audiovis-explorer")

    # -- public ----------------------------------------------------------------------------------

    @property
    def plot(self) -> "Figure":
        """The Bokeh figure of the embedding plot."""
        return self._plot.figure

    @property
    def embedding_plot(self) -> EmbeddingPlot:
        """The plot's data source, projection and selection bridge."""
        return self._plot

    @property
    def selected_embeddings(self) -> np.ndarray:
        """``[n, dim]`` patch embeddings of the current layer, in selection order (a copy)."""
        embeddings = self.analysis.patch_embeddings(self.layer)
        return np.array(embeddings[np.asarray(self.selection, dtype=np.int64)], dtype=np.float32)

    @property
    def heatmap(self) -> np.ndarray | None:
        """The current overlay ``[num_patches]`` (None when the mode shows nothing)."""
        return None if self._current.values is None else self._current.values.copy()

    def select(self, patches: int | Sequence[int] | np.ndarray) -> None:
        """Replace the selection: token indices, or a boolean mask with one entry per patch."""
        n = self.analysis.grid.num_patches
        self.selection = check_patches(patches, n, allow_empty=True, name="patch", context="Explorer.select: ").tolist()

    def clear_selection(self) -> None:
        self.selection = []

    # -- validation ------------------------------------------------------------------------------

    @traitlets.validate("selection")
    def _check_selection(self, proposal: dict) -> list[int]:
        n = self.analysis.grid.num_patches
        try:
            idx = check_patches(proposal["value"], n, allow_empty=True, name="patch", context="Explorer.selection: ")
        except (IndexError, TypeError, ValueError) as exc:
            raise traitlets.TraitError(str(exc)) from exc
        return list(dict.fromkeys(idx.tolist()))  # unique, in selection order

    @traitlets.validate("layer")
    def _check_layer(self, proposal: dict) -> int:
        n = self.analysis.num_layers
        value = proposal["value"]
        if not -n <= value < n:
            raise traitlets.TraitError(f"Explorer.layer: {value} outside {-n}..{n - 1} (the model has {n} layers)")
        return value % n

    @traitlets.validate("head")
    def _check_head(self, proposal: dict) -> int | None:
        value, n = proposal["value"], self.analysis.num_heads
        if value is None:
            return None
        if not -n <= value < n:
            raise traitlets.TraitError(f"Explorer.head: {value} outside {-n}..{n - 1} (or None for the mean of heads)")
        return value % n

    @traitlets.validate("class_index")
    def _check_class(self, proposal: dict) -> int:
        try:  # the one class resolver: index or name, with close-name suggestions
            return self.analysis.class_index(proposal["value"])
        except (KeyError, IndexError) as exc:
            raise traitlets.TraitError(f"Explorer.class_index: {exc.args[0]}") from exc

    # -- building --------------------------------------------------------------------------------

    def _build_controls(self, colormap: str, heatmap_colormap: str, opacity: float) -> None:
        a = self.analysis
        probs = a.probabilities
        order = np.argsort(-probs, kind="stable")
        self._overlay_menu = W.Dropdown(
            options=[(label, key) for key, label in overlays.MODES.items()], description="Overlay",
            layout=W.Layout(width="290px"),
        )
        self._layer_slider = W.IntSlider(
            min=0, max=a.num_layers - 1, description="Layer", continuous_update=False, layout=W.Layout(width="300px"),
        )
        self._head_menu = W.Dropdown(
            options=[("mean", _MEAN_HEAD)] + [(str(h), h) for h in range(a.num_heads)], description="Head",
            layout=W.Layout(width="150px"),
        )
        self._class_menu = W.Dropdown(
            options=[(f"{a.labels[i]} ({probs[i]:.2f})", int(i)) for i in order], description="Class",
            layout=W.Layout(width="300px"),
        )
        self._colormap_menu = W.Dropdown(
            options=list(COLORMAPS), value=colormap, description="Spectrogram", style=_WIDE,
            layout=W.Layout(width="190px"),
        )
        self._heatmap_colormap_menu = W.Dropdown(
            options=list(COLORMAPS), value=heatmap_colormap, description="Overlay colours", style=_WIDE,
            layout=W.Layout(width="210px"),
        )
        self._opacity_slider = W.FloatSlider(
            value=opacity, min=0.0, max=1.0, step=0.05, description="Opacity", readout_format=".2f",
            layout=W.Layout(width="260px"),
        )
        self._color_by_buttons = W.ToggleButtons(
            options=[("time", "time"), ("frequency", "frequency"), ("overlay", "overlay")],
            style={"button_width": "92px"},
            tooltips=["Colour points by the patch's time", "... by its frequency band", "... by the current overlay"],
        )
        row = {"flex_flow": "row wrap", "align_items": "center", "grid_gap": "4px 12px"}
        from .faithfulness_panel import FaithfulnessPanel

        #: deletion / insertion curves of the current overlay vs random, and "Select top 10 %"
        self.faithfulness_panel = FaithfulnessPanel(self)
        self._controls_box = W.VBox(
            [
                W.HBox([self._overlay_menu, self._layer_slider, self._head_menu, self._class_menu], layout=W.Layout(**row)),
                self.faithfulness_panel,
                W.HBox(
                    [
                        self._colormap_menu, self._heatmap_colormap_menu, self._opacity_slider,
                        W.Label("Points by"), self._color_by_buttons,
                    ],
                    layout=W.Layout(**row),
                ),
            ]
        )

    def _link_controls(self) -> None:
        traitlets.link((self, "overlay"), (self._overlay_menu, "value"))
        traitlets.link((self, "layer"), (self._layer_slider, "value"))
        traitlets.link(
            (self, "head"), (self._head_menu, "value"),
            transform=(lambda h: _MEAN_HEAD if h is None else h, lambda v: None if v == _MEAN_HEAD else v),
        )
        traitlets.link((self, "class_index"), (self._class_menu, "value"))
        traitlets.link((self, "color_by"), (self._color_by_buttons, "value"))
        traitlets.link((self.viewer, "colormap"), (self._colormap_menu, "value"))
        traitlets.link((self.viewer, "heatmap_colormap"), (self._heatmap_colormap_menu, "value"))
        traitlets.link((self.viewer, "heatmap_opacity"), (self._opacity_slider, "value"))

    def _build_predictions(self, k: int) -> W.VBox:
        a = self.analysis
        kind = "sigmoid, multi-label" if a.multi_label else "softmax"
        if not a.head_trained:
            kind += ", untrained head"
        rows: list[W.Widget] = [W.Label(f"Top predictions ({kind})", style={"font_weight": "bold"})]
        for name, p in top_labels_of(a.probabilities, a.labels, min(k, len(a.labels))):
            rows.append(
                W.HBox(
                    [
                        W.Label(name, tooltip=name, layout=W.Layout(width="170px")),
                        W.FloatProgress(value=p, min=0.0, max=1.0, layout=W.Layout(width="130px")),
                        W.Label(f"{p:.3f}", layout=W.Layout(width="52px")),
                    ],
                    layout=W.Layout(align_items="center"),
                )
            )
        return W.VBox(rows, layout=W.Layout(margin="6px 0 0 0"))

    # -- selection sync --------------------------------------------------------------------------

    @traitlets.observe("selection")
    def _on_selection(self, change: dict) -> None:
        self._sync_selection(change["new"], "explorer")

    def _on_viewer_selection(self, change: dict) -> None:
        self._sync_selection(change["new"], "viewer")

    def _on_plot_select(self, patches: list[int]) -> None:
        self._sync_selection(patches, "plot")

    def _sync_selection(self, patches: Sequence[int], origin: str) -> None:
        """Bring every view to ``patches``; the views' own change events fired meanwhile are ignored."""
        if self._syncing or not self._ready:
            return
        if origin != "explorer" and set(patches) == set(self.selection):
            return  # the view reports what it was just given (possibly in another order)
        self._syncing = True
        try:
            if origin != "explorer":
                self.selection = list(patches)
            chosen = self.selection
            if set(self.viewer.selected_patches) != set(chosen):
                self.viewer.selected_patches = chosen
            self._plot.select(chosen)
            if self.overlay in overlays.USES_SELECTION:
                self._refresh_overlay()
            self._update_status()
        finally:
            self._syncing = False

    # -- settings --------------------------------------------------------------------------------

    @traitlets.observe("layer")
    def _on_layer(self, change: dict) -> None:
        if self._ready:
            self._show_layer()
            if self.overlay in overlays.USES_LAYER:
                self._refresh_overlay()

    @traitlets.observe("head")
    def _on_head(self, change: dict) -> None:
        if self._ready and self.overlay in overlays.USES_HEAD:
            self._refresh_overlay()

    @traitlets.observe("class_index")
    def _on_class(self, change: dict) -> None:
        if self._ready and self.overlay in overlays.USES_CLASS:
            self._refresh_overlay()

    @traitlets.observe("overlay")
    def _on_overlay(self, change: dict) -> None:
        if self._ready:
            self._on_mode_change()

    @traitlets.observe("color_by")
    def _on_color_by(self, change: dict) -> None:
        if self._ready:
            self._plot.color_by(change["new"])

    def _on_heatmap_colormap(self, change: dict) -> None:
        self._plot.set_overlay(self._current.values, label=self._current.label or "overlay", colormap=change["new"])

    def _on_mode_change(self) -> None:
        mode = self.overlay
        self._head_menu.disabled = mode not in overlays.USES_HEAD
        self._class_menu.disabled = mode not in overlays.USES_CLASS
        self._send_embeddings()
        self._refresh_overlay()

    def _show_layer(self) -> None:
        """Project the current layer's embeddings (cached per layer) and refresh what depends on them."""
        self._plot.set_embeddings(self.analysis.patch_embeddings(self.layer), layer=self.layer)
        self._send_embeddings()
        self._update_status()

    def _send_embeddings(self) -> None:
        """In similarity mode the browser needs the current layer's embeddings (sent once per layer)."""
        hover = self.overlay == "similarity"
        if hover and self._embeddings_layer != self.layer:
            self.viewer.set_embeddings(self.analysis.patch_embeddings(self.layer), hover_mode="similarity")
            self._embeddings_layer = self.layer
        elif not hover and self._embeddings_layer is not None and self._embeddings_layer != self.layer:
            self.viewer.set_embeddings(None, hover_mode="none")  # stale layer: drop it
            self._embeddings_layer = None
        self.viewer.hover_mode = "similarity" if hover else "none"

    def _refresh_overlay(self) -> None:
        """Compute the overlay for the current settings and show it in the viewer and the plot."""
        try:
            self._compute_slow_overlay()
            current = overlays.compute(
                self.analysis, self.overlay, selection=self.selection, layer=self.layer, head=self.head,
                class_index=self.class_index,
            )
        except (AudiovisError, ValueError, IndexError, RuntimeError) as exc:
            log.warning("Explorer: cannot compute the %s overlay: %s", self.overlay, exc)
            current = overlays.Overlay(None, f"{overlays.MODES[self.overlay]} unavailable: {exc}")
        self._current = current
        self.viewer.patch_groups = None if current.groups is None else current.groups.tolist()
        if current.values is None:
            self.viewer.heatmap = None
        else:
            self.viewer.set_heatmap(current.values, label=current.label)
        self._plot.set_overlay(current.values, label=current.label or "overlay")
        self._update_status()

    def _compute_slow_overlay(self) -> None:
        """Rollout and saliency take seconds on a large model (AST-base): the status line says what is being
        computed meanwhile. The first saliency map is computed alone; once the class changes, the chosen class
        and the predictions list's other classes share one batched pass, so switching among those afterwards
        is instant (cached on the Analysis)."""
        mode = self.overlay
        if mode not in _SLOW_MODES:
            return
        self._status.value = f"Computing {overlays.MODES[mode].lower()}…"
        if mode == "saliency":
            chosen = self.class_index
            listed = [c for c in self._top_classes if c != chosen] if self._saliency_shown else []
            self.analysis.saliencies([chosen] + listed, progress=False)
            self._saliency_shown = True
        elif mode == "rollout":
            self.analysis.rollout(progress=False)

    def _update_status(self) -> None:
        sel = self.selection
        if sel:
            spec = self.analysis.spectrogram
            box = self.analysis.grid.bounds(np.asarray(sel))  # arrays of frames and bins
            t0, t1 = spec.frame_to_time(np.array([box.time_start.min(), box.time_end.max()]))
            f0, f1 = spec.bin_to_hz(np.array([box.freq_start.min(), box.freq_end.max()]))
            text = f"{len(sel)} patch{'es' if len(sel) > 1 else ''} selected: {t0:.2f}–{t1:.2f} s, {f0:,.0f}–{f1:,.0f} Hz"
        else:
            text = "No selection: click or shift-drag on the spectrogram, or tap / box / lasso points."
        if self.overlay != "none" and self._current.values is None and self._current.label:
            text += f" · {self._current.label}"
        self._status.value = text

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        load_bokehjs()
        self._plot.refresh_widget()  # a new view starts from the plot's current state
        return super()._repr_mimebundle_(**kwargs)

    def save_html(
        self,
        path: str | os.PathLike,
        *,
        title: str | None = None,
        layers: Any = "auto",
        classes: Any = None,
        audio_format: str = "auto",
    ) -> Any:
        """Write this explorer as one self-contained HTML page that works with no kernel and no network.

        The page has the viewer (zoom, pan, tooltip, selection, hover similarity, playback), the top
        labels, the embedding plot with its selection linked to the viewer's, and menus switching among
        overlays precomputed now: rollout, CLS attention of every layer (mean of heads), saliency of
        ``classes`` (default: the top 3 and the current class; each costs a backward pass now and
        ~2.5 KB per 468 patches in the page) and similarity to the selection or the hovered patch for
        ``layers`` (embeddings as float16: patches x dim x 2 bytes per layer; ``"auto"`` keeps all layers
        while they fit 1.2 MB, else the current one). Attention from the selection and single heads stay
        in Python (they would need every patch pair's attention).

        Args:
            path: the ``.html`` file to write; its folder must exist.
            title: the page's title.
            layers: ``"auto"``, ``"all"``, ``"current"`` or layer indices whose embeddings are saved.
            classes: class indices or names whose saliency is saved.
            audio_format: ``"auto"`` (FLAC up to 60 s, else Ogg/Vorbis), ``"vorbis"``, ``"opus"``, ``"flac"``
                or ``"wav"``.

        Returns:
            A ``PageReport`` (path, size, bytes per part, what the page holds and leaves out).
        """
        from .static_page import save_explorer_page

        return save_explorer_page(self, path, title=title, layers=layers, classes=classes, audio_format=audio_format)

    def __repr__(self) -> str:
        return f"Explorer({self.analysis!r}, overlay={self.overlay!r}, layer={self.layer}, selection={self.selection})"


def load_bokehjs() -> None:
    """Load BokehJS into the page, inline (works offline), core bundle only (~1.3 MB).

    jupyter_bokeh draws into the page's global ``Bokeh``, which only ``output_notebook`` provides.
    It runs on every display of an Explorer, so a reloaded page or a new view gets it too.
    """
    from bokeh.io import output_notebook
    from bokeh.resources import Resources

    output_notebook(resources=Resources(mode="inline", components=["bokeh"]), hide_banner=True)


def _window_audio(audio: Audio, spec: Spectrogram) -> Audio:
    """``audio`` up to the end of what the spectrogram shows; its sample 0 plays at ``audio.start`` on the
    viewer's clock (the recording's), so the cut is at that end less ``audio.start``."""
    return audio.segment(0.0, max(0.0, float(spec.frame_to_time(spec.num_frames)) - audio.start))


_EXPLORER_OPTIONS = (
    "overlay", "layer", "head", "class_index", "colormap", "heatmap_colormap", "opacity", "color_by", "top_k",
    "height", "plot_size",
)
#: ``model.analyze``'s reduced-compute options, which ``explore`` passes on
_REDUCTION_OPTIONS = ("keep_ratio", "keep_by", "prune_layer", "fuse_dropped", "merge_ratio")


def explore(
    audio: Audio | Spectrogram | Analysis | str | os.PathLike | np.ndarray | Any,
    /,
    model: "SpectrogramModelMixin | str | None" = None,
    **options: Any,
) -> Explorer:
    """Analyse ``audio`` with ``model`` (default: the shipped demo model) once and open an :class:`Explorer`.

    ``audio`` is a path, an Audio, an array (pass ``sample_rate=``), a Spectrogram, or a ready Analysis
    (then ``model`` is not used, and ``audio=`` may give the clip it came from, for playback). ``model``
    is a model or ``"demo"`` (the same as None: :func:`~audiovis.load_demo_model`). Options:
    ``sample_rate``, ``window`` and the Explorer's keyword arguments (``overlay``, ``layer``, ``head``,
    ``class_index``, ``colormap``, ``heatmap_colormap``, ``opacity``, ``color_by``, ``top_k``, ``height``,
    ``plot_size``), and ``model.analyze``'s reduced-compute options (``keep_ratio``, ``keep_by``,
    ``prune_layer``, ``fuse_dropped``, ``merge_ratio``): ``explore(audio, model, merge_ratio=0.5)`` shows the
    merged pass, its "merged tokens" overlay first unless ``overlay`` says otherwise.

    An Explorer shows one model window. Audio longer than that is cut into windows as ``model.analyze``
    cuts it (every ``model.window_seconds``, no overlap; a Spectrogram likewise, in frames) and
    ``window=i`` picks window ``i`` (its times stay those of the recording). Without ``window`` the
    first one is shown with a ``UserWarning`` naming the alternatives: ``window=i``,
    ``audio.segment(start, end)`` for any other span, or ``LongViewer(audio, model)`` for the whole recording.
    """
    sample_rate = options.pop("sample_rate", None)
    window = options.pop("window", None)
    clip = options.pop("audio", None)
    reduction = {name: options.pop(name) for name in _REDUCTION_OPTIONS if name in options}
    unknown = sorted(set(options) - set(_EXPLORER_OPTIONS))
    if unknown:
        raise TypeError(
            f"explore() got unknown option(s) {unknown}; options are sample_rate, window, audio (with an Analysis), "
            f"{', '.join(_EXPLORER_OPTIONS)}, and analyze's {', '.join(_REDUCTION_OPTIONS)}"
        )
    if isinstance(audio, Analysis):
        if window is not None:
            raise TypeError("explore(): window= picks a window of audio; an Analysis already is one window")
        if reduction:
            raise TypeError(f"explore(): {', '.join(reduction)} set how audio is analysed; this Analysis is already "
                            f"computed: pass {'them' if len(reduction) > 1 else 'it'} to model.analyze, or give explore "
                            "the audio")
        if clip is not None and not isinstance(clip, Audio):
            clip = load_audio(clip, sample_rate)
        return Explorer(audio, audio=clip, **options)
    if clip is not None:
        raise TypeError(
            "explore(): audio given twice (as the first argument and as audio=); audio= only goes with an Analysis: "
            "explore(analysis, audio=clip)"
        )
    if isinstance(audio, (list, tuple)) and not all(isinstance(v, (int, float)) for v in audio):
        raise TypeError(f"explore() shows one clip, got a {type(audio).__name__} of {len(audio)}: explore each "
                        "(av.explore(clips[i], model)), or embed them (av.embed_dataset) and open the store with "
                        "av.explore_dataset")
    model = resolve_model(model, "explore()")
    source = load_source(audio, sample_rate)
    starts = model_window_starts(model, source)
    if reduction.get("merge_ratio") and "overlay" not in options:
        options["overlay"] = "merged"
    if window is None and len(starts) == 1:
        analysis = model.analyze(source, **reduction)
    else:
        if window is None:
            import warnings

            window = 0
            length = f"{source.duration:.2f} s" + ("" if isinstance(source, Audio) else f" ({source.num_frames} frames)")
            warnings.warn(
                f"{getattr(source, 'source', None) or 'the audio'} is {length} long, longer than the model window "
                f"({model.window_seconds:.2f} s): exploring window 0 of {len(starts)} "
                f"(0-{model.window_seconds:.2f} s). Pass window=i for another window, audio.segment(start, end) "
                "for any span, or use LongViewer(audio, model) for the whole recording.",
                UserWarning,
                stacklevel=2,
            )
        (analysis,) = model.analyze_windows(source, windows=[window], **reduction)
    return Explorer(analysis, audio=source if isinstance(source, Audio) else None, **options)
