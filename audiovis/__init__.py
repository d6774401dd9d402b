"""audiovis: see what a vision transformer sees in sound.

Names are imported lazily so that ``import audiovis`` stays fast (no torch import, no file I/O).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AudiovisError": "errors",
    "AudioLoadError": "errors",
    "InvalidAudioError": "errors",
    "ConfigError": "errors",
    "CheckpointError": "errors",
    "Audio": "audio",
    "load_audio": "audio",
    "Spectrogram": "spectrogram",
    "STFTSpectrogram": "spectrogram",
    "MelSpectrogram": "spectrogram",
    "KaldiFbank": "spectrogram",
    "PatchGrid": "patches",
    "Box": "patches",
    "ASTConfig": "models.ast",
    "ASTModel": "models.ast",
    "ViTModel": "models.vit",
    "Analysis": "analysis",
    "WindowedAnalyses": "analysis",
    "Faithfulness": "explain.faithfulness",
    "load_demo_model": "demo",
    "SpectrogramViewer": "widgets.viewer",
    "LongViewer": "widgets.longview",
    "chunked_spectrogram": "longform",
    "Explorer": "widgets.explorer",
    "explore": "widgets.explorer",
    "DatasetExplorer": "widgets.dataset_explorer",
    "explore_dataset": "widgets.dataset_explorer",
    "extract_embeddings": "embeddings",
    "embed_dataset": "store",
    "open_store": "store",
    "EmbeddingStore": "store",
    "StoreError": "store",
    "LinearProbe": "probe",
    "probe_layers": "probe",
    "compute_tradeoff": "tradeoff",
    "quantize": "models.precision",
}

_SUBMODULES = {"datasets", "models", "widgets", "demo", "analysis", "patches", "spectrogram", "audio", "store"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"audiovis.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"audiovis.{name}")
    raise AttributeError(f"module 'audiovis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)


def _analysis_runner() -> Any:
    """The analysis layer's runner (``audiovis.runner``), imported on first use: what ``model.analyze``,
    ``analyze_windows``, ``windows`` and ``window_starts`` hand over to."""
    return importlib.import_module("audiovis.runner")


# Models never import the analysis layer; this root, which Python runs before any submodule, wires their
# analyze methods to it (docs/ARCHITECTURE.md, "Layers"). Nothing heavy is imported here.
from .models.delegate import install as _install_runner  # noqa: E402

_install_runner(_analysis_runner)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .analysis import Analysis, WindowedAnalyses
    from .audio import Audio, load_audio
    from .demo import load_demo_model
    from .embeddings import extract_embeddings
    from .store import EmbeddingStore, StoreError, embed_dataset, open_store
    from .explain.faithfulness import Faithfulness
    from .errors import AudioLoadError, AudiovisError, CheckpointError, ConfigError, InvalidAudioError
    from .models.ast import ASTConfig, ASTModel
    from .models.vit import ViTModel
    from .patches import Box, PatchGrid
    from .probe import LinearProbe, probe_layers
    from .spectrogram import KaldiFbank, MelSpectrogram, Spectrogram, STFTSpectrogram
    from .tradeoff import compute_tradeoff
    from .models.precision import quantize
    from .widgets.explorer import Explorer, explore
    from .widgets.dataset_explorer import DatasetExplorer, explore_dataset
    from .longform import chunked_spectrogram
    from .widgets.longview import LongViewer
    from .widgets.viewer import SpectrogramViewer
