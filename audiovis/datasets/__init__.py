"""Datasets: seeded synthetic sound events with ground-truth time-frequency boxes."""

from .synthetic import BOX_MARGIN_HZ, CLASSES, Clip, Event, Sources, SyntheticEvents

__all__ = ["BOX_MARGIN_HZ", "CLASSES", "Clip", "Event", "Sources", "SyntheticEvents"]
