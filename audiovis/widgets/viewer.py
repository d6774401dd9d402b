"""SpectrogramViewer: a spectrogram with the model's patch grid on top, two-way with Python (anywidget).

The browser side is js/src/viewer.ts, bundled into audiovis/static/viewer.js. Values travel as one
binary buffer (uint8 codes with their value range, or float32); audio is fetched by the browser in
binary PCM chunks over custom messages when playback first starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import anywidget
import numpy as np
import traitlets

from ..audio import Audio
from ..errors import AudiovisError, ConfigError
from ..checks import check_int, is_int, is_number
from ..patches import PatchGrid, check_patches, filter_patches
from ..spectrogram import Spectrogram
from ..rendering.codec import MAX_MESSAGE_BYTES, finite_range, max_pool_frames, quantize_uint8
from ..rendering.colormaps import COLORMAPS
from ..rendering.png import render_png
from ..rendering.view import View
from .serializers import array_serialization
from .tiles import TileServer, tile_server_for

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
BUNDLE = STATIC_DIR / "viewer.js"
STYLES = STATIC_DIR / "viewer.css"

#: Samples per audio chunk message (int16: 2 MiB).
AUDIO_CHUNK_SAMPLES = 1 << 20
#: Default colour range width for dB spectrograms.
DB_RANGE = 80.0

HOVER_MODES = ("none", "similarity")


def default_value_range(spectrogram: Spectrogram) -> tuple[float, float]:
    """Colour range from the data: min..max over the valid frames; dB spectrograms span at most 80 dB."""
    values = spectrogram.numpy()
    valid = values[:, : max(1, spectrogram.valid_frames)]
    lo, hi = finite_range(valid)
    if spectrogram.units == "dB":
        lo = max(lo, hi - DB_RANGE)
    return lo, hi


def _patch_list(value: Any, grid: PatchGrid | None, name: str, hint: str = "pass grid=PatchGrid(...)") -> list[int]:
    """Sorted unique patch indices, or a TraitError naming the first bad entry (``hint``: how to get a grid)."""
    if value is None:
        return []
    if grid is None:
        try:
            empty = len(value) == 0
        except TypeError:
            empty = False
        if empty:
            return []
        raise traitlets.TraitError(f"{name}: this viewer has no patch grid ({hint})")
    try:  # the one patch-index check: indices, numpy arrays or a boolean mask; short messages
        idx = check_patches(value, grid.num_patches, allow_empty=True, name="patch", context=f"{name}: ")
    except (IndexError, TypeError, ValueError) as exc:
        raise traitlets.TraitError(str(exc)) from exc
    return sorted(set(idx.tolist()))


class PatchIndices(traitlets.List):
    """A list-of-patch-indices trait that also takes a numpy array (indices or a boolean mask) or a range.

    The entries are checked by the owner's validator (``check_patches``, which knows the grid), so an
    array is accepted here as readily as by ``select()``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(traitlets.Any(), **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            value = value.tolist() if value.ndim else [value.item()]
        elif isinstance(value, range):
            value = list(value)
        return super().validate(obj, value)


class SpectrogramViewer(anywidget.AnyWidget):
    """A spectrogram in the notebook with the patch grid on top; selection, hover, heatmaps and playback.

    ``selected_patches``, ``time_range`` and ``playhead`` are two-way; ``hovered_patch`` follows the
    pointer. With ``grid=None`` it is a plain zoomable spectrogram viewer (no patch features).

    Args:
        spectrogram: what is drawn.
        grid: the model's patches on ``spectrogram`` (None: no patch features).
        audio: the sound, for playback (None: no playback).
        colormap: the spectrogram's colour scale (``"magma"``, ``"viridis"``, ...).
        vmin: the value drawn darkest (None: from the valid frames; dB: at most 80 dB below the max).
        vmax: the value drawn brightest (None: the valid frames' maximum).
        height: the plot's height in pixels.
        precision: ``"uint8"`` (values quantised to 256 codes, a quarter of the bytes) or ``"float32"``.
        **kwargs: initial values of other traits (``selected_patches``, ``heatmap``, ``show_grid``, ...).
    """

    _spectrogram = traitlets.Any().tag(sync=True, **array_serialization)
    _meta = traitlets.Dict().tag(sync=True)
    _grid = traitlets.Dict(None, allow_none=True).tag(sync=True)
    _audio_info = traitlets.Dict(None, allow_none=True).tag(sync=True)
    _tiles = traitlets.Dict(None, allow_none=True).tag(sync=True)

    selected_patches = PatchIndices().tag(sync=True)
    hovered_patch = traitlets.Int(None, allow_none=True).tag(sync=True)
    masked_patches = PatchIndices().tag(sync=True)
    #: one group id per patch (token merging: ``Analysis.merge_groups``), each group outlined in its own colour; -1 = none
    patch_groups = traitlets.List(traitlets.Int(), default_value=None, allow_none=True).tag(sync=True)
    heatmap = traitlets.Any(None, allow_none=True).tag(sync=True, **array_serialization)
    heatmap_opacity = traitlets.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    heatmap_colormap = traitlets.Enum(COLORMAPS, default_value="viridis").tag(sync=True)
    heatmap_range = traitlets.Tuple(traitlets.Float(), traitlets.Float(), default_value=None, allow_none=True).tag(sync=True)
    heatmap_label = traitlets.Unicode("heatmap").tag(sync=True)
    embeddings = traitlets.Any(None, allow_none=True).tag(sync=True, **array_serialization)
    hover_mode = traitlets.Enum(HOVER_MODES, default_value="none").tag(sync=True)
    colormap = traitlets.Enum(COLORMAPS, default_value="magma").tag(sync=True)
    vmin = traitlets.Float(0.0).tag(sync=True)
    vmax = traitlets.Float(1.0).tag(sync=True)
    show_grid = traitlets.Bool(True).tag(sync=True)
    time_range = traitlets.Tuple(traitlets.Float(), traitlets.Float()).tag(sync=True)
    playhead = traitlets.Float(0.0).tag(sync=True)
    height = traitlets.Int(320, min=80, max=4000).tag(sync=True)

    def __init__(
        self,
        spectrogram: Spectrogram,
        *,
        grid: PatchGrid | None = None,
        audio: Audio | None = None,
        colormap: str = "magma",
        vmin: float | None = None,
        vmax: float | None = None,
        height: int = 320,
        precision: Literal["uint8", "float32"] = "uint8",
        **kwargs: Any,
    ) -> None:
        _use_bundle(type(self))
        if not isinstance(spectrogram, Spectrogram):
            raise TypeError(f"SpectrogramViewer: spectrogram must be an audiovis Spectrogram, got {type(spectrogram).__name__}")
        if grid is not None and not isinstance(grid, PatchGrid):
            raise TypeError(f"SpectrogramViewer: grid must be a PatchGrid or None, got {type(grid).__name__}")
        if grid is not None and tuple(grid.input_shape) != tuple(spectrogram.shape):
            raise ConfigError(
                f"SpectrogramViewer: grid input_shape {grid.input_shape} does not match the spectrogram's "
                f"(bins, frames) {spectrogram.shape}"
            )
        if audio is not None and not isinstance(audio, Audio):
            raise TypeError(f"SpectrogramViewer: audio must be an audiovis Audio or None, got {type(audio).__name__}")
        if precision not in ("uint8", "float32"):
            raise ConfigError(f"SpectrogramViewer: precision must be 'uint8' or 'float32', got {precision!r}")
        self._spec = spectrogram
        self._patch_grid = grid
        # a view of the Audio's samples (no copy for mono float32): playback adds nothing to the kernel's memory
        self._pcm = None if audio is None else np.asarray(audio.to_mono().waveform[0].detach().cpu().numpy(), dtype=np.float32)
        self._audio_rate = None if audio is None else audio.sample_rate
        # where sample 0 plays on the spectrogram's clock (Audio.start: a segment of a recording starts later)
        self._audio_start = 0.0 if audio is None else float(audio.start)
        if self._audio_start:
            kwargs.setdefault("playhead", self._audio_start)
        # Long spectrograms: a max-pooled overview first, full-resolution tiles on request (tiles.py).
        self._tile_server = tile_server_for(spectrogram.numpy(), precision)
        payload, meta = _encode_spectrogram(spectrogram, precision, self._tile_server)
        lo, hi = default_value_range(spectrogram)
        t_end = float(spectrogram.frame_to_time(spectrogram.num_frames))
        super().__init__(
            _spectrogram=payload,
            _meta=meta,
            _grid=None if grid is None else grid.to_dict(),
            _audio_info=None if audio is None else self._audio_info_dict(),
            _tiles=None if self._tile_server is None else self._tile_server.spec(),
            colormap=colormap,
            vmin=lo if vmin is None else vmin,
            vmax=hi if vmax is None else vmax,
            height=height,
            time_range=(spectrogram.time_offset, t_end),
            **kwargs,
        )
        self.on_msg(self._on_message)

    #: How to get a patch grid, in the error for patches given to a viewer without one (LongViewer: a window).
    _no_grid_hint = "pass grid=PatchGrid(...)"

    # ---- read-only views of what is shown ----

    @property
    def spectrogram(self) -> Spectrogram:
        return self._spec

    @property
    def grid(self) -> PatchGrid | None:
        return self._patch_grid

    @property
    def full_time_range(self) -> tuple[float, float]:
        """Seconds from the left edge of the first frame to the right edge of the last."""
        s = self._spec
        return float(s.time_offset), float(s.frame_to_time(s.num_frames))

    # ---- methods ----

    def select(self, patches: int | Iterable[int]) -> None:
        """Replace the selection with ``patches`` (token indices)."""
        self.selected_patches = _patch_list(patches, self._patch_grid, "select", self._no_grid_hint)

    def clear_selection(self) -> None:
        self.selected_patches = []

    def set_heatmap(
        self,
        values: Any,
        *,
        colormap: str | None = None,
        opacity: float | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
        label: str | None = None,
    ) -> None:
        """Show one value per patch (``[num_patches]`` or ``[rows, cols]``); ``None`` hides the heatmap.

        ``vmin``/``vmax`` fix the colour range (default: the values' min..max).

        Args:
            values: one value per patch, or None to hide the heatmap.
            colormap: the heatmap's colour scale (None: keep the current one).
            opacity: the heatmap's opacity in [0, 1] (None: keep the current one).
            vmin: the value drawn at the bottom of the scale (give both or neither).
            vmax: the value drawn at the top of the scale.
            label: what the tooltip calls the values (None: keep the current label).
        """
        if (vmin is None) != (vmax is None):
            raise ValueError("set_heatmap: give both vmin and vmax, or neither")
        with self.hold_trait_notifications():
            self.heatmap = values
            if colormap is not None:
                self.heatmap_colormap = colormap
            if opacity is not None:
                self.heatmap_opacity = opacity
            self.heatmap_range = None if vmin is None else (float(vmin), float(vmax))  # type: ignore[arg-type]
            if label is not None:
                self.heatmap_label = label

    def set_embeddings(self, embeddings: Any, *, hover_mode: str = "similarity") -> None:
        """Send per-patch embeddings ``[num_patches, dim]`` once (as float16); in "similarity" hover mode
        the browser colours every patch by its cosine similarity to the hovered one."""
        with self.hold_trait_notifications():
            self.embeddings = embeddings
            self.hover_mode = hover_mode

    def to_png(self, path: str | Path | None = None, *, width: int = 800) -> bytes:
        """A PNG of the current view (time_range, colormap, overlay) rendered in Python; written to ``path`` if given."""
        data = render_png(self._view(), width=width)
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def _grid_frame_offset(self) -> int:
        """Frames the patch grid is shifted by in the view (a LongViewer's current window; 0 here)."""
        return 0

    def _view(self) -> View:
        """The current view as plain data, for drawing it in Python (audiovis/rendering)."""
        audible = self._audio_info is not None and self.playhead > self._audio_start
        return View(
            spectrogram=self.spectrogram, payload=np.asarray(self._spectrogram), meta=dict(self._meta),
            time_range=(float(self.time_range[0]), float(self.time_range[1])), height=int(self.height),
            colormap=self.colormap, vmin=float(self.vmin), vmax=float(self.vmax), grid=self.grid,
            grid_offset=self._grid_frame_offset(), show_grid=bool(self.show_grid),
            heatmap=None if self.heatmap is None else np.asarray(self.heatmap, dtype=np.float32),
            heatmap_range=None if self.heatmap_range is None else tuple(self.heatmap_range),
            heatmap_colormap=self.heatmap_colormap, heatmap_opacity=float(self.heatmap_opacity),
            heatmap_label=self.heatmap_label, masked_patches=tuple(self.masked_patches),
            selected_patches=tuple(self.selected_patches), playhead=float(self.playhead) if audible else None,
        )

    def save_html(
        self,
        path: str | Path,
        *,
        title: str | None = None,
        frames: Literal["all", "view"] | None = None,
        audio_format: Literal["auto", "vorbis", "opus", "flac", "wav"] = "auto",
    ) -> Any:
        """Write this viewer as one self-contained HTML page that works with no kernel and no network.

        The page keeps what the browser does alone: zoom, pan, axes, colour bar, tooltip, grid, selection
        drawing, hover similarity (with embeddings set) and playback (whole clip, selection, "▶ patches"). It opens at
        the current view, selection and heatmap. Long spectrograms: ``frames="all"`` (the default here)
        saves every frame at full resolution, ``"view"`` only the current view's (the overview elsewhere).
        Audio is FLAC up to 60 s, else Ogg/Vorbis (``audio_format`` picks: also ``"opus"``; WAV when no
        encoder works).

        Args:
            path: the ``.html`` file to write; its folder must exist.
            title: the page's title.
            frames: which full-resolution frames of a long spectrogram to keep.
            audio_format: ``"auto"``, ``"vorbis"``, ``"opus"``, ``"flac"`` or ``"wav"``.

        Returns:
            A ``PageReport`` (path, size, bytes per part, what was left out).
        """
        from .static_page import save_viewer_page

        return save_viewer_page(self, path, title=title, frames=frames or self._default_saved_frames,
                                audio_format=audio_format)

    #: Which full-resolution frames save_html keeps by default ("all"; LongViewer: "view").
    _default_saved_frames = "all"

    # ---- validation (Python side: errors; browser side: see set_state) ----

    @traitlets.validate("selected_patches", "masked_patches")
    def _check_patches(self, proposal: dict) -> list[int]:
        return _patch_list(proposal["value"], self._patch_grid, proposal["trait"].name, self._no_grid_hint)

    @traitlets.validate("patch_groups")
    def _check_groups(self, proposal: dict) -> list[int] | None:
        value = proposal["value"]
        if value is None:
            return None
        grid = self._patch_grid
        if grid is None:
            raise traitlets.TraitError(f"patch_groups needs a grid: {self._no_grid_hint}")
        groups = [int(v) for v in value]
        if len(groups) != grid.num_patches:
            raise traitlets.TraitError(f"patch_groups must hold one group id per patch ({grid.num_patches}), got {len(groups)}")
        if any(g < -1 for g in groups):
            raise traitlets.TraitError("patch_groups ids must be >= 0 (or -1 for a patch in no group)")
        return groups

    @traitlets.validate("hovered_patch")
    def _check_hovered(self, proposal: dict) -> int | None:
        value = proposal["value"]
        if value is None:
            return None
        return _patch_list([value], self._patch_grid, "hovered_patch", self._no_grid_hint)[0]

    def _grid_for(self, trait: str) -> PatchGrid:
        """The patch grid a per-patch trait needs, or a TraitError naming the trait and how to get a grid."""
        if self._patch_grid is None:
            raise traitlets.TraitError(f"{trait}: this viewer has no patch grid ({self._no_grid_hint})")
        return self._patch_grid

    @traitlets.validate("heatmap")
    def _check_heatmap(self, proposal: dict) -> np.ndarray | None:
        value = proposal["value"]
        if value is None:
            return None
        grid = self._grid_for("heatmap")
        arr = _as_numpy(value, "heatmap").astype(np.float32)
        if arr.shape not in ((grid.num_patches,), grid.grid_shape):
            raise traitlets.TraitError(
                f"heatmap: expected {grid.num_patches} values or shape {grid.grid_shape}, got shape {arr.shape}"
            )
        return np.ascontiguousarray(arr.reshape(-1))

    @traitlets.validate("embeddings")
    def _check_embeddings(self, proposal: dict) -> np.ndarray | None:
        value = proposal["value"]
        if value is None:
            return None
        grid = self._grid_for("embeddings")
        arr = _as_numpy(value, "embeddings")
        if arr.ndim != 2 or arr.shape[0] != grid.num_patches:
            raise traitlets.TraitError(f"embeddings: expected shape ({grid.num_patches}, dim), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise traitlets.TraitError("embeddings: values must be finite")
        return np.ascontiguousarray(arr.astype(np.float16))

    @traitlets.validate("heatmap_range")
    def _check_heatmap_range(self, proposal: dict) -> tuple[float, float] | None:
        value = proposal["value"]
        if value is None:
            return None
        lo, hi = value
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise traitlets.TraitError(f"heatmap_range: need finite lo < hi, got {value!r}")
        return (lo, hi)

    @traitlets.validate("vmin", "vmax")
    def _check_value_limit(self, proposal: dict) -> float:
        value = float(proposal["value"])
        name = proposal["trait"].name
        if not math.isfinite(value):
            raise traitlets.TraitError(f"{name} must be finite, got {value!r}")
        other = self.vmax if name == "vmin" else self.vmin
        lo, hi = (value, other) if name == "vmin" else (other, value)
        if lo >= hi:
            raise traitlets.TraitError(
                f"{name}={value!r} leaves vmin >= vmax ({lo!r} >= {hi!r}); to change both at once use "
                "`with viewer.hold_trait_notifications(): viewer.vmin, viewer.vmax = lo, hi`"
            )
        return value

    @traitlets.validate("time_range")
    def _check_time_range(self, proposal: dict) -> tuple[float, float]:
        t0, t1 = (float(v) for v in proposal["value"])
        if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
            raise traitlets.TraitError(f"time_range: need finite start < end seconds, got {proposal['value']!r}")
        lo, hi = self.full_time_range
        t0, t1 = max(t0, lo), min(t1, hi)
        if t0 >= t1:
            raise traitlets.TraitError(f"time_range {proposal['value']!r} lies outside the clip ({lo:.3f}..{hi:.3f} s)")
        return (t0, t1)

    @traitlets.validate("playhead")
    def _check_playhead(self, proposal: dict) -> float:
        t = float(proposal["value"])
        start, end = self._audio_start, self._duration()
        if not (math.isfinite(t) and start - 1e-9 <= t <= end + 1e-9):
            raise traitlets.TraitError(f"playhead must be within {start:g}..{end:.3f} s, got {t!r}")
        return min(max(t, start), end)

    def _duration(self) -> float:
        """Where the audio ends on the viewer's clock (s): its start plus its length (no audio: the spectrogram's end)."""
        if self._pcm is not None and self._audio_rate:
            return self._audio_start + len(self._pcm) / self._audio_rate
        return self.full_time_range[1]

    # ---- messages from the browser ----

    #: The traits the front end writes; any other key from the browser is kernel-owned and ignored.
    BROWSER_WRITABLE = frozenset({"selected_patches", "hovered_patch", "time_range", "playhead"})

    def set_state(self, sync_data: dict) -> None:
        """State from the browser: each key applied on its own; odd values are ignored with a warning
        and the kernel's value is sent back, so every view returns to it."""
        if not isinstance(sync_data, dict):
            log.warning("SpectrogramViewer: ignoring a state update from the browser that is not a dict: %s", _short(sync_data))
            return
        for key, value in sync_data.items():
            try:
                if key not in self.BROWSER_WRITABLE:
                    raise ValueError(f"{key!r} is not writable from the browser")
                value = self._from_browser(key, value)
                super().set_state({key: value})
            except Exception as exc:  # the kernel must never raise because of a browser message
                log.warning("SpectrogramViewer: ignoring %s=%s from the browser: %s", _short(key), _short(value), exc)
                if isinstance(key, str) and key in self.keys:
                    self.send_state(key)

    def _from_browser(self, key: str, value: Any) -> Any:
        grid = self._patch_grid
        if key == "selected_patches":
            if not isinstance(value, list):
                raise TypeError(f"expected a list, got {type(value).__name__}")
            n = 0 if grid is None else grid.num_patches
            keep, dropped = filter_patches(value, n)  # the lenient rule: bad entries dropped, never raised
            if dropped:
                log.warning("SpectrogramViewer: ignoring %d %s entries from the browser that are not patches of the "
                            "grid (0..%d): %s", len(dropped), key, n - 1, _short(dropped[:10]))
            return keep
        if key == "hovered_patch":  # checked here: traitlets would keep False in place of an equal 0
            if value is None:
                return None
            n = 0 if grid is None else grid.num_patches
            keep, _ = filter_patches([value], n)
            if not keep:
                raise ValueError(f"not a patch of the grid (0..{n - 1})")
            return keep[0]
        if key == "time_range":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise TypeError(f"expected [start, end] seconds, got {type(value).__name__}")
            t0, t1 = (_seconds(v) for v in value)
            lo, hi = self.full_time_range
            # a list, as the browser sent it: ipywidgets compares the new value's JSON with the value it locked
            # (this one), and a tuple never equals a list, so a tuple sent the range back as an update that
            # reverted the next pan steps of a drag
            return [max(lo, min(t0, hi)), max(lo, min(t1, hi))]
        if key == "playhead":
            return min(max(self._audio_start, _seconds(value)), self._duration())
        return value

    def _on_message(self, widget: Any, content: Any, buffers: list) -> None:
        """Requests from the browser carry an id; every one is answered, errors as ``{"error": ...}``."""
        request_id = content.get("id") if isinstance(content, dict) else None
        try:
            if not isinstance(content, dict) or not is_int(request_id):
                raise ValueError(f"a request must be a dict with an integer id, got {_short(content)!r}")
            kind = content.get("type")
            if kind == "audio":
                reply, out = self._audio_chunk(content.get("chunk"))
            elif kind == "patch_audio":
                reply, out = self._patch_audio(content.get("patches"))
            elif kind == "tile":
                if self._tile_server is None:
                    raise ValueError("this viewer has no tiles (its spectrogram fits one payload)")
                reply, out = self._tile_server.handle(content)
            else:
                raise ValueError(f"unknown request type {kind!r}")
            self.send({"id": request_id, "type": kind, **reply}, out)
        except Exception as exc:  # the kernel must never raise because of a browser message
            log.warning("SpectrogramViewer: bad request from the browser: %s", exc)
            self.send({"id": request_id, "error": str(exc)})

    def _patch_audio(self, patches: Any) -> tuple[dict, list]:
        """"▶ patches": the sound of just those patches (their frames and bands), cut to their time span,
        as float32 samples at the spectrogram's rate (audiovis/explain/patch_audio.py)."""
        from ..explain.patch_audio import frame_boxes, region_audio

        if self._pcm is None:
            raise ValueError("this viewer has no audio")
        if self._patch_grid is None:
            raise ValueError("this viewer has no patch grid")
        n = self._patch_grid.num_patches
        nested = isinstance(patches, list) and any(isinstance(p, (list, dict)) for p in patches)
        if not isinstance(patches, list) or not patches or len(patches) > n or nested:
            raise ValueError(f"patches must be a non-empty list of patch indices, got {_short(patches)!r}")
        idx = sorted(set(check_patches(patches, n).tolist()))
        boxes = frame_boxes(self._patch_grid, self._spec, idx, self._grid_frame_offset())
        samples, start = region_audio(self._pcm, int(self._audio_rate), self._audio_start, boxes, self._spec.sample_rate)
        reply = {"sample_rate": int(self._spec.sample_rate), "start": start, "dtype": "float32", "shape": [len(samples)]}
        return reply, [memoryview(samples.astype("<f4").tobytes())]

    def _audio_info_dict(self) -> dict:
        n = len(self._pcm)
        return {
            "sample_rate": int(self._audio_rate),
            "num_samples": int(n),
            "duration": n / self._audio_rate,
            "start": self._audio_start,
            "dtype": self._pcm_dtype(),
            "chunks": max(1, math.ceil(n / AUDIO_CHUNK_SAMPLES)),
        }

    def _pcm_dtype(self) -> str:
        """int16 when the samples fit [-1, 1] (half the bytes), else float32 so nothing clips."""
        peak = float(np.max(np.abs(self._pcm))) if len(self._pcm) else 0.0
        return "int16" if peak <= 1.0 else "float32"

    def _audio_chunk(self, chunk: Any) -> tuple[dict, list]:
        if self._pcm is None:
            raise ValueError("this viewer has no audio")
        info = self._audio_info  # computed once: the peak scan over an hour of samples is not per chunk
        chunk = check_int(chunk, "audio chunk", minimum=0, maximum=info["chunks"] - 1)
        part = self._pcm[chunk * AUDIO_CHUNK_SAMPLES : (chunk + 1) * AUDIO_CHUNK_SAMPLES]
        if info["dtype"] == "int16":
            part = np.clip(np.rint(part * 32767.0), -32768, 32767).astype("<i2")
        else:
            part = part.astype("<f4")
        return {"chunk": chunk, "chunks": info["chunks"], "dtype": info["dtype"], "shape": [len(part)]}, [memoryview(part.tobytes())]


def _encode_spectrogram(spec: Spectrogram, precision: str, tiles: TileServer | None = None) -> tuple[np.ndarray, dict]:
    """Payload array ([bins, columns], uint8 codes or float32) and the metadata the browser needs."""
    if tiles is not None:
        payload, factor, value_range = tiles.overview(), tiles.frames_per_column, tiles.value_range
    else:
        values = spec.numpy().astype(np.float32)
        itemsize = 1 if precision == "uint8" else 4
        factor = max(1, math.ceil(values.size * itemsize / MAX_MESSAGE_BYTES))
        pooled = max_pool_frames(values, factor)
        if precision == "uint8":
            payload, value_range = quantize_uint8(pooled)
        else:
            payload, value_range = np.ascontiguousarray(pooled), finite_range(pooled)
    meta = {
        "n_bins": spec.num_bins,
        "n_frames": spec.num_frames,
        "frames_per_column": factor,
        "value_range": list(value_range),
        "time_offset": float(spec.time_offset),
        "hop_seconds": float(spec.hop_seconds),
        "frequency_edges": [float(f) for f in spec.frequency_edges],
        "scale": spec.scale,
        "units": spec.units,
        "valid_frames": int(spec.valid_frames),
    }
    return payload, meta


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise traitlets.TraitError(f"{name}: expected numbers, got {type(value).__name__}: {exc}") from None
    return arr


def _seconds(value: Any) -> float:
    """A finite number of seconds from the browser (no strings, no bools)."""
    if not is_number(value):
        raise TypeError(f"expected a number of seconds, got {type(value).__name__}")
    t = float(value) if isinstance(value, float) or abs(value) < 2**53 else math.copysign(math.inf, value)
    if not math.isfinite(t):
        raise ValueError(f"expected a finite number of seconds, got {_short(value)}")
    return t


def _short(value: Any, limit: int = 120) -> str:
    try:
        text = repr(value)
    except Exception:  # e.g. an int past Python's digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _use_bundle(cls: type) -> None:
    """Point ``_esm``/``_css`` at the built bundle (with anywidget's hot reload under ANYWIDGET_HMR=1)."""
    if isinstance(cls.__dict__.get("_esm"), str) or "_esm_ready" in cls.__dict__:
        return
    if not BUNDLE.is_file():
        raise AudiovisError(
            f"the viewer's front end is not built ({BUNDLE} is missing); run `npm install && npm run build` in js/ "
            "or reinstall audiovis"
        )
    try:  # what anywidget does with a Path in the class body; here late, so a missing build gets a clear error
        from anywidget._util import try_file_contents
    except ImportError:  # another anywidget layout: plain file text (no hot reload)
        def try_file_contents(path: Path) -> str:
            return path.read_text(encoding="utf-8")

    cls._esm = try_file_contents(BUNDLE)
    if STYLES.is_file():
        cls._css = try_file_contents(STYLES)
    cls._esm_ready = True
