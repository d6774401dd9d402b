"""SyntheticEvents: a seeded dataset of labelled sound-event clips with ground-truth time-frequency boxes.

Item ``i`` depends only on ``(seed, i)`` and the clip settings: its random draws come from
``numpy.random.SeedSequence(seed, spawn_key=(i,))`` and its samples from IEEE basic arithmetic, so it is
bit-identical on every machine and independent of ``num_clips``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import Audio
from ..checks import check_int, check_number, is_int
from ..errors import ConfigError
from ..patches import Box
from . import portable as pm
from .signals import BACKGROUNDS, EVENT_CLASSES, EVENT_LEVEL_DB, MAX_EVENT_SECONDS

CLASSES: tuple[str, ...] = tuple(EVENT_CLASSES)

# A 25 ms Hann window (AST's front end) spreads a pure tone over +-2 / 0.025 s = +-80 Hz (its main lobe);
# boxes include that spread so that they hold what a spectrogram shows.
BOX_MARGIN_HZ = 80.0
EDGE_SECONDS = 0.05
MAX_EVENTS = 3
PEAK_LIMIT = 0.99


@dataclass(frozen=True)
class Event:
    """One sound event: its class, time span (s), band (Hz, with the analysis margin) and level."""

    label: str
    class_index: int
    onset: float
    offset: float
    freq_low: float
    freq_high: float
    level_db: float
    snr_db: float
    params: dict[str, float] = field(default_factory=dict)

    @property
    def box(self) -> Box:
        """``Box(time_start, time_end, freq_start, freq_end)`` in seconds and Hz."""
        return Box(self.onset, self.offset, self.freq_low, self.freq_high)


@dataclass(frozen=True, repr=False)
class Clip:
    """One item: mono ``waveform`` ``[1, samples]``, multi-hot ``labels`` over ``class_names``, its events."""

    waveform: torch.Tensor
    sample_rate: int
    labels: torch.Tensor
    class_names: tuple[str, ...]
    events: tuple[Event, ...]
    background: str
    background_db: float
    index: int
    seed: int

    @property
    def audio(self) -> Audio:
        return Audio(self.waveform, self.sample_rate, f"SyntheticEvents(seed={self.seed})[{self.index}]")

    @property
    def boxes(self) -> np.ndarray:
        """``[events, 4]`` rows of (time_start, time_end, freq_start, freq_end) in s and Hz."""
        return np.array([e.box for e in self.events], dtype=np.float64).reshape(-1, 4)

    @property
    def event_labels(self) -> list[str]:
        return [e.label for e in self.events]

    def __repr__(self) -> str:
        names = ", ".join(f"{e.label} {e.onset:.2f}-{e.offset:.2f} s" for e in self.events)
        return f"Clip(#{self.index}, seed {self.seed}, {self.background} background; {names})"


@dataclass(frozen=True)
class Sources:
    """A clip before mixing: the background and each event on the full clip timeline (float64, at mix level)."""

    background: np.ndarray
    events: tuple[np.ndarray, ...]


def _check_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return CLASSES
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise ConfigError(f"SyntheticEvents: classes must be a list of class names, got {classes!r}")
    names = tuple(classes)
    if not names:
        raise ConfigError(f"SyntheticEvents: classes is empty; choose from {list(CLASSES)}")
    unknown = [c for c in names if c not in EVENT_CLASSES]
    if unknown:
        raise ConfigError(f"SyntheticEvents: unknown classes {unknown}; choose from {list(CLASSES)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"SyntheticEvents: classes repeat a name: {list(names)}")
    return names


class SyntheticEvents(Dataset):
    """``num_clips`` seeded clips of 1-3 sound events (distinct classes) over a noise, hum or silent background.

    ``classes`` selects and orders the event classes (default: all of :data:`CLASSES`); label ``k`` of an
    item is ``class_names[k]``. Each item is a :class:`Clip`; :meth:`sources` gives its unmixed parts.
    """

    classes_available: tuple[str, ...] = CLASSES

    def __init__(
        self,
        num_clips: int,
        *,
        seed: int,
        duration: float = 4.0,
        sample_rate: int = 16000,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.num_clips = check_int(num_clips, "SyntheticEvents: num_clips", minimum=1, error=ConfigError)
        self.seed = check_int(seed, "SyntheticEvents: seed", minimum=0, error=ConfigError)
        self.sample_rate = check_int(sample_rate, "SyntheticEvents: sample_rate", minimum=16000, error=ConfigError)
        shortest = MAX_EVENT_SECONDS + 2 * EDGE_SECONDS
        self.duration = check_number(duration, "SyntheticEvents: duration", low=shortest, high=600, error=ConfigError,
                                     what=f"a number of seconds in [{shortest}, 600]")
        self.class_names = _check_classes(classes)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return self.num_clips

    def _index(self, index) -> int:
        if not is_int(index):
            raise TypeError(f"SyntheticEvents indices must be integers, got {type(index).__name__}")
        i = int(index) + (self.num_clips if index < 0 else 0)
        if not 0 <= i < self.num_clips:
            raise IndexError(f"SyntheticEvents index {index} out of range for {self.num_clips} clips")
        return i

    def _render(self, i: int) -> tuple[list[Event], str, float, np.ndarray, list[np.ndarray]]:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=(i,))))
        sr = self.sample_rate
        n = int(round(self.duration * sr))

        names = list(BACKGROUNDS)
        background = names[int(rng.integers(0, len(names)))]
        make_background, (lo, hi) = BACKGROUNDS[background]
        background_db = lo + (hi - lo) * float(rng.random())
        bg = make_background(rng, n, sr) * pm.db_to_amplitude(background_db)

        count = int(rng.integers(1, MAX_EVENTS + 1))
        chosen = rng.permutation(self.num_classes)[: min(count, self.num_classes)]
        events: list[Event] = []
        parts: list[np.ndarray] = []
        for k in chosen:
            label = self.class_names[int(k)]
            sig = EVENT_CLASSES[label](rng, sr)
            samples = sig.samples[: n - 2 * int(EDGE_SECONDS * sr)]
            length = len(samples)
            first = int(EDGE_SECONDS * sr)
            start = first + int(rng.integers(0, n - 2 * first - length + 1))
            level_db = EVENT_LEVEL_DB[0] + (EVENT_LEVEL_DB[1] - EVENT_LEVEL_DB[0]) * float(rng.random())
            gain = pm.db_to_amplitude(level_db) / np.sqrt(np.mean(samples * samples))
            part = np.zeros(n)
            part[start : start + length] = samples * gain
            parts.append(part)
            nyquist = sr / 2
            events.append(
                Event(
                    label=label,
                    class_index=int(k),
                    onset=start / sr,
                    offset=(start + length) / sr,
                    freq_low=max(0.0, sig.freq_low - BOX_MARGIN_HZ),
                    freq_high=min(nyquist, sig.freq_high + BOX_MARGIN_HZ),
                    level_db=level_db,
                    snr_db=level_db - background_db,
                    params=dict(sig.params),
                )
            )

        peak = np.max(np.abs(self._mix(bg, parts)))
        if peak > PEAK_LIMIT:
            scale = PEAK_LIMIT / peak
            bg = bg * scale
            parts = [p * scale for p in parts]
        order = np.argsort([e.onset for e in events], kind="stable")
        return [events[j] for j in order], background, background_db, bg, [parts[j] for j in order]

    @staticmethod
    def _mix(background: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
        out = background.copy()
        for p in parts:
            out = out + p
        return out

    def __getitem__(self, index) -> Clip:
        i = self._index(index)
        events, background, background_db, bg, parts = self._render(i)
        wav = torch.from_numpy(self._mix(bg, parts).astype(np.float32))[None]
        labels = torch.zeros(self.num_classes, dtype=torch.float32)
        for e in events:
            labels[e.class_index] = 1.0
        return Clip(
            waveform=wav,
            sample_rate=self.sample_rate,
            labels=labels,
            class_names=self.class_names,
            events=tuple(events),
            background=background,
            background_db=background_db,
            index=i,
            seed=self.seed,
        )

    def sources(self, index) -> Sources:
        """Item ``index`` unmixed: its background and each event (in ``events`` order) on the clip timeline.

        Their sum, rounded to float32, is the item's waveform.
        """
        _, _, _, bg, parts = self._render(self._index(index))
        return Sources(bg, tuple(parts))

    def __repr__(self) -> str:
        return (
            f"SyntheticEvents({self.num_clips} clips, seed={self.seed}, {self.duration} s at {self.sample_rate} Hz, "
            f"{self.num_classes} classes)"
        )
