"""Class names shipped with audiovis: the 527 AudioSet display names (``class_labels_indices.csv``)."""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

AUDIOSET_NUM_CLASSES = 527


@lru_cache(maxsize=1)
def _audioset() -> tuple[str, ...]:
    text = resources.files(__name__).joinpath("audioset_class_labels_indices.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    return tuple(row["display_name"] for row in sorted(rows, key=lambda r: int(r["index"])))


def audioset_labels() -> list[str]:
    """The 527 AudioSet class display names in model output order."""
    return list(_audioset())


def default_labels(num_labels: int) -> list[str]:
    """Names for a head with no names of its own: AudioSet's for 527 outputs, else ``LABEL_i`` (Hugging Face style)."""
    if num_labels == AUDIOSET_NUM_CLASSES:
        return audioset_labels()
    return [f"LABEL_{i}" for i in range(num_labels)]


def is_placeholder(labels: list[str]) -> bool:
    """True when ``labels`` are Hugging Face's generated ``LABEL_i`` names."""
    return all(name == f"LABEL_{i}" for i, name in enumerate(labels))
