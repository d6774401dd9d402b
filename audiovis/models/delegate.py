"""The one way up from the models layer: where a model's ``analyze``, ``analyze_windows``, ``windows`` and
``window_starts`` find their implementation, which lives in the analysis layer (:mod:`audiovis.runner`,
:mod:`audiovis.windows`).

Models never import the analysis layer. The package root (``audiovis/__init__.py``, which Python runs
before any submodule, so before any model exists) installs a loader here that imports the analysis layer
on first use; ``import audiovis`` itself stays light. This module imports nothing heavy.
"""

from __future__ import annotations

from typing import Any, Callable

_loader: Callable[[], Any] | None = None


def install(loader: Callable[[], Any]) -> None:
    """Set what :func:`runner` returns: ``loader()`` gives the analysis layer's runner module."""
    global _loader
    _loader = loader


def runner() -> Any:
    """The analysis layer's runner (:mod:`audiovis.runner`), as installed by the package root."""
    if _loader is None:
        raise RuntimeError(
            "model.analyze runs in audiovis's analysis layer, which is not installed: it is installed by "
            "audiovis/__init__.py, so import the model through the audiovis package (import audiovis)"
        )
    return _loader()
