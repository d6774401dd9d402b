"""The demo model: a small AST trained on :class:`audiovis.datasets.SyntheticEvents`, shipped as package data.

``load_demo_model()`` gives every tutorial and test a model whose attention means something, offline.
``python -m audiovis.demo.train`` rebuilds the weights; ``python -m audiovis.demo.evaluate`` measures them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointError

if TYPE_CHECKING:
    from ..models.ast import ASTModel

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
