"""Models: AST and timm ViTs on spectrograms, checkpoint loading, AudioSet labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ASTConfig", "ASTModel", "ViTModel", "StridedPatchEmbed", "audioset_labels"]

_EXPORTS = {
    "ASTConfig": "ast",
    "ASTModel": "ast",
    "ViTModel": "vit",
    "StridedPatchEmbed": "patch_embed",
    "audioset_labels": "labels",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .ast import ASTConfig, ASTModel
    from .labels import audioset_labels
    from .patch_embed import StridedPatchEmbed
    from .vit import ViTModel
