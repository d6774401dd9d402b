"""The one window rule: where the model windows over a long input start (the analysis layer).

Every place that cuts a recording into model windows (``model.analyze``, ``model.window_starts``,
``model.windows``, the Explorer's ``window=``, LongViewer's label strip, the embedding store) asks
:func:`model_window_starts`, which asks :func:`window_starts`, so they agree window for window; a bad
``hop`` is a :class:`~audiovis.errors.ConfigError` everywhere (:func:`check_hop`).

The rule works in any unit (seconds, samples, frames):

- input that fits one window gives one window, starting at 0;
- otherwise windows start every ``step`` while they end inside the input, and one more window ends at the
  input's end (overlapping the one before) unless the last regular window already does. No window is
  ever mostly padding: sliding-window inference's usual rule.

``grid`` (e.g. one frame hop) puts that last start on the grid, rounded down, so its frames are the
input's own frames; it then ends less than one grid step before the input's end.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

from .audio import Audio
from .checks import check_number
from .errors import ConfigError
from .spectrogram import KaldiFbank, Spectrogram, load_source

if TYPE_CHECKING:
    from .models.base import SpectrogramModelMixin

Number = TypeVar("Number", int, float)


def window_starts(length: Number, window: Number, step: Number, *, grid: Number | None = None) -> list[Number]:
    """Starts of the windows of size ``window`` covering an input of size ``length``.

    Args:
        length: the input's size (seconds, samples or valid frames).
        window: one window's size, in the same unit.
        step: distance between the starts of consecutive windows (``window`` for no overlap).
        grid: when given, the last (end-aligned) window starts on a multiple of ``grid``, rounded down.

    Returns:
        The starts in increasing order: ``[0]`` when ``length <= window``; otherwise ``0, step, 2 * step, ...``
        while a window fits, then one ending at ``length`` (on ``grid``) when the regular ones stop short.
        Integers in, integers out.
    """
    if not step > 0 or not window > 0:
        raise ValueError(f"window_starts: window and step must be positive, got window={window!r}, step={step!r}")
    tol = 1e-9 * max(1.0, abs(float(length)))  # seconds that differ in the last bits are equal
    if length <= window + tol:
        return [0 * step]
    starts = [0 * step]
    k = 1
    while k * step + window <= length + tol:
        starts.append(k * step)
        k += 1
    last = length - window
    if grid is not None:
        cells = math.floor(last / grid + 1e-6)  # 148.49999 cells of float seconds are 148
        last = cells * grid if not isinstance(grid, int) else int(cells) * grid
    if last > starts[-1] + tol:
        starts.append(last)
    return starts


def check_hop(hop: float | None) -> float | None:
    """``hop`` (seconds between window starts) as a float, or None for the default (one window).

    Raises:
        ConfigError: ``hop`` is not a positive, finite number of seconds.
    """
    if hop is None:
        return None
    return check_number(hop, "hop", low=0, low_open=True, error=ConfigError, what="a positive number of seconds")


def model_window_starts(model: "SpectrogramModelMixin", source: Audio | Spectrogram, hop: float | None = None) -> list:
    """Where ``model``'s windows over ``source`` start: seconds for an Audio, frames for a Spectrogram.

    The rule is :func:`window_starts`: input that fits one window has one start; longer input gets a window
    every ``hop`` (default ``model.window_seconds``) while one fits, then one that ends at the end of the
    input (its start on the front end's frame grid), so no window is mostly padding. A Spectrogram counts
    its ``valid_frames`` (the padding a front end added to reach ``target_frames`` is not input), ``hop``
    rounded to whole frames. What ``model.window_starts`` returns.

    Raises:
        ConfigError: a bad ``hop``, or one shorter than a frame for a Spectrogram.
    """
    hop = check_hop(hop)
    if isinstance(source, Spectrogram):
        frames = model.input_shape[1]
        model.spectrogram_of(source)  # checks the frequency bins and the front end
        step = frames if hop is None else int(round(hop / source.hop_seconds))
        if step < 1:
            raise ConfigError(f"hop must be at least one frame ({source.hop_seconds} s) for a Spectrogram, got {hop!r}")
        return window_starts(max(1, min(source.valid_frames, source.num_frames)), frames, step, grid=1)
    fe = model.frontend
    step = model.window_seconds if hop is None else hop
    return window_starts(source.duration, model.span_seconds, step, grid=fe.hop_length / fe.sample_rate)


def model_windows(
    model: "SpectrogramModelMixin", audio: Any, *, hop: float | None = None, sample_rate: int | None = None
) -> list[tuple[float, Spectrogram]]:
    """``(offset in s, model input)`` of every window ``model.analyze_windows`` would run, without running the model.

    For batch pipelines (the embedding store) that run many clips' windows through the model together:
    the windows, their inputs and offsets are exactly ``analyze``'s (the one window rule). What
    ``model.windows`` returns.
    """
    hop = check_hop(hop)
    source = load_source(audio, sample_rate)
    return [window_input(model, source, start) for start in model_window_starts(model, source, hop)]


def window_input(model: "SpectrogramModelMixin", source: Audio | Spectrogram, start: float | int) -> tuple[float, Spectrogram]:
    """``(offset, model input)`` of the window of ``source`` at ``start`` (s for Audio, frames for a Spectrogram)."""
    if isinstance(source, Spectrogram):
        return audio_time(model, source, int(start)), model.window_spectrogram(model.spectrogram_of(source), int(start))
    segment = window_audio(model, source, start)
    # the segment knows where it lies in the recording (Audio.start): its frames' times and the offset use that clock
    return segment.start, model.fit_window(model.spectrogram_of(segment))


def audio_time(model: "SpectrogramModelMixin", spec: Spectrogram, frame: int) -> float:
    """Where the audio of frame ``frame`` of ``spec`` starts in the recording (s), rounded to a sample.

    The frame's centre less where the model's front end centres frame 0 of audio starting at 0 (a
    Kaldi frame: half its window later; centred STFT/mel frames: at 0). For a spectrogram of a whole
    clip starting at 0 this is ``frame * hop``; for a window cut from a recording, its time there.
    """
    fe = model.frontend
    lead = fe.win_length / 2 / fe.sample_rate if isinstance(fe, KaldiFbank) else 0.0
    seconds = float(spec.frame_to_time(frame + 0.5)) - lead
    return round(seconds * spec.sample_rate) / spec.sample_rate


def window_audio(model: "SpectrogramModelMixin", source: Audio, start: float) -> Audio:
    """The samples the window at ``start`` (s) reads from ``source``."""
    if start == 0 and source.duration <= model.span_seconds:
        return source
    return source.segment(start, start + model.span_seconds)
