"""Exceptions raised by audiovis: each names the input and what is wrong with it."""

from __future__ import annotations


class AudiovisError(Exception):
    """Base class of every error audiovis raises on purpose."""


class AudioLoadError(AudiovisError, ValueError):
    """A sound file or array could not be turned into an Audio."""


class InvalidAudioError(AudiovisError, ValueError):
    """Audio samples that a front end or model cannot use (NaN/Inf, empty)."""


class ConfigError(AudiovisError, ValueError):
    """A model or front-end configuration with impossible values."""


class CheckpointError(AudiovisError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class PatchIndexError(AudiovisError, IndexError, TypeError):
    """A patch index that is not an integer (or a bool, a string), or a boolean mask of the wrong length.

    An IndexError (like numpy's for a bad index) and a TypeError (like Python's for a list index that is
    not an integer), so code catching either sees it.
    """
