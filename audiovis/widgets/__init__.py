"""Jupyter widgets: the SpectrogramViewer (anywidget) and the Explorer built on it.

Submodules are imported on use so that ``import audiovis.widgets`` does not load ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SpectrogramViewer"]


def __getattr__(name: str) -> Any:
    if name == "SpectrogramViewer":
        from .viewer import SpectrogramViewer

        return SpectrogramViewer
    raise AttributeError(f"module 'audiovis.widgets' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .viewer import SpectrogramViewer
