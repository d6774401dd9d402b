"""LongViewer: a long recording with the model's verdict per window and its patch grid when zoomed in.

The recording's spectrogram is computed in chunks (audiovis.longform) and shown with level of detail
(audiovis.widgets.tiles). The model runs on consecutive windows cut from that spectrogram; a strip under
the spectrogram names each window's top label. Zoomed to about one window, the model's patch grid of
the window under view appears: hover, selection and heatmaps then refer to that window's patches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
import traitlets

from ..audio import Audio
from ..errors import ConfigError
from ..longform import LongSource, chunked_spectrogram
from ..spectrogram import KaldiFbank, Spectrogram
from .viewer import SpectrogramViewer

#: The grid shows when the visible span is at most this many windows long.
GRID_ZOOM_WINDOWS = 1.5


@dataclass(frozen=True)
class Window:
    """One analysis window: frames ``[start, end)`` of the recording, seconds, and its top labels."""

    index: int
    start: int
    end: int
    start_seconds: float
    end_seconds: float
    labels: list[tuple[str, float]]


def long_frontend(frontend: Any) -> Any:
    """The model's front end for a whole recording: KaldiFbank without its fixed ``target_frames``."""
    if isinstance(frontend, KaldiFbank) and frontend.target_frames is not None:
        return KaldiFbank(frontend.num_mel_bins, None, frontend.mean, frontend.std, frontend.normalize)
    return frontend


class LongViewer(SpectrogramViewer):
    """A long recording in a SpectrogramViewer, analysed window by window by ``model``.

    ``LongViewer(source, model)`` reads ``source`` (a path or an Audio) in chunks, runs the model on
    windows of ``model.input_shape[1]`` frames every ``hop`` seconds (default: one window, no overlap)
    and keeps each window's ``top_k`` labels. ``window`` is the index of the window under view (or
    None when zoomed out); ``analysis`` is that window's :class:`~audiovis.Analysis`, computed when
    first asked for; ``show_window(i)`` zooms to window ``i``.
    """

    _windows = traitlets.List().tag(sync=True)
    _grid_offset = traitlets.Int(0).tag(sync=True)
    window = traitlets.Int(None, allow_none=True, read_only=True).tag(sync=True)

    def __init__(
        self,
        source: LongSource,
        model: Any,
        *,
        hop: float | None = None,
        top_k: int = 3,
        chunk_seconds: float = 60.0,
        progress: Callable[[str, int, int], None] | None = None,
        **viewer_kwargs: Any,
    ) -> None:
        frontend = long_frontend(model.frontend)
        spec = chunked_spectrogram(
            frontend, source, chunk_seconds=chunk_seconds,
            progress=None if progress is None else (lambda done, total: progress("spectrogram", done, total)),
        )
        frames = int(model.input_shape[1])
        hop_frames = frames if hop is None else int(round(hop / spec.hop_seconds))
        if hop_frames <= 0:
            raise ConfigError(f"LongViewer: hop must be at least one frame ({spec.hop_seconds} s), got {hop!r}")
        self._model = model
        self._window_frames = frames
        self._model_grid = model.grid
        self._current: tuple[int, Any] | None = None
        starts = list(range(0, max(1, spec.num_frames - frames + hop_frames), hop_frames))
        self.windows: list[Window] = []
        for i, start in enumerate(starts):
            result = model.analyze(self.window_spectrogram(spec, start))
            end = start + frames
            self.windows.append(Window(i, start, end, float(spec.frame_to_time(start)),
                                       float(spec.frame_to_time(end)), list(result.top_labels(top_k))))
            if progress is not None:
                progress("windows", i + 1, len(starts))
        if isinstance(source, Audio):  # a file's samples are not held in memory: no playback for paths
            viewer_kwargs.setdefault("audio", source)
        self._long_spec = spec
        super().__init__(spec, **viewer_kwargs)
        self._windows = [{"start": w.start, "end": w.end, "labels": [[l, float(s)] for l, s in w.labels]}
                         for w in self.windows]
        self.observe(self._follow_view, names="time_range")

    def window_spectrogram(self, spec: Spectrogram, start: int) -> Spectrogram:
        """Frames ``[start, start + window)`` of ``spec``: one model input.

        A last, short window is padded as the model's own front end pads: KaldiFbank pads its raw
        features with zeros before normalising; other front ends are padded by ``model.analyze``.
        """
        frames = self._window_frames
        stop = min(spec.num_frames, start + frames)
        values, times = spec.values[:, start:stop], spec.times[start:stop]
        fe = self._model.frontend
        if stop - start < frames and isinstance(fe, KaldiFbank):
            fill = -fe.mean / (2 * fe.std) if fe.normalize else 0.0
            values = torch.cat([values, values.new_full((spec.num_bins, frames - (stop - start)), fill)], dim=1)
            times = spec.times[start] + np.arange(frames) * spec.hop_seconds
        return replace(spec, values=values.contiguous(), times=times,
                       valid_frames=max(0, min(spec.valid_frames, stop) - start))

    @property
    def analysis(self) -> Any:
        """The Analysis of the window under view (None when zoomed out), computed once per window."""
        if self.window is None:
            return None
        if self._current is None or self._current[0] != self.window:
            w = self.windows[self.window]
            self._current = (self.window, self._model.analyze(self.window_spectrogram(self._long_spec, w.start)))
        return self._current[1]

    def show_window(self, index: int) -> None:
        """Zoom to window ``index``; its grid appears."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.windows):
            raise IndexError(f"window {index!r} outside 0..{len(self.windows) - 1}")
        w = self.windows[int(index)]
        self.time_range = (w.start_seconds, w.end_seconds)

    def window_under(self, t0: float, t1: float) -> int | None:
        """The window whose centre is nearest the centre of ``[t0, t1]`` s, if that span is about one window."""
        spec = self._long_spec
        span = (t1 - t0) / spec.hop_seconds
        if not self.windows or span > GRID_ZOOM_WINDOWS * self._window_frames:
            return None
        centre = float(spec.time_to_frame((t0 + t1) / 2))
        return min(range(len(self.windows)), key=lambda i: abs((self.windows[i].start + self.windows[i].end) / 2 - centre))

    def _follow_view(self, change: dict) -> None:
        index = self.window_under(*change["new"])
        if index == self.window:
            return
        with self.hold_sync(), self.hold_trait_notifications():  # one message: grid, offset and window together
            self.selected_patches = []  # patch indices, heatmaps and embeddings belong to one window
            self.masked_patches = []
            self.heatmap = None
            self.embeddings = None
            self._patch_grid = None if index is None else self._model_grid
            self._grid = None if index is None else self._model_grid.to_dict()
            self._grid_offset = 0 if index is None else self.windows[index].start
            self.set_trait("window", index)
