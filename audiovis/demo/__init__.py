"""The demo model: a small AST trained on :class:`audiovis.datasets.SyntheticEvents`, shipped as package data.

``load_demo_model()`` gives every tutorial and test a model whose attention means something, offline.
``python -m audiovis.demo.train`` rebuilds the weights; ``python -m audiovis.demo.evaluate`` measures them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError

if TYPE_CHECKING:
    from ..models.ast import ASTModel
    from ..models.base import SpectrogramModelMixin

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TRAIN_SEED = 0
EVAL_SEED = 1

_lock = threading.Lock()
_model: "ASTModel | None" = None


def load_demo_model() -> "ASTModel":
    """The shipped demo AST (9 synthetic event classes, 4 s window), in eval mode.

    Loaded once per process and shared: later calls return the same object (put back in eval mode).
    """
    global _model
    with _lock:
        if _model is None:
            missing = [f for f in ("config.json", "model.safetensors") if not (WEIGHTS_DIR / f).is_file()]
            if missing:
                raise CheckpointError(
                    f"the demo weights are missing from {WEIGHTS_DIR} ({', '.join(missing)}); "
                    "rebuild them with `python -m audiovis.demo.train`"
                )
            from ..models.ast import ASTModel

            _model = ASTModel.from_pretrained(WEIGHTS_DIR)
        _model.eval()
        return _model


__all__ = ["EVAL_SEED", "TRAIN_SEED", "WEIGHTS_DIR", "load_demo_model"]


def resolve_model(model: Any, caller: str) -> "SpectrogramModelMixin":
    """A widget's ``model`` argument as a model: None or ``"demo"`` is the shipped demo model.

    Args:
        model: an audiovis model, ``"demo"`` or None.
        caller: how the error names the call (``"explore()"``, ``"LongViewer"``).

    Returns:
        The model.

    Raises:
        TypeError: anything else, with a hint when a path was given.
    """
    from ..models.base import check_model

    if model is None or (isinstance(model, str) and model.strip().lower() == "demo"):
        return load_demo_model()
    try:
        return check_model(model, caller)
    except TypeError as error:
        hint = ("; a string names only the demo model, \"demo\" (load others with av.ASTModel.from_pretrained(path))"
                if isinstance(model, (str, os.PathLike)) else "; None or \"demo\" is the demo model")
        raise TypeError(f"{error}{hint}") from None

