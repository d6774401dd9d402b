"""LongViewer: a long recording with the model's verdict per window and its patch grid when zoomed in.

The recording's spectrogram is computed in chunks (audiovis.longform) and shown with level of detail
(audiovis.widgets.tiles). The model runs on consecutive windows cut from that spectrogram; a strip under
the spectrogram names each window's top label. Zoomed to about one window, the model's patch grid of
the window under view appears: hover, selection and heatmaps then refer to that window's patches.

The labels come from batched, logits-only passes (:func:`audiovis.runner.window_labels`); the full Analysis
(hidden states, attention) is computed only for the window under view, when asked for. The windows are
the model's own (:func:`audiovis.windows.model_window_starts`, the rule ``model.analyze`` uses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import logging
import threading
import time
import weakref
from typing import Any, Callable, Iterator

import traitlets

from ..audio import Audio
from ..checks import check_index, is_number
from ..demo import resolve_model
from ..longform import LongSource, chunked_spectrogram
from ..runner import iter_window_labels
from ..spectrogram import KaldiFbank, Spectrogram
from ..windows import model_window_starts
from .viewer import SpectrogramViewer

#: The grid shows when the visible span is at most this many windows long.
GRID_ZOOM_WINDOWS = 1.5
#: While labels are computed in the background, the strip is updated at most this often (s).
LABEL_PUSH_SECONDS = 0.5

log = logging.getLogger("audiovis")


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


def _stop_thread(stop: threading.Event, thread: threading.Thread | None) -> None:
    """Ask a label thread to stop and wait for it (it ends after the batch it is computing)."""
    stop.set()
    if thread is not None and thread.is_alive() and thread is not threading.current_thread():
        thread.join()


class LongViewer(SpectrogramViewer):
    """A long recording in a SpectrogramViewer, analysed window by window by ``model``.

    ``LongViewer(source, model)`` reads ``source`` (a path or an Audio) in chunks, runs the model
    (None or ``"demo"``: :func:`~audiovis.load_demo_model`, as ``explore``) on
    windows of ``model.input_shape[1]`` frames every ``hop`` seconds (default: one window, no overlap)
    and keeps each window's ``top_k`` labels (batched logits-only passes of ``batch_size`` windows, see
    :func:`audiovis.runner.window_labels`). ``window`` is the index of the window under view (or
    None when zoomed out); ``analysis`` is that window's :class:`~audiovis.Analysis`, computed when
    first asked for; ``show_window(i)`` zooms to window ``i``.

    With ``background=True`` (the default) the viewer is ready as soon as the spectrogram is: the labels
    are computed in a background thread and fill the strip as they come (an hour is hundreds of
    windows). ``labels_done`` tells whether they are all there, ``wait_for_labels()`` waits for them, and
    ``windows`` waits too, so code that reads it always sees every window's labels.

    Args:
        source: a sound file's path, or an Audio (an Audio also gives playback).
        model: an audiovis model (None or ``"demo"``: the demo model).
        hop: seconds between window starts (None: the model window, no overlap).
        top_k: labels kept per window.
        chunk_seconds: seconds of audio read at a time for the spectrogram.
        batch_size: windows per labelling pass.
        background: compute the window labels in a background thread.
        progress: called with ``(stage, done, total)``, stage ``"spectrogram"`` then ``"windows"``.
        **viewer_kwargs: passed on to :class:`~audiovis.SpectrogramViewer` (``colormap``, ``height``, ...).
    """

    _windows = traitlets.List().tag(sync=True)
    _grid_offset = traitlets.Int(0).tag(sync=True)
    #: save_html keeps the overview and the current view's full-resolution tiles (an hour in full is ~50 MB)
    _default_saved_frames = "view"
    window = traitlets.Int(None, allow_none=True, read_only=True).tag(sync=True)

    def __init__(
        self,
        source: LongSource,
        model: Any = None,
        *,
        hop: float | None = None,
        top_k: int = 3,
        chunk_seconds: float = 60.0,
        batch_size: int = 16,
        background: bool = True,
        progress: Callable[[str, int, int], None] | None = None,
        **viewer_kwargs: Any,
    ) -> None:
        model = resolve_model(model, "LongViewer")
        if not getattr(model, "head_trained", True):  # the label strip would show a random head's guesses
            import warnings

            from ..analysis import UNTRAINED_HEAD_NOTE, UntrainedHeadWarning

            warnings.warn(f"LongViewer: {UNTRAINED_HEAD_NOTE}; the window labels are its guesses", UntrainedHeadWarning,
                          stacklevel=2)
        frontend = long_frontend(model.frontend)
        spec = chunked_spectrogram(
            frontend, source, chunk_seconds=chunk_seconds,
            progress=None if progress is None else (lambda done, total: progress("spectrogram", done, total)),
        )
        frames = int(model.input_shape[1])
        self._model = model
        self._window_frames = frames
        self._model_grid = model.grid
        self._current: tuple[int, Any] | None = None
        starts = model_window_starts(model, spec, hop)  # model.analyze's windows
        labels = iter_window_labels(model, spec, starts, top_k=top_k, batch_size=batch_size)  # checks arguments now
        self._spans = [(start, start + frames) for start in starts]
        self._window_list: list[Window] = [
            Window(i, a, b, float(spec.frame_to_time(a)), float(spec.frame_to_time(b)), []) for i, (a, b) in enumerate(self._spans)
        ]
        self._labels_done = threading.Event()
        self._labels_error: BaseException | None = None
        self._stop = threading.Event()  # set by close() and at interpreter exit: the thread ends after its batch
        self._labels_thread: threading.Thread | None = None
        if isinstance(source, Audio):  # a file's samples are not held in memory: no playback for paths
            viewer_kwargs.setdefault("audio", source)
        self._long_spec = spec
        super().__init__(spec, **viewer_kwargs)
        self._push_windows()
        self.observe(self._follow_view, names="time_range")
        report = None if progress is None else (lambda done, total: progress("windows", done, total))
        if background:
            thread = threading.Thread(target=self._fill_labels, args=(labels, report), name="audiovis-window-labels",
                                      daemon=True)
            self._labels_thread = thread
            # A thread still inside torch when the interpreter tears down aborts the process ("terminate
            # called without an active exception"): at exit (or when this viewer is collected) it is stopped
            # and joined. The finalizer holds the flag and the thread, never the viewer.
            self._finalizer = weakref.finalize(self, _stop_thread, self._stop, thread)
            thread.start()
        else:
            self._fill_labels(labels, report)
            if self._labels_error is not None:
                raise self._labels_error

    # ---- window labels ----

    def _fill_labels(self, batches: Iterator[list[list[tuple[str, float]]]], progress: Callable[[int, int], None] | None) -> None:
        """Compute every window's labels a batch at a time; the strip is updated every LABEL_PUSH_SECONDS."""
        done, pushed = 0, time.monotonic()
        try:
            for batch in batches:
                for top in batch:
                    w = self._window_list[done]
                    self._window_list[done] = Window(w.index, w.start, w.end, w.start_seconds, w.end_seconds, top)
                    done += 1
                if progress is not None:
                    progress(done, len(self._window_list))
                if self._stop.is_set():  # closed, or the interpreter is exiting: no further batch
                    return
                if time.monotonic() - pushed >= LABEL_PUSH_SECONDS:
                    self._push_windows()
                    pushed = time.monotonic()
            self._push_windows()
        except BaseException as exc:  # reported by windows / wait_for_labels; the viewer itself keeps working
            self._labels_error = exc
            log.warning("LongViewer: computing the window labels failed after %d of %d windows: %s",
                        done, len(self._window_list), exc)
        finally:
            self._labels_done.set()

    def _push_windows(self) -> None:
        if not self._stop.is_set():
            self._windows = [{"start": w.start, "end": w.end, "labels": [[l, float(p)] for l, p in w.labels]}
                             for w in self._window_list]

    @property
    def labels_done(self) -> bool:
        """Whether every window's labels have been computed (or their computation failed)."""
        return self._labels_done.is_set()

    def wait_for_labels(self, timeout: float | None = None) -> list[Window]:
        """Wait until every window has its labels (at most ``timeout`` s) and return :attr:`windows`."""
        if not self._labels_done.wait(timeout):
            done = sum(bool(w.labels) for w in self._window_list)
            raise TimeoutError(
                f"LongViewer: {done} of {len(self._window_list)} window labels ready after {timeout} s; they are still "
                "being computed in the background (lv.labels_done tells when they are all in; the viewer works meanwhile)"
            )
        if self._labels_error is not None:
            raise RuntimeError(f"LongViewer: computing the window labels failed: {self._labels_error}") from self._labels_error
        if self._stop.is_set() and not all(w.labels for w in self._window_list):
            done = sum(bool(w.labels) for w in self._window_list)
            raise RuntimeError(
                f"LongViewer: closed after {done} of {len(self._window_list)} window labels; the rest were not computed"
            )
        return list(self._window_list)

    @property
    def windows(self) -> list[Window]:
        """Every analysis window with its top labels (waits for labels still being computed)."""
        return self.wait_for_labels()

    def close(self) -> None:
        """Close the widget; a background label computation stops after its current batch, waited for here."""
        if hasattr(self, "_stop"):  # ipywidgets also calls close() on a viewer whose __init__ failed
            _stop_thread(self._stop, self._labels_thread)
        super().close()

    @property
    def _no_grid_hint(self) -> str:  # the patch errors of a zoomed-out view point to a window, not to grid=
        return (f"zoomed out, the view spans several model windows: show one with lv.show_window(i), "
                f"i in 0..{len(self._spans) - 1}, or zoom to about one window")

    def _grid_frame_offset(self) -> int:
        return int(self._grid_offset)

    def window_spectrogram(self, spec: Spectrogram, start: int) -> Spectrogram:
        """Frames ``[start, start + window)`` of ``spec``: one model input (``model.window_spectrogram``).

        A last, short window is padded as the model's own front end pads (KaldiFbank pads its raw
        features with zeros before normalising).
        """
        return self._model.window_spectrogram(spec, start)

    @property
    def analysis(self) -> Any:
        """The Analysis of the window under view (None when zoomed out), computed once per window."""
        if self.window is None:
            return None
        if self._current is None or self._current[0] != self.window:
            start = self._spans[self.window][0]
            self._current = (self.window, self._model.analyze(self.window_spectrogram(self._long_spec, start)))
        return self._current[1]

    def show_window(self, index: int) -> None:
        """Zoom to window ``index``; its grid appears."""
        w = self._window_list[check_index(index, len(self._spans), "window")]
        self.time_range = (w.start_seconds, w.end_seconds)

    def window_under(self, t0: float, t1: float) -> int | None:
        """The window whose centre is nearest the centre of ``[t0, t1]`` s, if that span is about one window."""
        if not (is_number(t0) and is_number(t1) and math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
            raise ValueError(f"window_under: need finite seconds t0 < t1, got ({t0!r}, {t1!r})")
        spec = self._long_spec
        span = (t1 - t0) / spec.hop_seconds
        if not self._spans or span > GRID_ZOOM_WINDOWS * self._window_frames:
            return None
        centre = float(spec.time_to_frame((t0 + t1) / 2))
        return min(range(len(self._spans)), key=lambda i: abs(sum(self._spans[i]) / 2 - centre))

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
            self._grid_offset = 0 if index is None else self._spans[index][0]
            self.set_trait("window", index)
