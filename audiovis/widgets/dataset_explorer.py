"""DatasetExplorer: a WebGL map of every clip of an embedding store, linked to one clip's Explorer and patch search.

``explore_dataset(store, model)`` projects the clip vectors of one layer to 2-D (PCA, or UMAP when asked) and
draws them with jupyter-scatter (an anywidget: binary point buffers, pans and zooms 100 k points in WebGL).
``selection`` (clip ids) is two-way with the map's box/lasso selection; ``open(clip_id)`` puts that clip's
:class:`~audiovis.widgets.explorer.Explorer` below the map; ``find_similar`` searches the store for patches like
the ones selected in that Explorer (also its "Find similar" button, on the opened clip's title row) and shows
them as a gallery whose cards open their hit; ``fit_probe`` adds a cross-validated probe's out-of-fold predictions as
colour options. Clips whose embedding failed stay off the map, are counted and listed, and are never opened.
"""

from __future__ import annotations

import contextlib
import html
import io
import os
import sys
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import numpy as np
import traitlets

from ..checks import check_index, check_int
from ..patches import check_patch
from ..store import EmbeddingStore
from ..store.store import check_clip_id
from ..projections import project

if TYPE_CHECKING:
    import pandas as pd

    from .explorer import Explorer

#: store.clips columns that are not labels
_FIXED = ("clip_id", "source", "duration", "error", "num_windows", "window_starts", "top_labels", "top_probs")
_TABLE_ROWS = 200
#: cards in the search gallery: a larger ``k`` is returned whole but only its best hits are drawn (each card
#: synthesises or reads its clip and makes a crop)
GALLERY_CARDS = 48
#: audio of hit clips read from ``sources`` kept for their crops, up to this many bytes (the least recently used
#: dropped first); clips read from files are not kept: a crop reads its second or so of the file (a seek)
KEPT_CROP_AUDIO_BYTES = 256 << 20
#: seconds of audio read beyond a crop's span on each side: the longest analysis frame of the front ends (64 ms
#: at n_fft 1024 and 16 kHz) fits, so the crop's edge frames are whole
_CROP_MARGIN = 0.1
#: a crop's columns outside its clip (a slate blue no greyscale spectrogram pixel takes), and the hit's box
_OUTSIDE_RGB = (52, 58, 94)
_BOX_RGB = (255, 200, 0)
#: regl-scatterplot options of the map: its events (a lasso's selection first) reach jupyter-scatter's handlers
#: at once, not from a timer that the next frame's draw runs before (~75-100 ms in software WebGL)
_MAP_OPTIONS = {"syncEvents": True}
#: the map's selection shapes: this package's name -> jupyter-scatter's lasso type
_SELECT_SHAPES = {"lasso": "freeform", "box": "rectangle"}


def _jscatter():
    try:
        import jscatter
    except ImportError:
        raise ImportError("the dataset map needs jupyter-scatter: pip install 'audiovis[datasets]'") from None
    return jscatter


def _vectors_and_jscatter(store: EmbeddingStore, layer: int) -> tuple[np.ndarray, Any]:
    """The store's clip vectors of ``layer`` and the jscatter module.

    On the first map of a session the vectors are read on a worker thread (Arrow decodes outside the GIL)
    while this thread imports jupyter-scatter (~0.7 s). Reading ``store.clips`` first imported every
    module the vector read uses, so only this thread imports anything meanwhile.
    """
    if "jscatter" in sys.modules:
        return store.clip_embeddings(layer), _jscatter()
    with ThreadPoolExecutor(1, thread_name_prefix="audiovis-map-read") as pool:
        read = pool.submit(store.clip_embeddings, layer)
        try:
            jscatter = _jscatter()
        except ImportError:
            read.cancel()
            raise
        return read.result(), jscatter


class _ClipIds(traitlets.List):
    """A list trait that also takes a numpy array or a pandas Series/Index of ids (``store.clips["clip_id"][mask]``)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if not isinstance(value, (list, tuple, str)) and hasattr(value, "tolist") and np.ndim(value) == 1:
            value = value.tolist()
        return super().validate(obj, value)


class _HitCard:
    """One gallery card: the hit's crop (or why there is none), its clip id on a line of its own (cut with
    an ellipsis, whole on hover; ``data-search`` numbers the search it shows) and a button with time and
    score that opens the hit. Its widgets are made once; showing another hit only updates their values,
    so a search draws in the page without creating any view."""

    def __init__(self, open_hit: Any) -> None:
        self.hit: Any = None
        width = W.Layout(width="180px")
        self.image = W.Image(format="png", layout=width)
        self.reason = W.HTML(layout=width)
        self.caption = W.HTML(layout=width)
        self.button = W.Button(layout=width)
        self.button.on_click(lambda _b: open_hit(self.hit))
        self.box = W.VBox([self.caption, self.button], layout=W.Layout(margin="2px"))
        self.box.add_class("audiovis-dx-card")

    def show(self, hit: Any, search: int, crop: "bytes | str | None") -> None:
        """Show ``hit`` of search number ``search`` with ``crop`` (PNG bytes, a reason, or None: no model).

        Args:
            hit: a row of the hits' DataFrame.
            search: the search's number.
            crop: the crop's PNG, why there is none, or None when no model can make one.
        """
        self.hit = hit
        clip = html.escape(str(hit.clip_id))
        top: list[W.Widget] = []
        if isinstance(crop, bytes):
            with self._marked(self.image, search):
                self.image.value = crop
            top = [self.image]
        elif isinstance(crop, str):
            self.reason.value = f"<small>{html.escape(crop)}</small>"
            top = [self.reason]
        self.caption.value = (f'<div class="audiovis-dx-card-clip" title="{clip}" data-search="{search}" '
                              'style="width: 176px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap">'
                              f'{clip}</div>')
        with self._marked(self.button, search):
            self.button.description = f"{hit.time_start:.2f} s · score {hit.score:.3f}"
            self.button.tooltip = f"open {hit.clip_id} at patch {hit.patch}"
        self.box.children = [*top, self.caption, self.button]

    @staticmethod
    @contextlib.contextmanager
    def _marked(widget: W.DOMWidget, search: int):
        """Changes made inside reach the page in one message with the class ``audiovis-dx-search-<search>``:
        each widget's messages apply in order, but not in order with other widgets', so a page can tell
        which search a card's image and button show."""
        with widget.hold_sync():
            for name in [c for c in widget._dom_classes if c.startswith("audiovis-dx-search-")]:
                widget.remove_class(name)
            widget.add_class(f"audiovis-dx-search-{search}")
            yield


def _text(value: Any) -> str:
    """A label value as one string: lists joined by ', ', missing as ''."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float) and np.isnan(value):
        return ""
    return str(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


class DatasetExplorer(traitlets.HasTraits):
    """A map of every clip of an :class:`~audiovis.store.EmbeddingStore` (see :func:`explore_dataset`).

    ``selection``: clip ids selected on the map (set it from Python too). ``select_with``: the shape the
    map's selection tool draws, ``"lasso"`` (freehand) or ``"box"`` (a rectangle). ``color_by``: a key of
    :attr:`color_options`. ``explorer``: the opened clip's Explorer (None until :meth:`open`). ``hits``: the
    last :meth:`find_similar` result. ``widget``: the ipywidgets box shown in a notebook (the explorer is not
    itself a widget because ``Widget.open`` is ipywidgets' own method and ``open(clip_id)`` is this one's).

    Args:
        store: the embedding store.
        model: the model that built the store (None: no clip can be opened).
        layer: the stored block whose clip vectors make the map.
        color_by: a column to colour by (None: correct/wrong when labels and predictions exist).
        projection: ``"pca"`` or ``"umap"``.
        height: the map's height in pixels (at least 50).
        sources: where to read clips embedded from memory (see :func:`explore_dataset`).
    """

    # ids are checked against the store's (a lasso sends 10 k+; per-element Unicode checks cost ~1 us each)
    selection = _ClipIds(help="Selected clip ids (two-way with the map).")
    color_by = traitlets.Unicode("", help="What colours the map's points: a key of color_options.")
    select_with = traitlets.Enum(list(_SELECT_SHAPES), "lasso",
                                 help="The map's selection shape: 'lasso' (freehand) or 'box' (a rectangle).")

    def __init__(self, store: EmbeddingStore, model: Any = None, *, layer: int = -1, color_by: str | None = None,
                 projection: str = "pca", height: int = 420, sources: Any = None) -> None:
        if not isinstance(store, EmbeddingStore):
            raise TypeError(f"explore_dataset: store must be an EmbeddingStore (av.open_store(path)), "
                            f"got {type(store).__name__}")
        if model is not None:
            store.check_model(model, "explore_dataset")
        height = check_int(height, "height", minimum=50, what="a whole number of pixels, at least 50")
        self.store, self.model, self.sources = store, model, sources
        self.layer = store.manifest.resolve_layer(layer)
        clips = store.clips
        if len(clips) == 0:
            raise ValueError(f"explore_dataset: the store at {str(store.path)!r} holds no clips; "
                             "fill it with av.embed_dataset(sources, model, path)")
        vectors, jscatter = _vectors_and_jscatter(store, self.layer)
        ok = clips["error"].isna().to_numpy() & np.all(np.isfinite(vectors), axis=1)
        self.clips = clips.reset_index(drop=True)
        self.failed = self.clips.loc[~ok].reset_index(drop=True)
        if not ok.any():
            raise ValueError(f"explore_dataset: none of the {len(clips)} clips of the store at {str(store.path)!r} "
                             f"has vectors at layer {self.layer}; errors: {sorted(set(map(str, clips['error'])))[:3]}")
        self._vectors = vectors if ok.all() else vectors[ok]  # (no copy of 100 k clips' vectors when all are fine)
        self.label_columns = [c for c in clips.columns if c not in _FIXED]
        self.points = self._point_table(self.clips.loc[ok].reset_index(drop=True), project(self._vectors, projection))
        self._point_ids = np.array(self.points["clip_id"].tolist(), dtype=object)  # map row -> clip id
        self._row_of = {cid: i for i, cid in enumerate(self._point_ids.tolist())}
        ids = self.clips["clip_id"]
        # clip id -> its first row of self.clips; ids of identical files (which share an id) -> all their rows.
        # Plain ints: 100 k small lists would wake the garbage collector over and over.
        self._first_row = dict(zip(ids.tolist(), range(len(ids))))
        self._shared_rows: dict[str, list[int]] = {}
        if len(self._first_row) < len(ids):
            for i in np.flatnonzero(ids.duplicated(keep=False).to_numpy()).tolist():
                self._shared_rows.setdefault(ids.iat[i], []).append(i)
        self._all_ids = self._first_row.keys()
        self.explorer: "Explorer | None" = None
        self.hits: "pd.DataFrame | None" = None
        self.probe_scores: Any = None
        self._guard = False
        self._dropdown_guard = False
        self._crop_audio: OrderedDict[str, Any] = OrderedDict()  # hit clips' audio from sources, least recent first
        self._stored: "tuple[tuple[str, int], Future] | None" = None
        self._index_ahead: "Future | None" = None

        self.scatter = jscatter.Scatter(
            data=self.points, x="x", y="y", x_scale=_padded(self.points["x"]), y_scale=_padded(self.points["y"]),
            height=height, legend=True, tooltip=True,
            tooltip_properties=["color", "clip_id", "labels_text", "prediction"], lasso_initiator=True,
        ).options(regl_scatterplot_options=dict(_MAP_OPTIONS))
        self.scatter.widget.observe(self._on_map_selection, names="selection")
        self._color = W.Dropdown(options=self.color_options, description="colour by", style={"description_width": "initial"})
        self._color.observe(self._on_dropdown, names="value")
        self._shape = W.ToggleButtons(options=list(_SELECT_SHAPES), value="lasso",
                                      tooltips=["draw a freehand outline around the clips (the map's lasso tool)",
                                                "drag a rectangle over the clips (the map's lasso tool)"],
                                      style={"button_width": "56px"}, layout=W.Layout(width="auto"))
        self._shape.observe(lambda change: setattr(self, "select_with", change["new"]), names="value")
        n_failed = len(self.failed)
        self._counts = W.HTML(html.escape(
            f"{len(self.points)} clips on the map (layer {self.layer}, {projection.upper()})"
            + (f"; {n_failed} failed clip(s) left off the map, listed below" if n_failed else "")))
        self._table = W.HTML()
        self._failed_table = W.HTML(self._html_table(self.failed, ["clip_id", "source", "error"]) if n_failed else "")
        self._status = W.HTML()
        self._gallery = W.Box(layout=W.Layout(flex_flow="row wrap"))
        self._cards: list[_HitCard] = []  # made once and shown again: a new search only sends new values
        self._searches = 0
        self._explorer_box = W.VBox()
        self._find = W.Button(description="Find similar", tooltip="search the store for patches like the ones "
                              "selected in this clip (the mean of their stored vectors)")
        self._find.on_click(lambda _b: self._find_safely())
        self._other_clips = W.Checkbox(value=False, description="other clips only", indent=False)
        for part, name in ((self._table, "selection"), (self._status, "status"), (self._gallery, "gallery"),
                           (self._explorer_box, "clip"), (self._find, "find"), (self._other_clips, "other-clips"),
                           (self._shape, "select-with")):
            part.add_class(f"audiovis-dx-{name}")
        super().__init__()
        self.widget = W.VBox([
            W.HBox([self._color, W.Label("select with"), self._shape, self._counts]), self.scatter.widget, self._status, self._table,
            self._failed_table, self._gallery, self._explorer_box,
        ])
        self.widget.add_class("audiovis-dataset-explorer")
        self.color_by = color_by if color_by is not None else self._default_color()
        self._show_table()

    # -- the points ------------------------------------------------------------------------------

    def _point_table(self, rows: "pd.DataFrame", xy: np.ndarray) -> "pd.DataFrame":
        import pandas as pd

        out = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "clip_id": rows["clip_id"].astype(str)})
        texts = {c: _texts(rows[c]) for c in self.label_columns}
        for c, values in texts.items():
            out[c] = pd.Categorical(values)
        out["labels_text"] = [" | ".join(parts) for parts in zip(*texts.values())] if texts else ""
        out["duration"] = rows["duration"].astype(float).to_numpy()
        if "top_labels" in rows:
            top = [(t[0] if t is not None and len(t) else "") for t in rows["top_labels"].tolist()]
            out["prediction"] = pd.Categorical(top)
            out["confidence"] = [float(p[0]) if p is not None and len(p) else np.nan
                                 for p in rows["top_probs"].tolist()]
            label = self._truth_column()
            if label is not None:
                out["correct"] = pd.Categorical(_verdicts(rows[label].tolist(), top),
                                                categories=["correct", "wrong", "no label"])
        else:
            out["prediction"] = ""
        return out

    def _truth_column(self, label: str | None = None) -> str | None:
        """The label column compared with predictions: ``label``, else ``label``/``labels``, else the first."""
        if label is not None:
            if label not in self.label_columns:
                raise ValueError(f"no label column {label!r}; the store's label columns are {self.label_columns}")
            return label
        for name in ("label", "labels"):
            if name in self.label_columns:
                return name
        return self.label_columns[0] if self.label_columns else None

    @property
    def color_options(self) -> list[str]:
        """Columns the map can be coloured by (labels, prediction, correct, confidence, probe results, ...)."""
        return [c for c in self.points.columns if c not in ("x", "y", "clip_id", "labels_text")]

    def _default_color(self) -> str:
        for name in ("correct", "label", "labels", *self.label_columns, "prediction", "duration"):
            if name in self.color_options:
                return name
        return self.color_options[0]

    @traitlets.validate("color_by")
    def _check_color(self, proposal: dict) -> str:
        value = proposal["value"]
        if value not in self.color_options:
            raise traitlets.TraitError(f"color_by must be one of {self.color_options}, got {value!r}")
        return value

    @traitlets.observe("color_by")
    def _on_color(self, change: dict) -> None:
        column = change["new"]
        categorical = str(self.points[column].dtype) == "category"
        self.scatter.color(by=column, map="auto" if not categorical else _category_map(self.points[column]))
        self._dropdown_guard = True  # new options reset the dropdown's value: that is no choice of the user's
        try:
            if self._color.options != tuple(self.color_options):
                self._color.options = self.color_options
            self._color.value = column
        finally:
            self._dropdown_guard = False

    def _on_dropdown(self, change: dict) -> None:
        if not self._dropdown_guard and change["new"] is not None:
            self.color_by = change["new"]

    def _show_column(self, column: str) -> None:
        """Colour by ``column`` after its values changed: one update of the map (jupyter-scatter drops a
        second points update that arrives while the first is still being drawn)."""
        if self.color_by == column:
            self._on_color({"new": column})
        else:
            self.color_by = column

    # -- selection -------------------------------------------------------------------------------

    @traitlets.observe("select_with")
    def _on_select_with(self, change: dict) -> None:
        self.scatter.lasso(type=_SELECT_SHAPES[change["new"]])
        self._shape.value = change["new"]

    @traitlets.validate("selection")
    def _check_selection(self, proposal: dict) -> list[str]:
        ids = list(dict.fromkeys(proposal["value"]))
        unknown = [c for c in ids if not isinstance(c, str) or c not in self._all_ids]
        if unknown:
            raise traitlets.TraitError(f"selection: clip id(s) {unknown[:5]} are not in the store "
                                       f"({len(self._all_ids)} clips, e.g. {sorted(self._all_ids)[:3]})")
        return ids

    @traitlets.observe("selection")
    def _on_selection(self, change: dict) -> None:
        if not self._guard:
            self._guard = True
            try:
                self.scatter.selection([self._row_of[c] for c in change["new"] if c in self._row_of])
            finally:
                self._guard = False
        self._show_table()

    def _on_map_selection(self, change: dict) -> None:
        if self._guard:
            return
        rows = np.asarray(change["new"] if change["new"] is not None else [], dtype=np.int64).ravel()
        ids = self._point_ids[rows[(rows >= 0) & (rows < len(self._point_ids))]].tolist()  # a lasso: 10 k+ rows
        self._guard = True
        try:
            self.selection = ids
        finally:
            self._guard = False
        if len(ids) == 1:  # a click on one point opens it
            self._open_safely(ids[0])

    def _open_safely(self, clip_id: str) -> None:
        """Open from a click: errors go to the status line, never to the kernel's log."""
        if self.model is None:
            self._status.value = html.escape("pass model= to explore_dataset to open clips")
            return
        try:
            self.open(clip_id)
        except Exception as exc:  # a click must not raise into the comm handler
            self._status.value = f"<b>cannot open {html.escape(clip_id)}</b>: {html.escape(str(exc))}"

    def _show_table(self) -> None:
        """The selected clips in store order, the first ``_TABLE_ROWS`` of them listed."""
        if not self.selection:
            self._table.value = ""
            return
        if self._shared_rows:
            order = np.sort([r for c in self.selection for r in self._shared_rows.get(c, (self._first_row[c],))])
        else:  # one row per id (a lasso: 10 k+ ids)
            firsts = map(self._first_row.__getitem__, self.selection)
            order = np.sort(np.fromiter(firsts, np.int64, len(self.selection)))
        rows = self.clips.iloc[order[:_TABLE_ROWS]]
        columns = ["clip_id", "source", "duration", *self.label_columns]
        if "top_labels" in rows:
            rows = rows.assign(prediction=[_text(t[:1]) if t is not None else "" for t in rows["top_labels"]])
            columns.append("prediction")
        columns.append("error")
        self._table.value = self._html_table(rows, columns, f"{len(order)} selected clip(s)", total=len(order))

    @staticmethod
    def _html_table(rows: "pd.DataFrame", columns: list[str], title: str | None = None,
                    total: int | None = None) -> str:
        """An HTML table of the first ``_TABLE_ROWS`` of ``rows`` (``total``: how many there are in all).

        Args:
            rows: the clips to list.
            columns: which of their columns.
            title: the line above (default: the failed clips' title).
            total: the number of clips ``rows`` stands for (default ``len(rows)``).
        """
        total = len(rows) if total is None else total
        title = title or f"{len(rows)} failed clip(s) (not on the map, never opened)"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        shown = rows.head(_TABLE_ROWS)
        cells = [[f"{v:.2f}" for v in shown[c]] if c == "duration" else [_text(v) for v in shown[c]] for c in columns]
        body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in zip(*cells))
        more = f"<p>... {total - _TABLE_ROWS} more</p>" if total > _TABLE_ROWS else ""
        return f"<p><b>{html.escape(title)}</b></p><table><tr>{head}</tr>{body}</table>{more}"

    # -- into one clip ---------------------------------------------------------------------------

    def _clip_row(self, clip_id: str) -> "pd.Series":
        check_clip_id(clip_id, "DatasetExplorer")
        first = self._first_row.get(clip_id)
        if first is None:
            close = sorted(self._all_ids)[:3]
            raise KeyError(f"clip {clip_id!r} is not in the store at {str(self.store.path)!r} (ids look like {close})")
        return self.clips.iloc[first]

    def _audio_of(self, clip_id: str) -> Any:
        """The clip's audio: from ``sources`` (aligned with store.clips rows, or a callable), else its stored path."""
        from ..audio import Audio, load_audio

        row = self._clip_row(clip_id)
        rate = self.store.manifest.sample_rate or None
        if self.sources is not None:
            if callable(self.sources):
                item = self.sources(clip_id)
            else:
                item = self.sources[self._first_row[clip_id]]
            item = getattr(item, "audio", item)
            return item if isinstance(item, Audio) else load_audio(item, rate)
        source = row["source"]
        if not isinstance(source, str) or not source or not os.path.isfile(source):
            raise ValueError(f"clip {clip_id!r}: its stored source {source!r} is not an audio file here (embedded from "
                             "memory, or moved); pass the dataset it came from: "
                             "explore_dataset(store, model, sources=dataset)")
        return load_audio(source, rate)

    def open(self, clip_id: str, *, patch: int | None = None, window: int | None = None) -> "Explorer":
        """Show ``clip_id``'s Explorer below the map (computed from its source) and return it.

        Args:
            clip_id: a clip of the store.
            patch: select this patch (token index) and zoom the viewer to it.
            window: the model window of a clip longer than one (default 0).

        Returns:
            The clip's :class:`~audiovis.Explorer`, also kept as :attr:`explorer`.

        Raises:
            KeyError for an unknown clip id; ValueError for a failed clip, a clip without a stored source path
            or when the explorer was made without a model; IndexError for a window or patch outside the
            clip's (a PatchIndexError for a patch that is not one integer).
        """
        from .explorer import Explorer

        row = self._clip_row(clip_id)
        if row["error"] is not None:
            raise ValueError(f"clip {clip_id!r} failed when the store was built ({row['error']}); it cannot be opened")
        if self.model is None:
            raise ValueError("open() computes the clip with the store's model: pass it, "
                             "explore_dataset(store, model)")
        windows = int(row["num_windows"])
        window = 0 if window is None else check_index(window, max(windows, 1), "window", context=f" of clip {clip_id!r}")
        if patch is not None:
            patch = check_patch(patch, len(self.store.manifest.patch_bounds), context="DatasetExplorer.open: ")
        audio = self._audio_of(clip_id)
        (analysis,) = self.model.analyze_windows(audio, windows=[window])
        explorer = Explorer(analysis, audio=audio, layer=self.layer)
        if patch is not None:
            explorer.select([patch])
            t0, t1, _, _ = self.store.manifest.patch_bounds[patch]
            pad = 4 * (t1 - t0)
            explorer.viewer.time_range = (float(analysis.offset + t0 - pad), float(analysis.offset + t1 + pad))
        self.explorer, self._open_id, self._open_window = explorer, clip_id, window
        self._prefetch(clip_id, window, windows)
        title = W.HTML(f"<b>{html.escape(clip_id)}</b> {html.escape(str(row['source']))}")
        self._explorer_box.children = [W.HBox([title, self._find, self._other_clips]), explorer]
        self._status.value = ""
        return explorer

    # -- patch search ----------------------------------------------------------------------------

    def find_similar(self, k: int = 12, *, exclude_clip: bool = False) -> "pd.DataFrame":
        """The ``k`` stored patches most like the mean of the patches selected in :attr:`explorer`.

        Shows them as a gallery of crops (click one to open it; the best :data:`GALLERY_CARDS` when ``k`` is
        larger, the status line says so) and colours all their clips on the map (``color_by="similar"``).
        ``exclude_clip=True`` leaves out the opened clip's own patches.

        Returns:
            ``store.search_patches``' DataFrame: clip_id, window, patch, score, time_start, time_end,
            freq_low, freq_high.
        """
        import pandas as pd

        if not self.store.manifest.patches:
            raise ValueError(f"the store at {str(self.store.path)!r} was built without patches; rebuild it with "
                             "av.embed_dataset(..., patches=True) to find similar patches")
        if self.explorer is None:
            raise ValueError("find_similar: open a clip first (dx.open(clip_id)) and select patches in it")
        sel = list(self.explorer.selection)
        if not sel:
            raise ValueError("find_similar: select one or more patches in dx.explorer first")
        query = self._stored_patches()[np.asarray(sel)].astype(np.float32).mean(axis=0)
        hits = self.store.search_patches(query, k, self.layer,
                                         exclude_clip=self._open_id if exclude_clip else None)
        # the crops first: an error there leaves hits, map and gallery as the last search left them
        rows = list(hits.head(GALLERY_CARDS).itertuples(index=False))
        crops = [self._crop_or_reason(hit) if self.model is not None else None for hit in rows]
        self.hits = hits
        best = hits.groupby("clip_id")["score"].max()
        self.points["similar"] = pd.Categorical(
            ["hit" if c in best.index else "other" for c in self.points["clip_id"]], categories=["hit", "other"])
        self._show_column("similar")
        self._searches += 1
        while len(self._cards) < len(rows):
            self._cards.append(_HitCard(self._open_hit))
        for card, hit, crop in zip(self._cards, rows, crops):
            card.show(hit, self._searches, crop)
        self._gallery.children = [card.box for card in self._cards[:len(rows)]]
        self._status.value = (f"showing the best {len(rows)} of {len(hits)} hits; all of them are in dx.hits"
                              if len(hits) > len(rows) else "")
        return hits

    def _prefetch(self, clip_id: str, window: int, windows: int) -> None:
        """Start reading the opened clip's stored patch vectors in the background (a shard's whole patch column
        is read to find one clip's: ~1 s at 1 M vectors), and then the store's patch index (read from the store
        or built: ~3 s at 1 M vectors), while the user selects patches to search with. The index waits for a
        clip to be opened: browsing the map alone does not hold it in memory."""
        if not self.store.manifest.patches:
            return
        if self._stored is not None:
            self._stored[1].cancel()  # a read not started yet for a clip no longer open
        read = _reader().submit(self.store.patch_embeddings, clip_id, self.layer,
                                window=window if windows > 1 else None)
        self._stored = ((clip_id, window), read)
        ahead = self._index_ahead
        if ahead is None or (ahead.done() and ahead.exception() is not None):  # a failed one: the search says why
            self._index_ahead = _reader().submit(self.store.patch_index, self.layer)

    def _stored_patches(self) -> np.ndarray:
        """The opened window's stored patch vectors (the index's own), read ahead by :meth:`open`."""
        stale = self._stored is None or self._stored[0] != (self._open_id, self._open_window)
        if stale or (self._stored[1].done() and self._stored[1].exception() is not None):  # failed: read again
            windows = int(self._clip_row(self._open_id)["num_windows"])
            self._prefetch(self._open_id, self._open_window, windows)
        return self._stored[1].result()

    def _find_safely(self) -> None:
        """The "Find similar" button: errors go to the status line, never to the kernel's log."""
        try:
            self.find_similar(exclude_clip=self._other_clips.value)
        except Exception as exc:  # a click must not raise into the comm handler
            self._status.value = f"<b>cannot find similar patches</b>: {html.escape(str(exc))}"

    def _crop_or_reason(self, hit: Any) -> bytes | str:
        """The hit's crop (PNG bytes), or why there is none (its clip's audio is not reachable)."""
        try:
            return self._crop_png(hit)
        except ValueError as exc:  # the card says why; the search stands
            return str(exc)

    def _open_hit(self, hit: Any) -> None:
        try:
            self.open(hit.clip_id, patch=int(hit.patch), window=int(hit.window))
        except Exception as exc:  # a click must not raise into the comm handler
            self._status.value = f"<b>cannot open {html.escape(hit.clip_id)}</b>: {html.escape(str(exc))}"

    def _crop_png(self, hit: Any, context: float = 0.5) -> bytes:
        """A small greyscale PNG of the spectrogram around the hit (``context`` s each side), the patch boxed.

        The front end runs on that stretch of the clip's audio alone (and :data:`_CROP_MARGIN` more each side,
        for whole frames), so a hit in any window of a long recording is drawn from its own time, and no clip
        file is read or transformed whole. Every crop spans the same time, so the cards of a gallery share one
        time scale: where that span reaches past the clip's start or end (or the hit lies in a window's padding
        beyond the clip), those columns are drawn in :data:`_OUTSIDE_RGB`.
        """
        from PIL import Image, ImageDraw

        t0 = max(0.0, float(hit.time_start) - context - _CROP_MARGIN)
        t1 = float(hit.time_end) + context + _CROP_MARGIN
        audio = self._segment_of(hit.clip_id, t0, t1)
        spec = self.model.spectrogram_of(audio)
        shift = audio.start - t0  # where the clip itself starts in its recording (0 for a file)
        values = spec.numpy()[:, : max(0, spec.valid_frames)]
        frames = values.shape[1]
        first = int(np.floor(spec.time_to_frame(hit.time_start - context + shift)))
        end = max(first + 1, int(np.ceil(spec.time_to_frame(hit.time_end + context + shift))))
        width = end - first
        pixels = np.empty((values.shape[0], width, 3), np.uint8)
        pixels[:] = _OUTSIDE_RGB
        a, b = min(max(first, 0), frames), min(max(end, 0), frames)  # the crop's columns inside the clip
        if b > a:
            crop = values[:, a:b]
            lo, hi = float(np.min(crop)), float(np.max(crop))
            grey = ((crop - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)[::-1]
            pixels[:, a - first : b - first] = grey[:, :, None]
        image = Image.fromarray(pixels).resize((180, 90))
        sx, sy = 180 / width, 90 / values.shape[0]
        x0 = (spec.time_to_frame(hit.time_start + shift) - first) * sx
        x1 = (spec.time_to_frame(hit.time_end + shift) - first) * sx
        y0 = (values.shape[0] - spec.hz_to_bin(hit.freq_high)) * sy
        y1 = (values.shape[0] - spec.hz_to_bin(hit.freq_low)) * sy
        ImageDraw.Draw(image).rectangle([x0, min(y0, y1), x1, max(y0, y1)], outline=_BOX_RGB)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)  # 180 x 90: a few kB either way, 4x faster
        return buffer.getvalue()

    def _segment_of(self, clip_id: str, start: float, end: float) -> Any:
        """Seconds ``start``..``end`` of the clip's audio (counted from its first sample; cut to the clip): read
        from its file from ``start`` on, or cut from its audio in ``sources`` (kept for the next hits)."""
        from ..audio import load_audio

        if self.sources is None:
            row = self._clip_row(clip_id)
            source = row["source"]
            if isinstance(source, str) and os.path.isfile(source):
                return load_audio(source, self.store.manifest.sample_rate or None, offset=start, duration=end - start)
        audio = self._crop_audio.pop(clip_id, None)
        if audio is None:
            audio = self._audio_of(clip_id)
        self._crop_audio[clip_id] = audio
        kept = lambda: sum(a.waveform.nbytes for a in self._crop_audio.values())  # noqa: E731
        while len(self._crop_audio) > 1 and kept() > KEPT_CROP_AUDIO_BYTES:
            self._crop_audio.popitem(last=False)
        return audio.segment(start, end)

    # -- probes ----------------------------------------------------------------------------------

    def fit_probe(self, layer: int | None = None, *, label: str | None = None, folds: int = 5,
                  epochs: int = 200) -> "pd.DataFrame":
        """Cross-validate a :class:`~audiovis.probe.LinearProbe` on the stored clip vectors of ``layer``.

        Adds ``probe_prediction``, ``probe_confidence`` and ``probe_correct`` (out-of-fold: each clip is
        predicted by the probe that did not see it) as colour options, and colours the map by ``probe_correct``.

        Args:
            layer: the stored block (default: the map's layer).
            label: the label column (default ``label``/``labels``/the first); list values are multi-label.
            folds: cross-validation folds.
            epochs: the probe's training steps.

        Returns:
            One row per clip on the map: clip_id, label, probe_prediction, probe_confidence, probe_correct.
        """
        import pandas as pd

        from ..probe import LinearProbe, kfold_indices

        column = self._truth_column(label)
        if column is None:
            raise ValueError("fit_probe: the store has no label column (pass labels= to av.embed_dataset)")
        ly = self.layer if layer is None else self.store.manifest.resolve_layer(layer)
        vectors = self._vectors if ly == self.layer else self._map_vectors(ly)
        truth = self.clips.set_index("clip_id").loc[self.points["clip_id"], column].tolist()
        multilabel = any(_is_list(t) for t in truth)
        if multilabel:
            classes = sorted({str(v) for t in truth if _is_list(t) for v in t})
            y = np.array([[c in set(map(str, t)) for c in classes] if _is_list(t) else [False] * len(classes)
                          for t in truth], np.int64)
            has = np.ones(len(truth), bool)
        else:
            has = np.array([_text(t) != "" for t in truth])
            classes = sorted({_text(t) for t in truth if _text(t) != ""})
            y = np.array([classes.index(_text(t)) if h else -1 for t, h in zip(truth, has)], np.int64)
        if len(classes) < 2:
            raise ValueError(f"fit_probe: label column {column!r} has {len(classes)} class(es); a probe needs two")
        idx = np.flatnonzero(has)
        folds = check_int(folds, "folds", minimum=2, maximum=len(idx),
                          what=f"an integer in [2, {len(idx)}] (labelled clips)")
        X = vectors[idx]
        Y = y[idx]
        probs = np.zeros((len(idx), len(classes)), np.float32)
        task = "multilabel" if multilabel else "multiclass"
        try:
            for fold, test in enumerate(kfold_indices(None if multilabel else Y, len(idx), folds, 0)):
                train = np.setdiff1d(np.arange(len(idx)), test)
                self._status.value = html.escape(f"fitting the probe on layer {ly}: fold {fold + 1} of {folds} "
                                                 f"({len(train)} clips)")
                probe = LinearProbe(task=task, epochs=epochs).fit(X[train], Y[train])
                p = probe.predict_proba(X[test])
                probs[test, : p.shape[1]] = p
        finally:
            self._status.value = ""
        pred, conf, correct = [""] * len(truth), [np.nan] * len(truth), ["no label"] * len(truth)
        for j, i in enumerate(idx):
            if multilabel:
                on = [c for c, v in zip(classes, probs[j]) if v >= 0.5]
                pred[i] = ", ".join(on)
                conf[i] = float(probs[j].max())
                correct[i] = "correct" if (probs[j] >= 0.5).astype(int).tolist() == Y[j].tolist() else "wrong"
            else:
                c = int(probs[j].argmax())
                pred[i], conf[i] = classes[c], float(probs[j, c])
                correct[i] = "correct" if c == Y[j] else "wrong"
        self.points["probe_prediction"] = pd.Categorical(pred)
        self.points["probe_confidence"] = np.array(conf, np.float64)
        self.points["probe_correct"] = pd.Categorical(correct, categories=["correct", "wrong", "no label"])
        self._show_column("probe_correct")
        return pd.DataFrame({"clip_id": self.points["clip_id"], "label": [_text(t) for t in truth],
                             "probe_prediction": pred, "probe_confidence": conf, "probe_correct": correct})

    def _map_vectors(self, layer: int) -> np.ndarray:
        vectors = self.store.clip_embeddings(layer)
        rows = self.clips.index[self.clips["clip_id"].isin(self._row_of)]
        return vectors[rows]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return (f"DatasetExplorer({len(self.points)} clips on the map, {len(self.failed)} failed, layer {self.layer}, "
                f"colour by {self.color_by!r}, {len(self.selection)} selected)")


def _texts(column: "pd.Series") -> list[str]:
    """:func:`_text` of every value of a label column (lists: pandas' own iteration over Arrow-backed
    columns costs ~1 us an item, 100 k clips); a column of strings only is taken as it is."""
    values = column.tolist()
    if all(type(v) is str for v in values):
        return values
    return [_text(v) for v in values]


def _verdicts(truths: list, predictions: list[str]) -> list[str]:
    """:func:`_verdict` of each (label, top prediction) pair, worked out once per distinct pair of strings
    (100 k clips hold a few dozen)."""
    known: dict[tuple[str, str], str] = {}
    out = []
    for truth, prediction in zip(truths, predictions):
        if type(truth) is str:
            verdict = known.get((truth, prediction))
            if verdict is None:
                verdict = known[(truth, prediction)] = _verdict(truth, prediction)
            out.append(verdict)
        else:
            out.append(_verdict(truth, prediction))
    return out


def _verdict(truth: Any, prediction: str) -> str:
    """``correct`` when the top prediction is the label (or one of a list of labels)."""
    if not prediction or truth is None or _text(truth) == "":
        return "no label"
    if _is_list(truth):
        return "correct" if prediction in [str(t) for t in truth] else "wrong"
    return "correct" if prediction == str(truth) else "wrong"


_readers: list[ThreadPoolExecutor] = []


def _reader() -> ThreadPoolExecutor:
    """The one thread, shared by every explorer, that reads opened clips' stored patch vectors and the store's
    patch index ahead."""
    if not _readers:
        _readers.append(ThreadPoolExecutor(1, thread_name_prefix="audiovis-dataset-explorer"))
    return _readers[0]


def _padded(values: "pd.Series", margin: float = 0.05) -> tuple[float, float]:
    """The axis range of ``values`` widened by ``margin`` of its span on each side, so the points at the
    extremes are drawn whole (jupyter-scatter maps the range onto the whole plot)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = margin * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _category_map(column: "pd.Series") -> Any:
    """Fixed colours for correct/wrong/hit so the mistakes and the hits stand out; ``auto`` otherwise."""
    cats = list(column.cat.categories)
    fixed = {"correct": "#4c9a2a", "wrong": "#d62728", "no label": "#bbbbbb", "hit": "#ff7f0e", "other": "#cccccc"}
    if cats and all(c in fixed for c in cats):
        return {c: fixed[c] for c in cats}
    return "auto"


def explore_dataset(store: EmbeddingStore, model: Any = None, *, layer: int = -1, color_by: str | None = None,
                    projection: str = "pca", height: int = 420, sources: Any = None) -> DatasetExplorer:
    """Open a :class:`DatasetExplorer` on ``store``: a map of its clips at ``layer``.

    Args:
        store: an :class:`~audiovis.store.EmbeddingStore` (``av.open_store(path)``).
        model: the model that built the store (checked: a :class:`~audiovis.store.StoreError` otherwise); needed
            only to open clips and draw the search gallery.
        layer: the stored block whose clip vectors make the map.
        color_by: a column to colour by (default: correct/wrong when labels and predictions exist).
        projection: ``"pca"`` (default) or ``"umap"`` (needs umap-learn).
        height: the map's height in pixels (at least 50).
        sources: where to read clips that were embedded from memory (a torch Dataset like SyntheticEvents, a
            list of Audio or paths, aligned with ``store.clips`` rows), or a callable ``clip_id -> audio``;
            by default each clip's stored ``source`` path.

    Returns:
        The :class:`DatasetExplorer`; show it in a notebook by leaving it as a cell's last value.
    """
    return DatasetExplorer(store, model, layer=layer, color_by=color_by, projection=projection, height=height,
                           sources=sources)
